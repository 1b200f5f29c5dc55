"""`camscan pcap`: a capture file -> the existing pure parsers -> Evidence, with no packet sent.

The reader is written by hand with `struct` for speed: it streams the file in 4 MiB chunks (never the whole
file), reads classic pcap (both byte orders, micro- and nanosecond timestamps) and pcapng (SHB, IDB, EPB, SPB
and the obsolete PB; several interfaces and sections, both byte orders; other blocks skipped and counted), and
refuses any record larger than MAX_RECORD. A corrupt record header is skipped by searching forward for the
next plausible record; a file whose header is unreadable raises CaptureError with the byte offset.

The dissector looks at Ethernet (+802.1Q/802.1ad), Linux cooked (SLL, SLL2), raw IP and BSD loopback frames,
IPv4 (with reassembly of fragmented UDP), ARP, UDP and TCP, using integer indexing into the chunk so that an
ordinary packet costs no Python object beyond its record header. Only what matters reaches a parser:

    ARP                 sender IP -> `mac`
    DHCP (67/68)        chaddr -> `mac`, option 12 -> `hostname`, option 60 -> `dhcp.vendor_class`
    mDNS (5353)         discovery.mdns.parse_mdns_answer
    WS-Discovery (3702) discovery.wsd.parse_probe_matches (Hello and ProbeMatches)
    SSDP (1900)         discovery.ssdp.parse_response (NOTIFY and answers)
    SADP (37020)        discovery.sadp.parse_probe_match
    DHIP (37810)        discovery.dhip.parse_reply
    TCP, server side    HTTP and RTSP answers (sniffed by their status line on any port; the requests' paths
                        are paired in order), TLS 1.0-1.2 Certificate messages (sniffed by the ServerHello),
                        SSH/FTP/telnet greetings (ports 22, 21, 23), and SYN-ACKs -> `port.open`

Evidence is about the packet's source only (an HTTP answer speaks for the server, never for the client). TCP
reassembly is minimal: per flow, the server's bytes in sequence up to a cap (FLOW_CAP), at most MAX_FLOWS
flows at once (the oldest is parsed early and dropped when more arrive), so memory stays flat whatever the
size of the capture. Hosts are kept only for private, loopback, link-local and shared (RFC 6598) addresses: the
devices of the audited LAN, not the internet servers its workstations talk to.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from scanner.camera_ports import BANNER_KINDS
from scanner.discovery import dhip, mdns, sadp, ssdp, wsd
from scanner.errors import CamscanError
from scanner.model import Evidence, Host, Observation, evidence, merge_observations, normalise_mac
from scanner.probes import banner, http, rtsp, tls
from scanner.probes.http import ParsedResponse, _head_end, parse_response

CHUNK = 4 << 20  # bytes read from the file at a time
MAX_RECORD = 256 * 1024  # a captured packet longer than this is a corrupt header (tcpdump's maximum snaplen)
MAX_BLOCK = MAX_RECORD + 64 * 1024  # a pcapng block (packet plus options)
RESYNC_WINDOW = 4 << 20  # how far past a corrupt record to look for the next good one
MAX_HOSTS = 65536
MAX_VALUES_PER_KEY = 16  # per host: a busy web server gives a different body per page
MAX_BODIES_PER_HOST = 4
MAX_EVIDENCE_PER_HOST = 1000
MAX_FLOWS = 256  # TCP flows reassembled at once
FLOW_CAP = http.MAX_BODY + 16 * 1024  # server bytes kept per flow: a head and the first 64 KiB of body
TLS_CAP = 64 * 1024  # server handshake bytes kept while looking for the Certificate message
BANNER_CAP = banner.MAX_READ
MAX_PATHS = 8  # request paths remembered per flow
MAX_PENDING = 4096  # request paths and SYN-ACKs waiting for their flow
MAX_FRAGMENT_SETS = 256  # IPv4 datagrams being reassembled at once
MAX_DATAGRAM = 65535
MAX_PORTS_PER_HOST = 64
PROXY_ARP = 8  # a MAC claiming more addresses than this in ARP is a router or a proxy, not one device
SEEN_CAP = 1 << 16  # payload digests remembered to skip repeated announcements
MAX_MESSAGES = 8  # HTTP/RTSP answers parsed per flow
EXAMPLES = 5  # offsets quoted per kind of problem

PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
SHB = 0x0A0D0D0A
BYTE_ORDER_MAGIC = 0x1A2B3C4D
IDB, PB, SPB, EPB = 1, 2, 3, 6
KNOWN_BLOCKS = frozenset({4, 5, 7, 8, 9, 10, 0x80000001, 0x00000BAD, 0x40000BAD})  # NRB ISB ... custom: skipped

LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_LOOP, LINK_SLL, LINK_SLL2 = 0, 1, 101, 108, 113, 276
LINK_RAW_ALIASES = frozenset({12, 14, LINK_RAW, 228})  # DLT_RAW on some BSDs, LINKTYPE_IPV4
SUPPORTED_LINKS = frozenset({LINK_NULL, LINK_ETHERNET, LINK_LOOP, LINK_SLL, LINK_SLL2} | LINK_RAW_ALIASES)

UDP_PORTS = frozenset({67, 68, 1900, 3702, 5353, 37020, 37810})


Sink = Callable[[bytes, int, int, int, float], None]  # (chunk, offset, captured length, link type, time)


class CaptureError(CamscanError, ValueError):
    """A capture that cannot be read at all (not pcap or pcapng, header cut or corrupt), with the offset."""

    def __init__(self, path: str, offset: int, message: str) -> None:
        super().__init__(f"{path}: byte {offset}: {message}")
        self.offset = offset


@dataclass
class FileStats:
    """What reading one capture gave: counts, the time span, and what was skipped (with example offsets)."""

    name: str
    format: str = ""
    packets: int = 0
    first: float | None = None
    last: float | None = None
    cut_by_snaplen: int = 0  # captured shorter than on the wire
    truncated_at: int | None = None  # the file ends inside a record (offset of that record)
    skipped_bytes: int = 0  # corrupt stretches jumped over
    corrupt_at: list[int] = field(default_factory=list)
    unreadable_tail_at: int | None = None  # corrupt and no good record found after it
    unknown_blocks: int = 0
    bad_blocks: int = 0  # known pcapng blocks with impossible fields (interface id, lengths)
    link_types: set[int] = field(default_factory=set)
    decode_failures: int = 0  # packets the dissector could not take apart (should stay 0)

    def problems(self) -> list[str]:
        out = []
        if self.corrupt_at:
            where = ", ".join(str(o) for o in self.corrupt_at[:EXAMPLES])
            out.append(
                f"{self.name}: {len(self.corrupt_at)} corrupt record(s) (at byte {where}); "
                f"{self.skipped_bytes} bytes skipped to the next readable record"
            )
        if self.unreadable_tail_at is not None:
            out.append(f"{self.name}: corrupt from byte {self.unreadable_tail_at} to the end; the rest was not read")
        if self.truncated_at is not None:
            out.append(f"{self.name}: the file ends inside the record at byte {self.truncated_at} (truncated file)")
        if self.bad_blocks:
            out.append(f"{self.name}: {self.bad_blocks} pcapng block(s) with impossible fields skipped")
        if self.decode_failures:
            out.append(f"{self.name}: {self.decode_failures} packet(s) could not be decoded and were skipped")
        return out


# ----------------------------------------------------------------------------------------- the reader


class _Stream:
    """A window on the file: `data[pos:]` is unread; `base` is the file offset of `data[0]`."""

    def __init__(self, fh: IO[bytes], data: bytes) -> None:
        self.fh = fh
        self.data = data
        self.base = 0
        self.eof = False

    def refill(self, pos: int, need: int) -> tuple[bytes, int, int]:
        """Keep `data[pos:]`, read until at least `need` bytes are there or the file ends."""
        data = self.data[pos:]
        self.base += pos
        parts = [data]
        have = len(data)
        while have < need and not self.eof:
            chunk = self.fh.read(max(CHUNK, need - have))
            if not chunk:
                self.eof = True
                break
            parts.append(chunk)
            have += len(chunk)
        self.data = b"".join(parts) if len(parts) > 1 else data
        return self.data, 0, len(self.data)


def read_capture(path: Path, sink: Sink, stats: FileStats | None = None) -> FileStats:
    """Stream every packet of a pcap or pcapng file to `sink`. Raises CaptureError (with the offset) only
    when nothing can be read; later damage is counted in the returned FileStats."""
    stats = stats or FileStats(path.name)
    with path.open("rb") as fh:
        head = fh.read(CHUNK)
        stream = _Stream(fh, head)
        if len(head) < 4:
            raise CaptureError(path.name, 0, f"file too short ({len(head)} bytes) to be a capture")
        magic = head[:4]
        if magic in PCAP_MAGIC:
            _read_pcap(path.name, stream, sink, stats)
        elif struct.unpack("<I", magic)[0] == SHB:
            _read_pcapng(path.name, stream, sink, stats)
        elif magic[:2] == b"\x1f\x8b":
            raise CaptureError(path.name, 0, "a gzip file: decompress it first (gunzip)")
        else:
            raise CaptureError(path.name, 0, f"unknown magic number 0x{magic.hex()}: not a pcap or pcapng capture")
    return stats


def _plausible_pcap(data: bytes, q: int, unpack: Callable[[bytes, int], tuple[int, ...]], last: int) -> bool:
    if q + 16 > len(data):
        return False
    sec, frac, incl, orig = unpack(data, q)
    if incl > MAX_RECORD or orig < incl or orig > 16 * MAX_RECORD or frac >= 1_000_000_000:
        return False
    return not last or abs(sec - last) < 366 * 86400


def _read_pcap(name: str, st: _Stream, sink: Sink, stats: FileStats) -> None:
    data = st.data
    endian, scale = PCAP_MAGIC[data[:4]]
    if len(data) < 24:
        raise CaptureError(name, 0, f"pcap file header cut short ({len(data)} of 24 bytes)")
    _vmaj, _vmin, _zone, _sigfigs, _snaplen, link = struct.unpack_from(endian + "HHiIII", data, 4)
    link &= 0xFFFF  # the upper bits may carry the FCS length
    stats.format = "pcap (nanosecond)" if scale == 1e-9 else "pcap"
    stats.link_types.add(link)
    unpack = struct.Struct(endian + "IIII").unpack_from
    frac_limit = 1_000_000_000 if scale == 1e-9 else 1_000_000
    pos, n = 24, len(data)
    count = cut = 0
    first = last = None
    last_sec = 0
    try:
        while True:
            if n - pos < 16:
                data, pos, n = st.refill(pos, 16)
                if n - pos < 16:
                    if n > pos:
                        stats.truncated_at = st.base + pos
                    break
            sec, frac, incl, orig = unpack(data, pos)
            if incl > MAX_RECORD or frac >= frac_limit:
                data, pos, n = _resync_pcap(st, pos, stats, unpack, last_sec)
                if pos < 0:
                    break
                continue
            end = pos + 16 + incl
            if end > n:
                data, pos, n = st.refill(pos, 16 + incl)
                end = pos + 16 + incl
                if end > n:
                    stats.truncated_at = st.base + pos
                    break
            ts = sec + frac * scale
            if first is None:
                first = last = ts
            elif ts > last:
                last = ts
            elif ts < first:
                first = ts
            last_sec = sec
            if incl < orig:
                cut += 1
            count += 1
            try:
                sink(data, pos + 16, incl, link, ts)
            except Exception:  # nothing a packet holds may stop the reading
                stats.decode_failures += 1
            pos = end
    finally:
        stats.packets += count
        stats.cut_by_snaplen += cut
        _span(stats, first, last)


def _resync_pcap(
    st: _Stream, pos: int, stats: FileStats, unpack: Callable[[bytes, int], tuple[int, ...]], last_sec: int
) -> tuple[bytes, int, int]:
    """Skip a corrupt record header: the next offset where two records in a row look right (or one that ends
    the file exactly). Returns (data, pos, n) with pos = -1 when none is found within RESYNC_WINDOW."""
    stats.corrupt_at.append(st.base + pos)
    data, pos, n = st.refill(pos, RESYNC_WINDOW + 2 * MAX_RECORD)
    for q in range(1, min(n, RESYNC_WINDOW)):
        if not _plausible_pcap(data, q, unpack, last_sec):
            continue
        nxt = q + 16 + unpack(data, q)[2]
        if (nxt == n and st.eof) or _plausible_pcap(data, nxt, unpack, last_sec):
            stats.skipped_bytes += q
            return data, q, n
    stats.unreadable_tail_at = st.base
    return data, -1, n


def _span(stats: FileStats, first: float | None, last: float | None) -> None:
    if first is not None and last is not None:
        stats.first = first if stats.first is None else min(stats.first, first)
        stats.last = last if stats.last is None else max(stats.last, last)


@dataclass(slots=True)
class _Interface:
    link: int
    resolution: float = 1e-6
    offset: float = 0.0


def _idb_interface(body: bytes, endian: str) -> _Interface:
    """An Interface Description Block body (after type and length): link type, then options for if_tsresol
    (code 9) and if_tsoffset (code 14)."""
    link = struct.unpack_from(endian + "H", body, 0)[0]
    iface = _Interface(link)
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        value = body[pos + 4 : pos + 4 + length]
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = value[0]
            iface.resolution = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -(v & 0x7F)
        elif code == 14 and length >= 8:
            iface.offset = float(struct.unpack_from(endian + "q", value, 0)[0])
        pos += 4 + ((length + 3) & ~3)
    return iface


def _read_pcapng(name: str, st: _Stream, sink: Sink, stats: FileStats) -> None:
    stats.format = "pcapng"
    data, pos, n = st.data, 0, len(st.data)
    endian = "<"
    ifaces: list[_Interface] = []
    head = struct.Struct("<II").unpack_from
    epb = struct.Struct("<IIIII").unpack_from
    u32 = struct.Struct("<I").unpack_from
    count = cut = 0
    first: float | None = None
    last: float | None = None
    sections = 0
    try:
        while True:
            if n - pos < 12:
                data, pos, n = st.refill(pos, 12)
                if n - pos < 12:
                    if n > pos:
                        stats.truncated_at = st.base + pos
                    break
            btype = u32(data, pos)[0]
            if btype == SHB:
                bom = data[pos + 8 : pos + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    endian = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    endian = ">"
                else:
                    if not sections:
                        raise CaptureError(name, st.base + pos + 8, "pcapng section header with a bad byte-order magic")
                    data, pos, n = _resync_pcapng(st, pos, stats, endian)
                    if pos < 0:
                        break
                    continue
                head = struct.Struct(endian + "II").unpack_from
                epb = struct.Struct(endian + "IIIII").unpack_from
                u32 = struct.Struct(endian + "I").unpack_from
            btype, blen = head(data, pos)
            if blen < 12 or blen & 3 or blen > MAX_BLOCK:
                if not sections:
                    raise CaptureError(name, st.base + pos, f"pcapng block length {blen} is impossible")
                data, pos, n = _resync_pcapng(st, pos, stats, endian)
                if pos < 0:
                    break
                continue
            end = pos + blen
            if end > n:
                data, pos, n = st.refill(pos, blen)
                end = pos + blen
                if end > n:
                    if btype == SHB and not sections:
                        raise CaptureError(name, st.base + pos, "pcapng section header cut short")
                    stats.truncated_at = st.base + pos
                    break
            if u32(data, end - 4)[0] != blen:
                if not sections:
                    raise CaptureError(name, st.base + pos, "pcapng section header: trailing length differs")
                data, pos, n = _resync_pcapng(st, pos, stats, endian)
                if pos < 0:
                    break
                continue
            if btype == EPB:
                iface_id, hi, lo, caplen, orig = epb(data, pos + 8)
                if iface_id < len(ifaces) and caplen <= blen - 32:
                    iface = ifaces[iface_id]
                    ts = ((hi << 32) | lo) * iface.resolution + iface.offset
                    if first is None:
                        first = last = ts
                    elif ts > last:
                        last = ts
                    elif ts < first:
                        first = ts
                    if caplen < orig:
                        cut += 1
                    count += 1
                    try:
                        sink(data, pos + 28, caplen, iface.link, ts)
                    except Exception:  # nothing a packet holds may stop the reading
                        stats.decode_failures += 1
                else:
                    stats.bad_blocks += 1
            elif btype == SPB:
                orig = u32(data, pos + 8)[0]
                caplen = min(orig, blen - 16)
                if ifaces:
                    if caplen < orig:
                        cut += 1
                    count += 1
                    try:
                        sink(data, pos + 12, caplen, ifaces[0].link, last or 0.0)
                    except Exception:  # nothing a packet holds may stop the reading
                        stats.decode_failures += 1
                else:
                    stats.bad_blocks += 1
            elif btype == IDB:
                try:
                    iface = _idb_interface(data[pos + 8 : end - 4], endian)
                except struct.error:
                    stats.bad_blocks += 1
                    iface = _Interface(-1)
                ifaces.append(iface)
                stats.link_types.add(iface.link)
            elif btype == SHB:
                sections += 1
                ifaces = []  # interface ids are per section
            elif btype == PB:
                iface_id, _drops, hi, lo, caplen, orig = struct.unpack_from(endian + "HHIIII", data, pos + 8)
                if iface_id < len(ifaces) and caplen <= blen - 32:
                    iface = ifaces[iface_id]
                    ts = ((hi << 32) | lo) * iface.resolution + iface.offset
                    first = ts if first is None else min(first, ts)
                    last = ts if last is None else max(last, ts)
                    count += 1
                    cut += caplen < orig
                    try:
                        sink(data, pos + 28, caplen, iface.link, ts)
                    except Exception:  # nothing a packet holds may stop the reading
                        stats.decode_failures += 1
                else:
                    stats.bad_blocks += 1
            elif btype not in KNOWN_BLOCKS:
                stats.unknown_blocks += 1
            pos = end
    finally:
        stats.packets += count
        stats.cut_by_snaplen += cut
        _span(stats, first, last)


def _resync_pcapng(st: _Stream, pos: int, stats: FileStats, endian: str) -> tuple[bytes, int, int]:
    """Skip a corrupt block: the next 4-aligned offset holding a known block type whose leading and trailing
    lengths agree. (data, pos, n), pos = -1 when none is found within RESYNC_WINDOW."""
    stats.corrupt_at.append(st.base + pos)
    data, pos, n = st.refill(pos, RESYNC_WINDOW + MAX_BLOCK)
    head = struct.Struct(endian + "II").unpack_from
    tail = struct.Struct(endian + "I").unpack_from
    for q in range(4, min(n - 12, RESYNC_WINDOW), 4):
        btype, blen = head(data, q)
        if btype not in (EPB, SPB, IDB, SHB, PB) or blen < 12 or blen & 3 or blen > MAX_BLOCK or q + blen > n:
            continue
        if tail(data, q + blen - 4)[0] == blen:
            stats.skipped_bytes += q
            return data, q, n
    stats.unreadable_tail_at = st.base
    return data, -1, n


# ----------------------------------------------------------------------------------------- pure payload parsers


def parse_arp(data: bytes) -> tuple[str, str] | None:
    """(sender IPv4, sender MAC) of an Ethernet/IPv4 ARP packet (RFC 826); None for anything else, and for
    a sender address of 0.0.0.0 (an ARP probe, RFC 5227)."""
    if len(data) < 28 or data[0:2] != b"\x00\x01" or data[2:4] != b"\x08\x00" or data[4] != 6 or data[5] != 4:
        return None
    sender = data[14:18]
    if sender == b"\x00\x00\x00\x00":
        return None
    mac = data[8:14]
    if mac == b"\x00" * 6 or mac == b"\xff" * 6 or mac[0] & 1:
        return None
    return socket.inet_ntoa(sender), ":".join(f"{b:02x}" for b in mac)


@dataclass(slots=True)
class DhcpMessage:
    op: int
    mac: str
    ciaddr: str
    yiaddr: str
    message_type: int | None = None
    hostname: str | None = None
    vendor_class: str | None = None
    requested_ip: str | None = None


def _dhcp_text(raw: bytes) -> str | None:
    text = raw.rstrip(b"\x00").decode("utf-8", "replace").strip()
    return text or None


def parse_dhcp(data: bytes) -> DhcpMessage | None:
    """A BOOTP/DHCP message (RFC 2131, options RFC 2132) with an Ethernet client address; None otherwise."""
    if len(data) < 240 or data[0] not in (1, 2) or data[1] != 1 or data[2] != 6:
        return None
    if data[236:240] != b"\x63\x82\x53\x63":
        return None
    mac = data[28:34]
    if mac == b"\x00" * 6 or mac[0] & 1:
        return None
    msg = DhcpMessage(
        op=data[0],
        mac=":".join(f"{b:02x}" for b in mac),
        ciaddr=socket.inet_ntoa(data[12:16]),
        yiaddr=socket.inet_ntoa(data[16:20]),
    )
    pos = 240
    while pos < len(data):
        code = data[pos]
        if code == 0:
            pos += 1
            continue
        if code == 255 or pos + 1 >= len(data):
            break
        length = data[pos + 1]
        value = data[pos + 2 : pos + 2 + length]
        if len(value) < length:
            break
        if code == 53 and length == 1:
            msg.message_type = value[0]
        elif code == 12:
            msg.hostname = _dhcp_text(value)
        elif code == 60:
            msg.vendor_class = _dhcp_text(value)
        elif code == 50 and length == 4:
            msg.requested_ip = socket.inet_ntoa(value)
        pos += 2 + length
    return msg


def tls_leaf_certificate(raw: bytes) -> tuple[bytes | None, bool]:
    """(the first certificate of the server's Certificate handshake message, whether looking further is
    useless) from the server's first bytes of a TLS 1.0-1.2 connection (RFC 5246 §6.2, §7.4.2). TLS 1.3
    encrypts the certificate: after its ServerHello only non-handshake records follow, and the answer is
    (None, True)."""
    handshake = bytearray()
    pos = 0
    while pos + 5 <= len(raw):
        ctype, major = raw[pos], raw[pos + 1]
        length = raw[pos + 3] << 8 | raw[pos + 4]
        if ctype != 22 or major != 3:
            return None, True
        if pos + 5 + length > len(raw):
            break
        handshake += raw[pos + 5 : pos + 5 + length]
        pos += 5 + length
    i = 0
    while i + 4 <= len(handshake):
        mtype = handshake[i]
        mlen = handshake[i + 1] << 16 | handshake[i + 2] << 8 | handshake[i + 3]
        if i + 4 + mlen > len(handshake):
            return None, False
        if mtype == 11:
            body = handshake[i + 4 : i + 4 + mlen]
            if len(body) < 6:
                return None, True
            clen = body[3] << 16 | body[4] << 8 | body[5]
            der = bytes(body[6 : 6 + clen])
            return (der if len(der) == clen else None), True
        if mtype == 14:  # ServerHelloDone: this server sent no Certificate (anonymous key exchange)
            return None, True
        i += 4 + mlen
    return None, False


def split_messages(raw: bytes, protocol: bytes) -> list[bytes]:
    """The answers one after another on a connection (HTTP keep-alive, RTSP), framed by Content-Length; an
    answer without a length (HTTP until close, chunked) is the last one taken."""
    out: list[bytes] = []
    pos = 0
    while pos < len(raw) and len(out) < MAX_MESSAGES and raw.startswith(protocol, pos):
        bounds = _head_end(raw[pos : pos + http.MAX_HEAD])
        if bounds is None:
            out.append(raw[pos:])
            break
        head = parse_response(raw[pos : pos + bounds[1]], protocol.decode())
        length = head.content_length()
        if length is None and not head.chunked():
            bodiless = protocol == b"RTSP/" or (head.status or 0) in (204, 304) or 100 <= (head.status or 0) < 200
            length = 0 if bodiless else None
        if length is None:
            out.append(raw[pos:])
            break
        end = pos + bounds[1] + length
        out.append(raw[pos:end])
        pos = end
    return out


def _is_upnp_description(resp: ParsedResponse) -> bool:
    body = resp.body[:4096]
    return b"<root" in body and b"urn:schemas-upnp-org:device-1-0" in body


def http_evidence(answers: list[bytes], paths: list[str]) -> list[Evidence]:
    """Evidence from the HTTP answers of one connection, each paired with its request's path where the
    request was seen: `GET /` answers as the active probe's root, `/favicon.ico` as its favicon, a UPnP
    description as SSDP's fetch; other answers give their headers, title and body."""
    out: list[Evidence] = []
    for i, raw in enumerate(answers):
        resp = parse_response(raw)
        if resp.status is None:
            continue
        path = paths[i] if i < len(paths) else None
        if path is not None and path.split("?", 1)[0].lower() == "/favicon.ico":
            out += [e for e in http.response_evidence(resp, root=False) if e.key in ("http.server",)]
            out += http.favicon_evidence(resp)
        elif _is_upnp_description(resp):
            out += [e for e in http.response_evidence(resp, root=False) if e.key == "http.server"]
            out += ssdp.parse_description(resp.body)
        else:
            out += http.response_evidence(resp, root=path in (None, "/"))
    return out


