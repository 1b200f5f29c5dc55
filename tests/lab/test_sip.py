"""SIP OPTIONS discovery over real sockets: a door station persona in the netns lab answers the scan's OPTIONS,
a printer without SIP does not, and the report names the door station's maker and type from its `Server`
header. The persona is written by this test (the shipped lab has no door station). Namespaces and processes
are the lab's own (`control.up`/`down`, by name and PID)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from scanner.discovery import sip
from scanner.lab import control
from scanner.lab.persona import SipService
from scanner.lab.responders import sip as lab_sip
from tests.lab.conftest import in_scanner, needs_netns

DOOR = {
    "id": "twon-verso",
    "name": "2N IP Verso door station",
    "sources": [
        "2N product naming as the devices report it (2N HTTP API manual, /api/system/info variant '2N IP Verso')",
        "IEEE registry: 7C:1E:B3 2N TELEKOMUNIKACE a.s.",
    ],
    "mac": "7c:1e:b3:00:00:60",
    "ip": "10.77.0.60",
    "expect": {"manufacturer": "2N", "brand": "2N", "device_type": "intercom", "flagged": False},
    "services": {"sip": {"server": "2N IP Verso 2.44.0.62.3"}},
}


def test_options_round_trip_through_the_lab_responder() -> None:
    """The scan's OPTIONS, answered as the lab's door station answers, parses to its Server header."""
    request = sip.build_options("10.77.0.60", ("10.77.0.2", 40123))
    assert request.startswith(b"OPTIONS sip:10.77.0.60 SIP/2.0\r\n")
    assert b"Via: SIP/2.0/UDP 10.77.0.2:40123;rport;branch=z9hG4bK" in request
    assert sip.parse_message(request) == [sip.parse_message(request)[0]]  # our own User-Agent, as any request
    reply = lab_sip.answer(request, SipService(server="2N IP Verso 2.44.0.62.3"), "t1")
    assert reply is not None and reply.startswith(b"SIP/2.0 200 OK\r\n")
    assert [e.value for e in sip._answers_only(reply, "10.77.0.60")] == ["2N IP Verso 2.44.0.62.3"]
    assert sip._answers_only(request, "10.77.0.60") == []  # a request arriving on our port is not an answer
    assert lab_sip.answer(b"INVITE sip:x SIP/2.0\r\n\r\n", SipService(server="x"), "t") is None


@needs_netns
def test_scan_finds_a_door_station_by_sip(tmp_path: Path) -> None:
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "twon-verso.yaml").write_text(yaml.safe_dump(DOOR))
    printer = control.PERSONA_DIR / "hp-printer.yaml"  # HTTP, mDNS, port 9100: no SIP
    (personas / printer.name).write_text(printer.read_text())
    state = tmp_path / "state"
    lab = control.up("netns", personas, state_dir=state)
    try:
        out = tmp_path / "r.json"
        proc = in_scanner(
            lab, sys.executable, "-m", "scanner", "scan", "10.77.0.0/24", "--interface", "lab0",
            "--methods", "arp,sip", "--json", str(out), timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        report = json.loads(out.read_text())
    finally:
        control.down(state)
    assert "sip" in report["scan"]["methods"]
    devices = {d["ip"]: d for d in report["devices"]}
    door = devices["10.77.0.60"]
    assert [(e["key"], e["value"]) for e in door["evidence"] if e["source"] == "sip"] == [
        ("sip.user_agent", "2N IP Verso 2.44.0.62.3")
    ]
    assert (door["manufacturer"], door["device_type"], door["mac"]) == ("2N", "intercom", DOOR["mac"])
    assert not [f for f in door["findings"] if f["severity"] in ("critical", "high")]  # 2N is not a covered maker
    assert "sip.user_agent/twon-helios-ip" in door["matched"]
    assert not [e for e in devices["10.77.0.41"]["evidence"] if e["key"] == "sip.user_agent"]
