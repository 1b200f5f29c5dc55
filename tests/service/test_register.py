"""The asset register on SQLite and PostgreSQL: good, bad and hostile CSV through the API (line numbers,
all or nothing, encodings, size, formula cells), NetBox's export columns, and the reconciliation."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from scanner.service.ingest import ingest_report
from scanner.service.store.models import AuditEntry, Site
from tests.report_fixtures import FORMULAS
from tests.service.conftest import AXIS, HIK, Api, Dev, day, make_report

GOOD = (
    "mac,ip,asset_tag,location,owner,approved\n"
    "28:57:BE:00:00:10,10.77.0.10,CAM-0010,Main entrance,Facilities,yes\n"
    "00-40-8C-00-00-11,,CAM-0011,Car park,Facilities,no\n"
    ",10.77.0.99,CAM-0099,Basement,IT,true\n"
)


def post(api: Api, body: bytes | str, slug: str = "town-hall", who: str = "operator") -> Any:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return api.client.post(f"/api/v1/sites/{slug}/register", content=data,
                           headers={**api.as_(who), "Content-Type": "text/csv"})  # fmt: skip


def register(api: Api) -> list[dict[str, Any]]:
    r = api.client.get("/api/v1/sites/town-hall/register", headers=api.as_("auditor"))
    assert r.status_code == 200
    return list(r.json()["items"])


def ingest(api: Api, raw: bytes) -> str:
    with api.db.session() as s:
        site = s.scalars(select(Site).where(Site.slug == "town-hall")).one()
        return ingest_report(s, site, raw).scan_id


@pytest.mark.parametrize(
    "body",
    [GOOD, "\ufeff" + GOOD, GOOD.replace(",", ";"), GOOD.replace("\n", "\r\n")],
    ids=["comma", "bom", "semicolon", "crlf"],
)
def test_a_good_register_imports(api: Api, body: str) -> None:
    r = post(api, body)
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 3
    rows = register(api)
    assert [(e["line"], e["mac"], e["ip"], e["asset_tag"], e["approved"]) for e in rows] == [
        (2, "28:57:be:00:00:10", "10.77.0.10", "CAM-0010", True),
        (3, "00:40:8c:00:00:11", None, "CAM-0011", False),
        (4, None, "10.77.0.99", "CAM-0099", True),
    ]
    assert rows[0]["location"] == "Main entrance" and rows[0]["owner"] == "Facilities"
    with api.db.session() as s:
        assert s.scalars(select(AuditEntry.action).where(AuditEntry.action == "register.import")).all()


def test_bad_rows_are_reported_by_line_and_nothing_is_imported(api: Api) -> None:
    assert post(api, GOOD).status_code == 200
    bad = (
        "mac;ip;asset_tag;location;owner;approved\n"
        "28:57:be:00:00:10;10.77.0.10;A;B;C;yes\n"
        'zz:zz:zz:zz:zz:zz;;"a note\nover two lines";B;C;no\n'  # lines 3-4: the error is on line 3
        ";not-an-ip;A;B;C;yes\n"  # line 5
        ";;A;B;C;yes\n"  # line 6
        "28:57:be:00:00:10;;A;B;C;maybe\n"  # line 7: twice, and approved unknown
        "\n"
        ";10.77.0.20;A;B;C;1\n"  # line 9: fine
    )
    r = post(api, bad)
    assert r.status_code == 422
    problems = r.json()["detail"]
    assert [p["line"] for p in problems] == [3, 5, 6, 7]
    assert "not a MAC address" in problems[0]["msg"]
    assert "not an IP address" in problems[1]["msg"]
    assert "neither mac nor ip" in problems[2]["msg"]
    assert "also on line 2" in problems[3]["msg"] and "approved" in problems[3]["msg"]
    assert len(register(api)) == 3  # the previous register, untouched


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (GOOD.replace("Main entrance", "Entr\u00e9e").encode("latin-1"), "not UTF-8"),
        (GOOD.encode("utf-16"), "UTF-16"),
        (GOOD.encode("utf-16-le"), "UTF-16"),
        (b"", "empty"),
        (b"asset_tag,owner\nA,B\n", "neither a mac nor an ip column"),
    ],
    ids=["latin-1", "utf-16-bom", "utf-16-le", "empty", "no-key-column"],
)
def test_a_file_that_cannot_be_read_is_a_clear_422(api: Api, body: bytes, says: str) -> None:
    r = post(api, body)
    assert r.status_code == 422
    assert says in r.json()["detail"][0]["msg"]
    assert register(api) == []


def test_a_huge_file_is_refused_whole(api: Api) -> None:
    row = ",10.77.{},CAM,Loc,Owner,yes\n"
    body = "mac,ip,asset_tag,location,owner,approved\n" + "".join(
        row.format(f"{i // 250}.{i % 250}") for i in range(40000)
    )
    r = post(api, body)
    assert r.status_code == 413 and "over" in r.json()["detail"]
    assert register(api) == []


def test_formula_cells_are_kept_as_data(api: Api) -> None:
    body = "mac,asset_tag,location,owner,approved\n" + "".join(
        f"28:57:be:00:01:{i:02x},{f.replace(',', ' ').replace(chr(34), ' ')},x,y,no\n"
        for i, f in enumerate(FORMULAS[:4])
    )
    assert post(api, body).status_code == 200
    tags = [e["asset_tag"] for e in register(api)]
    assert tags == [f.replace(",", " ").replace('"', " ").strip() for f in FORMULAS[:4]]


def test_netbox_device_export_columns_are_understood(api: Api) -> None:
    netbox = (
        "ID,Name,Status,Tenant,Site,Location,Rack,Role,Manufacturer,Type,Platform,Serial number,Asset tag,IP Address\n"
        "17,cam-entrance,Active,Facilities,Town Hall,Entrance,,Camera,Hikvision,DS-2CD2143G0-I,,SN1,CAM-0010,"
        "10.77.0.10/24\n"
        "18,cam-archive,Offline,IT,Town Hall,,,Camera,Axis,M1065-L,,SN2,CAM-0011,10.77.0.11/24\n"
    )
    r = post(api, netbox)
    assert r.status_code == 200, r.text
    assert r.json()["columns"]["ip"] == "IP Address" and r.json()["columns"]["owner"] == "Tenant"
    rows = register(api)
    assert [(e["name"], e["ip"], e["asset_tag"], e["owner"], e["location"], e["approved"]) for e in rows] == [
        ("cam-entrance", "10.77.0.10", "CAM-0010", "Facilities", "Entrance", True),
        ("cam-archive", "10.77.0.11", "CAM-0011", "IT", "Town Hall", False),
    ]


def test_roles_and_sites(api: Api) -> None:
    assert post(api, GOOD, who="auditor").status_code == 403
    assert post(api, GOOD, who="annex-operator").status_code == 403
    assert post(api, GOOD, slug="nowhere").status_code == 404


def test_reconciliation(api: Api) -> None:
    hik = Dev("10.77.0.10", "28:57:be:00:00:10", tuple(HIK))
    axis = Dev("10.77.0.11", "00:40:8c:00:00:11", tuple(AXIS))
    stranger = Dev("10.77.0.12", "28:57:be:00:00:12", tuple(HIK))
    assert post(api, GOOD).status_code == 200  # registers hik (approved), axis, and 10.77.0.99 (never seen)
    ingest(api, make_report([hik, axis, stranger], day(0)))
    r = api.client.get("/api/v1/sites/town-hall/reconciliation", headers=api.as_("auditor"))
    assert r.status_code == 200
    doc = r.json()
    assert [d["ip"] for d in doc["unregistered"]] == ["10.77.0.12"]
    assert [e["ip"] for e in doc["registered_unseen"]] == ["10.77.0.99"]
    assert sorted(d["ip"] for d in doc["flagged_present"]) == ["10.77.0.10", "10.77.0.12"]
    assert [(e["asset_tag"], e["device"]["ip"]) for e in doc["approved_flagged"]] == [("CAM-0010", "10.77.0.10")]
    # the axis camera is unseen for the site's N (3) scans: registered but unseen
    for n in (1, 2, 3):
        ingest(api, make_report([hik, stranger], day(n)))
    doc = api.client.get("/api/v1/sites/town-hall/reconciliation", headers=api.as_("auditor")).json()
    assert sorted(e["asset_tag"] for e in doc["registered_unseen"]) == ["CAM-0011", "CAM-0099"]
    unseen = {e["asset_tag"]: e for e in doc["registered_unseen"]}
    assert unseen["CAM-0011"]["device"]["ip"] == "10.77.0.11" and unseen["CAM-0099"]["device"] is None


def test_the_site_page_panels(api: Api) -> None:
    from datetime import date

    from scanner.service.alerts import deliver_due
    from scanner.service.panels import alert_rules_panel, audit_pack_link, reconciliation_panel
    from tests.service.test_alerts import fast

    assert post(api, GOOD).status_code == 200
    r = api.client.post("/api/v1/alert-rules", headers=api.as_("operator"),
                        json={"event": "device.new", "email": ["ops@example.org"]})  # fmt: skip
    assert r.status_code == 201
    ingest(api, make_report([Dev("10.77.0.12", "28:57:be:00:00:12", tuple(HIK))], day(0)))
    deliver_due(api.db, fast())  # no SMTP server configured: a recorded failure, still pending
    with api.db.session() as s:
        site = s.scalars(select(Site).where(Site.slug == "town-hall")).one()
        panel = reconciliation_panel(s, site, rows=1)
        rules = alert_rules_panel(s, site)
        link = audit_pack_link(site, date(2026, 1, 1), date(2026, 3, 31))
    assert panel["counts"] == {"unregistered": 1, "registered_unseen": 3, "flagged_present": 1, "approved_flagged": 0}
    assert len(panel["registered_unseen"]) == 1  # cut to the rows asked for
    (only,) = rules
    assert only["event"] == "device.new" and only["deliveries"] == {"pending": 1}
    assert "no SMTP server" in only["last_delivery"]["error"]
    assert link["href"] == "/api/v1/export?site=town-hall&from=2026-01-01&to=2026-03-31"
    assert api.client.get(link["href"], headers=api.as_("auditor")).status_code == 200