# ----------------------------------------------------------------------------------------- the dissector


@dataclass(slots=True)
class _Flow:
    kind: str  # http, rtsp, tls, ssh, ftp, telnet
    src: str
    next_seq: int
    ts: float
    buf: bytearray = field(default_factory=bytearray)
    cap: int = FLOW_CAP


@dataclass(slots=True)
class _Fragments:
    ts: float
    header: bytes  # the first fragment's IP header
    parts: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None  # payload length, known once the last fragment came
    size: int = 0


SHARED_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT and some site networks


def _private(ip: str) -> bool:
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    if addr.is_multicast or addr.is_unspecified or ip == "255.255.255.255":
        return False
    return addr.is_private or addr.is_link_local or addr in SHARED_SPACE  # is_private covers loopback


class Analyzer:
    """Takes packets (`feed`, the reader's sink) and keeps the Evidence per source address; `hosts()` gives
    the merged Hosts at the end. Memory is bounded by the caps above, not by the size of the capture."""

    def __init__(self) -> None:
        self.evidence: dict[str, dict[tuple[str, str], Evidence]] = {}
        self.per_key: dict[tuple[str, str], int] = {}
        self.arp: dict[str, tuple[str, float]] = {}  # ip -> (the first mac claimed, when)
        self.arp_conflicts: set[str] = set()
        self.proxies: set[str] = set()
        self.mac_ips: dict[str, set[str]] = {}
        self.dhcp: dict[str, list[Evidence]] = {}  # client mac -> its Evidence
        self.dhcp_ip: dict[str, str] = {}  # client mac -> its address (ACK, ciaddr, requested)
        self.open_ports: dict[str, set[str]] = {}
        self.flows: dict[bytes, _Flow] = {}
        self.flow_ports: dict[int, int] = {}  # source port -> active flows from it (a cheap pre-filter)
        self.paths: dict[bytes, list[str]] = {}  # server-side flow key -> request paths in order
        self.syn_acks: dict[bytes, int] = {}  # server-side flow key -> ISN, for telnet greetings
        self.fragments: dict[bytes, _Fragments] = {}
        self.seen: dict[int, None] = {}
        self.counts: dict[str, int] = {}
        self.dropped_hosts = 0
        self.public_sources = 0
        self.datagrams = 0

    # -- bookkeeping

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def add(self, ip: str, items: Iterable[Evidence], ts: float, proto: str) -> None:
        """Evidence about `ip` from one message of `proto`: stamped with the packet time and `pcap:<proto>`."""
        items = list(items)
        if not items:
            return
        host = self.evidence.get(ip)
        if host is None:
            if not _private(ip):
                self.public_sources += 1
                return
            if len(self.evidence) >= MAX_HOSTS:
                self.dropped_hosts += 1
                return
            host = self.evidence[ip] = {}
        when: datetime | None = None
        for e in items:
            k = (e.key, e.value)
            if k in host or len(host) >= MAX_EVIDENCE_PER_HOST:
                continue
            per = (ip, e.key)
            n = self.per_key.get(per, 0)
            if n >= (MAX_BODIES_PER_HOST if e.key == "http.body" else MAX_VALUES_PER_KEY):
                continue
            self.per_key[per] = n + 1
            if when is None:
                when = datetime.fromtimestamp(ts, UTC) if 0 < ts < 32503680000 else None
            e.source = f"pcap:{proto}"
            e.observed_at = when
            host[k] = e

    def _fresh(self, src: str, payload: bytes) -> bool:
        """False for a datagram already parsed (devices repeat their announcements every few seconds)."""
        digest = hash((src, payload))
        if digest in self.seen:
            return False
        self.seen[digest] = None
        if len(self.seen) > SEEN_CAP:
            self.seen.pop(next(iter(self.seen)))
        return True

    # -- link and network layers

    def feed(self, d: bytes, p: int, n: int, link: int, ts: float) -> None:
        end = p + n
        if link == LINK_ETHERNET:
            if n < 14:
                return
            et = d[p + 12] << 8 | d[p + 13]
            q = p + 14
            if et == 0x8100 or et == 0x88A8:
                if q + 4 > end:
                    return
                et = d[q + 2] << 8 | d[q + 3]
                q += 4
                if et == 0x8100:
                    if q + 4 > end:
                        return
                    et = d[q + 2] << 8 | d[q + 3]
                    q += 4
        else:
            et, q = self._other_link(d, p, end, link)
        if et == 0x0800:
            if q + 20 > end:
                return
            vihl = d[q]
            ihl = (vihl & 15) << 2
            if vihl >> 4 != 4 or ihl < 20:
                return
            total = d[q + 2] << 8 | d[q + 3]
            iend = q + total
            if total == 0 or iend > end:  # 0: TCP segmentation offload (the card fills the length in)
                iend = end
            elif total < ihl:
                return
            proto = d[q + 9]
            if (d[q + 6] & 0x3F) or d[q + 7]:
                if proto == 17:
                    self._fragment(d, q, ihl, iend, ts)
                return
            t = q + ihl
            if proto == 6:
                if t + 20 > iend:
                    return
                off = t + ((d[t + 12] >> 4) << 2)
                flags = d[t + 13]
                sport = d[t] << 8 | d[t + 1]
                if flags & 0x12 == 0x12:
                    self._syn_ack(d, q, t, sport)
                    return
                if off >= iend:
                    if flags & 5 and sport in self.flow_ports:
                        self._close(d[q + 12 : q + 20] + d[t : t + 4])
                    return
                if sport in self.flow_ports:
                    key = d[q + 12 : q + 20] + d[t : t + 4]
                    flow = self.flows.get(key)
                    if flow is not None:
                        self._continue(key, flow, d, t, off, iend, flags)
                        return
                b0 = d[off]
                if b0 == 72 and d.startswith(b"HTTP/1.", off):
                    self._start(d, q, t, off, iend, flags, "http", ts)
                elif b0 == 82 and d.startswith(b"RTSP/1.", off):
                    self._start(d, q, t, off, iend, flags, "rtsp", ts)
                elif b0 == 22 and off + 6 <= iend and d[off + 1] == 3 and d[off + 5] == 2:
                    self._start(d, q, t, off, iend, flags, "tls", ts)
                elif (
                    (b0 == 71 and d.startswith(b"GET ", off))
                    or (b0 == 80 and d.startswith(b"POST ", off))
                    or (b0 == 72 and d.startswith(b"HEAD ", off))
                ):
                    self._request(d, q, t, off, iend)
                elif sport in BANNER_KINDS:
                    self._banner(d, q, t, off, iend, flags, sport, ts)
            elif proto == 17:
                if t + 8 > iend:
                    return
                sport = d[t] << 8 | d[t + 1]
                dport = d[t + 2] << 8 | d[t + 3]
                if sport in UDP_PORTS or dport in UDP_PORTS:
                    ulen = d[t + 4] << 8 | d[t + 5]
                    uend = t + ulen if ulen >= 8 and t + ulen <= iend else iend
                    self._udp(socket.inet_ntoa(d[q + 12 : q + 16]), sport, dport, bytes(d[t + 8 : uend]), ts)
        elif et == 0x0806:
            self._arp(d[q:end], ts)
        elif et == 0x86DD:
            self._count("ipv6")

    def _other_link(self, d: bytes, p: int, end: int, link: int) -> tuple[int, int]:
        """(ethertype, network-layer offset) for the link types other than Ethernet; (0, 0) for unknown."""
        if link == LINK_SLL and p + 16 <= end:
            return d[p + 14] << 8 | d[p + 15], p + 16
        if link == LINK_SLL2 and p + 20 <= end:
            return d[p] << 8 | d[p + 1], p + 20
        if link in LINK_RAW_ALIASES and p < end:
            return (0x0800 if d[p] >> 4 == 4 else 0x86DD if d[p] >> 4 == 6 else 0), p
        if link in (LINK_NULL, LINK_LOOP) and p + 4 <= end:
            family = struct.unpack_from(">I" if link == LINK_LOOP else "=I", d, p)[0]
            if family not in (2, 0x02000000):
                return 0, 0
            return 0x0800, p + 4
        if link not in SUPPORTED_LINKS:
            self._count(f"link type {link}")
        return 0, 0

    def _fragment(self, d: bytes, q: int, ihl: int, iend: int, ts: float) -> None:
        """IPv4 reassembly for UDP only (RFC 791 §3.2): a WS-Discovery ProbeMatch or an mDNS answer is often
        larger than one Ethernet frame. Bounded: MAX_FRAGMENT_SETS datagrams, MAX_DATAGRAM bytes each."""
        key = d[q + 12 : q + 20] + d[q + 4 : q + 6]
        offset = ((d[q + 6] & 0x1F) << 8 | d[q + 7]) * 8
        more = bool(d[q + 6] & 0x20)
        frag = self.fragments.get(key)
        if frag is None:
            if len(self.fragments) >= MAX_FRAGMENT_SETS:
                self.fragments.pop(next(iter(self.fragments)))
                self._count("fragments")
            frag = self.fragments[key] = _Fragments(ts, bytes(d[q : q + ihl]))
        piece = bytes(d[q + ihl : iend])
        if offset + len(piece) > MAX_DATAGRAM or frag.size + len(piece) > MAX_DATAGRAM:
            del self.fragments[key]
            return
        if offset == 0:
            frag.header = bytes(d[q : q + ihl])
        if offset not in frag.parts:
            frag.parts[offset] = piece
            frag.size += len(piece)
        if not more:
            frag.total = offset + len(piece)
        if frag.total is None or frag.size < frag.total or 0 not in frag.parts:
            return
        del self.fragments[key]
        payload = bytearray()
        for off in sorted(frag.parts):
            part = frag.parts[off]
            if off > len(payload):
                return  # a hole
            payload += part[len(payload) - off :]
        if len(payload) < 8:
            return
        sport = payload[0] << 8 | payload[1]
        dport = payload[2] << 8 | payload[3]
        if sport in UDP_PORTS or dport in UDP_PORTS:
            self.datagrams += 1
            self._udp(socket.inet_ntoa(frag.header[12:16]), sport, dport, bytes(payload[8:]), frag.ts)

    # -- ARP and UDP

    def _arp(self, data: bytes, ts: float) -> None:
        pair = parse_arp(data)
        if pair is None:
            return
        ip, mac = pair
        known = self.arp.get(ip)
        if known is None:
            if len(self.arp) >= MAX_HOSTS:
                return
            self.arp[ip] = (mac, ts)
            ips = self.mac_ips.setdefault(mac, set())
            if len(ips) < 64:
                ips.add(ip)
        elif known[0] != mac:
            self.arp_conflicts.add(ip)

    def _udp(self, src: str, sport: int, dport: int, payload: bytes, ts: float) -> None:
        if not payload or not self._fresh(src, payload):
            return
        port = sport if sport in UDP_PORTS else dport
        if port == 5353:
            self.add(src, mdns.parse_mdns_answer(payload, src), ts, "mdns")
        elif port == 3702:
            self.add(src, wsd.parse_probe_matches(payload, src), ts, "wsd")
        elif port == 1900:
            self.add(src, ssdp.parse_response(payload, src), ts, "ssdp")
        elif port == 37020:
            self.add(src, sadp.parse_probe_match(payload, src), ts, "sadp")
        elif port == 37810:
            self.add(src, dhip.parse_reply(payload, src), ts, "dhip")
        elif port in (67, 68):
            self._dhcp(payload, ts)

    def _dhcp(self, payload: bytes, ts: float) -> None:
        msg = parse_dhcp(payload)
        if msg is None:
            return
        if msg.op == 2:  # the server speaks: only the address it gives the client is taken (DHCPACK)
            if msg.message_type == 5 and msg.yiaddr != "0.0.0.0":
                self.dhcp_ip[msg.mac] = msg.yiaddr
            return
        items = self.dhcp.setdefault(msg.mac, [])
        if len(items) < 16:
            for key, value in (("hostname", msg.hostname), ("dhcp.vendor_class", msg.vendor_class)):
                if value and all((e.key, e.value) != (key, value) for e in items):
                    e = evidence(key, value, "dhcp")
                    e.source, e.observed_at = "pcap:dhcp", datetime.fromtimestamp(ts, UTC) if ts > 0 else None
                    items.append(e)
        if msg.ciaddr != "0.0.0.0":
            self.dhcp_ip.setdefault(msg.mac, msg.ciaddr)
        elif msg.requested_ip:
            self.dhcp_ip.setdefault(msg.mac, msg.requested_ip)

    # -- TCP

    def _syn_ack(self, d: bytes, q: int, t: int, sport: int) -> None:
        src = socket.inet_ntoa(d[q + 12 : q + 16])
        ports = self.open_ports.get(src)
        if ports is None:
            if len(self.open_ports) >= MAX_HOSTS:
                return
            ports = self.open_ports[src] = set()
        if len(ports) < MAX_PORTS_PER_HOST:
            ports.add(f"{sport}/tcp")
        if sport == 23:
            key = d[q + 12 : q + 20] + d[t : t + 4]
            self.syn_acks[key] = int.from_bytes(d[t + 4 : t + 8], "big")
            if len(self.syn_acks) > MAX_PENDING:
                self.syn_acks.pop(next(iter(self.syn_acks)))

    def _request(self, d: bytes, q: int, t: int, off: int, iend: int) -> None:
        """Remember the paths of the requests in this segment (pipelined ones too) for the answers that will
        come on the same connection, in the same order."""
        key = d[q + 16 : q + 20] + d[q + 12 : q + 16] + d[t + 2 : t + 4] + d[t : t + 2]
        paths = self.paths.get(key)
        if paths is None:
            paths = self.paths[key] = []
            if len(self.paths) > MAX_PENDING:
                self.paths.pop(next(iter(self.paths)))
        data = d[off : min(iend, off + 16384)]
        pos = 0
        while len(paths) < MAX_PATHS and data.startswith((b"GET ", b"HEAD ", b"POST "), pos):
            line = data[pos : pos + 2048].split(b"\n", 1)[0].rstrip(b"\r")
            parts = line.split(b" ")
            if len(parts) < 3 or not parts[2].startswith(b"HTTP/1."):
                return
            path = parts[1].decode("utf-8", "replace")
            if path.lower().startswith(("http://", "https://")):  # absolute form: keep the path
                rest = path.split("/", 3)
                path = "/" + (rest[3] if len(rest) > 3 else "")
            paths.append(path)
            bounds = _head_end(data[pos:])
            if bounds is None:
                return
            head = parse_response(b"HTTP/1.1 200 X\r\n" + data[pos : pos + bounds[0]].split(b"\n", 1)[-1])
            pos += bounds[1] + (head.content_length() or 0)

    def _banner(self, d: bytes, q: int, t: int, off: int, iend: int, flags: int, sport: int, ts: float) -> None:
        """The first server bytes on 21/22/23: an SSH identification or an FTP 220 greeting whenever seen (the
        first line says what it is); a telnet greeting only when its SYN-ACK shows it starts the stream."""
        kind = BANNER_KINDS[sport]
        if kind == "ssh" and not d.startswith(b"SSH-", off):
            return
        if kind == "ftp" and not d.startswith(b"220", off):
            return
        key = d[q + 12 : q + 20] + d[t : t + 4]
        if kind == "telnet":
            isn = self.syn_acks.pop(key, None)
            if isn is None or int.from_bytes(d[t + 4 : t + 8], "big") != (isn + 1) & 0xFFFFFFFF:
                return
        self._start(d, q, t, off, iend, flags, kind, ts)

    def _start(self, d: bytes, q: int, t: int, off: int, iend: int, flags: int, kind: str, ts: float) -> None:
        key = d[q + 12 : q + 20] + d[t : t + 4]
        if len(self.flows) >= MAX_FLOWS:
            self._close(next(iter(self.flows)))
            self._count("flows parsed early (too many at once)")
        cap = TLS_CAP if kind == "tls" else BANNER_CAP if kind in BANNER_KINDS.values() else FLOW_CAP
        seq = int.from_bytes(d[t + 4 : t + 8], "big")
        flow = _Flow(kind, socket.inet_ntoa(d[q + 12 : q + 16]), seq, ts, cap=cap)
        self.flows[key] = flow
        sport = d[t] << 8 | d[t + 1]
        self.flow_ports[sport] = self.flow_ports.get(sport, 0) + 1
        self._continue(key, flow, d, t, off, iend, flags)

    def _continue(self, key: bytes, flow: _Flow, d: bytes, t: int, off: int, iend: int, flags: int) -> None:
        """Append a segment in sequence (a retransmission's new part only); a gap ends the flow."""
        seq = int.from_bytes(d[t + 4 : t + 8], "big")
        ahead = (seq - flow.next_seq) & 0xFFFFFFFF
        size = iend - off
        if ahead == 0:
            flow.buf += d[off : off + min(size, flow.cap - len(flow.buf))]
            flow.next_seq = (seq + size) & 0xFFFFFFFF
        elif ahead >= 0x80000000:  # before what we have: a retransmission
            behind = 0x100000000 - ahead
            if behind < size:
                flow.buf += d[off + behind : off + behind + min(size - behind, flow.cap - len(flow.buf))]
                flow.next_seq = (seq + size) & 0xFFFFFFFF
        else:  # a segment is missing (lost by the capture): what came so far is all there is
            self._close(key)
            return
        if flags & 5 or len(flow.buf) >= flow.cap or (flow.kind == "tls" and tls_leaf_certificate(bytes(flow.buf))[1]):
            self._close(key)

    def _close(self, key: bytes) -> None:
        flow = self.flows.pop(key, None)
        if flow is None:
            return
        sport = key[8] << 8 | key[9]
        left = self.flow_ports.get(sport, 1) - 1
        if left:
            self.flow_ports[sport] = left
        else:
            self.flow_ports.pop(sport, None)
        raw = bytes(flow.buf)
        if flow.kind == "http":
            paths = self.paths.pop(key, [])
            self.add(flow.src, http_evidence(split_messages(raw, b"HTTP/"), paths), flow.ts, "http")
        elif flow.kind == "rtsp":
            self.add(flow.src, rtsp.rtsp_evidence(split_messages(raw, b"RTSP/")), flow.ts, "rtsp")
        elif flow.kind == "tls":
            der, _ = tls_leaf_certificate(raw)
            if der:
                self.add(flow.src, tls.parse_certificate(der), flow.ts, "tls")
        else:
            self.add(flow.src, banner.parse_banner(raw, flow.kind), flow.ts, flow.kind)

    # -- the end

    def hosts(self) -> list[Host]:
        """Close every open flow, then one Host per device: by address, joined by MAC (model.merge_observations);
        DHCP clients whose address never showed become hosts of their MAC alone."""
        for key in list(self.flows):
            self._close(key)
        self.proxies = {mac for mac, ips in self.mac_ips.items() if len(ips) > PROXY_ARP}
        macs: dict[str, str] = {}
        for ip, (mac, ts) in self.arp.items():
            if mac not in self.proxies and ip not in self.arp_conflicts:
                macs[ip] = mac
                self.add(ip, [evidence("mac", mac, "arp")], ts, "arp")
        orphans: list[Host] = []
        for client, items in self.dhcp.items():
            assigned = self.dhcp_ip.get(client)
            found = list(items)
            found.append(evidence("mac", client, "dhcp"))
            found[-1].source = "pcap:dhcp"
            if assigned and _private(assigned):
                self.add(assigned, found, 0.0, "dhcp")
                macs.setdefault(assigned, client)
            else:
                orphans.append(Host(id=client, mac=client, evidence=found))
        for ip, ports in self.open_ports.items():
            if ip in self.evidence:  # a SYN-ACK alone does not make a device (an internet server would)
                ordered = sorted(ports, key=lambda s: int(s.split("/")[0]))
                self.add(ip, [evidence("port.open", p, "tcp") for p in ordered], 0.0, "tcp")
        observations = []
        for ip, found_here in self.evidence.items():
            claimed = macs.get(ip) or next((e.value for e in found_here.values() if e.key == "mac"), None)
            observations.append(Observation(ip, list(found_here.values()), normalise_mac(claimed) if claimed else None))
        hosts = merge_observations(observations)
        by_mac = {h.mac: h for h in hosts if h.mac}
        for orphan in orphans:
            if orphan.mac in by_mac:
                have = {(e.key, e.value) for e in by_mac[orphan.mac].evidence}
                by_mac[orphan.mac].evidence += [e for e in orphan.evidence if (e.key, e.value) not in have]
            else:
                hosts.append(orphan)
        return hosts

    def limitations(self) -> list[str]:
        out = []
        if self.counts.get("ipv6"):
            out.append(f"{self.counts['ipv6']} IPv6 packets were not decoded (IPv4 only)")
        if self.public_sources:
            out.append(
                f"{self.public_sources} messages from public (internet) addresses were not used: only devices with "
                "private, link-local or shared addresses are reported"
            )
        if self.dropped_hosts:
            out.append(f"more than {MAX_HOSTS} addresses: {self.dropped_hosts} messages about further ones dropped")
        if self.counts.get("fragments"):
            out.append(f"{self.counts['fragments']} fragmented datagrams could not be reassembled (too many at once)")
        for mac in sorted(self.proxies):
            out.append(
                f"{mac} answered ARP for {len(self.mac_ips[mac])} addresses (proxy ARP or a router): those addresses "
                "were not given its MAC"
            )
        if self.arp_conflicts:
            out.append(f"{len(self.arp_conflicts)} addresses were claimed by more than one MAC in ARP; no MAC kept")
        for what, n in sorted(self.counts.items()):
            if what.startswith("link type"):
                out.append(f"{n} packets of unsupported {what} were not decoded")
            elif what.startswith("flows"):
                out.append(f"{n} TCP {what}")
        return out


