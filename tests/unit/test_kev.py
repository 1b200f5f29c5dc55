"""The camera-risk pack's KEV data: CISA's feed read strictly, `camscan data update --kev` end to end through the
command line, the installed data used by a report that names its catalogVersion, refusals that leave the data
in use untouched, and the facts' standing (rule status, pack as-of) in every export."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scanner.errors import InputError
from scanner.fingerprint.engine import Engine
from scanner.fingerprint.rules import load_ruleset
from scanner.knowledge import Knowledge
from scanner.model import Evidence, Host
from scanner.policy.kev import MAX_FEED, parse_feed, select
from scanner.policy.packs import PackError, check_examples, kev_selections, load_pack, load_packs
from scanner.report.build import build_report
from scanner.report.csv_export import render_csv
from scanner.report.export import report_document
from scanner.report.html import render_html


def _entry(cve: str, vendor: str, product: str, name: str, added: str, **extra: Any) -> dict[str, Any]:
    """One entry as CISA's feed writes it (every field the 2025 feed has, in its order)."""
    return {
        "cveID": cve,
        "vendorProject": vendor,
        "product": product,
        "vulnerabilityName": name,
        "dateAdded": added,
        "shortDescription": f"{name}.",
        "requiredAction": "Apply mitigations per vendor instructions or discontinue use of the product if mitigations "
        "are unavailable.",
        "dueDate": extra.pop("due", "2026-02-05"),
        "knownRansomwareCampaignUse": extra.pop("ransomware", "Unknown"),
        "notes": f"https://nvd.nist.gov/vuln/detail/{cve}",
        "cwes": ["CWE-78"],
        **extra,
    }


# A small catalogue in the shape of known_exploited_vulnerabilities.json. The first four entries are real
# (copied from catalogVersion 2025.08.25); CVE-2099-0001 is invented so that a "newer" catalogue brings a
# camera entry the pack has no rule for. catalogVersion 2026.01.15 is likewise a test value.
FEED: dict[str, Any] = {
    "title": "CISA Catalog of Known Exploited Vulnerabilities",
    "catalogVersion": "2026.01.15",
    "dateReleased": "2026-01-15T17:04:19.9796Z",
    "count": 6,
    "vulnerabilities": [
        _entry("CVE-2099-0001", "Hikvision", "Multiple Products", "Hikvision Test Entry (invented)", "2026-01-15"),
        _entry("CVE-2021-36260", "Hikvision", "Security cameras web server", "Hikvision Improper Input Validation",
               "2022-01-10", due="2022-01-24"),
        _entry("CVE-2021-33044", "Dahua", "IP Camera Firmware", "Dahua IP Camera Authentication Bypass Vulnerability",
               "2024-08-21", due="2024-09-11"),
        _entry("CVE-2016-11021", "D-Link", "DCS-930L Devices", "D-Link DCS-930L Devices OS Command Injection "
               "Vulnerability", "2022-03-25", due="2022-04-15"),
        _entry("CVE-2024-0769", "D-Link", "DIR-859 Router", "D-Link DIR-859 Router Path Traversal Vulnerability",
               "2025-06-25"),
        _entry("CVE-2025-48384", "Git", "Git", "Git Link Following Vulnerability", "2025-08-25", ransomware="Known"),
    ],
}


def feed_bytes(doc: dict[str, Any] | None = None) -> bytes:
    return json.dumps(doc if doc is not None else FEED, indent=4).encode("utf-8")


def camscan(*args: str, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"CAMSCAN_DATA_DIR": str(data)} if data else {})}
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args], capture_output=True, text=True, timeout=180, check=False, env=env
    )


@pytest.fixture(scope="module")
def makers() -> dict[str, object]:
    return dict(load_ruleset().makers)


# ------------------------------------------------------------------------------------------- the parser


