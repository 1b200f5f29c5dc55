"""The HTTP API of docs/service.md through the real app (size limit and request log included), on SQLite and
PostgreSQL: every route's auth rules, bad input of every kind, reports byte for byte, diff, devices."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from scanner.report.export import verify_document
from scanner.service.ingest import ingest_report
from scanner.service.store.models import AuditEntry, Device, Scan, Site
from tests.report_fixtures import FORMULAS, SCRIPT
from tests.service.conftest import AXIS, HIK, Api, Dev, day, make_report

SITE = {"slug": "depot", "name": "Depot", "targets": ["10.80.0.0/24"], "interface": "eth1", "schedule": "0 2 * * *",
        "tz": "Europe/London", "methods": ["arp", "wsd"], "packs": ["us-ndaa-889"]}  # fmt: skip


def counts(api: Api) -> tuple[int, int, int]:
    with api.db.session() as s:
        return (
            int(s.scalar(select(func.count()).select_from(Site)) or 0),
            int(s.scalar(select(func.count()).select_from(Scan)) or 0),
            int(s.scalar(select(func.count()).select_from(AuditEntry)) or 0),
        )


def seed(api: Api, slug: str, *reports: bytes) -> list[str]:
    ids = []
    with api.db.session() as s:
        site = s.scalars(select(Site).where(Site.slug == slug)).one()
        for raw in reports:
            ids.append(ingest_report(s, site, raw).scan_id)
    return ids


# ---- health, OpenAPI ----------------------------------------------------------------------------------


def test_health_needs_no_token(api: Api) -> None:
    r = api.client.get("/api/v1/health")
    assert r.status_code == 200
    assert {k: r.json()[k] for k in ("status", "database", "scheduler")} == {
        "status": "ok",
        "database": "ok",
        "scheduler": "off",  # this app runs no scheduler; `camscan serve` does (test_serve.py)
    }


def test_openapi_lists_the_contract_paths(api: Api) -> None:
    paths = api.client.get("/api/openapi.json").json()["paths"]
    for path in ("/api/v1/health", "/api/v1/sites", "/api/v1/sites/{slug}", "/api/v1/sites/{slug}/scans",
                 "/api/v1/scans", "/api/v1/scans/{scan_id}", "/api/v1/scans/{scan_id}/report.json",
                 "/api/v1/scans/{scan_id}/report.html", "/api/v1/scans/{scan_id}/report.csv",
                 "/api/v1/scans/{scan_id}/diff", "/api/v1/devices", "/api/v1/devices/{device_id}"):  # fmt: skip
        assert path in paths, path


# ---- 401 / 403 -------------------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/v1/sites", None),
    ("POST", "/api/v1/sites", SITE),
    ("GET", "/api/v1/sites/town-hall", None),
    ("PATCH", "/api/v1/sites/town-hall", {"name": "x"}),
    ("DELETE", "/api/v1/sites/town-hall", None),
    ("POST", "/api/v1/sites/town-hall/scans", None),
    ("GET", "/api/v1/scans", None),
    ("GET", "/api/v1/scans/SCAN", None),
    ("GET", "/api/v1/scans/SCAN/report.json", None),
    ("GET", "/api/v1/scans/SCAN/report.html", None),
    ("GET", "/api/v1/scans/SCAN/report.csv", None),
    ("GET", "/api/v1/scans/SCAN/diff", None),
    ("GET", "/api/v1/devices", None),
    ("GET", "/api/v1/devices/DEVICE", None),
    ("PATCH", "/api/v1/devices/DEVICE", {"lifecycle": {"note": "x"}}),
]


def _call(api: Api, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return api.client.request(method, path, json=body, headers=headers)


@pytest.fixture
def seeded(api: Api) -> dict[str, Any]:
    scan_ids = seed(api, "town-hall", make_report([Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK))], day(0)))
    with api.db.session() as s:
        device = s.scalars(select(Device.id)).one()
    return {"scan": scan_ids[0], "device": device}


def _fill(path: str, seeded: dict[str, Any]) -> str:
    return path.replace("SCAN", seeded["scan"]).replace("DEVICE", str(seeded["device"]))


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
@pytest.mark.parametrize("auth", [None, "Bearer cst_not-a-real-token", "Basic YWRtaW46YWRtaW4=", "Bearer "])
def test_no_valid_token_is_401(
    api: Api, seeded: dict[str, Any], method: str, path: str, body: Any, auth: str | None
) -> None:
    headers = {"Authorization": auth} if auth else {}
    r = _call(api, method, _fill(path, seeded), body, headers)
    assert r.status_code == 401
    assert isinstance(r.json()["detail"], str) and r.headers["www-authenticate"] == "Bearer"


WRITES = [(m, p, b) for m, p, b in ROUTES if m != "GET"]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_an_auditor_cannot_write(api: Api, seeded: dict[str, Any], method: str, path: str, body: Any) -> None:
    before = counts(api)
    r = _call(api, method, _fill(path, seeded), body, api.as_("auditor"))
    assert r.status_code == 403 and "role" in r.json()["detail"]
    assert counts(api) == before


def test_an_operator_cannot_delete_a_site(api: Api) -> None:
    assert api.client.delete("/api/v1/sites/town-hall", headers=api.as_("operator")).status_code == 403
    assert api.client.delete("/api/v1/sites/town-hall", headers=api.as_("admin")).status_code == 204
    assert api.client.get("/api/v1/sites/town-hall", headers=api.as_("admin")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"), [r for r in ROUTES if "town-hall" in r[1] or "SCAN" in r[1] or "DEVICE" in r[1]]
)
def test_another_sites_token_is_403(api: Api, seeded: dict[str, Any], method: str, path: str, body: Any) -> None:
    before = counts(api)
    r = _call(api, method, _fill(path, seeded), body, api.as_("annex-operator"))
    assert r.status_code == 403
    if method != "DELETE":  # deleting needs the admin role, which this operator token lacks anyway
        assert "another site" in r.json()["detail"]
    assert counts(api) == before


def test_a_site_token_sees_only_its_site(api: Api, seeded: dict[str, Any]) -> None:
    who = api.as_("annex-operator")
    assert [s["slug"] for s in api.client.get("/api/v1/sites", headers=who).json()["items"]] == ["annex"]
    assert api.client.get("/api/v1/scans", headers=who).json()["items"] == []
    assert api.client.get("/api/v1/devices", headers=who).json()["items"] == []
    assert api.client.get("/api/v1/devices?site=town-hall", headers=who).status_code == 403
    assert api.client.post("/api/v1/sites", json=SITE, headers=who).status_code == 403
    assert api.client.post("/api/v1/sites/annex/scans", headers=who).status_code == 202


def test_a_revoked_token_stops_working(api: Api) -> None:
    from scanner.service.store.models import ApiToken, utcnow

    assert api.client.get("/api/v1/sites", headers=api.as_("auditor")).status_code == 200
    with api.db.session() as s:
        s.scalars(select(ApiToken).where(ApiToken.name == "auditor")).one().revoked_at = utcnow()
    assert api.client.get("/api/v1/sites", headers=api.as_("auditor")).status_code == 401


def test_unknown_ids_are_404(api: Api) -> None:
    h = api.as_("admin")
    for path in ("/api/v1/sites/nowhere", "/api/v1/scans/nope", "/api/v1/scans/nope/report.json",
                 "/api/v1/devices/999999", "/api/v1/no-such-route"):  # fmt: skip
        r = api.client.get(path, headers=h)
        assert r.status_code == 404 and isinstance(r.json()["detail"], str), path
    assert api.client.post("/api/v1/sites/nowhere/scans", headers=h).status_code == 404


# ---- sites: create, bad input, nothing stored -------------------------------------------------------------


def test_create_read_update_a_site_with_an_audit_trail(api: Api) -> None:
    h = api.as_("operator")
    r = api.client.post("/api/v1/sites", json=SITE, headers=h)
    assert r.status_code == 201, r.text
    site = r.json()
    assert {k: site[k] for k in SITE} == SITE
    assert site["next_run_at"] is not None
    r = api.client.patch("/api/v1/sites/depot", json={"schedule": "30 3 * * 1", "enabled": False}, headers=h)
    assert r.status_code == 200 and r.json()["schedule"] == "30 3 * * 1" and r.json()["enabled"] is False
    assert api.client.get("/api/v1/sites/depot", headers=api.as_("auditor")).json()["enabled"] is False
    with api.db.session() as s:
        trail = s.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.target).order_by(AuditEntry.id)).all()
    assert ("token:operator", "site.create", "site:depot") in trail
    assert ("token:operator", "site.update", "site:depot") in trail
    assert api.client.post("/api/v1/sites", json=SITE, headers=h).status_code == 409


BAD_SITES: list[tuple[str, Any, str]] = [
    ("public-targets", {**SITE, "targets": ["8.8.8.0/24"]}, "targets"),
    ("public-range", {**SITE, "targets": ["10.0.0.1", "1.1.1.1-20"]}, "targets"),
    ("garbage-target", {**SITE, "targets": ["not-an-address"]}, "targets"),
    ("no-targets", {**SITE, "targets": []}, "targets"),
    ("huge-target", {**SITE, "targets": ["10.0.0.0/8"]}, "targets"),
    ("bad-cron", {**SITE, "schedule": "61 * * * *"}, "schedule"),
    ("cron-six-fields", {**SITE, "schedule": "* * * * * *"}, "schedule"),
    ("bad-tz", {**SITE, "tz": "Mars/Olympus"}, "tz"),
    ("bad-slug", {**SITE, "slug": "Depot One"}, "slug"),
    ("bad-interface", {**SITE, "interface": "eth0; rm -rf /"}, "interface"),
    ("unknown-method", {**SITE, "methods": ["arp", "smb"]}, "methods"),
    ("unknown-pack", {**SITE, "packs": ["eu-ai-act"]}, "packs"),
    ("unknown-field", {**SITE, "owner": "me"}, "owner"),
    ("missing-name", {k: v for k, v in SITE.items() if k != "name"}, "name"),
    ("wrong-type", {**SITE, "targets": "10.0.0.0/24"}, "targets"),
]


@pytest.mark.parametrize(("body", "field"), [(b, f) for _, b, f in BAD_SITES], ids=[c for c, _, _ in BAD_SITES])
def test_a_bad_site_is_422_naming_the_field_and_stores_nothing(api: Api, body: Any, field: str) -> None:
    before = counts(api)
    r = api.client.post("/api/v1/sites", json=body, headers=api.as_("admin"))
    assert r.status_code == 422, r.text
    assert field in json.dumps(r.json()["detail"])
    assert counts(api) == before


def test_public_targets_with_the_allowance_are_accepted(api: Api) -> None:
    r = api.client.post("/api/v1/sites", json={**SITE, "targets": ["8.8.8.0/24"], "allow_public": True},
                        headers=api.as_("admin"))  # fmt: skip
    assert r.status_code == 201


@pytest.mark.parametrize(
    ("content", "ctype"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b'{"slug": "x"', "application/json"),
        (b"\xff\xfe{}", "application/json"),
        (b"slug=x", "application/x-www-form-urlencoded"),
    ],
    ids=["broken", "empty", "truncated", "not-utf8", "form"],
)
def test_invalid_json_is_422_and_stores_nothing(api: Api, content: bytes, ctype: str) -> None:
    before = counts(api)
    r = api.client.post("/api/v1/sites", content=content, headers={**api.as_("admin"), "Content-Type": ctype})
    assert r.status_code == 422 and r.json()["detail"]
    assert counts(api) == before


def test_an_oversize_body_is_413_and_stores_nothing(api: Api) -> None:
    before = counts(api)
    big = {**SITE, "name": "x" * 2_000_000}
    r = api.client.post("/api/v1/sites", json=big, headers=api.as_("admin"))
    assert r.status_code == 413 and "bytes" in r.json()["detail"]
    chunks = (b"x" * 65536 for _ in range(40))  # no Content-Length: counted as it streams
    r = api.client.post(
        "/api/v1/sites", content=chunks, headers={**api.as_("admin"), "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert counts(api) == before


def test_bad_query_parameters_are_422(api: Api) -> None:
    h = api.as_("auditor")
    for path in ("/api/v1/devices?limit=0", "/api/v1/devices?limit=100000", "/api/v1/devices?flagged=maybe",
                 "/api/v1/devices?status=lost", "/api/v1/devices?cursor=%%%", "/api/v1/devices?cursor=WzFd0000",
                 "/api/v1/scans?status=done", "/api/v1/scans?cursor=bm9wZQ", "/api/v1/devices/abc"):  # fmt: skip
        r = api.client.get(path, headers=h)
        assert r.status_code == 422, path
        assert r.json()["detail"]


# ---- scans ------------------------------------------------------------------------------------------------


def test_queue_a_scan_then_409_while_it_is_queued(api: Api) -> None:
    h = api.as_("operator")
    r = api.client.post("/api/v1/sites/town-hall/scans", headers=h)
    assert r.status_code == 202
    scan = r.json()
    assert scan["status"] == "queued" and scan["trigger"] == "manual" and scan["site"] == "town-hall"
    again = api.client.post("/api/v1/sites/town-hall/scans", headers=h)
    assert again.status_code == 409 and scan["id"] in again.json()["detail"]
    got = api.client.get(f"/api/v1/scans/{scan['id']}", headers=api.as_("auditor")).json()
    assert {"id", "site", "status", "trigger", "queued_at", "started_at", "finished_at", "error", "summary"} <= set(got)


def test_reports_are_served_byte_for_byte_and_rendered(api: Api, tmp_path: Any) -> None:
    raw = make_report(
        [Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK)), Dev("10.77.0.31", "00:40:8c:00:00:31", tuple(AXIS))],
        day(0),
    )
    (scan,) = seed(api, "town-hall", raw)
    h = api.as_("auditor")
    r = api.client.get(f"/api/v1/scans/{scan}/report.json", headers=h)
    assert r.status_code == 200 and r.content == raw
    (tmp_path / "r.json").write_bytes(r.content)
    from typer.testing import CliRunner

    from scanner.cli import app

    assert CliRunner().invoke(app, ["verify", str(tmp_path / "r.json")]).exit_code == 0
    html = api.client.get(f"/api/v1/scans/{scan}/report.html", headers=h)
    assert html.status_code == 200 and "Hikvision" in html.text
    assert "'unsafe-inline'" not in html.headers["content-security-policy"].split("style-src")[0]
    rows = list(csv.DictReader(io.StringIO(api.client.get(f"/api/v1/scans/{scan}/report.csv", headers=h).text)))
    assert {r["ip"] for r in rows} == {"10.77.0.11", "10.77.0.31"}
    listed = api.client.get("/api/v1/scans?site=town-hall&status=succeeded", headers=h).json()["items"]
    assert [s["id"] for s in listed] == [scan] and listed[0]["summary"]["devices"] == 2


def test_scan_list_pages_with_a_cursor(api: Api) -> None:
    reports = [make_report([Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK))], day(i)) for i in range(5)]
    ids = seed(api, "town-hall", *reports)
    h, seen, cursor = api.as_("auditor"), [], None
    while True:
        page = api.client.get("/api/v1/scans?limit=2" + (f"&cursor={cursor}" if cursor else ""), headers=h).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5


def test_diff_shows_new_gone_changed_and_findings(api: Api) -> None:
    hik = Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK))
    axis = Dev("10.77.0.31", "00:40:8c:00:00:31", tuple(AXIS))
    hik_new_fw = Dev("10.77.0.12", "44:19:b6:00:00:11", tuple(HIK))
    late = Dev("10.77.0.21", "4c:11:bf:00:00:21", (("dhip.device_type", "IPC-HDW2431T-AS"),))
    first, second = seed(api, "town-hall", make_report([hik, axis], day(0)), make_report([hik_new_fw, late], day(1)))
    h = api.as_("auditor")
    d = api.client.get(f"/api/v1/scans/{second}/diff", headers=h).json()
    assert d["against"] == first
    assert [x["mac"] for x in d["new"]] == ["4c:11:bf:00:00:21"]
    assert [x["mac"] for x in d["gone"]] == ["00:40:8c:00:00:31"]
    assert [x["changes"]["ip"] for x in d["changed"]] == [{"old": "10.77.0.11", "new": "10.77.0.12"}]
    assert all(x["device_id"] is not None for x in d["new"] + d["gone"] + d["changed"])
    assert any(f["finding"].startswith("us-ndaa-889/") for f in d["findings_new"])
    same = api.client.get(f"/api/v1/scans/{second}/diff?against={first}", headers=h).json()
    assert same["new"] == d["new"]
    assert api.client.get(f"/api/v1/scans/{first}/diff", headers=h).status_code == 404  # nothing before it


# ---- devices ----------------------------------------------------------------------------------------------


def test_device_list_filters_and_pages(api: Api) -> None:
    devs = [Dev(f"10.77.0.{i}", f"44:19:b6:00:01:{i:02x}", tuple(HIK)) for i in range(10, 16)]
    devs += [Dev(f"10.77.0.{i}", f"00:40:8c:00:01:{i:02x}", tuple(AXIS)) for i in range(30, 34)]
    seed(api, "town-hall", make_report(devs, day(0)), make_report(devs[:-1], day(1)))
    h = api.as_("auditor")
    items = api.client.get("/api/v1/devices?site=town-hall", headers=h).json()["items"]
    assert len(items) == 10
    assert set(items[0]) >= {"id", "site", "ip", "mac", "manufacturer", "brand", "model", "device_type", "flagged",
                             "first_seen", "last_seen", "status", "lifecycle"}  # fmt: skip
    flagged = api.client.get("/api/v1/devices?flagged=true", headers=h).json()["items"]
    assert len(flagged) == 6 and all(d["manufacturer"] == "Hikvision" for d in flagged)
    assert len(api.client.get("/api/v1/devices?manufacturer=axis", headers=h).json()["items"]) == 4
    gone = api.client.get("/api/v1/devices?status=gone", headers=h).json()["items"]
    assert [d["mac"] for d in gone] == ["00:40:8c:00:01:21"]
    assert [d["ip"] for d in api.client.get("/api/v1/devices?q=0.3", headers=h).json()["items"]][:1] == ["10.77.0.30"]
    assert api.client.get("/api/v1/devices?q=%25", headers=h).json()["items"] == []  # % is a character, not a wildcard
    seen, cursor = [], None
    while True:
        page = api.client.get("/api/v1/devices?limit=3" + (f"&cursor={cursor}" if cursor else ""), headers=h).json()
        seen += [d["id"] for d in page["items"]]
        if not (cursor := page["next"]):
            break
    assert len(seen) == len(set(seen)) == 10


def test_device_page_has_history_evidence_and_findings(api: Api) -> None:
    hik = Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK))
    seed(api, "town-hall", *(make_report([hik], day(i)) for i in range(3)))
    h = api.as_("auditor")
    (item,) = api.client.get("/api/v1/devices", headers=h).json()["items"]
    d = api.client.get(f"/api/v1/devices/{item['id']}", headers=h).json()
    assert [x["seen_at"][:10] for x in d["history"]] == ["2026-03-03", "2026-03-02", "2026-03-01"]
    assert {"key": "http.server", "value": "App-webs/"}.items() <= next(
        e for e in d["evidence"] if e["key"] == "http.server"
    ).items()
    assert any(f["pack"] == "us-ndaa-889" and f["resolved_at"] is None for f in d["findings"])
    assert d["identity"] == {"kind": "mac", "key": "44:19:b6:00:00:11"}


def test_lifecycle_fields_are_stored_and_audited(api: Api, seeded: dict[str, Any]) -> None:
    path = f"/api/v1/devices/{seeded['device']}"
    change = {
        "lifecycle": {
            "state": "replacement_planned",
            "replacement_due": "2026-09-30",
            "replacement_owner": "Facilities",
        }
    }
    r = api.client.patch(path, json=change, headers=api.as_("operator"))
    assert r.status_code == 200
    life = api.client.get(path, headers=api.as_("auditor")).json()["lifecycle"]
    assert (life["state"], life["replacement_due"], life["replacement_owner"], life["updated_by"]) == (
        "replacement_planned", "2026-09-30", "Facilities", "token:operator")  # fmt: skip
    for bad in ({"lifecycle": {"state": "forgotten"}}, {"lifecycle": {"replacement_due": "soon"}}, {"state": "removed"},
                {"lifecycle": {"state": "exception"}}):  # fmt: skip
        assert api.client.patch(path, json=bad, headers=api.as_("operator")).status_code == 422, bad
    with api.db.session() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.target == f"device:{seeded['device']}")).all()
    assert actions == ["device.lifecycle"]


# ---- hostile strings stay data ------------------------------------------------------------------------------


def test_hostile_device_strings_stay_data_in_the_json(api: Api) -> None:
    hostile = Dev("10.77.0.66", "00:12:12:66:66:66",
                  (("onvif.manufacturer", SCRIPT), ("onvif.model", FORMULAS[0]), ("http.title", '"}{"x":1,\u2028\x00'),
                   ("hostname", "\x1b[2J\x1b]0;owned\x07")), serial='"; DROP TABLE devices; --')  # fmt: skip
    (scan,) = seed(api, "town-hall", make_report([hostile], day(0)))
    h = api.as_("auditor")
    (item,) = api.client.get("/api/v1/devices", headers=h).json()["items"]
    d = api.client.get(f"/api/v1/devices/{item['id']}", headers=h)
    assert d.headers["content-type"] == "application/json"
    doc = d.json()  # parses: the strings did not break the JSON
    assert doc["serial"] == '"; DROP TABLE devices; --'
    values = {e["key"]: e["value"] for e in doc["evidence"]}
    assert values["onvif.model"] == FORMULAS[0] and values["onvif.manufacturer"] == SCRIPT
    html = api.client.get(f"/api/v1/scans/{scan}/report.html", headers=h).text
    assert "<script>document.title" not in html
    r = api.client.get("/api/v1/devices?q=" + SCRIPT[:20], headers=h)
    assert r.status_code == 200 and r.json()["items"] == []
    raw = api.client.get(f"/api/v1/scans/{scan}/report.json", headers=h).content
    assert verify_document(json.loads(raw))[0]