# ----------------------------------------------------------------------------------------- captures -> hosts


@dataclass
class PassiveResult:
    hosts: list[Host]
    files: list[FileStats]
    errors: list[str]
    limitations: list[str]


def _when(ts: float | None) -> str:
    if ts is None:
        return "?"
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{ts:.0f}"


def analyse_captures(paths: Iterable[Path]) -> PassiveResult:
    """Every capture through one Analyzer. A capture that cannot be read at all is an error (CaptureError is
    raised when none of them can be read); damage inside a readable one is a counted error."""
    analyzer = Analyzer()
    files: list[FileStats] = []
    errors: list[str] = []
    limitations: list[str] = []
    failures: list[CaptureError] = []
    for path in paths:
        stats = FileStats(path.name)
        try:
            read_capture(path, analyzer.feed, stats)
        except CaptureError as exc:
            failures.append(exc)
            errors.append(f"{exc}; nothing read from this file")
            continue
        files.append(stats)
        errors += stats.problems()
        span = f"{_when(stats.first)} to {_when(stats.last)}" if stats.first is not None else "no timestamps"
        limitations.append(
            f"capture {stats.name} ({stats.format}): {stats.packets} packets, time span {span}; passive analysis: "
            "only what the devices sent while it was recorded is known"
        )
        if stats.cut_by_snaplen:
            limitations.append(
                f"{stats.name}: {stats.cut_by_snaplen} packets were cut by the capture's snap length; what was cut "
                "off is unknown"
            )
        if stats.unknown_blocks:
            limitations.append(f"{stats.name}: {stats.unknown_blocks} pcapng blocks of unknown type skipped")
    if failures and not files:
        raise failures[0]
    hosts = analyzer.hosts()
    limitations += analyzer.limitations()
    return PassiveResult(hosts=hosts, files=files, errors=errors, limitations=limitations)
