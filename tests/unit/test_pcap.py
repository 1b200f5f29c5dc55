"""The capture reader and the dissector on bytes: formats, chunk boundaries, damage, and every payload parser
the passive audit feeds; nothing a packet holds may raise."""

from __future__ import annotations

import importlib.util
import random
import struct
from pathlib import Path
from types import ModuleType

import pytest

from scanner.discovery.arp import parse_arp
from scanner.discovery.dhcp import parse_dhcp
from scanner.passive import Analyzer, CaptureError, FileStats, capture, dissect, flows, read_capture
from scanner.passive.flows import http_evidence
from scanner.probes.http import split_responses as split_messages
from scanner.probes.tls import leaf_certificate as tls_leaf_certificate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pcaps"


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_synthetic", FIXTURES / "make_synthetic.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


S = _load_builder()


def collect(path: Path) -> tuple[list[tuple[int, float, bytes]], FileStats]:
    got: list[tuple[int, float, bytes]] = []

    def sink(d: bytes, off: int, n: int, link: int, ts: float) -> None:
        got.append((link, ts, bytes(d[off : off + n])))

    stats = read_capture(path, sink)
    return got, stats


def analyse(frames: list[bytes], link: int = 1) -> dict[str, dict[str, list[str]]]:
    """Evidence per host id, {key: [values]}, from frames fed straight to the Analyzer."""
    a = Analyzer()
    for i, f in enumerate(frames):
        a.feed(f, 0, len(f), link, S.T0 + i)
    out: dict[str, dict[str, list[str]]] = {}
    for h in a.hosts():
        keys: dict[str, list[str]] = {}
        for e in h.evidence:
            keys.setdefault(e.key, []).append(e.value)
        out[h.id] = keys
    return out


PACKETS = [(S.T0 + 0.5, S.arp(2, S.HIK_MAC, "192.168.1.64", S.PC_MAC, "192.168.1.10")), (S.T0 + 1.25, b"\x00" * 60)]


# ----------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize(("big", "nano"), [(False, False), (True, False), (False, True), (True, True)])
def test_pcap_byte_orders_and_precisions(tmp_path: Path, big: bool, nano: bool) -> None:
    path = tmp_path / "x.pcap"
    S.write_pcap(path, PACKETS, big=big, nano=nano)
    got, stats = collect(path)
    assert [g[2] for g in got] == [p[1] for p in PACKETS]
    assert [g[1] for g in got] == pytest.approx([p[0] for p in PACKETS], abs=1e-6)
    assert stats.packets == 2 and stats.first == pytest.approx(S.T0 + 0.5) and stats.last == pytest.approx(S.T0 + 1.25)
    assert stats.format.startswith("pcap") and ("nanosecond" in stats.format) == nano


@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcapng_sections_interfaces_and_blocks(endian: str) -> None:
    path = FIXTURES / f"synthetic_multi_if_{'le' if endian == '<' else 'be'}.pcapng"
    got, stats = collect(path)
    assert [g[0] for g in got] == [1, 113, 101, 1, 1]  # EPB on 3 interfaces, the SPB on interface 0, 2nd section
    assert got[2][1] == pytest.approx(S.T0 + 41)  # if_tsresol 9: nanoseconds
    assert stats.packets == 5 and stats.unknown_blocks == 0 and stats.format == "pcapng"


