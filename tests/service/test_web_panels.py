"""The site page's panels of part 2 (register reconciliation, alert rules, audit pack) and their page routes,
through the real app on SQLite and PostgreSQL: real data (a register imported and an alert rule made through
the API, real reports ingested), hostile strings shown as text, roles and site limits, the audit pack
downloaded with the session and checked by camscan's own verification."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from scanner.report.pack import verify_pack
from scanner.service.auth import create_token
from scanner.service.ingest import ingest_report
from scanner.service.store.models import AuditEntry, RegisterEntry, Site
from tests.service.conftest import HIK, Dev, TestClient, day, make_report
from tests.service.test_web import _Tags, csp_allows_no_inline_script
from tests.service.web_helpers import Seeded, csrf_of, logged_in

HOSTILE_CELL = "<script>document.title='pwned'</script>"
HOSTILE_TAG = '"><img src=x onerror=alert(1)>'
SECRET_URL = "https://hooks.example.net/services/T0KEN-SECRET?key=hunter2&x=<b>bold</b>"


def _csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


REGISTER = _csv([
    ["mac", "ip", "name", "asset_tag", "location", "owner", "approved"],
    ["44:19:b6:00:00:11", "10.77.0.11", "Lobby camera", "CAM-1", "Lobby", "Facilities", "yes"],  # flagged, approved
    ["00:aa:bb:cc:dd:ee", "10.77.0.99", HOSTILE_CELL, HOSTILE_TAG, '=HYPERLINK("http://x")', "Facilities", "no"],
])  # fmt: skip


def as_(client: TestClient, email: str) -> TestClient:
    client.cookies.clear()
    return logged_in(client, email)


@pytest.fixture
def with_data(client: TestClient, seeded: Seeded) -> Seeded:
    """A register imported and an alert rule made through the API, then a scan that raises an alert."""
    with seeded.db.session() as s:
        token = create_token(s, "test admin", "admin")[1]
    headers = {"Authorization": f"Bearer {token}"}
    r = client.post("/api/v1/sites/town-hall/register", content=REGISTER.encode(),
                    headers={**headers, "Content-Type": "text/csv"})  # fmt: skip
    assert r.status_code == 200, r.text
    r = client.post("/api/v1/alert-rules", headers=headers, json={
        "event": "device.flagged", "site": "town-hall", "webhook": {"url": SECRET_URL, "secret": "s" * 32},
        "email": ["security@council.example"],
    })  # fmt: skip
    assert r.status_code == 201, r.text
    new_hik = Dev("10.77.0.12", "44:19:b6:00:00:12", tuple(HIK))
    with seeded.db.session() as s:
        site = s.scalars(select(Site).where(Site.slug == "town-hall")).one()
        ingest_report(s, site, make_report([new_hik], day(3)))
    return seeded


def panel(html: str, anchor: str) -> str:
    found = re.search(rf'<section class="panel" id="{anchor}".*?</section>', html, re.S)
    assert found, f"no panel {anchor}"
    return found.group(0)


def test_reconciliation_panel_shows_the_four_lists_with_counts_and_links(client: TestClient, with_data: Seeded) -> None:
    html = as_(client, "auditor@council.example").get("/sites/town-hall").text
    rec = panel(html, "panel-register-reconciliation")
    counts = dict(re.findall(r"<li><a href=\"#rec-[a-z]+\">([^<]+)</a>: <strong>(\d+)</strong></li>", rec))
    # the panel's counts are the API's reconciliation's (which test_register.py checks in detail)
    api = client.get("/api/v1/sites/town-hall/reconciliation", headers=_auditor_token(with_data))
    assert api.status_code == 200
    full = api.json()
    assert counts == {
        "Unregistered devices": str(len(full["unregistered"])),
        "Registered but not seen": str(len(full["registered_unseen"])),
        "Flagged and still present": str(len(full["flagged_present"])),
        "Approved but flagged": str(len(full["approved_flagged"])),
    }
    assert len(full["approved_flagged"]) == 1 and len(full["registered_unseen"]) >= 1
    assert f'href="/devices/{with_data.hik}"' in rec  # the approved-but-flagged device links to its page
    for d in full["unregistered"] + full["flagged_present"]:
        assert f'href="/devices/{d["id"]}"' in rec
    assert "2 register entries" in rec
    assert "never seen" in rec


def _auditor_token(seeded: Seeded) -> dict[str, str]:
    with seeded.db.session() as s:
        return {"Authorization": f"Bearer {create_token(s, 'test auditor', 'auditor')[1]}"}


def test_reconciliation_without_a_register_says_how_to_import_one(client: TestClient, seeded: Seeded) -> None:
    rec = panel(as_(client, "auditor@council.example").get("/sites/annex").text, "panel-register-reconciliation")
    assert "No asset register has been imported" in rec
    assert "<code>POST /api/v1/sites/annex/register</code>" in rec
    assert "Unregistered devices</a>: <strong>1</strong>" in rec
    assert "paste it in the form" not in rec and 'action="/sites/annex/register"' not in rec  # auditors import nothing


def test_alert_rules_panel_shows_event_host_and_last_delivery_never_the_secret(
    client: TestClient, with_data: Seeded
) -> None:
    html = as_(client, "auditor@council.example").get("/sites/town-hall").text
    rules = panel(html, "panel-alert-rules")
    assert "<code>device.flagged</code>" in rules
    assert 'webhook to <span class="mono">hooks.example.net</span>' in rules
    assert "security@council.example" in rules
    # the scan of day 3 raised device.flagged: its deliveries wait in the outbox (no sender runs here)
    assert re.search(r'<span class="badge status-pending">pending</span> \d{4}-\d\d-\d\d \d\d:\d\d UTC', rules)
    assert re.search(r"\d+ pending", rules)
    for secret in ("T0KEN-SECRET", "hunter2", "services/", "s" * 32, "<b>bold</b>"):
        assert secret not in html, secret


def test_alert_rules_panel_empty_state(client: TestClient, seeded: Seeded) -> None:
    rules = panel(as_(client, "operator@council.example").get("/sites/annex").text, "panel-alert-rules")
    assert "No alert rule applies to this site" in rules and "POST /api/v1/alert-rules" in rules


def test_hostile_register_cells_render_as_text(client: TestClient, with_data: Seeded) -> None:
    for who in ("auditor@council.example", "operator@council.example"):
        html = as_(client, who).get("/sites/town-hall").text
        tags = _Tags()
        tags.feed(html)
        assert not [t for t, _ in tags.tags if t in ("script", "img", "iframe", "b")]
        assert not [a for _, attrs in tags.tags for a, _ in attrs if a.startswith("on")]
        assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
        assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
        assert HOSTILE_CELL not in html and "<img" not in html
    html = as_(client, "admin@council.example").get("/sites/depot").text  # a hostile device and site name
    assert "<script>document.title" not in html
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in panel(html, "panel-register-reconciliation")


def test_panels_by_role_and_the_csp(client: TestClient, with_data: Seeded) -> None:
    for who, may_import in (("auditor@council.example", False), ("operator@council.example", True),
                            ("admin@council.example", True)):  # fmt: skip
        r = as_(client, who).get("/sites/town-hall")
        assert r.status_code == 200
        assert csp_allows_no_inline_script(r.headers["content-security-policy"])
        assert "script-src 'none'" in r.headers["content-security-policy"]
        for anchor in ("panel-register-reconciliation", "panel-alert-rules", "panel-audit-pack"):
            panel(r.text, anchor)
        assert "This panel could not be shown" not in r.text
        assert ('action="/sites/town-hall/register"' in r.text) is may_import, who
        assert '<a class="button" href="/sites/town-hall#panel-audit-pack">Audit pack</a>' in r.text
        pack = panel(r.text, "panel-audit-pack")
        assert 'action="/sites/town-hall/export"' in pack and 'name="from"' in pack and 'name="to"' in pack
        assert '<button type="submit">Download</button>' in pack


def _download(client: TestClient, path: str, tmp_path: Path, name: str = "pack.zip") -> Path:
    r = client.get(path)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith('attachment; filename="camscan-audit-town-hall-')
    out = tmp_path / name
    out.write_bytes(r.content)
    return out


def test_the_page_download_is_the_api_audit_pack_and_verifies(
    client: TestClient, with_data: Seeded, tmp_path: Path
) -> None:
    as_(client, "auditor@council.example")  # auditors may download
    path = _download(client, "/sites/town-hall/export?from=2026-03-01&to=2026-03-03", tmp_path)
    check = verify_pack(path)
    assert check.ok, check.problems
    assert check.reports == 3  # day(0)..day(2); the scan of day(3) is outside the range
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        register = zf.read("register.csv").decode()
    assert {"manifest.json", "devices.csv", "register.csv", "lifecycle.csv"} <= names
    assert "'=HYPERLINK" in register  # neutralised like every camscan CSV
    everything = verify_pack(_download(client, "/sites/town-hall/export?from=&to=", tmp_path, "all.zip"))
    assert everything.ok and everything.reports == 4
    api = client.get("/api/v1/export?site=town-hall&from=2026-03-01&to=2026-03-03", headers=_auditor_token(with_data))
    with zipfile.ZipFile(io.BytesIO(api.content)) as a, zipfile.ZipFile(path) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        assert all(a.read(n) == b.read(n) for n in a.namelist() if n != "manifest.json")
    with with_data.db.session() as s:
        actors = s.scalars(select(AuditEntry.actor).where(AuditEntry.action == "export.pack")).all()
    assert "user:auditor@council.example" in actors


def test_page_download_rules(client: TestClient, with_data: Seeded) -> None:
    as_(client, "annex@council.example")  # limited to the annex
    assert client.get("/sites/town-hall/export").status_code in (403, 404)
    assert client.get("/sites/annex/export").status_code == 200
    r = client.get("/sites/annex/export?from=2026-03-05&to=2026-03-01")
    assert r.status_code == 422 and r.headers["content-type"].startswith("text/html")
    assert client.get("/sites/annex/export?from=yesterday").status_code == 422
    assert client.get("/sites/nowhere/export").status_code == 404
    client.cookies.clear()
    r = client.get("/sites/annex/export?from=2026-03-01")
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=/sites/annex/export")


def test_operators_import_a_register_on_the_page_with_line_numbered_errors(client: TestClient, seeded: Seeded) -> None:
    html = as_(client, "operator@council.example").get("/sites/town-hall").text
    token = csrf_of(html)
    bad = "mac,ip,asset_tag,approved\nnot-a-mac,,A1,yes\n44:19:b6:00:00:11,10.77.0.11,A2,maybe\n"
    r = client.post("/sites/town-hall/register", data={"csrf": token, "csv": bad})
    assert r.status_code == 422
    rows = re.findall(r'<tr><td class="num">(\d+)</td>', r.text)
    assert rows == ["2", "3"], r.text
    assert "nothing was imported" in r.text and "not-a-mac" in r.text  # the form keeps what was pasted
    with seeded.db.session() as s:
        assert s.scalars(select(RegisterEntry)).first() is None
    r = client.post("/sites/town-hall/register", data={"csrf": "stale", "csv": REGISTER})
    assert r.status_code == 403
    r = client.post("/sites/town-hall/register", data={"csrf": token, "csv": REGISTER})
    assert r.status_code == 303 and r.headers["location"].startswith("/sites/town-hall?register=imported")
    rec = panel(client.get(r.headers["location"]).text, "panel-register-reconciliation")
    assert "The register was imported." in rec and "2 register entries" in rec
    with seeded.db.session() as s:
        assert len(s.scalars(select(RegisterEntry)).all()) == 2
    as_(client, "auditor@council.example")
    token = csrf_of(client.get("/sites/town-hall").text)
    assert client.post("/sites/town-hall/register", data={"csrf": token, "csv": REGISTER}).status_code == 403
    as_(client, "annex@council.example")
    token = csrf_of(client.get("/sites/annex").text)
    assert client.post("/sites/town-hall/register", data={"csrf": token, "csv": REGISTER}).status_code == 403


def _upload(client: TestClient, token: str, data: bytes, name: str = "register.csv") -> httpx.Response:
    return client.post("/sites/town-hall/register", data={"csrf": token}, files={"file": (name, data, "text/csv")})


def test_operators_upload_the_register_as_a_file(client: TestClient, seeded: Seeded) -> None:
    """The panel's file field: a spreadsheet's CSV (BOM, semicolons) is imported from its bytes; a UTF-16
    export, an empty form, a file over the limit and a stale CSRF token are refused with nothing stored."""
    html = as_(client, "operator@council.example").get("/sites/town-hall").text
    assert 'enctype="multipart/form-data"' in panel(html, "panel-register-reconciliation")
    token = csrf_of(html)

    def stored() -> int:
        with seeded.db.session() as s:
            return len(s.scalars(select(RegisterEntry)).all())

    utf16 = REGISTER.encode("utf-16")
    r = _upload(client, token, utf16)
    assert r.status_code == 422 and "UTF-16" in r.text and stored() == 0
    r = client.post("/sites/town-hall/register", data={"csrf": token}, files={"file": ("", b"", "text/csv")})
    assert r.status_code == 422 and "empty" in r.text and stored() == 0
    huge = b"mac,ip\n" + b"44:19:b6:00:00:11,10.77.0.11\n" * 40_000
    assert _upload(client, token, huge).status_code == 413 and stored() == 0
    assert _upload(client, "stale", REGISTER.encode()).status_code == 403 and stored() == 0
    spreadsheet = b"\xef\xbb\xbf" + REGISTER.replace(",", ";").replace("\n", "\r\n").encode()
    r = _upload(client, token, spreadsheet, name="Register (Excel).csv")
    assert r.status_code == 303 and r.headers["location"].startswith("/sites/town-hall?register=imported")
    assert stored() == 2
    with seeded.db.session() as s:
        tags = {e.asset_tag for e in s.scalars(select(RegisterEntry))}
    assert tags == {"CAM-1", HOSTILE_TAG}
    rec = panel(client.get("/sites/town-hall").text, "panel-register-reconciliation")
    assert "2 register entries" in rec and HOSTILE_TAG not in rec  # the hostile cell is shown escaped
    as_(client, "auditor@council.example")
    token = csrf_of(client.get("/sites/town-hall").text)
    assert _upload(client, token, REGISTER.encode()).status_code == 403
