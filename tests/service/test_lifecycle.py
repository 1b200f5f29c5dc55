"""The device lifecycle on SQLite and PostgreSQL: removed after N consecutive absent scans (N per site) or by a
person, overdue replacements alerting once per due date, and exceptions shown in the HTML, CSV and API views
of a stored report until they expire, with the stored report unchanged byte for byte."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from scanner.service.alerts import deliver_due
from scanner.service.ingest import ingest_report
from scanner.service.lifecycle import check_overdue
from scanner.service.store.models import AlertEvent, AuditEntry, Device, Site
from tests.service.conftest import AXIS, HIK, Api, Dev, day, make_report
from tests.service.sinks import webhook_sink
from tests.service.test_alerts import SECRET, fast, rule

AXIS_CAM = Dev("10.77.0.11", "00:40:8c:00:00:11", tuple(AXIS))
HIK_CAM = Dev("10.77.0.10", "28:57:be:00:00:10", tuple(HIK))


def ingest(api: Api, raw: bytes) -> str:
    with api.db.session() as s:
        site = s.scalars(select(Site).where(Site.slug == "town-hall")).one()
        return ingest_report(s, site, raw).scan_id


def device(api: Api, mac: str) -> dict[str, Any]:
    with api.db.session() as s:
        device_id = s.scalar(select(Device.id).where(Device.mac == mac))
    r = api.client.get(f"/api/v1/devices/{device_id}", headers=api.as_("auditor"))
    assert r.status_code == 200
    return dict(r.json())


def patch(api: Api, device_id: int, lifecycle: dict[str, Any]) -> dict[str, Any]:
    r = api.client.patch(f"/api/v1/devices/{device_id}", json={"lifecycle": lifecycle}, headers=api.as_("operator"))
    assert r.status_code == 200, r.text
    return dict(r.json())


def audit_actions(api: Api, target: str) -> list[tuple[str, str]]:
    with api.db.session() as s:
        return [
            (e.actor, e.action)
            for e in s.scalars(select(AuditEntry).where(AuditEntry.target == target).order_by(AuditEntry.id))
        ]


def test_a_flagged_device_absent_from_n_scans_is_removed_and_tracked_again_when_back(api: Api) -> None:
    r = api.client.patch("/api/v1/sites/town-hall", json={"removed_after_scans": 2}, headers=api.as_("operator"))
    assert r.status_code == 200 and r.json()["removed_after_scans"] == 2
    ingest(api, make_report([AXIS_CAM, HIK_CAM], day(0)))
    hik = device(api, "28:57:be:00:00:10")
    ingest(api, make_report([], day(1)))
    assert device(api, "28:57:be:00:00:10")["lifecycle"]["state"] is None  # absent from one scan: not yet
    ingest(api, make_report([], day(2)))
    gone = device(api, "28:57:be:00:00:10")
    assert gone["status"] == "gone" and gone["lifecycle"]["state"] == "removed"
    assert gone["lifecycle"]["updated_by"] == "camscan"
    assert device(api, "00:40:8c:00:00:11")["lifecycle"]["state"] is None  # not flagged, not tracked
    assert audit_actions(api, f"device:{hik['id']}") == [("camscan", "device.removed")]
    ingest(api, make_report([HIK_CAM], day(3)))
    back = device(api, "28:57:be:00:00:10")
    assert back["lifecycle"]["state"] == "flagged" and back["status"] == "present"
    assert audit_actions(api, f"device:{hik['id']}")[-1] == ("camscan", "device.returned")


def test_the_default_is_three_scans(api: Api) -> None:
    assert api.client.get("/api/v1/sites/town-hall", headers=api.as_("auditor")).json()["removed_after_scans"] == 3
    ingest(api, make_report([HIK_CAM], day(0)))
    for n in (1, 2):
        ingest(api, make_report([], day(n)))
    assert device(api, "28:57:be:00:00:10")["lifecycle"]["state"] is None
    ingest(api, make_report([], day(3)))
    assert device(api, "28:57:be:00:00:10")["lifecycle"]["state"] == "removed"


def test_a_person_marks_a_device_removed_and_it_is_audited(api: Api) -> None:
    ingest(api, make_report([HIK_CAM], day(0)))
    hik = device(api, "28:57:be:00:00:10")
    assert (
        patch(api, hik["id"], {"state": "removed", "note": "taken down by facilities"})["lifecycle"]["state"]
        == "removed"
    )
    assert audit_actions(api, f"device:{hik['id']}") == [("token:operator", "device.lifecycle")]


def test_an_overdue_replacement_alerts_once_per_due_date(api: Api) -> None:
    with webhook_sink() as sink:
        rule(api, {"event": "device.overdue", "webhook": {"url": sink.url, "secret": SECRET}})
        ingest(api, make_report([HIK_CAM], day(0)))
        hik = device(api, "28:57:be:00:00:10")
        due = date(2026, 3, 10)
        patch(api, hik["id"], {"state": "replacement_planned", "replacement_due": due.isoformat(),
                               "replacement_owner": "facilities"})  # fmt: skip
        with api.db.session() as s:
            assert check_overdue(s, due) == 0  # due today is not yet overdue
        for _ in range(2):
            with api.db.session() as s:
                assert check_overdue(s, due + timedelta(days=1)) == (1 if _ == 0 else 0)
        patch(api, hik["id"], {"replacement_due": "2026-03-20"})
        with api.db.session() as s:
            assert check_overdue(s, date(2026, 3, 21)) == 1  # a new due date may alert again
        deliver_due(api.db, fast())
        bodies = [json.loads(r.body) for r in sink.requests]
    assert [b["event"] for b in bodies] == ["device.overdue", "device.overdue"]
    assert [b["detail"]["replacement_due"] for b in bodies] == ["2026-03-10", "2026-03-20"]
    assert bodies[0]["devices"][0]["id"] == hik["id"] and bodies[0]["detail"]["owner"] == "facilities"
    assert device(api, "28:57:be:00:00:10")["lifecycle"]["overdue"] is True  # the real today is later


def test_a_removed_or_excepted_device_is_not_overdue(api: Api) -> None:
    ingest(api, make_report([HIK_CAM, Dev("10.77.0.12", "28:57:be:00:00:12", tuple(HIK))], day(0)))
    a, b = device(api, "28:57:be:00:00:10"), device(api, "28:57:be:00:00:12")
    patch(api, a["id"], {"state": "removed", "replacement_due": "2026-03-10"})
    patch(api, b["id"], {"state": "exception", "replacement_due": "2026-03-10", "exception_reason": "listed building",
                         "exception_expires": "2026-04-01"})  # fmt: skip
    with api.db.session() as s:
        assert check_overdue(s, date(2026, 3, 20)) == 0
        assert s.scalars(select(AlertEvent).where(AlertEvent.event == "device.overdue")).all() == []


def test_an_exception_is_shown_in_html_csv_and_api_until_it_expires(api: Api) -> None:
    scan = ingest(api, make_report([AXIS_CAM, HIK_CAM], day(0)))
    hik = device(api, "28:57:be:00:00:10")
    stored = api.client.get(f"/api/v1/scans/{scan}/report.json", headers=api.as_("auditor")).content
    expires = date.today() + timedelta(days=30)
    patch(api, hik["id"], {"state": "exception", "exception_reason": "=HYPERLINK(\"x\") replaced in the spring",
                           "exception_approver": "Head of Estates",
                           "exception_expires": expires.isoformat()})  # fmt: skip
    h = api.as_("auditor")
    html = api.client.get(f"/api/v1/scans/{scan}/report.html", headers=h).text
    assert f"Exception until {expires.isoformat()}, approved by Head of Estates" in html
    assert "=HYPERLINK(&#34;x&#34;)" in html or "=HYPERLINK(&quot;x&quot;)" in html
    rows = list(csv.DictReader(io.StringIO(api.client.get(f"/api/v1/scans/{scan}/report.csv", headers=h).text)))
    by_ip = {r["ip"]: r for r in rows}
    assert by_ip["10.77.0.10"]["exception"].startswith(f"Exception until {expires.isoformat()}")
    assert by_ip["10.77.0.11"]["exception"] == ""
    detail = device(api, "28:57:be:00:00:10")
    assert detail["lifecycle"]["exception_active"] is True
    assert {f["status"] for f in detail["findings"]} == {"excepted"}
    assert detail["findings"][0]["exception"]["approver"] == "Head of Estates"
    after = api.client.get(f"/api/v1/scans/{scan}/report.json", headers=h).content
    assert after == stored and hashlib.sha256(after).hexdigest() == api.client.get(
        f"/api/v1/scans/{scan}", headers=h).json()["report_sha256"]  # fmt: skip
    # expired: the findings are open again, nothing is shown
    patch(api, hik["id"], {"exception_expires": (date.today() - timedelta(days=1)).isoformat()})
    assert "Exception until" not in api.client.get(f"/api/v1/scans/{scan}/report.html", headers=h).text
    rows = list(csv.DictReader(io.StringIO(api.client.get(f"/api/v1/scans/{scan}/report.csv", headers=h).text)))
    assert all(r["exception"] == "" for r in rows)
    detail = device(api, "28:57:be:00:00:10")
    assert detail["lifecycle"]["exception_active"] is False and {f["status"] for f in detail["findings"]} == {"open"}


def test_the_csv_neutralises_a_formula_in_an_exception(api: Api) -> None:
    scan = ingest(api, make_report([HIK_CAM], day(0)))
    hik = device(api, "28:57:be:00:00:10")
    patch(api, hik["id"], {"state": "exception", "exception_reason": "x",
                           "exception_approver": "=cmd|' /C calc'!A0",
                           "exception_expires": (date.today() + timedelta(days=1)).isoformat()})  # fmt: skip
    text = api.client.get(f"/api/v1/scans/{scan}/report.csv", headers=api.as_("auditor")).text
    assert "approved by =cmd" in text  # inside the cell, not at its start: not a formula
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert not row["exception"].startswith(("=", "+", "-", "@"))