def test_records_across_chunk_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is read in chunks: a record split between two reads is whole when it reaches the sink."""
    frames = [(S.T0 + i, bytes([i % 256]) * (40 + 37 * i)) for i in range(60)]
    path = tmp_path / "chunks.pcap"
    S.write_pcap(path, frames)
    ng = tmp_path / "chunks.pcapng"
    e = "<"
    ng.write_bytes(S.shb(e) + S.idb(e, 1) + b"".join(S.epb(e, 0, t, d) for t, d in frames))
    monkeypatch.setattr(capture, "CHUNK", 97)
    for p in (path, ng):
        got, stats = collect(p)
        assert [g[2] for g in got] == [d for _, d in frames], p.name
        assert stats.truncated_at is None and not stats.corrupt_at


def test_header_errors_name_the_offset(tmp_path: Path) -> None:
    cases = {
        b"": "too short",
        b"\x0b\xad\xca\xfe" + b"\0" * 40: "unknown magic",
        b"\xd4\xc3\xb2\xa1\x02\x00": "header cut short",
        b"\x1f\x8b\x08\x00" + b"\0" * 20: "gzip",
    }
    for i, (data, message) in enumerate(cases.items()):
        p = tmp_path / f"bad{i}.pcap"
        p.write_bytes(data)
        with pytest.raises(CaptureError, match=message) as info:
            read_capture(p, lambda *a: None)
        assert info.value.offset == 0
        assert "byte 0" in str(info.value)
    with pytest.raises(CaptureError, match="byte 8: pcapng section header with a bad byte-order magic"):
        read_capture(FIXTURES / "broken_bad_byte_order.pcapng", lambda *a: None)


def record_boundaries(data: bytes) -> set[int]:
    """Offsets where a record (pcap) or block (pcapng, little-endian) ends."""
    pcapng = data[:4] == b"\x0a\x0d\x0d\x0a"
    pos, out = (0 if pcapng else 24), set()
    while pos + 12 <= len(data):
        pos += struct.unpack_from("<I", data, pos + 4)[0] if pcapng else 16 + struct.unpack_from("<I", data, pos + 8)[0]
        out.add(pos)
    return out


def test_truncation_at_every_offset_never_raises_beyond_the_header(tmp_path: Path) -> None:
    for source in (FIXTURES / "synthetic_http_vlan.pcap", FIXTURES / "synthetic_multi_if_le.pcapng"):
        data = source.read_bytes()
        whole = collect(source)[1].packets
        boundaries = record_boundaries(data)
        for cut in range(0, len(data), 7):
            p = tmp_path / "cut"
            p.write_bytes(data[:cut])
            try:
                stats = read_capture(p, lambda *a: None)
            except CaptureError as exc:  # a bad header, or not one whole record left
                assert exc.offset <= 32 or "no packet could be read" in str(exc), (source.name, cut, exc)
                continue
            assert stats.packets <= whole
            if cut not in boundaries and cut > 32:
                assert stats.truncated_at is not None, (source.name, cut)


def test_corrupt_record_is_skipped_and_counted() -> None:
    got, stats = collect(FIXTURES / "broken_corrupt_record.pcap")
    whole, _ = collect(FIXTURES / "synthetic_dhcp.pcap")
    assert stats.corrupt_at == [24 + 16 + len(whole[0][2])]
    assert len(got) == len(whole) - 1 and [g[2] for g in got] == [w[2] for w in whole[:1] + whole[2:]]
    assert stats.skipped_bytes > 0 and "corrupt record" in stats.problems()[0]


def test_corrupt_pcapng_block_is_skipped(tmp_path: Path) -> None:
    e = "<"
    good = [S.epb(e, 0, S.T0 + i, S.arp(2, S.HIK_MAC, f"192.168.1.{i}", S.PC_MAC, "192.168.1.1")) for i in range(3)]
    bad = bytearray(good[1])
    struct.pack_into("<I", bad, 4, 0xFFFFFFF0)  # an impossible block length
    p = tmp_path / "c.pcapng"
    p.write_bytes(S.shb(e) + S.idb(e, 1) + good[0] + bytes(bad) + good[2])
    got, stats = collect(p)
    assert len(got) == 2 and len(stats.corrupt_at) == 1


def test_unknown_pcapng_block_is_skipped_and_counted() -> None:
    got, stats = collect(FIXTURES / "broken_unknown_block.pcapng")
    assert len(got) == 1 and stats.unknown_blocks == 1


def test_snaplen_cut_packets_are_counted() -> None:
    _, stats = collect(FIXTURES / "broken_snaplen.pcap")
    assert stats.cut_by_snaplen == 6


def test_a_huge_record_length_is_not_allocated(tmp_path: Path) -> None:
    p = tmp_path / "huge.pcap"
    p.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + struct.pack("<IIII", 1, 0, 2**31, 2**31))
    stats = FileStats(p.name)
    with pytest.raises(CaptureError, match=r"huge\.pcap: byte 24: no packet could be read"):
        read_capture(p, lambda *a: None, stats)
    assert stats.packets == 0 and stats.unreadable_tail_at == 24


# ----------------------------------------------------------------------------------------- payload parsers


def test_parse_arp() -> None:
    frame = S.arp(1, S.HIK_MAC, "192.168.1.64", "00:00:00:00:00:00", "192.168.1.1")
    assert parse_arp(frame[14:]) == ("192.168.1.64", S.HIK_MAC)
    probe = S.arp(1, S.HIK_MAC, "0.0.0.0", "00:00:00:00:00:00", "192.168.1.64")  # RFC 5227 probe
    assert parse_arp(probe[14:]) is None
    assert parse_arp(b"\x00\x01\x08\x00") is None


def test_parse_dhcp() -> None:
    payload = S.dhcp(1, S.AXIS_MAC, 3, [(12, b"axis-accc8eaa0041"), (60, b"AXIS,Network Camera,P3245-LVE,10.12.165"),
                                       (50, bytes([192, 168, 1, 41]))])  # fmt: skip
    msg = parse_dhcp(payload)
    assert msg is not None
    assert (msg.op, msg.mac, msg.message_type, msg.hostname) == (1, S.AXIS_MAC, 3, "axis-accc8eaa0041")
    assert msg.vendor_class == "AXIS,Network Camera,P3245-LVE,10.12.165" and msg.requested_ip == "192.168.1.41"
    assert parse_dhcp(payload[:200]) is None
    assert parse_dhcp(payload[:240] + b"\x0c\xff" + b"x" * 3) is not None  # an option cut short ends the options
    assert parse_dhcp(b"\x02" * 300) is None


def test_tls_leaf_certificate() -> None:
    der = S.certificate_der("CN=IPC,O=HIKVISION,C=CN")
    flight = S.tls12_server_flight(der)
    assert tls_leaf_certificate(flight) == (der, True)
    assert tls_leaf_certificate(flight[:100]) == (None, False)  # still waiting for the Certificate
    assert tls_leaf_certificate(b"\x17\x03\x03\x00\x10" + b"\0" * 16) == (None, True)  # encrypted: TLS 1.3
    assert tls_leaf_certificate(b"\x16\x03\x03\x00\x04\x0e\x00\x00\x00") == (None, True)  # ServerHelloDone
    assert tls_leaf_certificate(b"\x16\x03\x03\x00\x0a\x0b\x00\x00\x06\x00\x00\x03\xff\xff\xff")[0] is None


def test_split_messages_keep_alive_and_rtsp() -> None:
    a = b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 2\r\n\r\nab"
    b = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz"
    assert split_messages(a + b, b"HTTP/") == [a, b]
    until_close = b"HTTP/1.0 200 OK\r\n\r\nbody then more"
    assert split_messages(until_close + b, b"HTTP/") == [until_close + b]
    r1 = b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nServer: Dahua Rtsp Server\r\n\r\n"
    r2 = b'RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Digest realm="Login to 1"\r\n\r\n'
    assert split_messages(r1 + r2, b"RTSP/") == [r1, r2]
    assert split_messages(b"garbage", b"HTTP/") == []


def test_http_evidence_pairs_answers_with_their_requests() -> None:
    root = b"HTTP/1.1 302 Found\r\nServer: App-webs/\r\nLocation: /doc/page/login.asp\r\nContent-Length: 0\r\n\r\n"
    other = b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
    icon = b"HTTP/1.1 200 OK\r\nContent-Type: image/x-icon\r\nContent-Length: 4\r\n\r\n\x00\x01\x02\x03"
    got = {(e.key, e.value) for e in http_evidence([root, other, icon], ["/", "/x", "/favicon.ico"])}
    assert ("http.redirect", "/doc/page/login.asp") in got
    assert ("http.redirect", "/elsewhere") not in got  # only the answer to GET / is a root redirect
    assert any(k == "http.favicon.mmh3" for k, _ in got) and not any(k == "http.body" for k, _ in got)


# ----------------------------------------------------------------------------------------- the dissector


def test_only_the_source_gets_evidence_and_internet_hosts_are_left_out() -> None:
    hosts = analyse([f for _, f in S.http_packets()])
    assert set(hosts) == {"192.168.20.64", "192.168.20.65"}  # the client 192.168.20.10 sent no answer
    assert hosts["192.168.20.64"]["http.server"] == ["App-webs/"]
    assert hosts["192.168.20.64"]["http.redirect"] == ["/doc/page/login.asp"]
    assert hosts["192.168.20.65"]["http.title"] == ["WEB SERVICE"]  # port 8081, found by its status line


def test_banners_need_the_start_of_the_stream() -> None:
    hosts = analyse([f for _, f in S.banner_packets()])
    axis = hosts["192.168.30.41"]
    assert axis["ftp.banner"] == ["220 AXIS 207 Network Camera 4.40.1 (Apr 16 2007) ready."]
    assert axis["ssh.banner"] == ["SSH-2.0-dropbear_2019.78"]
    assert len(axis["telnet.banner"]) == 1 and axis["telnet.banner"][0].startswith("AXIS 241Q Video Server")
    assert "23/tcp" in axis["port.open"] and "22/tcp" in axis["port.open"]


def test_a_multi_line_ftp_greeting_is_read_whole_from_a_capture() -> None:
    """A WebGate-style greeting (a line before the reply code, then three 220 lines, sent in small segments) is
    its first line as ftp.banner (the contract) and the whole of it as ftp.greeting; an FTP answer in the middle
    of a session (331, no 220 line) is not a greeting."""
    dvr, pc = "192.168.30.42", "192.168.30.10"
    greeting = (
        b"ftpd - accept the connection from 192.168.30.10\n"
        b"220-eDVR FTP Server v1.1 (c)Copyright WebGate Inc. 2008-2010\r\n220-Welcome to DS1004\r\n"
        b"220 You will be disconnected after 180 seconds of inactivity.\r\n331 Password required\r\n"
    )
    frames = S.tcp_exchange(S.PC_MAC, S.AXIS_MAC, pc, dvr, 41010, 21, b"", greeting, S.T0, mss=60, syn=False)
    midway = b"331 Please specify the password.\r\n"
    frames += S.tcp_exchange(S.PC_MAC, S.AXIS_MAC, pc, dvr, 41011, 21, b"", midway, S.T0 + 1, syn=False)
    hosts = analyse([f for _, f in frames])
    assert hosts[dvr]["ftp.banner"] == ["ftpd - accept the connection from 192.168.30.10"]
    assert hosts[dvr]["ftp.greeting"] == [
        "ftpd - accept the connection from 192.168.30.10 220-eDVR FTP Server v1.1 (c)Copyright WebGate Inc. "
        "2008-2010 220-Welcome to DS1004 220 You will be disconnected after 180 seconds of inactivity."
    ]


def test_fragmented_datagram_is_reassembled() -> None:
    hosts = analyse([f for _, f in S.fragmented_wsd_packets()])
    assert "onvif://www.onvif.org/hardware/DH-IPC-HFW2431S-S-S2" in hosts["192.168.40.66"]["wsd.scope"]


def test_tls_certificate_in_clear_even_with_a_retransmission() -> None:
    der = S.certificate_der("CN=IPC,O=HIKVISION,C=CN")
    frames = S.tcp_exchange(S.PC_MAC, S.HIK_MAC, "10.0.0.10", "10.0.0.64", 40000, 443, b"", S.tls12_server_flight(der),
                            S.T0, mss=200, retransmit=True)  # fmt: skip
    hosts = analyse([f for _, f in frames])
    assert hosts["10.0.0.64"]["tls.subject"] == ["C=CN,O=HIKVISION,CN=IPC"]  # RFC 4514 order: last RDN first


def test_a_gap_in_the_stream_stops_the_flow_without_inventing_bytes() -> None:
    answer = b"HTTP/1.1 200 OK\r\nServer: X\r\nContent-Length: 3000\r\n\r\n" + b"<title>T</title>" + b"a" * 3000
    frames = [f for _, f in S.tcp_exchange(S.PC_MAC, S.HIK_MAC, "10.0.0.10", "10.0.0.64", 40000, 80, b"", answer,
                                             S.T0, mss=500)]  # fmt: skip
    del frames[3]  # the second server segment is lost (SYN, SYN-ACK, segment 1, segment 2, ...)
    hosts = analyse(frames)
    assert hosts["10.0.0.64"]["http.server"] == ["X"] and hosts["10.0.0.64"]["http.title"] == ["T"]
    assert all("a" * 600 not in b for b in hosts["10.0.0.64"]["http.body"])


def test_flows_beyond_the_limit_are_parsed_early_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows, "MAX_FLOWS", 2)
    frames = []
    for i in range(5):
        answer = f"HTTP/1.1 200 OK\r\nServer: cam{i}\r\n\r\n".encode()  # no length: open until the end
        frames += [f for _, f in S.tcp_exchange(S.PC_MAC, S.HIK_MAC, "10.0.0.10", f"10.0.0.{50 + i}", 40000 + i, 80,
                                                 b"", answer, S.T0, syn=False)][:-1]  # fmt: skip
        frames.append(S.frame_tcp(S.HIK_MAC, S.PC_MAC, f"10.0.0.{50 + i}", "10.0.0.10",
                                  S.tcp(80, 40000 + i, 50001, 1001, S.PSH | S.ACK, answer)))  # fmt: skip
    hosts = analyse(frames)
    assert [hosts[f"10.0.0.{50 + i}"]["http.server"] for i in range(5)] == [[f"cam{i}"] for i in range(5)]


def test_repeated_announcements_are_parsed_once() -> None:
    frames = [f for _, f in S.fragmented_wsd_packets()] * 50
    a = Analyzer()
    calls = 0
    original = dissect.wsd.parse_probe_matches

    def counting(data: bytes, src: str = "") -> list:  # type: ignore[type-arg]
        nonlocal calls
        calls += 1
        return original(data, src)

    dissect.wsd.parse_probe_matches = counting  # type: ignore[assignment]
    try:
        for f in frames:
            a.feed(f, 0, len(f), 1, S.T0)
    finally:
        dissect.wsd.parse_probe_matches = original  # type: ignore[assignment]
    assert calls == 1


def test_link_types_sll_raw_and_null() -> None:
    udp = S.ipv4("10.1.2.3", "239.255.255.250", 17, S.udp(37020, 37020, S.SADP.encode()))
    for link, frame in ((113, S.sll(0x0800, udp, S.HIK_MAC)), (101, udp), (0, struct.pack("=I", 2) + udp)):
        a = Analyzer()
        a.feed(frame, 0, len(frame), link, S.T0)
        assert [h.ip for h in a.hosts()] == ["10.1.2.3"], link


def test_proxy_arp_mac_is_not_one_host() -> None:
    frames = [S.arp(2, S.ROUTER_MAC, f"192.168.1.{i}", S.PC_MAC, "192.168.1.200") for i in range(1, 20)]
    a = Analyzer()
    for f in frames:
        a.feed(f, 0, len(f), 1, S.T0)
    assert a.hosts() == []  # not one device with 19 addresses, nor 19 devices with the router's MAC
    assert any("answered ARP for 19 addresses" in line for line in a.limitations())


def test_malformed_fixture_gives_no_evidence_and_no_failure() -> None:
    a = Analyzer()
    stats = read_capture(FIXTURES / "broken_malformed_payloads.pcap", a.feed)
    assert stats.decode_failures == 0
    hosts = a.hosts()
    assert [(h.ip, [e.key for e in h.evidence]) for h in hosts] == [("192.168.50.10", ["mac"])]


def test_fuzz_feed_never_raises() -> None:
    """Random bytes, and real frames with random bytes flipped or cut, on every link type."""
    rng = random.Random(1234)
    real = [f for _, f in S.http_packets() + S.dhcp_packets() + S.banner_packets() + S.fragmented_wsd_packets()]
    real += [f for _, f in S.malformed_packets() + S.ipv6_packets()]
    a = Analyzer()
    for i in range(6000):
        if i % 3 == 0:
            frame = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        else:
            frame = bytearray(rng.choice(real))
            for _ in range(rng.randrange(1, 6)):
                if frame:
                    frame[rng.randrange(len(frame))] = rng.randrange(256)
            frame = bytes(frame[: rng.randrange(0, len(frame) + 1)])
        link = rng.choice([1, 1, 1, 113, 276, 101, 0, 108, 999])
        a.feed(frame, 0, len(frame), link, S.T0 + i)
    a.hosts()
    a.limitations()


# ----------------------------------------------------------------------------------------- IPv6


@pytest.mark.parametrize(
    ("ip", "local"),
    [
        ("fe80::1", True),
        ("fd00:70::40", True),
        ("::1", True),
        ("::ffff:192.168.1.5", True),
        ("2001:db8::80", False),  # a global address: cannot be told from an internet server
        ("ff02::c", False),
        ("::", False),
        ("::ffff:8.8.8.8", False),
        ("192.168.1.5", True),
        ("8.8.8.8", False),
        ("not an address", False),
    ],
)
def test_private_address_covers_ipv6_link_local_and_unique_local(ip: str, local: bool) -> None:
    assert dissect.private_address(ip) is local


@pytest.mark.parametrize(
    ("ip", "mac"),
    [
        ("fe80::5a50:edff:feaa:40", "58:50:ed:aa:00:40"),  # the U/L bit flipped back
        ("fe80::ca:35ff:feca:2", "02:ca:35:ca:00:02"),  # a locally administered MAC: its bit was 1, is 0 in the IID
        ("fe80::1c2d:3e4f:5a6b:7c8d", None),  # a random identifier (RFC 8981)
        ("fe80::301:02ff:fe03:0405", None),  # would be a group (multicast) MAC
        ("fd00::5a50:edff:feaa:40", None),  # only link-local addresses are taken
        ("192.168.1.5", None),
    ],
)
def test_eui64_mac(ip: str, mac: str | None) -> None:
    from scanner.passive.hosts import eui64_mac

    assert eui64_mac(ip) == mac


def _na(options: bytes, hlim: int = 255, target: str = "fd00::40") -> bytes:
    body = struct.pack("!BBHI", 136, 0, 0, 0x60000000) + S.socket.inet_pton(S.socket.AF_INET6, target) + options
    return S.ether(S.HIK_MAC, S.PC_MAC, 0x86DD, S.ipv6(target, "fd00::10", 58, body, hlim=hlim))


def test_neighbor_discovery_gives_an_address_its_mac() -> None:
    option = bytes([2, 1]) + S.mac_bytes(S.HIK_MAC)
    assert analyse([_na(option)]) == {"fd00::40": {"mac": [S.HIK_MAC]}}
    assert analyse([_na(bytes([14, 1]) + bytes(6) + option)]) == {"fd00::40": {"mac": [S.HIK_MAC]}}  # another first
    assert analyse([_na(option, hlim=64)]) == {}  # not from the link (RFC 4861 §7.1.2)
    assert analyse([_na(bytes([2, 0]) + S.mac_bytes(S.HIK_MAC))]) == {}  # zero-length option: dropped
    assert analyse([_na(bytes([2, 1]) + bytes(6))]) == {}  # no address in it


def test_ipv6_extension_headers_are_walked_and_fragments_counted() -> None:
    hello = S.SSDP_NOTIFY.format(ip="[fe80::aecc:8eff:feaa:41]").encode()
    seg = S.udp(1900, 1900, hello)
    src, dst = "fe80::aecc:8eff:feaa:41", "ff02::c"
    dest_opts = bytes([17, 0, 1, 4, 0, 0, 0, 0])  # destination options, PadN
    frames = [S.ether(S.AXIS_MAC, "33:33:00:00:00:0c", 0x86DD, S.ipv6(src, dst, 60, dest_opts + seg))]
    atomic = bytes([17, 0, 0, 0, 0, 0, 0, 1])  # a fragment header with offset 0 and no more: the whole datagram
    frames.append(S.ether(S.AXIS_MAC, "33:33:00:00:00:0c", 0x86DD, S.ipv6("fe80::1", dst, 44, atomic + seg)))
    a = Analyzer()
    for f in frames:
        a.feed(f, 0, len(f), 1, S.T0)
    hosts = {h.id: h for h in a.hosts()}
    assert set(hosts) == {src, "fe80::1"}
    assert any(e.key == "ssdp.server" for e in hosts["fe80::1"].evidence)
    loop = bytes([17, 0, 0, 0, 0, 0, 0, 0]) * 9  # a chain longer than the bound names nothing and raises nothing
    a.feed(S.ether(S.AXIS_MAC, "33:33:00:00:00:0c", 0x86DD, S.ipv6(src, dst, 0, loop)), 0, 99, 1, S.T0)


def test_bsd_loopback_carries_ipv6() -> None:
    seg = S.udp(1900, 1900, S.SSDP_NOTIFY.format(ip="[fd00::41]").encode())
    packet = S.ipv6("fd00::41", "ff02::c", 17, seg)
    for link, family in ((0, struct.pack("=I", 30)), (108, struct.pack(">I", 24)), (0, struct.pack("=I", 28))):
        a = Analyzer()
        frame = family + packet
        a.feed(frame, 0, len(frame), link, S.T0)
        assert [h.ip for h in a.hosts()] == ["fd00::41"], (link, family)
