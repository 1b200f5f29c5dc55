"""`camscan scan` against the loopback lab: what unicast alone can show (no MACs, no multicast, no mDNS).

Needs root only so that the personas can keep their real ports below 1024 on 127.77.0.x.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from scanner.lab import control
from scanner.lab.persona import load_personas

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the loopback lab keeps ports below 1024 only as root")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:  # type: ignore[type-arg]
    state = tmp_path_factory.mktemp("loopstate")
    out = tmp_path_factory.mktemp("loopscan") / "r.json"
    control.up("loopback", state_dir=state)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "scanner", "scan", "127.77.0.0/24", "--rate", "5000", "--json", str(out)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        yield json.loads(out.read_text())
    finally:
        control.down(state)


def test_loopback_scan_identifies_cameras_by_unicast(report: dict) -> None:  # type: ignore[type-arg]
    by_ip = {d["ip"]: d for d in report["devices"]}
    personas = load_personas()
    named = 0
    for p in personas:
        d = by_ip.get(p.loopback_ip())
        assert d is not None, f"{p.id} not found on {p.loopback_ip()}"
        assert d["mac"] in (None, p.mac)  # no ARP on loopback: only protocols that carry it (SADP, DHIP) give it
        if p.expect.manufacturer and d["manufacturer"] == p.expect.manufacturer:
            named += 1
        if p.expect.device_type == "other":
            assert d["device_type"] not in ("camera", "recorder")
        if not p.expect.flagged:
            assert not any(f["kind"] == "regime" for f in d["findings"]), p.id
    cameras = [p for p in personas if p.expect.manufacturer and p.expect.device_type != "other"]
    assert named >= len(cameras) - 2  # Bosch and UniFi show their maker mainly by MAC and mDNS
    assert any("multicast discovery" in line for line in report["limitations"])
    assert "127.77.0.0/24" in report["scan"]["scope"]
