"""Every capture in tests/fixtures/pcaps/ through the passive audit: the lab captures name every persona that
talked with its MAC and the right maker (Hikvision/Dahua-made flagged, nothing else), the synthetic ones
find what they were built to show, the broken ones fail or count what they skipped; and `camscan pcap` end to
end. The fixtures and their provenance: tests/fixtures/pcaps/README.md."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.knowledge import Knowledge
from scanner.lab.persona import load_personas
from scanner.model import Device
from scanner.passive import CaptureError, PassiveResult, analyse_captures
from scanner.policy.packs import load_packs
from scanner.report.build import Run, build_report

PCAPS = Path(__file__).resolve().parent / "fixtures" / "pcaps"
CAPTURES = sorted(p.name for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng"))
CAMERA_TYPES = {"camera", "recorder", "encoder", "intercom", "access_control"}

# What the lab's traffic cannot show: UniFi G4 talks HTTPS only, and the lab's TLS is 1.3 (certificate encrypted),
# so passively it is known by its MAC (Ubiquiti) and its redirect, not as a camera.
LAB_TYPE_UNKNOWN = {"unifi-g4"}

AXIS_TRAP_SYSDESCR = "; AXIS P3245-LVE; Network Camera; 10.12.165; Jun 01 2022 12:00; 1FE; 1;"
# synthetic captures: host id -> (manufacturer, brand, flagged, {evidence key: a value it must include})
SYNTHETIC: dict[str, dict[str, tuple[str | None, str | None, bool, dict[str, str]]]] = {
    "synthetic_dhcp.pcap": {
        "192.168.10.40": ("Hikvision", "Hikvision", True, {"hostname": "DS-2CD2143G2-I20220101AAWRJ12345678"}),
        "192.168.10.41": ("Axis", "Axis", False, {"dhcp.vendor_class": "AXIS,Network Camera,P3245-LVE,10.12.165"}),
        "a0:8c:fd:aa:00:43": ("HP", "HP", False, {"hostname": "HPAA0043", "mac": "a0:8c:fd:aa:00:43"}),
    },
    "synthetic_http_vlan.pcap": {
        "192.168.20.64": ("Hikvision", "Hikvision", True, {"http.redirect": "/doc/page/login.asp"}),
        "192.168.20.65": ("Dahua", "Dahua", True, {"http.title": "WEB SERVICE", "port.open": "8081/tcp"}),
    },
    "synthetic_banners.pcap": {
        "192.168.30.41": (
            "Axis",
            "Axis",
            False,
            {"ftp.banner": "220 AXIS 207 Network Camera 4.40.1 (Apr 16 2007) ready."},
        ),
    },
    "synthetic_fragmented_wsd.pcap": {
        "192.168.40.66": ("Dahua", "Dahua", True, {"wsd.scope": "onvif://www.onvif.org/hardware/DH-IPC-HFW2431S-S-S2"}),
    },
    "synthetic_tls12_cert_be_ns.pcap": {
        "192.168.60.64": ("Hikvision", "Hikvision", True, {"tls.subject": "C=CN,O=HIKVISION,CN=IPC"}),
    },
    "synthetic_sip_snmp.pcap": {
        "192.168.70.21": ("2N", "2N", False, {"sip.user_agent": "2N IP Verso 2.44.0.62.3"}),
        "192.168.70.22": ("Grandstream", "Grandstream", False, {"sip.user_agent": "Grandstream GDS3710 1.0.11.27"}),
        "192.168.70.5": (None, None, False, {"sip.user_agent": "Asterisk PBX 18.10.0"}),
        "192.168.70.64": ("Hikvision", "Hikvision", True, {"snmp.sysdescr": "Hikvision company products"}),
        "192.168.70.41": ("Axis", "Axis", False, {"snmp.sysdescr": AXIS_TRAP_SYSDESCR}),
    },
    "synthetic_ipv6.pcap": {
        "192.168.70.40": ("Hikvision", "Hikvision", True, {"http.server": "App-webs/", "mac": "58:50:ed:aa:00:40"}),
        "fe80::aecc:8eff:feaa:41": ("Axis", "Axis", False, {"mac": "ac:cc:8e:aa:00:41"}),
        "fe80::1c2d:3e4f:5a6b:7c8d": (None, None, False, {"ssdp.server": "Linux/2.6.35, UPnP/1.0, Printer/1.0"}),
    },
    "synthetic_raw_ip.pcap": {
        "10.9.0.5": ("Hikvision", "Hikvision", True, {"sadp.device_description": "DS-2CD2143G2-I"}),
    },
}
for _endian in ("le", "be"):
    SYNTHETIC[f"synthetic_multi_if_{_endian}.pcapng"] = {
        "192.168.10.40": ("Hikvision", "Hikvision", True, {"sadp.software_version": "V5.7.3build 220112"}),
        "192.168.10.41": ("Axis", "Axis", False, {"ssdp.server": "Linux/2.6.35, UPnP/1.0, Axis/1.0"}),
    }

# broken captures: None = nothing readable (CaptureError, with this text); else text one of `errors` or
# `limitations` must contain, and the host ids still found
BROKEN: dict[str, tuple[str, set[str] | None]] = {
    "broken_wrong_magic.pcap": ("byte 0: unknown magic number 0x0badcafe", None),
    "broken_header_only.pcap": ("byte 0: pcap file header cut short", None),
    "broken_bad_byte_order.pcapng": ("byte 8: pcapng section header with a bad byte-order magic", None),
    "broken_no_packets.pcap": ("byte 24: no packet could be read from this pcap capture (the capture holds no", None),
    "broken_no_packets.pcapng": ("byte 48: no packet could be read from this pcapng capture", None),
    "broken_all_corrupt.pcap": ("byte 24: no packet could be read from this pcap capture (a corrupt record", None),
    "broken_truncated.pcap": ("ends inside the record at byte 2890", {"192.168.10.40", "192.168.10.41"}),
    "broken_corrupt_record.pcap": (
        "1 corrupt record(s) (at byte 393)",
        {"192.168.10.40", "192.168.10.41", "a0:8c:fd:aa:00:43"},
    ),
    "broken_snaplen.pcap": ("6 packets were cut by the capture's snap length", {"192.168.20.64", "192.168.20.65"}),
    "broken_unknown_block.pcapng": ("1 pcapng blocks of unknown type skipped", {"192.168.10.40"}),
    "broken_malformed_payloads.pcap": ("capture broken_malformed_payloads.pcap", {"192.168.50.10"}),
    "broken_lab_hostile_snaplen.pcap": ("packets were cut by the capture's snap length", None),
}


@pytest.fixture(scope="module")
def packs(shipped_engine):  # type: ignore[no-untyped-def]
    return load_packs(shipped_engine.ruleset.makers)


def devices(result: PassiveResult, engine, packs) -> dict[str, Device]:  # type: ignore[no-untyped-def]
    report = build_report(result.hosts, Knowledge(engine, packs), run=Run(methods=["passive-pcap"]))
    return {d.id: d for d in report.devices}


def values(device: Device, key: str) -> list[str]:
    return [e.value for e in device.evidence if e.key == key]


def test_every_fixture_has_an_expectation_and_a_provenance() -> None:
    readme = (PCAPS / "README.md").read_text()
    lab = {"lab_scan.pcap", "lab_announce_ns.pcap"}
    for name in CAPTURES:
        assert name in lab | set(SYNTHETIC) | set(BROKEN), f"{name}: add it to the tables of this test"
        assert f"`{name}`" in readme, f"{name}: say where it comes from in README.md"
        assert (PCAPS / name).stat().st_size < 400_000, f"{name}: keep fixtures under a few hundred kB"


@pytest.mark.parametrize("name", ["lab_scan.pcap", "lab_announce_ns.pcap"])
def test_lab_capture_names_every_persona(name: str, shipped_engine, packs) -> None:  # type: ignore[no-untyped-def]
    result = analyse_captures([PCAPS / name])
    assert result.errors == []
    found = devices(result, shipped_engine, packs)
    personas = [p for p in load_personas() if p.id != "hostile"]  # the hostile one has its own capture
    for p in personas:
        d = found.get(p.ip)
        assert d is not None, f"{p.id} talked on the wire but was not found"
        assert d.mac == p.mac, p.id
        assert (d.manufacturer, d.brand) == (p.expect.manufacturer, p.expect.brand), p.id
        assert d.flagged == p.expect.flagged, p.id
        if p.id in LAB_TYPE_UNKNOWN:
            assert d.device_type is None or d.device_type.value == p.expect.device_type, p.id
        else:
            assert d.device_type is not None and d.device_type.value == p.expect.device_type, p.id
        if p.expect.device_type == "other":
            assert d.device_type is None or d.device_type.value not in CAMERA_TYPES, p.id
    others = [d for ip, d in found.items() if ip not in {p.ip for p in personas}]
    v4 = [(d.ip, d.flagged, d.manufacturer) for d in others if ":" not in d.id]
    assert v4 == [("10.77.0.2", False, None)]  # the scanner
    # the lab's bridge and veth ends speak IPv6 Neighbor Discovery from link-local addresses: a MAC and nothing more
    for d in others:
        if ":" in d.id:
            assert d.id.startswith("fe80:") and not d.flagged and d.manufacturer is None
            assert {e.key for e in d.evidence} == {"mac"}
    # every persona's kernel sent IPv6 from its EUI-64 link-local address: joined to its IPv4 host by the MAC
    hik = next(p for p in personas if p.id == "hik-bullet")
    assert eui64_link_local(hik.mac) in found[hik.ip].other_ips
    assert any("time span" in line for line in result.limitations)


def test_lab_capture_evidence_comes_from_the_wire(shipped_engine, packs) -> None:  # type: ignore[no-untyped-def]
    found = devices(analyse_captures([PCAPS / "lab_scan.pcap"]), shipped_engine, packs)
    hik = found["10.77.0.11"]
    assert "onvif://www.onvif.org/hardware/DS-2CD2085G1-I" in values(hik, "wsd.scope")  # a fragmented ProbeMatch
    assert values(hik, "sadp.device_description") == ["DS-2CD2085G1-I"]
    assert values(hik, "http.server") == ["App-webs/"]
    assert any(v.startswith('Digest realm="IP Camera(E3385)"') for v in values(hik, "rtsp.www_authenticate"))
    assert {e.source for e in hik.evidence} <= {f"pcap:{p}" for p in ("arp", "wsd", "sadp", "http", "rtsp", "tcp")}
    assert all(e.observed_at is not None for e in hik.evidence if e.source != "pcap:tcp")
    axis = found["10.77.0.31"]
    assert "_axis-video._tcp.local." in values(axis, "mdns.service")
    assert "AXIS" in values(axis, "upnp.manufacturer")  # the description fetched over HTTP, seen passively


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_synthetic_capture(name: str, shipped_engine, packs) -> None:  # type: ignore[no-untyped-def]
    result = analyse_captures([PCAPS / name])
    assert result.errors == []
    found = devices(result, shipped_engine, packs)
    assert set(found) == set(SYNTHETIC[name]), name
    for host_id, (maker, brand, flagged, must) in SYNTHETIC[name].items():
        d = found[host_id]
        assert (d.manufacturer, d.brand, d.flagged) == (maker, brand, flagged), host_id
        for key, value in must.items():
            assert value in values(d, key), (host_id, key, values(d, key))


def eui64_link_local(mac: str) -> str:
    """fe80:: + the modified EUI-64 interface identifier of a MAC (RFC 4291 appendix A), written independently of
    scanner/passive/hosts.py."""
    b = bytes.fromhex(mac.replace(":", ""))
    iid = bytes([b[0] ^ 2]) + b[1:3] + b"\xff\xfe" + b[3:]
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid))


def test_ipv6_devices_join_their_ipv4_host_and_only_the_lan_counts(shipped_engine, packs) -> None:  # type: ignore[no-untyped-def]
    """The camera's unique local address (its MAC from a Neighbor Advertisement) and its EUI-64 link-local
    address join its IPv4 host; HTTP over IPv6 TCP and a WS-Discovery Hello behind a hop-by-hop header are read;
    an internet server's global address, a fragment and an off-link Neighbor Advertisement are not used."""
    result = analyse_captures([PCAPS / "synthetic_ipv6.pcap"])
    found = devices(result, shipped_engine, packs)
    hik = found["192.168.70.40"]
    assert sorted(hik.other_ips) == ["fd00:70::40", eui64_link_local("58:50:ed:aa:00:40")]
    assert "onvif://www.onvif.org/hardware/DS-2CD2143G2-I" in values(hik, "wsd.scope")
    assert "80/tcp" in values(hik, "port.open")
    axis = found["fe80::aecc:8eff:feaa:41"]
    assert [e.source for e in axis.evidence if e.key == "mac"] == ["pcap:eui64"]
    assert found["fe80::1c2d:3e4f:5a6b:7c8d"].mac is None  # a random interface identifier carries no MAC
    assert not any("2001:db8" in ip or ip == "fd00:70::99" for d in found.values() for ip in [d.id, *d.other_ips])
    assert any("1 IPv6 fragments were not reassembled" in line for line in result.limitations)
    assert any("1 messages from public" in line for line in result.limitations)


