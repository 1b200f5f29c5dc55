"""The agents' side of the API: heartbeats and versions, report submission (site-limited tokens,
idempotence by report_id), results without a report; on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from scanner import __version__
from scanner.model import SCHEMA_VERSION
from scanner.service.agents import SCHEMA_HEADER, VERSION_HEADER, too_old
from scanner.service.store.models import Agent, Scan, Site, utcnow
from tests.service.conftest import Api, Dev, day, make_report

AGENT = {VERSION_HEADER: __version__, SCHEMA_HEADER: SCHEMA_VERSION, "X-Camscan-Agent": "annex"}


def _running_scan(api: Api, slug: str) -> str:
    with api.db.session() as s:
        site = s.scalars(select(Site).where(Site.slug == slug)).one()
        scan = Scan(id=str(uuid.uuid4()), site_id=site.id, trigger="schedule", status="running", queued_at=utcnow(),
                    started_at=utcnow(), runner="test celery queue camscan.site." + slug)  # fmt: skip
        s.add(scan)
        return scan.id


def _beat(**over: object) -> dict[str, object]:
    return {"name": "annex", "site": "annex", "version": __version__, "schema_version": SCHEMA_VERSION,
            "hostname": "pi", "allow": ["10.78.0.0/24"], **over}  # fmt: skip


def test_heartbeat_registers_the_agent_and_shows_its_last_contact(api: Api) -> None:
    c = api.client
    r = c.post("/api/v1/agents/heartbeat", json=_beat(), headers=api.as_("annex-operator"))
    assert r.status_code == 200, r.text
    assert r.json()["online"] is True and r.json()["assigned"] is False
    listed = c.get("/api/v1/agents", headers=api.as_("auditor")).json()["items"]
    assert [(a["name"], a["site"], a["version"], a["allow"]) for a in listed] == [
        ("annex", "annex", __version__, ["10.78.0.0/24"])
    ]
    assert listed[0]["last_contact"] and listed[0]["seconds_since_contact"] >= 0
    # a token of another site cannot speak for this one; an auditor cannot speak at all
    other = c.post("/api/v1/agents/heartbeat", json=_beat(site="town-hall", name="th"),
                   headers=api.as_("annex-operator"))  # fmt: skip
    assert other.status_code == 403
    assert c.post("/api/v1/agents/heartbeat", json=_beat(), headers=api.as_("auditor")).status_code == 403
    assert c.post("/api/v1/agents/heartbeat", json=_beat()).status_code == 401
    # the same name for another site is a mistake the service names
    taken = c.post("/api/v1/agents/heartbeat", json=_beat(site="town-hall"), headers=api.as_("admin"))
    assert taken.status_code == 409 and "another site" in taken.json()["detail"]


def test_an_agent_too_old_for_the_report_schema_is_refused_with_a_clear_message(api: Api) -> None:
    c = api.client
    r = c.post("/api/v1/agents/heartbeat", json=_beat(version="0.0.9"), headers=api.as_("annex-operator"))
    assert r.status_code == 426
    assert "too old" in r.json()["detail"] and "upgrade camscan" in r.json()["detail"]
    listed = c.get("/api/v1/agents", headers=api.as_("admin")).json()["items"]
    assert listed[0]["online"] is False and "too old" in listed[0]["refused"]
    r = c.post("/api/v1/agents/heartbeat", json=_beat(schema_version="9.0"), headers=api.as_("annex-operator"))
    assert r.status_code == 426 and "report schema 9.0" in r.json()["detail"]
    scan_id = _running_scan(api, "annex")
    raw = make_report([Dev("10.78.0.5", "00:11:22:33:44:55")], day(1), site="Annex")
    old = {**AGENT, VERSION_HEADER: "0.0.9"}
    r = c.post(f"/api/v1/scans/{scan_id}/report", content=raw, headers={**api.as_("annex-operator"), **old})
    assert r.status_code == 426 and "too old" in r.json()["detail"]
    r = c.post(f"/api/v1/scans/{scan_id}/report", content=raw, headers=api.as_("annex-operator"))  # no version
    assert r.status_code == 426 and VERSION_HEADER in r.json()["detail"]
    assert too_old(__version__, SCHEMA_VERSION) is None


def test_a_report_is_stored_once_and_only_for_the_tokens_site(api: Api) -> None:
    c = api.client
    annex_scan = _running_scan(api, "annex")
    hall_scan = _running_scan(api, "town-hall")
    raw = make_report([Dev("10.78.0.5", "00:11:22:33:44:55")], day(1), site="Annex")
    headers = {**api.as_("annex-operator"), **AGENT}
    # site A's token cannot submit for site B
    r = c.post(f"/api/v1/scans/{hall_scan}/report", content=raw, headers=headers)
    assert r.status_code == 403 and "another site" in r.json()["detail"]
    r = c.post(f"/api/v1/scans/{annex_scan}/report", content=raw, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "succeeded" and r.json()["devices"] == 1
    again = c.post(f"/api/v1/scans/{annex_scan}/report", content=raw, headers=headers)  # a retried delivery
    assert again.status_code == 200 and again.json()["duplicate"] is True
    other = make_report([Dev("10.78.0.6", "00:11:22:33:44:66")], day(2), site="Annex")
    clash = c.post(f"/api/v1/scans/{annex_scan}/report", content=other, headers=headers)
    assert clash.status_code == 409
    with api.db.session() as s:
        stored = s.scalars(select(Scan).where(Scan.report_id.is_not(None))).all()
        assert [x.id for x in stored] == [annex_scan]
    served = c.get(f"/api/v1/scans/{annex_scan}/report.json", headers=api.as_("auditor"))
    assert served.content == raw  # byte for byte
    # the unknown scan and the broken report
    assert c.post(f"/api/v1/scans/{uuid.uuid4()}/report", content=raw, headers=headers).status_code == 404
    bad = c.post(f"/api/v1/scans/{hall_scan}/report",
                 content=b"{not json", headers={**api.as_("admin"), **AGENT})  # fmt: skip
    assert bad.status_code == 422 and "not UTF-8 JSON" in bad.json()["detail"]


def test_a_result_without_report_fails_the_scan(api: Api) -> None:
    c = api.client
    scan_id = _running_scan(api, "annex")
    headers = {**api.as_("annex-operator"), **AGENT}
    r = c.post(f"/api/v1/scans/{scan_id}/result", json={"error": "refused by the agent: x", "refused": True},
               headers=headers)  # fmt: skip
    assert r.status_code == 200 and r.json()["status"] == "failed"
    assert c.get(f"/api/v1/scans/{scan_id}", headers=headers).json()["error"] == "refused by the agent: x"
    hall = _running_scan(api, "town-hall")
    assert c.post(f"/api/v1/scans/{hall}/result", json={"error": "x"}, headers=headers).status_code == 403


def test_sites_take_an_agent(api: Api) -> None:
    c = api.client
    r = c.patch("/api/v1/sites/annex", json={"agent": "annex"}, headers=api.as_("operator"))
    assert r.status_code == 200 and r.json()["agent"] == "annex"
    with api.db.session() as s:
        assert s.scalars(select(Agent)).all() == []
    r = c.patch("/api/v1/sites/annex", json={"agent": None}, headers=api.as_("operator"))
    assert r.json()["agent"] is None
