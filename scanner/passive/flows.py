"""TCP flow reassembly for the passive audit, and the Evidence of a finished flow.

Minimal on purpose: per flow, the server's bytes in sequence up to a cap (FLOW_CAP; TLS_CAP for a handshake,
the banner size for FTP/SSH/telnet), at most MAX_FLOWS flows at once (the oldest is parsed early and dropped
when more arrive), so memory stays flat whatever the size of the capture. A gap (a segment the capture lost)
ends the flow: what came so far is all there is. Requests seen on a connection are remembered in order so
that each HTTP answer is paired with its path (`GET /` answers as the active probe's root, `/favicon.ico` as
its favicon, a UPnP description as SSDP's fetch). A flow's bytes are parsed by the same parsers the active
probes use (probes/http.py, rtsp.py, tls.py, banner.py).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from scanner.camera_ports import BANNER_KINDS
from scanner.discovery import ssdp
from scanner.model import Evidence
from scanner.probes import banner, http, rtsp, tls
from scanner.probes.http import ParsedResponse

MAX_FLOWS = 256  # TCP flows reassembled at once
FLOW_CAP = http.MAX_BODY + 16 * 1024  # server bytes kept per flow: a head and the first 64 KiB of body
TLS_CAP = 64 * 1024  # server handshake bytes kept while looking for the Certificate message
BANNER_CAP = banner.MAX_READ
MAX_PATHS = 8  # request paths remembered per flow
MAX_PENDING = 4096  # request paths and SYN-ACKs waiting for their flow
MAX_HOSTS = 65536
MAX_PORTS_PER_HOST = 64
MAX_MESSAGES = http.MAX_MESSAGES  # HTTP/RTSP answers parsed per flow

Emit = Callable[[str, Iterable[Evidence], float, str], None]  # (source address, items, time, protocol)


def address(d: bytes, a: int, n: int) -> str:
    """The address of `n` bytes (4: IPv4, 16: IPv6) at offset `a`, as text (RFC 5952 form for IPv6)."""
    if n == 4:
        return socket.inet_ntoa(d[a : a + 4])
    return socket.inet_ntop(socket.AF_INET6, d[a : a + 16])


@dataclass(slots=True)
class Flow:
    kind: str  # http, rtsp, tls, ssh, ftp, telnet
    src: str
    next_seq: int
    ts: float
    buf: bytearray = field(default_factory=bytearray)
    cap: int = FLOW_CAP


class TcpFlows:
    """The TCP side of the dissector: SYN-ACKs (open ports; telnet's first sequence number), request paths,
    and the server side of HTTP, RTSP, TLS and banner flows. Keys are the server-side 4-tuple as bytes
    (source port, destination port, source address, destination address), cut from the packet. A segment is
    given as the packet `d`, `a` the offset of its source address (the destination follows it), `n` the
    address length (4 for IPv4, 16 for IPv6) and `t` the offset of its TCP header."""

    def __init__(self, emit: Emit, count: Callable[[str], None]) -> None:
        self.emit = emit
        self.count = count
        self.flows: dict[bytes, Flow] = {}
        self.ports: dict[int, int] = {}  # source port -> active flows from it (a cheap pre-filter)
        self.paths: dict[bytes, list[str]] = {}  # server-side flow key -> request paths in order
        self.syn_acks: dict[bytes, int] = {}  # server-side flow key -> ISN, for telnet greetings
        self.open_ports: dict[str, set[str]] = {}

    def syn_ack(self, d: bytes, a: int, n: int, t: int, sport: int) -> None:
        src = address(d, a, n)
        ports = self.open_ports.get(src)
        if ports is None:
            if len(self.open_ports) >= MAX_HOSTS:
                return
            ports = self.open_ports[src] = set()
        if len(ports) < MAX_PORTS_PER_HOST:
            ports.add(f"{sport}/tcp")
        if sport == 23:
            key = d[t : t + 4] + d[a : a + 2 * n]
            self.syn_acks[key] = int.from_bytes(d[t + 4 : t + 8], "big")
            if len(self.syn_acks) > MAX_PENDING:
                self.syn_acks.pop(next(iter(self.syn_acks)))

    def request(self, d: bytes, a: int, n: int, t: int, off: int, iend: int) -> None:
        """Remember the paths of the requests in this segment (pipelined ones too) for the answers that will
        come on the same connection, in the same order."""
        key = d[t + 2 : t + 4] + d[t : t + 2] + d[a + n : a + 2 * n] + d[a : a + n]
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
            bounds = http.head_end(data[pos:])
            if bounds is None:
                return
            head = http.parse_response(b"HTTP/1.1 200 X\r\n" + data[pos : pos + bounds[0]].split(b"\n", 1)[-1])
            pos += bounds[1] + (head.content_length() or 0)

    def banner(self, d: bytes, a: int, n: int, t: int, off: int, iend: int, flags: int, sport: int, ts: float) -> None:
        """The first server bytes on 21/22/23: an SSH identification or an FTP 220 greeting whenever seen (the
        first line says what it is, or for FTP a 220 line within the first bytes, after a line some DVRs send
        before the reply); a telnet greeting only when its SYN-ACK shows it starts the stream."""
        kind = BANNER_KINDS[sport]
        if kind == "ssh" and not d.startswith(b"SSH-", off):
            return
        if kind == "ftp" and not (d.startswith(b"220", off) or b"\n220" in d[off : min(iend, off + 256)]):
            return
        key = d[t : t + 4] + d[a : a + 2 * n]
        if kind == "telnet":
            isn = self.syn_acks.pop(key, None)
            if isn is None or int.from_bytes(d[t + 4 : t + 8], "big") != (isn + 1) & 0xFFFFFFFF:
                return
        self.start(d, a, n, t, off, iend, flags, kind, ts)

    def start(self, d: bytes, a: int, n: int, t: int, off: int, iend: int, flags: int, kind: str, ts: float) -> None:
        key = d[t : t + 4] + d[a : a + 2 * n]
        if len(self.flows) >= MAX_FLOWS:
            self.close(next(iter(self.flows)))
            self.count("flows parsed early (too many at once)")
        cap = TLS_CAP if kind == "tls" else BANNER_CAP if kind in BANNER_KINDS.values() else FLOW_CAP
        seq = int.from_bytes(d[t + 4 : t + 8], "big")
        flow = Flow(kind, address(d, a, n), seq, ts, cap=cap)
        self.flows[key] = flow
        sport = d[t] << 8 | d[t + 1]
        self.ports[sport] = self.ports.get(sport, 0) + 1
        self.resume(key, flow, d, t, off, iend, flags)

    def resume(self, key: bytes, flow: Flow, d: bytes, t: int, off: int, iend: int, flags: int) -> None:
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
            self.close(key)
            return
        if flags & 5 or len(flow.buf) >= flow.cap or (flow.kind == "tls" and tls.leaf_certificate(bytes(flow.buf))[1]):
            self.close(key)

    def close(self, key: bytes) -> None:
        flow = self.flows.pop(key, None)
        if flow is None:
            return
        sport = key[0] << 8 | key[1]
        left = self.ports.get(sport, 1) - 1
        if left:
            self.ports[sport] = left
        else:
            self.ports.pop(sport, None)
        raw = bytes(flow.buf)
        if flow.kind == "http":
            paths = self.paths.pop(key, [])
            self.emit(flow.src, http_evidence(http.split_responses(raw, b"HTTP/"), paths), flow.ts, "http")
        elif flow.kind == "rtsp":
            self.emit(flow.src, rtsp.rtsp_evidence(http.split_responses(raw, b"RTSP/")), flow.ts, "rtsp")
        elif flow.kind == "tls":
            der, _ = tls.leaf_certificate(raw)
            if der:
                self.emit(flow.src, tls.parse_certificate(der), flow.ts, "tls")
        else:
            self.emit(flow.src, banner.parse_banner(raw, flow.kind), flow.ts, flow.kind)

    def close_all(self) -> None:
        for key in list(self.flows):
            self.close(key)


def _is_upnp_description(resp: ParsedResponse) -> bool:
    body = resp.body[:4096]
    return b"<root" in body and b"urn:schemas-upnp-org:device-1-0" in body


def http_evidence(answers: list[bytes], paths: list[str]) -> list[Evidence]:
    """Evidence from the HTTP answers of one connection, each paired with its request's path where the
    request was seen: `GET /` answers as the active probe's root, `/favicon.ico` as its favicon, a UPnP
    description as SSDP's fetch; other answers give their headers, title and body."""
    out: list[Evidence] = []
    for i, raw in enumerate(answers):
        resp = http.parse_response(raw)
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