def test_sip_and_snmp_speak_for_their_sender_only(shipped_engine, packs) -> None:  # type: ignore[no-untyped-def]
    """A SIP request's User-Agent and a response's Server describe the packet's source, never its destination; an
    SNMP GetRequest names no device, the GetResponse and the trap do; the door stations are intercoms."""
    found = devices(analyse_captures([PCAPS / "synthetic_sip_snmp.pcap"]), shipped_engine, packs)
    assert values(found["192.168.70.22"], "sip.user_agent") == ["Grandstream GDS3710 1.0.11.27"]  # not the PBX's
    assert values(found["192.168.70.5"], "sip.user_agent") == ["Asterisk PBX 18.10.0"]
    assert {e.source for e in found["192.168.70.64"].evidence} == {"pcap:snmp"}
    assert "192.168.70.10" not in found  # the monitoring server only asked
    assert [found[ip].device_type.value for ip in ("192.168.70.21", "192.168.70.22")] == ["intercom", "intercom"]


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_capture(name: str, shipped_engine, packs) -> None:  # type: ignore[no-untyped-def]
    message, hosts = BROKEN[name]
    if hosts is None and not name.startswith("broken_lab"):
        with pytest.raises(CaptureError) as info:
            analyse_captures([PCAPS / name])
        assert message in str(info.value)
        return
    result = analyse_captures([PCAPS / name])
    assert any(message in line for line in result.errors + result.limitations), (result.errors, result.limitations)
    assert all(f.decode_failures == 0 for f in result.files)
    found = devices(result, shipped_engine, packs)
    if hosts is not None:
        assert set(found) == hosts
    if name == "broken_lab_hostile_snaplen.pcap":
        assert found["10.77.0.11"].manufacturer == "Hikvision" and found["10.77.0.11"].flagged
        hostile = found["10.77.0.66"]
        assert not hostile.flagged and hostile.manufacturer is None
        assert "<script>alert(1)</script>" in values(hostile, "hostname")  # kept as text, escaped by the renderers


