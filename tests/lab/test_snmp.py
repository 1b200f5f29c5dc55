"""SNMP sysDescr over real sockets: agents in the netns lab answer the scan's GetRequest only with their own
community; `--snmp-community` reaches the one configured otherwise and is never written anywhere. The personas
are written by this test (the shipped lab runs no SNMP agent). Namespaces and processes are the lab's own
(`control.up`/`down`, by name and PID)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from scanner.discovery import snmp
from scanner.lab import control
from scanner.lab.persona import SnmpService
from scanner.lab.responders import snmp as lab_snmp
from tests.lab.conftest import in_scanner, needs_netns

PRINTER_SYSDESCR = "HP ETHERNET MULTI-ENVIRONMENT,ROM none,JETDIRECT,JD153,EEPROM JSI24090012,CIDATE 04/18/2022"
SECRET = "c0unc1l-r3ad"
HIK_OBJECT_ID = "1.3.6.1.4.1.39165.1.1"  # under Hikvision's IANA Private Enterprise Number 39165
PRINTER = {
    "id": "hp-jetdirect",
    "name": "HP printer with its SNMP agent on (factory community)",
    "sources": ["HP Jetdirect sysDescr format: rapid7/recog xml/snmp_sysdescr.xml HP JetDirect entries"],
    "mac": "a0:8c:fd:00:00:61",
    "ip": "10.77.0.61",
    "expect": {"manufacturer": "HP", "brand": "HP", "device_type": "other", "flagged": False},
    "services": {"snmp": {"sysdescr": PRINTER_SYSDESCR}},
}
CAMERA = {
    "id": "hik-snmp",
    "name": "Hikvision camera with SNMP on and its community changed",
    "sources": ["LibreNMS os_detection hikvision-nvr.yaml: sysDescr 'Hikvision company products'"],
    "mac": "58:50:ed:00:00:62",
    "ip": "10.77.0.62",
    "expect": {"manufacturer": "Hikvision", "brand": "Hikvision", "device_type": "camera", "flagged": True},
    "services": {
        "snmp": {"sysdescr": "Hikvision company products", "sysobjectid": HIK_OBJECT_ID, "community": SECRET}
    },
}


def test_agent_answers_its_community_and_sysdescr_only() -> None:
    svc = SnmpService(sysdescr="Hikvision company products", sysobjectid=HIK_OBJECT_ID, community=SECRET)
    reply = lab_snmp.answer(snmp.build_get(SECRET, 77), svc)
    assert reply is not None
    assert [e.value for e in snmp.parse_message(reply)] == ["Hikvision company products", HIK_OBJECT_ID]
    assert lab_snmp.answer(snmp.build_get("public", 77), svc) is None
    assert lab_snmp.answer(reply, svc) is None  # a response is not a request
    oids = [snmp.SYSDESCR_OID, snmp.SYSOBJECTID_OID]
    assert snmp.read_get_request(snmp.build_get("x" * 300, 5)) == (b"x" * 255, 5, oids)


def _scan(lab: control.LabState, out: Path, *extra: str) -> tuple[dict, str]:  # type: ignore[type-arg]
    proc = in_scanner(
        lab, sys.executable, "-m", "scanner", "scan", "10.77.0.0/24", "--interface", "lab0",
        "--methods", "arp,snmp", "--json", str(out), *extra, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout + proc.stderr


@needs_netns
def test_scan_reads_sysdescr_with_the_right_community(tmp_path: Path) -> None:
    personas = tmp_path / "personas"
    personas.mkdir()
    for doc in (PRINTER, CAMERA):
        (personas / f"{doc['id']}.yaml").write_text(yaml.safe_dump(doc))
    state = tmp_path / "state"
    lab = control.up("netns", personas, state_dir=state)
    try:
        default, _ = _scan(lab, tmp_path / "default.json")
        secret, output = _scan(lab, tmp_path / "secret.json", "--snmp-community", SECRET)
    finally:
        control.down(state)

    def sysdescr(report: dict, ip: str, key: str = "snmp.sysdescr") -> list[str]:  # type: ignore[type-arg]
        found = [d for d in report["devices"] if d["ip"] == ip]
        return [e["value"] for d in found for e in d["evidence"] if e["key"] == key]

    assert sysdescr(default, "10.77.0.61") == [PRINTER_SYSDESCR]
    assert sysdescr(default, "10.77.0.62") == []  # its community is not the factory one: it stays silent
    printer = next(d for d in default["devices"] if d["ip"] == "10.77.0.61")
    assert (printer["manufacturer"], printer["device_type"]) == ("HP", "other")
    assert sysdescr(secret, "10.77.0.62") == ["Hikvision company products"]
    assert sysdescr(secret, "10.77.0.62", "snmp.sysobjectid") == [HIK_OBJECT_ID]
    assert sysdescr(default, "10.77.0.61", "snmp.sysobjectid") == []  # the printer's agent gives none here
    assert sysdescr(secret, "10.77.0.61") == []
    camera = next(d for d in secret["devices"] if d["ip"] == "10.77.0.62")
    assert camera["manufacturer"] == "Hikvision" and camera["findings"]
    assert SECRET not in (tmp_path / "secret.json").read_text() and SECRET not in output
