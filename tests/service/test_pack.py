"""Audit packs on SQLite and PostgreSQL: GET /api/v1/export -> a zip whose reports are the stored bytes, with
the history CSVs and a manifest; `camscan verify PACK.zip` passes on it and names every file that changed."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from scanner.report.pack import verify_pack
from scanner.service.ingest import ingest_report
from scanner.service.store.models import AuditEntry, Device, Site
from tests.report_fixtures import FORMULAS
from tests.service.conftest import AXIS, HIK, Api, Dev, day, make_report

ROOT = Path(__file__).resolve().parents[2]
HIK_CAM = Dev("10.77.0.10", "28:57:be:00:00:10", tuple(HIK))
AXIS_CAM = Dev("10.77.0.11", "00:40:8c:00:00:11", tuple(AXIS))


def camscan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)  # fmt: skip


def seeded(api: Api) -> list[str]:
    ids = []
    with api.db.session() as s:
        site = s.scalars(select(Site).where(Site.slug == "town-hall")).one()
        for n, devs in enumerate([[AXIS_CAM], [AXIS_CAM, HIK_CAM], [HIK_CAM], [HIK_CAM]]):
            ids.append(ingest_report(s, site, make_report(devs, day(n))).scan_id)
        hik = s.scalars(select(Device).where(Device.mac == "28:57:be:00:00:10")).one().id
    r = api.client.patch(f"/api/v1/devices/{hik}", headers=api.as_("operator"), json={"lifecycle": {
        "state": "exception", "exception_reason": FORMULAS[0], "exception_approver": "Head of Estates",
        "exception_expires": (date.today() + timedelta(days=10)).isoformat()}})  # fmt: skip
    assert r.status_code == 200
    register = "mac,asset_tag,location,owner,approved\n28:57:be:00:00:10,=1+2,@SUM(A1),-3,yes\n"
    r = api.client.post("/api/v1/sites/town-hall/register", content=register.encode(),
                        headers={**api.as_("operator"), "Content-Type": "text/csv"})  # fmt: skip
    assert r.status_code == 200
    return ids


def download(api: Api, query: str, tmp_path: Path, who: str = "auditor") -> Path:
    r = api.client.get(f"/api/v1/export?{query}", headers=api.as_(who))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    path = tmp_path / "pack.zip"
    path.write_bytes(r.content)
    return path


def read_csv(zf: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(zf.read(name).decode("utf-8"))))


def test_the_pack_holds_the_stored_reports_and_the_history(api: Api, tmp_path: Path) -> None:
    ids = seeded(api)
    path = download(api, f"site=town-hall&from={day(1).date()}&to={day(2).date()}", tmp_path)
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        reports = sorted(n for n in names if n.startswith("reports/"))
        assert [n.rsplit("-", 5)[0] for n in reports] == ["reports/20260302T020000Z", "reports/20260303T020000Z"]
        for scan_id, name in zip(ids[1:3], reports, strict=True):
            assert name.endswith(f"{scan_id}.json")
            stored = api.client.get(f"/api/v1/scans/{scan_id}/report.json", headers=api.as_("auditor")).content
            assert zf.read(name) == stored  # byte for byte
        assert names == {*reports, "devices.csv", "history.csv", "findings.csv", "lifecycle.csv", "exceptions.csv",
                         "register.csv", "manifest.json"}  # fmt: skip
        assert manifest["format"] == "camscan-audit-pack" and manifest["site"] == "town-hall"
        assert (manifest["from"], manifest["to"], manifest["reports"]) == ("2026-03-02", "2026-03-03", 2)
        for entry in manifest["files"]:
            assert hashlib.sha256(zf.read(entry["path"])).hexdigest() == entry["sha256"]
        history = read_csv(zf, "history.csv")
        assert sorted({h["scan"] for h in history}) == sorted(ids[1:3]) and len(history) == 3
        (exception,) = read_csv(zf, "exceptions.csv")
        assert exception["reason"] == "'" + FORMULAS[0] and exception["in_force_today"] == "yes"
        (entry,) = read_csv(zf, "register.csv")
        assert (entry["asset_tag"], entry["location"], entry["owner"]) == ("'=1+2", "'@SUM(A1)", "'-3")
        lifecycle = read_csv(zf, "lifecycle.csv")
        assert lifecycle == []  # the exception was recorded today, after the range
        devices = {d["mac"]: d for d in read_csv(zf, "devices.csv")}
        assert devices["28:57:be:00:00:10"]["exception_in_force"] == "yes"
    check = verify_pack(path)
    assert check.ok, check.problems
    assert (check.reports, check.files) == (2, len(manifest["files"]))
    with api.db.session() as s:
        assert s.scalars(select(AuditEntry.action).where(AuditEntry.action == "export.pack")).all() == ["export.pack"]


def test_camscan_verify_passes_a_pack_and_names_every_changed_file(api: Api, tmp_path: Path) -> None:
    seeded(api)
    path = download(api, "site=town-hall", tmp_path)
    ok = camscan("verify", str(path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "4 report(s) verified" in ok.stdout
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
        (change,) = read_csv(zf, "lifecycle.csv")
    assert (change["actor"], change["action"]) == ("token:operator", "device.lifecycle")
    report = sorted(n for n in members if n.startswith("reports/"))[1]
    doc = json.loads(members[report])
    doc["devices"][0]["manufacturer"] = "Axis (honest)"  # the report's own digest no longer matches
    members[report] = json.dumps(doc).encode()
    members["devices.csv"] = members["devices.csv"].replace(b"Hikvision", b"Hanwha")
    members["extra.txt"] = b"slipped in"
    del members["register.csv"]
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    bad = camscan("verify", str(tampered))
    assert bad.returncode == 1
    out = bad.stdout
    assert f"{report}: changed" in out and f"{report}: the report's integrity check fails" in out
    assert "devices.csv: changed" in out
    assert "extra.txt: in the zip but not in the manifest" in out
    assert "register.csv: listed in the manifest but missing" in out
    assert "history.csv" not in out and "findings.csv" not in out


@pytest.mark.parametrize(
    ("content", "says"),
    [(b"PK\x03\x04 not really a zip", "not a readable zip"), (None, "manifest.json: missing")],
    ids=["broken-zip", "no-manifest"],
)
def test_verify_refuses_what_is_not_a_pack(tmp_path: Path, content: bytes | None, says: str) -> None:
    path = tmp_path / "x.zip"
    if content is None:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("reports/a.json", b"{}")
    else:
        path.write_bytes(content)
    check = verify_pack(path)
    assert not check.ok and says in check.problems[0]


def test_export_rules(api: Api, tmp_path: Path) -> None:
    h = api.as_("auditor")
    assert api.client.get("/api/v1/export?site=town-hall").status_code == 401
    assert api.client.get("/api/v1/export", headers=h).status_code == 422
    assert api.client.get("/api/v1/export?site=nowhere", headers=h).status_code == 404
    assert api.client.get("/api/v1/export?site=town-hall", headers=api.as_("annex-operator")).status_code == 403
    assert api.client.get("/api/v1/export?site=town-hall&from=2026-03-05&to=2026-03-01", headers=h).status_code == 422
    assert api.client.get("/api/v1/export?site=town-hall&from=yesterday", headers=h).status_code == 422
    path = download(api, "site=town-hall", tmp_path)  # no scans yet: a pack of empty CSVs still verifies
    assert verify_pack(path).ok