def test_a_readable_capture_next_to_an_unreadable_one(shipped_engine, packs) -> None:  # type: ignore[no-untyped-def]
    result = analyse_captures([PCAPS / "broken_wrong_magic.pcap", PCAPS / "synthetic_dhcp.pcap"])
    assert any("broken_wrong_magic.pcap: byte 0" in e for e in result.errors)
    assert "192.168.10.40" in devices(result, shipped_engine, packs)


# ----------------------------------------------------------------------------------------- the command


def camscan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_end_to_end(tmp_path: Path) -> None:
    cap = PCAPS / "lab_scan.pcap"
    out = tmp_path / "r.json"
    proc = camscan(
        "pcap", str(cap), str(PCAPS / "broken_truncated.pcap"), "--json", str(out), "--html", str(tmp_path / "r.html"),
        "--csv", str(tmp_path / "r.csv"), "--site", "Town Hall", "--operator", "auditor",
        "--authorisation", "ticket 42", "--policy", "us-ndaa-889",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    scan = doc["scan"]
    assert scan["methods"] == ["passive-pcap"] and scan["site"] == "Town Hall"
    assert [p["id"] for p in scan["packs"]] == ["us-ndaa-889"]
    inputs = {i["name"]: i for i in scan["inputs"]}
    assert inputs["lab_scan.pcap"]["kind"] == "pcap"
    assert inputs["lab_scan.pcap"]["sha256"] == hashlib.sha256(cap.read_bytes()).hexdigest()
    assert any("capture lab_scan.pcap (pcap)" in x and "time span" in x for x in doc["limitations"])
    assert any("broken_truncated.pcap: the file ends inside the record" in e for e in doc["errors"])
    assert any("camscan sent no packet" in x for x in doc["limitations"])
    flagged = sorted(d["ip"] for d in doc["devices"] if any(f["kind"] == "regime" for f in d["findings"]))
    assert flagged == [*(f"10.77.0.{n}" for n in (11, 12, 13, 14, 21, 22)), "192.168.10.40"]
    assert (tmp_path / "r.html").stat().st_size > 0 and (tmp_path / "r.csv").stat().st_size > 0
    assert camscan("verify", str(out)).returncode == 0


@pytest.mark.parametrize("name", ["broken_no_packets.pcap", "broken_all_corrupt.pcap", "broken_no_packets.pcapng"])
def test_cli_capture_without_one_readable_packet_is_an_error_not_an_empty_report(name: str, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = camscan("pcap", str(PCAPS / name), "--json", str(out))
    assert proc.returncode == 2 and not out.exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {name}: byte ") and "no packet could be read" in lines[0]


def test_cli_a_capture_without_packets_next_to_a_good_one_is_named_in_the_report(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    empty, good = PCAPS / "broken_no_packets.pcap", PCAPS / "synthetic_dhcp.pcap"
    proc = camscan("pcap", str(empty), str(good), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert any(e.startswith("broken_no_packets.pcap: byte 24: no packet could be read") for e in doc["errors"])
    assert any(d["ip"] == "192.168.10.40" for d in doc["devices"])


def test_cli_unreadable_capture_exits_2_with_the_offset(tmp_path: Path) -> None:
    proc = camscan("pcap", str(PCAPS / "broken_wrong_magic.pcap"), "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 2
    assert "broken_wrong_magic.pcap: byte 0: unknown magic number" in proc.stderr
    assert not (tmp_path / "r.json").exists()
    missing = camscan("pcap", str(tmp_path / "nope.pcap"))
    assert missing.returncode == 2 and "nope.pcap" in missing.stderr