def test_a_real_shaped_feed_is_read_and_only_camera_and_recorder_entries_are_kept(makers: dict[str, object]) -> None:
    feed = parse_feed(feed_bytes())
    assert (feed.catalog_version, feed.count, len(feed.entries)) == ("2026.01.15", 6, 6)
    selection = kev_selections(makers)["camera-risk"]
    kept = {e.cve: e.maker for e in select(feed, selection)}
    # the D-Link camera is kept, the D-Link router and Git are not
    assert kept == {"CVE-2099-0001": "Hikvision", "CVE-2021-36260": "Hikvision", "CVE-2021-33044": "Dahua",
                    "CVE-2016-11021": "D-Link"}


def _mutated(change: Any) -> bytes:
    doc = copy.deepcopy(FEED)
    result = change(doc)
    return result if isinstance(result, bytes) else feed_bytes(doc)


HOSTILE: dict[str, tuple[Any, str]] = {
    "count-is-a-string": (lambda d: d.update(count="6"), "count must be a non-negative integer"),
    "count-is-a-bool": (lambda d: d.update(count=True), "count must be a non-negative integer"),
    "counts-disagree": (lambda d: d.update(count=7), "says count 7 but lists 6 entries"),
    "no-vulnerabilities": (lambda d: d.pop("vulnerabilities"), "not a KEV catalogue: no 'vulnerabilities'"),
    "vulnerabilities-not-a-list": (lambda d: d.update(vulnerabilities={"a": 1}), "vulnerabilities must be a list"),
    "entry-not-an-object": (lambda d: d["vulnerabilities"].__setitem__(2, "CVE-2021-33044"), "[2] must be an object"),
    "cve-is-a-number": (lambda d: d["vulnerabilities"][1].update(cveID=2021), "cveID must be a string, not int"),
    "cve-malformed": (lambda d: d["vulnerabilities"][1].update(cveID="CVE-21-1"), "cveID must look like"),
    "vendor-missing": (lambda d: d["vulnerabilities"][1].pop("vendorProject"), "vendorProject must be a string"),
    "product-is-null": (lambda d: d["vulnerabilities"][0].update(product=None), "product must be a string"),
    "date-malformed": (lambda d: d["vulnerabilities"][3].update(dateAdded="yesterday"), "dateAdded must be a date"),
    "date-impossible": (lambda d: d["vulnerabilities"][3].update(dueDate="2025-02-30"), "dueDate must be a date"),
    "cwes-not-strings": (lambda d: d["vulnerabilities"][3].update(cwes=[78]), "cwes must be a list of strings"),
    "control-characters": (lambda d: d["vulnerabilities"][0].update(product="x\x1b[2J"), "control characters"),
    "duplicate-cve": (lambda d: d["vulnerabilities"].__setitem__(5, d["vulnerabilities"][1]), "is listed twice"),
    "catalog-version-malformed": (lambda d: d.update(catalogVersion="latest"), "catalogVersion must look like"),
    "top-level-list": (lambda d: b"[1, 2, 3]", "the top level is a list"),
    "truncated": (lambda d: feed_bytes()[: len(feed_bytes()) // 2], "not valid JSON (truncated or damaged?)"),
    "duplicate-key": (lambda d: feed_bytes().replace(b'"count": 6,', b'"count": 6, "count": 6,'), "appears twice"),
    "nan": (lambda d: feed_bytes().replace(b'"count": 6', b'"count": NaN'), "NaN is not a JSON number"),
    "not-utf8": (lambda d: b"\xff\xfe" + feed_bytes(), "not UTF-8"),
    "too-deep": (lambda d: b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize(("change", "message"), HOSTILE.values(), ids=list(HOSTILE))
def test_a_hostile_feed_is_refused_with_a_reason(change: Any, message: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_feed(_mutated(change), "feed.json")
    assert message in str(exc.value)
    assert str(exc.value).startswith("feed.json: ")


def test_an_oversized_feed_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(InputError, match="more than a KEV catalogue"):
        parse_feed(b" " * (MAX_FEED + 1))


# ------------------------------------------------------------------------------ end to end, command line


def _hosts(path: Path) -> Path:
    rows = [
        {"id": "hik", "ip": "10.0.0.5", "evidence": [
            {"key": "onvif.manufacturer", "value": "HIKVISION"}, {"key": "onvif.model", "value": "DS-2CD2032F-I"},
            {"key": "onvif.firmware", "value": "V5.3.0 build 150513"}]},
        {"id": "geo", "ip": "10.0.0.6", "evidence": [
            {"key": "onvif.manufacturer", "value": "GeoVision"}, {"key": "onvif.model", "value": "GV-EBL2702"}]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _report(tmp: Path, data: Path, name: str) -> dict[str, Any]:
    out = tmp / f"{name}.json"
    proc = camscan("report", "--evidence", str(_hosts(tmp / "hosts.jsonl")), "--json", str(out), data=data)
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return doc


def _camera_risk(doc: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in doc["scan"]["packs"] if p["id"] == "camera-risk")


def _rules(doc: dict[str, Any], device: str) -> dict[str, dict[str, Any]]:
    dev = next(d for d in doc["devices"] if d["id"] == device)
    return {f["rule"]: f for f in dev["findings"] if f["policy"] == "camera-risk"}


def test_update_installs_data_that_a_report_then_names_and_uses(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shipped = _report(tmp_path, data, "before")
    assert _camera_risk(shipped)["kev_catalog_version"] == "2025.08.25"
    assert "kev-maker-possibly-affected" not in _rules(shipped, "hik")  # every shipped Hikvision entry has a rule
    assert "kev-maker-possibly-affected" in _rules(shipped, "geo")  # GeoVision's 'Multiple Devices' entries

    feed = tmp_path / "known_exploited_vulnerabilities.json"
    feed.write_bytes(feed_bytes())
    up = camscan("data", "update", "--kev", str(feed), "--data-dir", str(data))
    assert up.returncode == 0, up.stderr
    assert "catalogVersion 2026.01.15" in up.stdout and "4 camera and recorder entries of 6" in up.stdout
    assert "entries added (CVE-2099-0001)" in up.stdout
    manifest = json.loads((data / "kev" / "manifest.json").read_text())
    assert manifest["catalogVersion"] == "2026.01.15" and manifest["source"] == feed.name
    status = camscan("data", "status", "--entries", "--data-dir", str(data))
    assert status.returncode == 0 and f"origin: {data / 'kev'}" in status.stdout and "CVE-2099-0001" in status.stdout

    after = _report(tmp_path, data, "after")
    pack = _camera_risk(after)
    assert (pack["kev_catalog_version"], pack["kev_date_released"]) == ("2026.01.15", "2026-01-15T17:04:19.9796Z")
    kev_refs = [k for k in after["scan"]["knowledge"] if k["kind"] == "kev"]
    assert [(k["name"], k["origin"]) for k in kev_refs] == [("camera-risk-kev.yaml", str(data / "kev"))]
    assert kev_refs[0]["version"].startswith("catalogVersion 2026.01.15")
    hik = _rules(after, "hik")
    # the new Hikvision entry has no rule yet: the by-maker rule names it, 'possibly affected'
    assert "CVE-2099-0001" in hik["kev-maker-possibly-affected"]["note"]
    assert hik["cve-2021-36260-build-predates-fix"]["title"].endswith("[CISA KEV]")
    assert "CISA KEV catalogVersion 2026.01.15" in hik["cve-2021-36260-build-predates-fix"]["note"]
    assert hik["cve-2017-7921-affected"]["title"].endswith("[not in CISA KEV as of catalogVersion 2026.01.15]")
    # GeoVision's entries are not in this catalogue: no by-maker finding for it any more
    assert "kev-maker-possibly-affected" not in _rules(after, "geo")

    reset = camscan("data", "update", "--reset", "--data-dir", str(data))
    assert reset.returncode == 0 and "origin: shipped" in reset.stdout and "catalogVersion 2025.08.25" in reset.stdout
    assert _camera_risk(_report(tmp_path, data, "reset"))["kev_catalog_version"] == "2025.08.25"


def test_a_refused_feed_writes_nothing_and_the_previous_data_stays_in_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    good = tmp_path / "good.json"
    good.write_bytes(feed_bytes())
    assert camscan("data", "update", "--kev", str(good), "--data-dir", str(data)).returncode == 0
    before = {p.name: p.read_bytes() for p in (data / "kev").iterdir()}
    bad_feeds = {
        "truncated.json": (feed_bytes()[:-200], "not valid JSON (truncated or damaged?)"),
        "counts.json": (_mutated(lambda d: d.update(count=5)), "says count 5 but lists 6 entries"),
        "types.json": (_mutated(lambda d: d["vulnerabilities"][2].update(dateAdded=20240821)), "must be a string"),
        "no-list.json": (_mutated(lambda d: d.pop("vulnerabilities")), "no 'vulnerabilities'"),
        "huge.json": (feed_bytes() + b" " * MAX_FEED, "more than"),
        "older.json": (_mutated(lambda d: d.update(catalogVersion="2025.12.01")), "older than the 2026.01.15 in use"),
    }
    for name, (body, message) in bad_feeds.items():
        path = tmp_path / name
        path.write_bytes(body)
        proc = camscan("data", "update", "--kev", str(path), "--data-dir", str(data))
        assert proc.returncode == 2, (name, proc.stdout)
        assert proc.stderr.startswith("error: ") and message in proc.stderr, (name, proc.stderr)
        assert {p.name: p.read_bytes() for p in (data / "kev").iterdir()} == before, name
        assert sorted(p.name for p in data.iterdir()) == ["kev"], name  # no staging directory left behind
    assert _camera_risk(_report(tmp_path, data, "r"))["kev_catalog_version"] == "2026.01.15"
    # going back on purpose is allowed
    older = tmp_path / "older.json"
    assert camscan("data", "update", "--kev", str(older), "--allow-older", "--data-dir", str(data)).returncode == 0
    assert _camera_risk(_report(tmp_path, data, "r2"))["kev_catalog_version"] == "2025.12.01"


def test_an_installed_file_edited_after_install_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    feed = tmp_path / "feed.json"
    feed.write_bytes(feed_bytes())
    assert camscan("data", "update", "--kev", str(feed), "--data-dir", str(data)).returncode == 0
    installed = data / "kev" / "camera-risk-kev.yaml"
    installed.write_text(installed.read_text().replace("CVE-2099-0001", "CVE-2099-0002"))
    proc = camscan("report", "--evidence", str(_hosts(tmp_path / "h.jsonl")), "--json", str(tmp_path / "r.json"),
                   data=data)
    assert proc.returncode == 2 and "changed since it was installed" in proc.stderr


# ------------------------------------------------------------------------- how the facts stand, in exports


@pytest.fixture(scope="module")
def report():  # type: ignore[no-untyped-def]
    engine = Engine(load_ruleset())
    knowledge = Knowledge(engine, load_packs(engine.ruleset.makers))
    hosts = [
        Host(id="hik", ip="10.0.0.5", evidence=[Evidence(key="onvif.manufacturer", value="HIKVISION"),
                                                Evidence(key="onvif.model", value="DS-2CD2143G2-I")]),
        Host(id="router", ip="10.0.0.9", evidence=[Evidence(key="http.server", value="Huawei Auth-Http Server")]),
    ]
    return build_report(hosts, knowledge)


def test_status_and_as_of_are_in_the_json_export(report) -> None:  # type: ignore[no-untyped-def]
    doc = report_document(report)
    packs = {p["id"]: p for p in doc["scan"]["packs"]}
    assert packs["us-ndaa-889"]["as_of"] and packs["camera-risk"]["as_of"]
    assert packs["camera-risk"]["kev_catalog_version"] == "2025.08.25"
    hik = next(d for d in doc["devices"] if d["id"] == "hik")
    status = {f["policy"]: f["status"] for f in hik["findings"] if f["kind"] == "regime"}
    assert status["us-ndaa-889"] == "law" and status["uk-cabinet-office-2022"] == "guidance"
    assert all(f["status"] in ("law", "guidance", "proposal") for f in hik["findings"] if f["kind"] == "regime")
    # a proposal is never a finding: it is a note that says it is a proposal
    assert not any(f["status"] == "proposal" for f in hik["findings"])
    assert any(n.startswith("us-fcc-covered-list/critical-infrastructure-redefinition-proposed [proposal]: ")
               for n in hik["notes"])


def test_status_and_as_of_are_in_the_html(report) -> None:  # type: ignore[no-untyped-def]
    html = render_html(report)
    assert '<span class="status status-law">law</span>' in html
    assert '<span class="status status-guidance">guidance</span>' in html
    ndaa = next(p for p in report.scan.packs if p.id == "us-ndaa-889")
    assert f"us-ndaa-889 {ndaa.version} (as of {ndaa.as_of})" in html
    assert "camera-risk" in html and "with CISA KEV catalogVersion 2025.08.25" in html
    assert "CISA KEV catalogVersion 2025.08.25 (released 2025-08-25T17:04:19.9796Z)" in html


def test_status_is_in_the_csv(report) -> None:  # type: ignore[no-untyped-def]
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(render_csv(report)))}
    assert "us-ndaa-889/hikvision-equipment (critical, law)" in rows["hik"]["findings"]
    assert "uk-cabinet-office-2022/hikvision-equipment (medium, guidance)" in rows["hik"]["findings"]
    assert rows["hik"]["finding_status"].split() == ["guidance", "law"]


def test_a_note_rule_gives_a_note_not_a_finding(report) -> None:  # type: ignore[no-untyped-def]
    """`outcome: note` rules (a Huawei device that may not be telecommunications equipment) never flag."""
    router = next(d for d in report.devices if d.id == "router")
    assert router.manufacturer == "Huawei", router.matched
    assert not router.flagged and not router.findings
    assert any(n.startswith("us-ndaa-889/huawei-other-equipment") for n in router.notes)


# ------------------------------------------------------------------------------------ the rule format

REGIME = """
pack:
  id: council-test
  kind: regime
  version: "1"
  as_of: "2026-12-04"
  title: "Test"
  disclaimer: "Informational; not legal advice."
  citations: [{id: c, title: "A source", url: "https://example.org/a"}]
rules:
  - id: covered
    title: "Covered maker"
    severity: high
    tier: direct
    STATUS
    citations: [c]
    remediation: "Replace."
    when: {manufacturer: [Hikvision]}
examples:
  - {name: hik, device: {manufacturer: Hikvision}, expect: [covered]}
"""


@pytest.mark.parametrize(
    ("status", "message"),
    [("", "a regime rule needs a status (how its fact stands), one of ('law', 'guidance', 'proposal')"),
     ("status: rumour", "status 'rumour' is not one of ('law', 'guidance', 'proposal')")],
    ids=["missing", "unknown"],
)
def test_a_regime_rule_without_a_known_status_is_refused_at_load(
    tmp_path: Path, makers: dict[str, object], status: str, message: str
) -> None:
    path = tmp_path / "council-test.yaml"
    path.write_text(REGIME.replace("STATUS", status))
    with pytest.raises(PackError) as exc:
        load_pack(path, makers, str(tmp_path))
    assert str(exc.value) == f"council-test.yaml: rule 'covered': {message}"
    proc = camscan("policy", "verify", "--policy-dir", str(tmp_path))
    assert proc.returncode == 2 and f"error: council-test.yaml: rule 'covered': {message}" in proc.stderr


def test_a_proposal_is_reported_as_a_proposal(tmp_path: Path, makers: dict[str, object]) -> None:
    path = tmp_path / "council-test.yaml"
    path.write_text(REGIME.replace("STATUS", "status: proposal"))
    pack = load_pack(path, makers, str(tmp_path))
    assert all(c.ok for c in check_examples([pack]))
    from scanner.model import Device

    (finding,) = pack.findings(Device(id="d", manufacturer="Hikvision"))
    assert finding.status == "proposal" and pack.ref.as_of == "2026-12-04"
