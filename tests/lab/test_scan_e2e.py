"""`camscan scan` end to end, in the netns lab: run inside the scanner namespace as a user would
(`camscan lab exec -- camscan scan 10.77.0.0/24 --interface lab0`), then check the report against what each
persona is (its `expect` block)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from scanner.lab import control
from scanner.lab.persona import Persona, load_personas
from scanner.report.export import verify_document
from tests.lab.conftest import in_scanner, needs_netns

pytestmark = needs_netns
CAMERA_TYPES = {"camera", "recorder", "encoder", "intercom", "access_control"}


@pytest.fixture(scope="module")
def scan_report(lab: control.LabState, tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("scan")
    creds = out / "onvif-credentials"
    creds.write_text("admin:camscan-lab\n")  # the personas' ONVIF account (scanner/lab/persona.py default)
    proc = in_scanner(
        lab,
        sys.executable,
        "-m",
        "scanner",
        "scan",
        "10.77.0.0/24",
        "--interface",
        "lab0",
        "--credentials",
        str(creds),
        "--json",
        str(out / "r.json"),
        "--html",
        str(out / "r.html"),
        "--csv",
        str(out / "r.csv"),
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "r.json").read_text())
    doc["_html"] = (out / "r.html").read_text()
    doc["_csv"] = (out / "r.csv").read_text()
    doc["_stdout"] = proc.stdout
    return doc


def device_of(report: dict, persona: Persona) -> dict:  # type: ignore[type-arg]
    found = [d for d in report["devices"] if d["ip"] == persona.ip or persona.ip in d.get("other_ips", [])]
    assert found, f"{persona.id} ({persona.ip}) was not found"
    return found[0]


PERSONAS = load_personas()


def test_report_is_sound(scan_report: dict) -> None:  # type: ignore[type-arg]
    body = {k: v for k, v in scan_report.items() if not k.startswith("_")}
    assert verify_document(body)[0]
    assert scan_report["scan"]["methods"][:3] == ["arp", "wsd", "mdns"]
    assert "10.77.0.0/24" in scan_report["scan"]["scope"]
    assert "camscan-lab" not in json.dumps(body) and "camscan-lab" not in scan_report["_html"]  # no credentials


@pytest.mark.parametrize("persona", PERSONAS, ids=[p.id for p in PERSONAS])
def test_every_persona_is_found_with_its_mac(scan_report: dict, persona: Persona) -> None:  # type: ignore[type-arg]
    assert device_of(scan_report, persona)["mac"] == persona.mac


CAMERAS = [p for p in PERSONAS if p.expect.device_type in CAMERA_TYPES and p.expect.manufacturer]


@pytest.mark.parametrize("persona", CAMERAS, ids=[p.id for p in CAMERAS])
def test_every_camera_is_identified(scan_report: dict, persona: Persona) -> None:  # type: ignore[type-arg]
    d = device_of(scan_report, persona)
    e = persona.expect
    got = (d["manufacturer"], d["brand"] or d["manufacturer"], d["device_type"])
    assert got == (e.manufacturer, e.brand or e.manufacturer, e.device_type), d["matched"]
    if e.model:
        assert d["model"] == e.model
    if e.firmware:
        assert d["firmware"] == e.firmware


NON_CAMERAS = [p for p in PERSONAS if p.expect.device_type == "other"]


@pytest.mark.parametrize("persona", NON_CAMERAS, ids=[p.id for p in NON_CAMERAS])
def test_non_cameras_are_not_cameras(scan_report: dict, persona: Persona) -> None:  # type: ignore[type-arg]
    d = device_of(scan_report, persona)
    assert d["device_type"] not in CAMERA_TYPES
    assert not any(f["kind"] == "regime" for f in d["findings"])


@pytest.mark.parametrize("persona", PERSONAS, ids=[p.id for p in PERSONAS])
def test_flagged_devices_carry_the_right_findings(scan_report: dict, persona: Persona) -> None:  # type: ignore[type-arg]
    d = device_of(scan_report, persona)
    regimes = {f["policy"] for f in d["findings"] if f["kind"] == "regime"}
    if persona.expect.flagged:
        assert {"us-ndaa-889", "us-fcc-covered-list", "uk-cabinet-office-2022"} <= regimes
    else:
        assert not regimes


def test_hostile_persona_injects_nothing(scan_report: dict) -> None:  # type: ignore[type-arg]
    html = scan_report["_html"]
    assert "<script>alert" not in html
    assert not re.search(r"<[a-z]+[^>]*\son[a-z]+=", html.split("<style>", 1)[0] + html.split("</style>", 1)[1])
    for line in scan_report["_csv"].splitlines()[1:]:
        for cell in line.split(","):
            assert not cell.startswith(("=", "+", "@")), cell
    hostile = next(p for p in PERSONAS if p.id == "hostile")
    d = device_of(scan_report, hostile)
    assert max(len(e["value"]) for e in d["evidence"]) <= 65536


def _unicast_in(ns: str) -> int:
    import subprocess

    snmp = subprocess.run(
        ["ip", "netns", "exec", ns, "cat", "/proc/net/snmp", "/proc/net/netstat"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    values: dict[str, int] = {}
    for head, vals in zip(snmp[::2], snmp[1::2], strict=False):
        names, nums = head.split()[1:], vals.split()[1:]
        prefix = head.split(":")[0]
        values.update({f"{prefix}.{n}": int(v) for n, v in zip(names, nums, strict=False) if v.lstrip("-").isdigit()})
    return values["Ip.InReceives"] - values.get("IpExt.InMcastPkts", 0) - values.get("IpExt.InBcastPkts", 0)


def test_a_device_outside_the_scope_is_never_contacted(lab: control.LabState, tmp_path: Path) -> None:
    inside = next(p for p in lab.processes if p.ip == "10.77.0.11")
    outside = [p for p in lab.processes if p.ip != inside.ip]
    before = {p.id: _unicast_in(str(p.namespace)) for p in outside}
    proc = in_scanner(
        lab,
        sys.executable,
        "-m",
        "scanner",
        "scan",
        "10.77.0.10-10.77.0.11",
        "--interface",
        "lab0",
        "--json",
        str(tmp_path / "r.json"),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = {p.id: _unicast_in(str(p.namespace)) for p in outside}
    assert before == after  # not one unicast IP packet reached a device outside the scope
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [d["ip"] for d in doc["devices"]] == ["10.77.0.11"]
    assert any("multicast discovery" in lim for lim in doc["limitations"])


def test_out_of_scope_targets_are_refused(lab: control.LabState) -> None:
    for target in ("8.8.8.8", "1.1.1.0/24", "0.0.0.0/0"):
        proc = in_scanner(lab, sys.executable, "-m", "scanner", "scan", target, "--interface", "lab0", timeout=60)
        assert proc.returncode == 2, (target, proc.stdout)
        assert "public" in proc.stderr or "more than" in proc.stderr or "not a host" in proc.stderr
