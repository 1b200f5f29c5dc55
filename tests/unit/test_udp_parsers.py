"""SADP and DHIP parsers on bytes: real-looking answers, our own probes, garbage, oversize; and merging."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.discovery import dhip, sadp, sip, snmp
from scanner.discovery.arp import parse_proc_net_arp
from scanner.model import Evidence, Observation
from scanner.model import merge_observations as merge

# a ProbeMatch in the form Hikvision firmware 5.x sends (fields as in public SADP tools' parsers)
SADP_REPLY = (
    b'<?xml version="1.0" encoding="UTF-8"?><ProbeMatch><Uuid>1F9B2A6C-4E1D-4F5A-9C3E-7A2B5D8E0C11</Uuid>'
    b"<Types>inquiry</Types><DeviceType>138</DeviceType><DeviceDescription>DS-2CD2143G0-I</DeviceDescription>"
    b"<DeviceSN>DS-2CD2143G0-I20190101AAWRC12345678</DeviceSN><CommandPort>8000</CommandPort><HttpPort>80</HttpPort>"
    b"<MAC>44-19-b6-12-34-56</MAC><IPv4Address>10.77.0.11</IPv4Address><SoftwareVersion>V5.5.0build 170725"
    b"</SoftwareVersion><Activated>true</Activated></ProbeMatch>"
)


def keys(items: list[Evidence]) -> dict[str, str]:
    return {e.key: e.value for e in items}


def test_sadp_probe_match() -> None:
    ev = keys(sadp.parse_probe_match(SADP_REPLY, "10.77.0.11"))
    assert ev["sadp.device_description"] == "DS-2CD2143G0-I"
    assert ev["sadp.software_version"] == "V5.5.0build 170725"
    assert ev["sadp.ipv4_address"] == "10.77.0.11"
    assert ev["sadp.mac"] == "44-19-b6-12-34-56" and ev["mac"] == "44:19:b6:12:34:56"
    assert "sadp.uuid" not in ev


def test_sadp_ignores_probes_garbage_and_bombs() -> None:
    assert sadp.parse_probe_match(sadp.build_probe(), "x") == []
    assert sadp.parse_probe_match(b"\x00\xff garbage", "x") == []
    assert sadp.parse_probe_match(SADP_REPLY[:120], "x") == []
    assert sadp.parse_probe_match(b"<ProbeMatch>" + b"<A>x</A>" * 5000 + b"</ProbeMatch>", "x") == []
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b"<ProbeMatch><DeviceDescription>&b;</DeviceDescription></ProbeMatch>"
    )
    assert sadp.parse_probe_match(bomb, "x") == []


def _dhip(doc: object) -> bytes:
    body = json.dumps(doc).encode()
    n = struct.pack("<I", len(body))
    return dhip.MAGIC + b"\x00" * 8 + n + b"\x00" * 4 + n + b"\x00" * 4 + body


def test_dhip_reply() -> None:
    reply = _dhip(
        {
            "mac": "4c:11:bf:c2:0b:21",
            "method": "client.notifyDevInfo",
            "params": {
                "deviceInfo": {
                    "DeviceClass": "IPC",
                    "DeviceType": "IPC-HDW2441TM-S",
                    "SerialNo": "7H0ABCD1234567",
                    "Vendor": "Dahua",
                    "Version": "2.800.0000000.25.R, Build Date 2021-06-10",
                    "HttpPort": 80,
                    "IPv4Address": {"IPAddress": "10.77.0.21"},
                }
            },
        }
    )
    ev = keys(dhip.parse_reply(reply, "10.77.0.21"))
    assert ev["dhip.device_type"] == "IPC-HDW2441TM-S" and ev["dhip.serial_no"] == "7H0ABCD1234567"
    assert ev["dhip.http_port"] == "80" and ev["mac"] == "4c:11:bf:c2:0b:21"
    assert not any(k.startswith("dhip.ipv4") for k in ev)


def test_dhip_ignores_own_probe_and_garbage() -> None:
    assert dhip.parse_reply(dhip.build_probe(), "x") == []
    assert dhip.parse_reply(b"DHIP" * 10, "x") == []
    assert dhip.parse_reply(dhip.MAGIC + b"\x00" * 24 + b"{not json", "x") == []
    assert dhip.parse_reply(_dhip([1, 2, 3]), "x") == []
    assert dhip.parse_reply(_dhip({"params": {"deviceInfo": "x"}}), "x") == []
    assert dhip.parse_reply(dhip.MAGIC + b"\x00" * 24 + b"[" * 100_000, "x") == []


def test_proc_net_arp() -> None:
    text = (
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "10.77.0.11       0x1         0x2         44:19:b6:12:34:56     *        lab0\n"
        "10.77.0.12       0x1         0x0         00:00:00:00:00:00     *        lab0\n"
        "192.168.1.1      0x1         0x2         aa:bb:cc:dd:ee:ff     *        eth0\n"
    )
    assert parse_proc_net_arp(text, "lab0") == {"10.77.0.11": "44:19:b6:12:34:56"}


def test_merge_joins_by_address_then_mac() -> None:
    e = lambda k, v: Evidence(key=k, value=v)  # noqa: E731
    hosts = merge(
        [
            Observation("10.0.0.5", [e("http.server", "App-webs/")]),
            Observation(
                "10.0.0.5", [e("mac", "44:19:b6:00:00:01"), e("http.server", "App-webs/")], "44:19:b6:00:00:01"
            ),
            Observation("10.0.0.9", [e("sadp.device_description", "DS-2CD2143G0-I")], "44:19:b6:00:00:01"),
            Observation("10.0.0.7", [e("port.open", "80/tcp")]),
        ]
    )
    assert [h.ip for h in hosts] == ["10.0.0.5", "10.0.0.7"]
    assert hosts[0].other_ips == ["10.0.0.9"] and hosts[0].mac == "44:19:b6:00:00:01"
    assert [x.key for x in hosts[0].evidence] == ["http.server", "mac", "sadp.device_description"]


# ------------------------------------------------------------------------------------- SIP and SNMP (passive only)

SIP_REGISTER = (
    b"REGISTER sip:192.168.70.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.70.21:5060;branch=z9hG4bK1\r\n"
    b"From: <sip:4001@192.168.70.5>;tag=1\r\nCall-ID: a1\r\nCSeq: 1 REGISTER\r\n"
    b"user-agent:   2N IP Verso 2.44.0.62.3  \r\nContent-Length: 0\r\n\r\n"
)


def test_sip_request_and_response_headers() -> None:
    assert [e.value for e in sip.parse_message(SIP_REGISTER)] == ["2N IP Verso 2.44.0.62.3"]
    ok = b"SIP/2.0 200 OK\r\nServer: Grandstream GDS3710 1.0.11.27\r\nUser-Agent: GDS\r\nServer: second\r\n\r\nbody"
    assert [(e.key, e.value) for e in sip.parse_message(ok)] == [
        ("sip.user_agent", "GDS"),
        ("sip.user_agent", "Grandstream GDS3710 1.0.11.27"),
    ]
    assert all(e.source == "sip" for e in sip.parse_message(ok))


def test_sip_ignores_what_is_not_sip() -> None:
    for data in (
        b"",
        b"HTTP/1.1 200 OK\r\nServer: App-webs/\r\n\r\n",  # HTTP, not SIP
        b"NOTIFY * HTTP/1.1\r\nServer: x\r\n\r\n",
        b"SIP/2.0 2000 OK\r\nServer: x\r\n\r\n",  # not a status code
        b"register sip:x SIP/2.0\r\nUser-Agent: x\r\n\r\n",  # methods are upper case
        b"REGISTER sip:x SIP/2.0\r\nUser-Agent:\r\n\r\n",  # empty value
        b"REGISTER sip:x SIP/2.0\r\n\r\nUser-Agent: in the body\r\n",
        b"\xff" * 70000,
    ):
        assert sip.parse_message(data) == [], data[:40]
    hostile = b"SIP/2.0 200 OK\r\nServer: <script>alert(1)</script>" + b"A" * 9000 + b"\r\n\r\n"
    (item,) = sip.parse_message(hostile)
    assert item.value.startswith("<script>") and len(item.value) <= 4096  # kept as data, capped


def _ber(tag: int, content: bytes) -> bytes:
    n = len(content)
    return bytes([tag]) + (bytes([n]) if n < 0x80 else bytes([0x82, n >> 8, n & 0xFF])) + content


def _snmp(pdu: int, oid: bytes, value: bytes, version: int = 1) -> bytes:
    binding = _ber(0x30, _ber(0x06, oid) + value)
    body = _ber(0x02, b"\x01") + _ber(0x02, b"\x00") + _ber(0x02, b"\x00") + _ber(0x30, binding)
    return _ber(0x30, _ber(0x02, bytes([version])) + _ber(0x04, b"public") + _ber(pdu, body))


def test_snmp_sysdescr_of_a_response_or_trap() -> None:
    value = _ber(0x04, b"Hikvision company products\x00")
    assert [e.value for e in snmp.parse_message(_snmp(0xA2, snmp.SYSDESCR_OID, value))] == [
        "Hikvision company products"
    ]
    assert [e.value for e in snmp.parse_message(_snmp(0xA7, snmp.SYSDESCR_OID, value))] == [
        "Hikvision company products"
    ]
    long_value = _ber(0x04, b"Linux " + b"x" * 300)  # a two-octet length
    assert snmp.parse_message(_snmp(0xA2, snmp.SYSDESCR_OID, long_value))[0].value.startswith("Linux xxx")


@pytest.mark.parametrize(
    ("dotted", "content"),
    [
        ("1.3.6.1.4.1.39165.1.1", bytes([0x2B, 6, 1, 4, 1, 0x82, 0xB1, 0x7D, 1, 1])),  # PEN 39165: two octets
        ("1.3.6.1.4.1.8072.3.2.10", bytes([0x2B, 6, 1, 4, 1, 0xBF, 0x08, 3, 2, 10])),  # net-snmp's Linux agent
        ("2.999.1", bytes([0x88, 0x37, 1])),  # X.690 §8.19.5's example: 2.999 as one sub-identifier
        ("0.0", b"\x00"),
    ],
)
def test_snmp_oid_text_both_ways(dotted: str, content: bytes) -> None:
    assert snmp.oid_text(content) == dotted
    assert snmp.oid_content(dotted) == content


@pytest.mark.parametrize(
    "content",
    [b"", b"\x2b\x86", b"\x2b\x80\x01", bytes([0x2B]) + b"\x8f\xff\xff\xff\xff\x7f", b"\x01" * 129],
)
def test_snmp_oid_text_refuses_cut_unminimal_huge_or_long_oids(content: bytes) -> None:
    assert snmp.oid_text(content) is None


def test_snmp_sysobjectid_beside_sysdescr() -> None:
    reply = snmp.build_response(b"public", 9, "Hikvision company products", "1.3.6.1.4.1.39165.1.1")
    assert [(e.key, e.value) for e in snmp.parse_message(reply)] == [
        ("snmp.sysdescr", "Hikvision company products"),
        ("snmp.sysobjectid", "1.3.6.1.4.1.39165.1.1"),
    ]
    assert snmp.parse_message(_snmp(0xA2, snmp.SYSOBJECTID_OID, _ber(0x06, b"\x00"))) == []  # zeroDotZero
    assert snmp.parse_message(_snmp(0xA2, snmp.SYSOBJECTID_OID, _ber(0x04, b"1.3.6.1"))) == []  # not an OID value
    assert snmp.read_get_request(snmp.build_get("public", 3)) == (
        b"public",
        3,
        [snmp.SYSDESCR_OID, snmp.SYSOBJECTID_OID],
    )


def test_snmp_ignores_requests_other_objects_and_bad_ber() -> None:
    value = _ber(0x04, b"Hikvision company products")
    request = _snmp(0xA0, snmp.SYSDESCR_OID, b"\x05\x00")  # GetRequest: the asker names nothing
    other_oid = _snmp(0xA2, bytes([0x2B, 6, 1, 2, 1, 1, 5, 0]), value)  # sysName, not sysDescr
    v3 = _snmp(0xA2, snmp.SYSDESCR_OID, value, version=3)
    not_a_string = _snmp(0xA2, snmp.SYSDESCR_OID, _ber(0x02, b"\x01"))
    good = _snmp(0xA2, snmp.SYSDESCR_OID, value)
    lying = bytearray(good)
    lying[1] = 0x7F  # the outer length claims more than is there
    for data in (
        b"",
        request,
        other_oid,
        v3,
        not_a_string,
        bytes(lying),
        good[:-3],
        b"\x30\x84\xff\xff\xff\xff",
        b"\x3f\x01\x00",
    ):
        assert snmp.parse_message(data) == [], data[:20]


@given(st.integers(0, 2), st.integers(0, 39), st.lists(st.integers(0, 2**32 - 1), max_size=30))
def test_snmp_oid_round_trip(first: int, second: int, rest: list[int]) -> None:
    dotted = ".".join(str(a) for a in [first, second, *rest])
    assert snmp.oid_text(snmp.oid_content(dotted)) == dotted


@given(st.binary(max_size=300))
def test_snmp_oid_text_never_raises(content: bytes) -> None:
    dotted = snmp.oid_text(content)
    assert dotted is None or snmp.oid_content(dotted) == content
