"""Property tests (hypothesis) of every parser that reads bytes from a device or a file.

Two kinds of property:
- whatever the input, the parser returns without raising (or raises only its documented error) and its output
  obeys its contract: the same oracle as the atheris targets (tests/fuzz/fuzz_*.py `check`), fed here by
  hypothesis with arbitrary bytes and with well-formed messages that it then damages;
- round trips: a message built from known fields (a SADP, DHIP, WS-Discovery, DHCP, ARP, mDNS answer, an HTTP
  answer, a chunked body, a TLS flight, a capture file, an Evidence line, an nmap report) parses back to
  exactly those fields, within the documented caps.

Example counts are modest (a few dozen per property) so that `make test` stays quick; `make fuzz` is where
the long searching happens.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import shutil
import struct
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from scanner.discovery import arp, dhcp, dhip, mdns, nmap, sadp, ssdp, wsd
from scanner.evidence_lines import LineError, parse_host_line
from scanner.fingerprint.rules import RuleError, load_ruleset
from scanner.lab.responders import dhip as lab_dhip
from scanner.lab.responders import sadp as lab_sadp
from scanner.model import VALUE_CAP, cap_value, field_key, normalise_mac
from scanner.passive import Analyzer, CaptureError, read_capture
from scanner.policy.packs import PackError, load_pack
from scanner.probes import banner, http, tls
from tests.fuzz.contract import check_evidence

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pcaps"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_synthetic", FIXTURES / "make_synthetic.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


S = _builder()

# Text a device may put in an XML element or a header: printable, no markup or line breaks, trimmed.
XML_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Co", "Cn", "Zl", "Zp")), min_size=1, max_size=60
).map(str.strip).filter(bool)
TOKEN = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:/._-%"), min_size=1,
                max_size=40)  # fmt: skip
XML_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,150}", fullmatch=True)
MAC_BYTES = st.binary(min_size=6, max_size=6).filter(lambda b: not b[0] & 1 and b != bytes(6))


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


# ---------------------------------------------------------------- arbitrary bytes through every fuzz target's oracle

TARGETS = [
    "wsd",
    "sadp_dhip",
    "sip_snmp",
    "ssdp_upnp",
    "mdns",
    "arp_dhcp",
    "http_rtsp",
    "tls",
    "banner_onvif",
    "frames",
    "pcap",
    "nmap_xml",
    "evidence_lines",
]


@pytest.mark.parametrize("target", TARGETS)
@FAST
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_obey_the_contract(target: str, data: bytes) -> None:
    importlib.import_module(f"tests.fuzz.fuzz_{target}").check(data)


@functools.cache
def _seeds(target: str) -> list[bytes]:
    corpus = Path(__file__).resolve().parents[1] / "fuzz" / "corpus" / target
    return [p.read_bytes() for p in sorted(corpus.iterdir())[:40]]


@pytest.mark.parametrize("target", TARGETS)
@FAST
@given(data=st.data())
def test_damaged_seeds_obey_the_contract(target: str, data: st.DataObject) -> None:
    """A real answer from the seed corpus, cut, with bytes overwritten and bytes inserted."""
    seed = bytearray(data.draw(st.sampled_from(_seeds(target))))
    for _ in range(data.draw(st.integers(0, 4))):
        if not seed:
            break
        pos = data.draw(st.integers(0, len(seed) - 1))
        action = data.draw(st.sampled_from(("cut", "flip", "insert")))
        if action == "cut":
            del seed[pos:]
        elif action == "flip":
            seed[pos] = data.draw(st.integers(0, 255))
        else:
            seed[pos:pos] = data.draw(st.binary(min_size=1, max_size=300))
    importlib.import_module(f"tests.fuzz.fuzz_{target}").check(bytes(seed))


# ---------------------------------------------------------------------------------------------------- MAC addresses


@FAST
@given(st.text(max_size=40))
@example("44-19-B6-12-34-56")
@example("4419.b612.3456")
def test_normalise_mac_is_idempotent(text: str) -> None:
    mac = normalise_mac(text)
    if mac is not None:
        assert normalise_mac(mac) == mac
        assert len(mac) == 17 and mac == mac.lower()


@FAST
@given(raw=st.binary(min_size=6, max_size=6), style=st.sampled_from(("-", ":", ".", "", "upper")))
def test_normalise_mac_reads_every_spelling(raw: bytes, style: str) -> None:
    digits = raw.hex()
    spelled = {
        "-": "-".join(digits[i : i + 2] for i in range(0, 12, 2)),
        ":": ":".join(digits[i : i + 2] for i in range(0, 12, 2)),
        ".": ".".join(digits[i : i + 4] for i in range(0, 12, 4)),
        "": digits,
        "upper": digits.upper(),
    }[style]
    assert normalise_mac(spelled) == mac_text(raw)


# ---------------------------------------------------------------------------------------------------------- SADP, DHIP


@FAST
@given(
    fields=st.dictionaries(XML_NAME.filter(lambda n: n not in ("Uuid", "Types")), XML_TEXT, min_size=1, max_size=12),
    mac=MAC_BYTES,
)
def test_sadp_probe_match_round_trip(fields: dict[str, str], mac: bytes) -> None:
    fields = {"MAC": mac_text(mac).replace(":", "-").upper(), **fields}
    items = sadp.parse_probe_match(lab_sadp.probe_match(fields, "0F1E2D3C"), "10.77.0.11")
    check_evidence(items, ("mac", "sadp."))
    got = [(e.key, e.value) for e in items]
    want = [("mac", mac_text(mac))] if "MAC" in fields and normalise_mac(fields["MAC"]) else []
    for name, value in fields.items():
        key = field_key("sadp", name)
        if len(key) <= 128:  # an element whose name makes no Evidence key is skipped
            want.append((key, value))
    assert sorted(got) == sorted(want)


@FAST
@given(
    info=st.dictionaries(
        st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,150}", fullmatch=True),
        st.one_of(XML_TEXT, st.integers(-(10**9), 10**9), st.booleans(), st.none(), st.dictionaries(TOKEN, TOKEN)),
        max_size=12,
    ),
    mac=MAC_BYTES,
)
def test_dhip_reply_round_trip(info: dict[str, Any], mac: bytes) -> None:
    doc = {"mac": mac_text(mac), "method": "client.notifyDevInfo", "params": {"deviceInfo": info}}
    items = dhip.parse_reply(lab_dhip.frame(doc), "10.77.0.12")
    check_evidence(items, ("mac", "dhip."))
    want = [("mac", mac_text(mac))]
    for k, v in info.items():
        key = field_key("dhip", k)
        if isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip() and len(key) <= 128:
            want.append((key, str(v)))
    assert sorted((e.key, e.value) for e in items) == sorted(want)


# -------------------------------------------------------------------------------------------------------- WS-Discovery


def _probe_matches(types: list[str], scopes: list[str], xaddrs: list[str], hello: bool, message_id: str) -> bytes:
    inner = (
        f"<d:Types>{' '.join(types)}</d:Types><d:Scopes>\n{' '.join(scopes)}\n</d:Scopes>"
        f"<d:XAddrs>{' '.join(xaddrs)}</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion>"
    )
    match = f"<d:ProbeMatches><d:ProbeMatch>{inner}</d:ProbeMatch></d:ProbeMatches>"
    body = f"<d:Hello>{inner}</d:Hello>" if hello else match
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{wsd.NS_SOAP}" xmlns:a="{wsd.NS_WSA}" '
        f'xmlns:d="{wsd.NS_WSD}"><s:Header><a:MessageID>{message_id}</a:MessageID></s:Header>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _first(items: list[str], cap: int) -> list[str]:
    return list(dict.fromkeys(items))[:cap]


@FAST
@given(
    types=st.lists(TOKEN, max_size=20),
    scopes=st.lists(TOKEN, max_size=80),
    xaddrs=st.lists(TOKEN, max_size=20),
    hello=st.booleans(),
)
def test_wsd_round_trip_and_caps(types: list[str], scopes: list[str], xaddrs: list[str], hello: bool) -> None:
    data = _probe_matches(types, scopes, xaddrs, hello, "urn:uuid:1")
    items = wsd.parse_probe_matches(data, "10.77.0.11")
    check_evidence(items, ("wsd.type", "wsd.scope", "wsd.xaddr"))
    assert [e.value for e in items if e.key == "wsd.type"] == _first(types, wsd.MAX_TYPES)
    assert [e.value for e in items if e.key == "wsd.scope"] == _first(scopes, wsd.MAX_SCOPES)
    assert [e.value for e in items if e.key == "wsd.xaddr"] == _first(xaddrs, wsd.MAX_XADDRS)
    dedupe = wsd._Deduplicator()
    assert [e.value for e in dedupe(data, "10.77.0.11")] == [e.value for e in items]
    if items:
        assert dedupe(data, "10.77.0.11") == []  # the same MessageID from the same address: a repeat


# ------------------------------------------------------------------------------------------------------- SSDP, UPnP


@FAST
@given(server=XML_TEXT, st_value=TOKEN, notify=st.booleans(), lf_only=st.booleans())
def test_ssdp_headers_round_trip(server: str, st_value: str, notify: bool, lf_only: bool) -> None:
    assume(":" not in server[:1])
    first = "NOTIFY * HTTP/1.1" if notify else "HTTP/1.1 200 OK"
    lines = [first, "CACHE-CONTROL: max-age=1800", f"SERVER: {server}", f"{'NT' if notify else 'ST'}: {st_value}"]
    eol = "\n" if lf_only else "\r\n"
    data = (eol.join(lines) + eol + eol).encode()
    items = ssdp.parse_response(data, "10.77.0.20")
    check_evidence(items, ("ssdp.server", "ssdp.st", "ssdp.usn"))
    assert [(e.key, e.value) for e in items] == [("ssdp.server", server), ("ssdp.st", st_value)]


@FAST
@given(path=st.from_regex(r"/[A-Za-z0-9_./-]{0,60}", fullmatch=True), port=st.integers(1, 65535), tls_=st.booleans(),
       host=st.sampled_from(("10.77.0.20", "10.77.0.21", "example.com", "user@10.77.0.20")))  # fmt: skip
def test_ssdp_fetches_only_from_the_answering_address(path: str, port: int, tls_: bool, host: str) -> None:
    location = f"{'https' if tls_ else 'http'}://{host}:{port}{path}"
    target = ssdp.fetchable(location, "10.77.0.20")
    if host == "10.77.0.20":
        assert target == ("10.77.0.20", port, path, tls_)
    else:
        assert target is None


@FAST
@given(fields=st.dictionaries(st.sampled_from(sorted(ssdp.DESCRIPTION_FIELDS)), XML_TEXT, min_size=1))
def test_upnp_description_round_trip(fields: dict[str, str]) -> None:
    from xml.sax.saxutils import escape

    inner = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
    xml = (
        '<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major>'
        f"</specVersion><device><deviceType>urn:schemas-upnp-org:device:Basic:1</deviceType>{inner}</device></root>"
    ).encode()
    items = ssdp.parse_description(xml)
    check_evidence(items, tuple(ssdp.DESCRIPTION_FIELDS.values()))
    assert sorted((e.key, e.value) for e in items) == sorted((ssdp.DESCRIPTION_FIELDS[k], v) for k, v in fields.items())


# ------------------------------------------------------------------------------------------------------------ mDNS


@FAST
@given(entries=st.lists(st.binary(max_size=255), max_size=80))
def test_txt_round_trip(entries: list[bytes]) -> None:
    raw = b"".join(bytes([len(e)]) + e for e in entries)
    want = [t for t in (e.decode("utf-8", "replace").strip() for e in entries) if t and not t.startswith("=")]
    assert mdns.parse_txt(raw) == want[: mdns.MAX_TXT_ENTRIES]


@FAST
@given(
    instance=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 -]{0,40}[A-Za-z0-9]", fullmatch=True),
    service=st.from_regex(r"_[a-z][a-z0-9-]{0,12}", fullmatch=True),
    host=st.from_regex(r"[a-z][a-z0-9-]{0,30}", fullmatch=True),
    txt=st.lists(st.from_regex(r"[a-z]{1,10}=[A-Za-z0-9 .]{0,20}", fullmatch=True), max_size=5),
)
def test_mdns_answer_round_trip(instance: str, service: str, host: str, txt: list[str]) -> None:
    from zeroconf._dns import DNSPointer, DNSService, DNSText
    from zeroconf._protocol.outgoing import DNSOutgoing

    stype = f"{service}._tcp.local."
    name = f"{instance}.{stype}"
    out = DNSOutgoing(0x8400, multicast=True)
    out.add_answer_at_time(DNSPointer(stype, 12, 1, 4500, name), 0)
    out.add_additional_answer(DNSService(name, 33, 0x8001, 120, 0, 0, 80, f"{host}.local."))
    raw_txt = b"".join(bytes([len(t)]) + t.encode() for t in txt)
    out.add_additional_answer(DNSText(name, 16, 0x8001, 4500, raw_txt or b"\x00"))
    items = mdns.parse_mdns_answer(out.packets()[0], "10.77.0.31")
    check_evidence(items, ("mdns.service", "mdns.instance", "mdns.txt", "hostname"))
    got = {(e.key, e.value) for e in items}
    want = {("mdns.service", stype), ("mdns.instance", name), ("hostname", host)}
    want |= {("mdns.txt", t.strip()) for t in txt if t.strip()}
    assert got == want


# --------------------------------------------------------------------------------------------------------- ARP, DHCP


@FAST
@given(smac=MAC_BYTES, sip=st.ip_addresses(v=4).filter(lambda a: int(a) != 0), op=st.sampled_from((1, 2)))
def test_arp_round_trip(smac: bytes, sip: Any, op: int) -> None:
    frame = S.arp(op, mac_text(smac), str(sip), "02:00:00:00:00:01", "10.77.0.2")
    pair = arp.parse_arp(frame[14:])  # the ARP packet inside the Ethernet frame
    assert pair == (str(sip), mac_text(smac))


@FAST
@given(
    mac=MAC_BYTES,
    hostname=XML_TEXT,
    vendor=XML_TEXT,
    msg_type=st.integers(1, 8),
    yiaddr=st.ip_addresses(v=4),
)
def test_dhcp_round_trip(mac: bytes, hostname: str, vendor: str, msg_type: int, yiaddr: Any) -> None:
    host_raw, vendor_raw = hostname.encode()[:255], vendor.encode()[:255]
    data = S.dhcp(1, mac_text(mac), msg_type, [(12, host_raw), (60, vendor_raw)], str(yiaddr))
    msg = dhcp.parse_dhcp(data)
    assert msg is not None and msg.mac == mac_text(mac) and msg.message_type == msg_type
    assert msg.yiaddr == str(yiaddr)
    assert msg.hostname == (host_raw.rstrip(b"\x00").decode("utf-8", "replace").strip() or None)
    assert msg.vendor_class == (vendor_raw.rstrip(b"\x00").decode("utf-8", "replace").strip() or None)


# ------------------------------------------------------------------------------------------------------- HTTP, RTSP


HEADER_NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,30}", fullmatch=True).filter(
    lambda n: n.lower() not in ("content-length", "transfer-encoding")
)
HEADER_VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=200)


@FAST
@given(
    status=st.integers(100, 599),
    headers=st.lists(st.tuples(HEADER_NAME, HEADER_VALUE), max_size=10),
    body=st.binary(max_size=3000),
    chunked=st.booleans(),
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=10),
)
def test_http_answer_round_trip(
    status: int, headers: list[tuple[str, str]], body: bytes, chunked: bool, sizes: list[int]
) -> None:
    head = f"HTTP/1.1 {status} Something\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    if chunked:
        encoded, pos, i = b"", 0, 0
        while pos < len(body):
            piece = body[pos : pos + sizes[i % len(sizes)]]
            encoded += f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n"
            pos += len(piece)
            i += 1
        raw = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + encoded + b"0\r\n\r\n"
    else:
        raw = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    resp = http.parse_response(raw)
    assert resp.status == status and resp.body == body and resp.body_complete
    assert [(k, v) for k, v in resp.headers if k.lower() not in ("content-length", "transfer-encoding")] == headers
    check_evidence(http.response_evidence(resp), ("http.",))
    assert http.split_responses(raw * 3, b"HTTP/") == ([raw] * 3 if not chunked else [raw * 3])


@FAST
@given(body=st.binary(max_size=5000), sizes=st.lists(st.integers(1, 900), min_size=1, max_size=8),
       limit=st.integers(1, 6000), lf_only=st.booleans())  # fmt: skip
def test_dechunk_gives_the_original(body: bytes, sizes: list[int], limit: int, lf_only: bool) -> None:
    eol = b"\n" if lf_only else b"\r\n"
    encoded, pos, i = b"", 0, 0
    while pos < len(body):
        piece = body[pos : pos + sizes[i % len(sizes)]]
        encoded += f"{len(piece):X}".encode() + eol + piece + eol
        pos += len(piece)
        i += 1
    decoded, last = http.dechunk(encoded + b"0" + eol + eol, limit)
    assert decoded == body[:limit]
    assert last == (len(body) < limit)  # the last chunk is seen unless the limit stopped the reading first


@FAST
@given(value=st.text(max_size=300), ip_last=st.integers(3, 254), port=st.integers(1, 65535), tls_=st.booleans())
def test_redirects_stay_on_the_host(value: str, ip_last: int, port: int, tls_: bool) -> None:
    ip = f"10.77.0.{ip_last}"
    for location in (value, f"http://10.77.0.{ip_last % 250 + 3}/{value}", f"//evil.example/{value}"):
        target = http.same_host_target(location, ip, port, tls_)
        if target is not None:
            new_port, _, path = target
            assert 0 < new_port <= 65535 and path.startswith("/") and not any(c in path for c in "\r\n\x00 ")
    assert http.same_host_target(f"//evil.example/{value}", ip, port, tls_) is None


# ----------------------------------------------------------------------------------------------------------- TLS


@FAST
@given(der=st.binary(min_size=1, max_size=3000), record_size=st.integers(1, 2000), version=st.integers(0, 3))
def test_leaf_certificate_from_any_record_split(der: bytes, record_size: int, version: int) -> None:
    def handshake(mtype: int, body: bytes) -> bytes:
        return bytes([mtype]) + len(body).to_bytes(3, "big") + body

    chain = len(der).to_bytes(3, "big") + der
    flight = handshake(2, b"\x03\x03" + b"\x00" * 38) + handshake(11, len(chain).to_bytes(3, "big") + chain)
    flight += handshake(14, b"")
    records = b"".join(
        bytes([22, 3, version]) + len(flight[i : i + record_size]).to_bytes(2, "big") + flight[i : i + record_size]
        for i in range(0, len(flight), record_size)
    )
    assert tls.leaf_certificate(records) == (der, True)
    got, final = tls.leaf_certificate(records[: len(records) // 2])
    assert got in (None, der) and isinstance(final, bool)


# ------------------------------------------------------------------------------------------------------- banners


@FAST
@given(text=st.binary(max_size=400).filter(lambda b: 255 not in b))
def test_telnet_text_without_iac_is_kept_whole(text: bytes) -> None:
    assert banner.strip_telnet(text) == (text, b"")
    doubled = text.replace(b"a", b"\xff\xff")
    assert banner.strip_telnet(doubled)[0] == text.replace(b"a", b"\xff")


# ------------------------------------------------------------------------------------------------------- captures


FRAME = st.binary(min_size=1, max_size=1500)


@FAST
@given(
    packets=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 999_999), FRAME), min_size=1, max_size=20),
    big=st.booleans(),
    nano=st.booleans(),
)
def test_pcap_written_from_random_frames_reads_back_the_same(
    tmp_path_factory: pytest.TempPathFactory, packets: list[tuple[int, int, bytes]], big: bool, nano: bool
) -> None:
    e = ">" if big else "<"
    scale = 1000 if nano else 1
    out = [struct.pack(e + "IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for sec, usec, data in packets:
        out.append(struct.pack(e + "IIII", sec, usec * scale, len(data), len(data)) + data)
    path = tmp_path_factory.mktemp("pcap") / "random.pcap"
    path.write_bytes(b"".join(out))
    got: list[tuple[bytes, float]] = []
    stats = read_capture(path, lambda d, p, n, link, ts: got.append((bytes(d[p : p + n]), ts)))
    assert [g[0] for g in got] == [p[2] for p in packets]
    assert all(abs(ts - (sec + usec / 1e6)) < 1e-5 for (_, ts), (sec, usec, _) in zip(got, packets, strict=True))
    assert stats.packets == len(packets) and not stats.problems()


@FAST
@given(frames=st.lists(FRAME, min_size=1, max_size=12), big=st.booleans(), resol=st.sampled_from((None, 6, 9)))
def test_pcapng_written_from_random_frames_reads_back_the_same(
    tmp_path_factory: pytest.TempPathFactory, frames: list[bytes], big: bool, resol: int | None
) -> None:
    e = ">" if big else "<"
    units = 1e9 if resol == 9 else 1e6
    blocks = [S.shb(e), S.idb(e, 1, resol)]
    blocks += [S.epb(e, 0, 1_700_000_000 + i, f, units) for i, f in enumerate(frames)]
    path = tmp_path_factory.mktemp("pcapng") / "random.pcapng"
    path.write_bytes(b"".join(blocks))
    got: list[bytes] = []
    stats = read_capture(path, lambda d, p, n, link, ts: got.append(bytes(d[p : p + n])))
    assert got == frames and stats.packets == len(frames)


@FAST
@given(data=st.binary(max_size=400), cut=st.integers(0, 400))
def test_capture_reader_raises_only_capture_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, cut: int
) -> None:
    path = tmp_path_factory.mktemp("broken") / "x.pcapng"
    for head in (S.shb("<"), S.shb(">") + S.idb(">", 1), struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)):
        path.write_bytes((head + data)[: len(head) + cut])
        analyzer = Analyzer()
        try:
            stats = read_capture(path, analyzer.feed)
        except CaptureError:
            continue
        assert stats.decode_failures == 0
        for host in analyzer.hosts():
            check_evidence(host.evidence)


# ------------------------------------------------------------------------------------------------------- nmap XML


@FAST
@given(
    hosts=st.lists(
        st.tuples(st.ip_addresses(v=4), st.lists(st.tuples(st.integers(1, 65535), XML_TEXT, XML_TEXT), max_size=4)),
        max_size=4,
    )
)
def test_nmap_xml_round_trip(hosts: list[tuple[Any, list[tuple[int, str, str]]]]) -> None:
    from xml.sax.saxutils import quoteattr

    parts = ['<?xml version="1.0" encoding="UTF-8"?><nmaprun scanner="nmap">']
    for ip, ports in hosts:
        parts.append(f'<host><status state="up"/><address addr="{ip}" addrtype="ipv4"/><ports>')
        for port, product, version in ports:
            parts.append(
                f'<port protocol="tcp" portid="{port}"><state state="open"/>'
                f"<service name=\"http\" product={quoteattr(product)} version={quoteattr(version)}/></port>"
            )
        parts.append("</ports></host>")
    parts.append("</nmaprun>")
    found = nmap.parse_nmap_xml("".join(parts).encode())
    want = [(str(ip), [(k, v) for _, p, ver in ports for k, v in (("nmap.product", p), ("nmap.version", ver))])
            for ip, ports in hosts if ports]  # fmt: skip
    assert [(o.ip, [(e.key, e.value) for e in o.evidence]) for o in found] == want


# ------------------------------------------------------------------------------------------------- Evidence lines


JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
JSON = st.recursive(JSON_SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                    max_size=4), max_leaves=20)  # fmt: skip


@FAST
@given(host_id=st.one_of(st.text(max_size=30), st.integers()), items=st.lists(st.tuples(st.text(max_size=30),
       st.text(max_size=80)), max_size=20))  # fmt: skip
def test_evidence_line_round_trip(host_id: str | int, items: list[tuple[str, str]]) -> None:
    line = json.dumps({"id": host_id, "evidence": [{"key": k, "value": v} for k, v in items]})
    host = parse_host_line(line)
    assert host.id == host_id and list(host.pairs()) == items


@FAST
@given(doc=JSON)
@example(doc={"id": 1, "evidence": [{"key": "", "value": "x"}]})
def test_evidence_line_refuses_only_with_line_error(doc: Any) -> None:
    for line in (json.dumps(doc), json.dumps(doc)[:-1], json.dumps({"id": "h", "evidence": doc})):
        try:
            parse_host_line(line)
        except LineError as exc:
            assert exc.reason
    importlib.import_module("tests.fuzz.fuzz_evidence_lines").check(json.dumps(doc).encode())


# ---------------------------------------------------------------------------------------- rule files, policy packs


YAML_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(0, 2), st.text(max_size=12)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


def _mutate(doc: Any, data: st.DataObject, depth: int = 0) -> Any:
    """The document with one value somewhere replaced by an arbitrary one, or one key dropped or added."""
    if depth > 6 or not isinstance(doc, (dict, list)) or not doc or data.draw(st.integers(0, 3)) == 0:
        return data.draw(YAML_VALUE)
    if isinstance(doc, dict):
        key = data.draw(st.sampled_from(sorted(doc, key=str)))
        action = data.draw(st.sampled_from(("descend", "drop", "add")))
        out = dict(doc)
        if action == "drop":
            del out[key]
        elif action == "add":
            out[data.draw(st.text(max_size=10))] = data.draw(YAML_VALUE)
        else:
            out[key] = _mutate(doc[key], data, depth + 1)
        return out
    i = data.draw(st.integers(0, len(doc) - 1))
    return [*doc[:i], _mutate(doc[i], data, depth + 1), *doc[i + 1 :]]


@SLOW
@given(data=st.data())
def test_council_rule_file_is_refused_only_with_rule_error(tmp_path_factory: pytest.TempPathFactory,
                                                          data: st.DataObject) -> None:  # fmt: skip
    shipped = Path(__file__).resolve().parents[2] / "fingerprints"
    source = data.draw(st.sampled_from(("ssh_banner.yaml", "telnet_banner.yaml", "dhip.yaml", "sip.yaml")))
    doc = yaml.safe_load((shipped / source).read_text())
    doc = _mutate(_mutate(doc, data), data)
    extra = tmp_path_factory.mktemp("council")
    (extra / "council.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    base = tmp_path_factory.mktemp("fingerprints")  # the shipped maker list alone: quick to load each time
    shutil.copy(shipped / "makers.yaml", base / "makers.yaml")
    try:
        load_ruleset(directory=base, extra_dirs=[extra])
    except RuleError as exc:
        assert exc.file == "council.yaml" or "council.yaml" in str(exc)


MAKERS = None


@SLOW
@given(data=st.data())
def test_council_policy_pack_is_refused_only_with_pack_error(tmp_path_factory: pytest.TempPathFactory,
                                                            data: st.DataObject) -> None:  # fmt: skip
    global MAKERS
    if MAKERS is None:
        MAKERS = load_ruleset().makers
    shipped = Path(__file__).resolve().parents[2] / "policies"
    source = data.draw(st.sampled_from(("us-ndaa-889.yaml", "uk-cabinet-office-2022.yaml", "camera-risk.yaml")))
    doc = yaml.safe_load((shipped / source).read_text())
    doc = _mutate(_mutate(doc, data), data)
    path = tmp_path_factory.mktemp("policy") / "council.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        pack = load_pack(path, MAKERS, origin="council")
    except PackError as exc:
        assert exc.file == "council.yaml"
        return
    for ex in pack.examples:
        pack.findings(ex.device)


# ------------------------------------------------------------------------------------------------------- caps


@FAST
@given(key=st.sampled_from(("http.body", "http.server", "sadp.model")), value=st.text(max_size=70000))
def test_cap_value_bounds_and_trims(key: str, value: str) -> None:
    capped = cap_value(key, value)
    assert len(capped) <= (65536 if key == "http.body" else VALUE_CAP)
    assert capped == value.strip()[: len(capped)]
