"""The report names exactly the knowledge that made its claims (`scan.knowledge`, `fingerprints_sha256`), for
every command that writes one, a council's own rule files and packs included."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from importlib import metadata, resources
from pathlib import Path

import pytest

from scanner._data import data_dir
from scanner.fingerprint.rules import knowledge_digest
from scanner.model import KnowledgeRef
from tests.report_fixtures import PACK

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = ROOT / "tests" / "fixtures" / "pcaps" / "synthetic_banners.pcap"
COUNCIL_RULE = (
    "family: council-title\nkeys: [http.title]\nrules:\n"
    "  - {id: depot-cam, match: '^Depot camera$', manufacturer: Axis, source: 'council asset list', "
    "examples: ['Depot camera']}\n"
)


def camscan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args], capture_output=True, text=True, timeout=180, check=False
    )


@pytest.fixture(scope="module")
def evidence_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ev") / "hosts.jsonl"
    path.write_text(json.dumps({"id": "h1", "evidence": [{"key": "http.title", "value": "Depot camera"}]}) + "\n")
    return path


@pytest.fixture(scope="module")
def council_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("council-rules")
    (d / "council.yaml").write_text(COUNCIL_RULE)
    return d


@pytest.fixture(scope="module")
def council_packs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("council-packs")
    (d / "test-regime.yaml").write_text(PACK)
    return d


def command_for(kind: str, evidence_file: Path) -> list[str]:
    """A report-writing command of each kind, on input that needs no lab and touches no network but loopback."""
    if kind == "report":
        return ["report", "--evidence", str(evidence_file)]
    if kind == "pcap":
        return ["pcap", str(CAPTURE)]
    # an address of the loopback range with nothing on it: a port check on loopback only
    return ["scan", "127.77.0.250", "--methods", "ports", "--timeout", "0.2"]


def run_report(args: list[str], out: Path) -> dict[str, object]:
    proc = camscan(*args, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("kind", ["report", "pcap", "scan"])
def test_extra_rules_dir_changes_the_digest_and_is_named(
    kind: str, evidence_file: Path, council_rules: Path, tmp_path: Path
) -> None:
    args = command_for(kind, evidence_file)
    plain = run_report(args, tmp_path / "plain.json")["scan"]
    council = run_report([*args, "--rules-dir", str(council_rules)], tmp_path / "council.json")["scan"]
    assert isinstance(plain, dict) and isinstance(council, dict)
    assert plain["fingerprints_sha256"] != council["fingerprints_sha256"]
    extra = [k for k in council["knowledge"] if k["origin"] != "shipped"]
    want = hashlib.sha256((council_rules / "council.yaml").read_bytes()).hexdigest()
    assert extra == [
        {"kind": "rules", "name": "council.yaml", "origin": str(council_rules), "version": None, "sha256": want}
    ]
    assert all(k["origin"] == "shipped" for k in plain["knowledge"])


@pytest.mark.parametrize("kind", ["report", "pcap", "scan"])
def test_extra_policy_dir_is_named_with_its_version_and_digest(
    kind: str, evidence_file: Path, council_packs: Path, tmp_path: Path
) -> None:
    args = command_for(kind, evidence_file)
    plain = run_report(args, tmp_path / "plain.json")["scan"]
    council = run_report([*args, "--policy-dir", str(council_packs)], tmp_path / "council.json")["scan"]
    assert isinstance(plain, dict) and isinstance(council, dict)
    want = hashlib.sha256((council_packs / "test-regime.yaml").read_bytes()).hexdigest()
    extra = [k for k in council["knowledge"] if k["origin"] != "shipped"]
    assert extra == [
        {"kind": "policy", "name": "test-regime.yaml", "origin": str(council_packs), "version": "1", "sha256": want}
    ]
    assert {
        "id": "test-regime",
        "version": "1",
        "as_of": "2026-11-27",
        "sha256": want,
        "kev_catalog_version": None,
        "kev_date_released": None,
    } in council["packs"]
    # the identification knowledge is the same: its digest does not change with the packs
    assert plain["fingerprints_sha256"] == council["fingerprints_sha256"]


def test_knowledge_lists_every_shipped_file_loaded_with_its_bytes_digest(evidence_file: Path, tmp_path: Path) -> None:
    scan = run_report(command_for("report", evidence_file), tmp_path / "r.json")["scan"]
    assert isinstance(scan, dict)
    refs = [KnowledgeRef.model_validate(k) for k in scan["knowledge"]]
    shipped = {p.name for p in data_dir("fingerprints").glob("*.yaml")}
    rule_side = [r for r in refs if r.kind not in ("policy", "registry", "kev")]
    assert {r.name for r in rule_side} == shipped  # every file the engine loaded, none it did not
    assert {r.kind for r in rule_side} == {"rules", "makers", "oem", "oui", "names"}
    for r in rule_side:
        assert r.sha256 == hashlib.sha256((data_dir("fingerprints") / r.name).read_bytes()).hexdigest()
    # the MAC registry in use: the shipped snapshot, with the date of its listing
    registry = [r for r in refs if r.kind == "registry"]
    manuf = (resources.files("pymanuf") / "manuf.txt").read_bytes()
    version = metadata.version("pymanuf")
    want = [("manuf.txt", "shipped", hashlib.sha256(manuf).hexdigest())]
    assert [(r.name, r.origin, r.sha256) for r in registry] == want
    assert registry[0].version and registry[0].version.startswith(version.split(".")[0] + "-")
    rule_side += registry
    packs = {r.name: r for r in refs if r.kind == "policy"}
    assert set(packs) == {p.name for p in data_dir("policies").glob("*.yaml")}
    assert all(r.version for r in packs.values())
    # the KEV data of the camera-risk pack: the shipped file, named with the catalogue it was cut from
    kev = [r for r in refs if r.kind == "kev"]
    kev_file = data_dir("policies") / "kev" / "camera-risk-kev.yaml"
    assert [(r.name, r.origin, r.sha256) for r in kev] == [
        ("camera-risk-kev.yaml", "shipped", hashlib.sha256(kev_file.read_bytes()).hexdigest())
    ]
    assert kev[0].version and kev[0].version.startswith("catalogVersion 2025.08.25")
    # the digest is recomputable from the report alone
    assert scan["fingerprints_sha256"] == knowledge_digest(rule_side)


def test_a_directory_listing_is_not_knowledge(evidence_file: Path, tmp_path: Path) -> None:
    """A file in --rules-dir that is not a rule file (no .yaml) is not loaded, so it is not named."""
    d = tmp_path / "rules"
    d.mkdir()
    (d / "README.txt").write_text("notes")
    (d / "council.yaml").write_text(COUNCIL_RULE)
    scan = run_report([*command_for("report", evidence_file), "--rules-dir", str(d)], tmp_path / "r.json")["scan"]
    assert isinstance(scan, dict)
    assert [k["name"] for k in scan["knowledge"] if k["origin"] == str(d)] == ["council.yaml"]
