"""The dissector of the passive audit: packets -> the protocol parsers -> Evidence per source address.

It looks at Ethernet (+802.1Q/802.1ad), Linux cooked (SLL, SLL2), raw IP and BSD loopback frames, IPv4 (with
reassembly of fragmented UDP), IPv6 (extension headers walked; fragments counted, not reassembled), ARP, IPv6
Neighbor Discovery, UDP and TCP, using integer indexing into the reader's chunk so that an
ordinary packet costs no Python object beyond its record header. Only what matters reaches a parser:

    ARP                 discovery.arp.parse_arp: sender IP -> `mac`
    NDP (ICMPv6)        link-layer address options of solicitations and advertisements: IPv6 address -> `mac`
    DHCP (67/68)        discovery.dhcp.parse_dhcp: chaddr -> `mac`, option 12 -> `hostname`, 60 -> vendor class
    mDNS (5353)         discovery.mdns.parse_mdns_answer
    WS-Discovery (3702) discovery.wsd.parse_probe_matches (Hello and ProbeMatches)
    SSDP (1900)         discovery.ssdp.parse_response (NOTIFY and answers)
    SADP (37020)        discovery.sadp.parse_probe_match
    DHIP (37810)        discovery.dhip.parse_reply
    SIP (5060)          discovery.sip.parse_message: `User-Agent`/`Server` -> `sip.user_agent` of the sender
    SNMP (161, 162)     discovery.snmp.parse_message: sysDescr.0 of a response or trap -> `snmp.sysdescr`
    TCP, server side    flows.TcpFlows: HTTP and RTSP answers (sniffed by their status line on any port), TLS
                        1.0-1.2 Certificate messages, SSH/FTP/telnet greetings, SYN-ACKs -> `port.open`

Evidence is about the packet's source only (an HTTP answer speaks for the server, never for the client), and
only for private, loopback, link-local and shared (RFC 6598) addresses, and IPv6 link-local and unique local
ones: the devices of the audited LAN, not the internet servers its workstations talk to (a global IPv6
address cannot be told from one, so it is counted, not used).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from scanner.camera_ports import BANNER_KINDS
from scanner.discovery import dhip, mdns, sadp, sip, snmp, ssdp, wsd
from scanner.discovery.arp import parse_arp
from scanner.discovery.dhcp import parse_dhcp
from scanner.model import Evidence, Host, evidence
from scanner.passive.flows import MAX_HOSTS, TcpFlows, address

__all__ = ["MAX_HOSTS", "Analyzer", "private_address"]

LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_LOOP, LINK_SLL, LINK_SLL2 = 0, 1, 101, 108, 113, 276
LINK_RAW_ALIASES = frozenset({12, 14, LINK_RAW, 228})  # DLT_RAW on some BSDs, LINKTYPE_IPV4
SUPPORTED_LINKS = frozenset({LINK_NULL, LINK_ETHERNET, LINK_LOOP, LINK_SLL, LINK_SLL2} | LINK_RAW_ALIASES)
UDP_PORTS = frozenset(
    {67, 68, ssdp.PORT, wsd.PORT, mdns.PORT, sadp.PORT, dhip.PORT, sip.PORT, snmp.PORT, snmp.TRAP_PORT}
)
MAX_VALUES_PER_KEY = 16  # per host: a busy web server gives a different body per page
MAX_BODIES_PER_HOST = 4
MAX_EVIDENCE_PER_HOST = 1000
MAX_FRAGMENT_SETS = 256  # IPv4 datagrams being reassembled at once
MAX_DATAGRAM = 65535
SEEN_CAP = 1 << 16  # payload digests remembered to skip repeated announcements


@dataclass(slots=True)
class _Fragments:
    ts: float
    header: bytes  # the first fragment's IP header
    parts: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None  # payload length, known once the last fragment came
    size: int = 0


SHARED_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT and some site networks
LOCAL_V6 = (ipaddress.IPv6Network("fe80::/10"), ipaddress.IPv6Network("fc00::/7"))  # link-local, unique local
# AF_INET6 of the BSDs (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS), as written by the capturing host, either order
_BSD_INET6 = frozenset({24, 28, 30, 0x18000000, 0x1C000000, 0x1E000000})
_IPV6_OPTION_HEADERS = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options (RFC 8200 §4)
_NDP_OPTIONS_AT = {133: 8, 134: 16, 135: 24, 136: 24}  # ICMPv6 type -> where its options start (RFC 4861 §4)


def _when(ts: float) -> datetime | None:
    """A packet's time as a datetime; None for a time before 1970 or after 3000 (a pcapng block may claim any
    64-bit count of any unit, which datetime cannot hold)."""
    return datetime.fromtimestamp(ts, UTC) if 0 < ts < 32503680000 else None


def private_address(ip: str) -> bool:
    """Whether an address is a device of the audited LAN: IPv4 private, loopback, link-local or shared; IPv6
    link-local, unique local or loopback. A global IPv6 address cannot be told from an internet server's."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if addr.is_multicast or addr.is_unspecified or ip == "255.255.255.255":
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return private_address(str(addr.ipv4_mapped))
        return addr.is_loopback or any(addr in net for net in LOCAL_V6)
    return addr.is_private or addr.is_link_local or addr in SHARED_SPACE  # is_private covers loopback


class Analyzer:
    """Takes packets (`feed`, the reader's sink) and keeps the Evidence per source address; `hosts()` gives
    the merged Hosts at the end (passive/hosts.py). Memory is bounded by the caps above, not by the size of
    the capture."""

    def __init__(self) -> None:
        self.evidence: dict[str, dict[tuple[str, str], Evidence]] = {}
        self.per_key: dict[tuple[str, str], int] = {}
        self.arp: dict[str, tuple[str, float]] = {}  # ip -> (the first mac claimed, when)
        self.arp_conflicts: set[str] = set()
        self.proxies: set[str] = set()
        self.mac_ips: dict[str, set[str]] = {}
        self.dhcp: dict[str, list[Evidence]] = {}  # client mac -> its Evidence
        self.dhcp_ip: dict[str, str] = {}  # client mac -> its address (ACK, ciaddr, requested)
        self.tcp = TcpFlows(self.add, self._count)
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
            if not private_address(ip):
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
                when = _when(ts)
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
        """One packet: `d[p:p+n]` of link type `link` at time `ts` (the capture reader's sink)."""
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
                self._tcp(d, q + 12, 4, t, iend, ts)
            elif proto == 17:
                self._udp_header(d, q + 12, 4, t, iend, ts)
        elif et == 0x0806:
            self._arp(d[q:end], ts)
        elif et == 0x86DD:
            self._ipv6(d, q, end, ts)

    def _tcp(self, d: bytes, a: int, n: int, t: int, iend: int, ts: float) -> None:
        """One TCP segment at `t`, its addresses at `a` (`n` bytes each): SYN-ACKs, server flows, requests."""
        tcp = self.tcp
        if t + 20 > iend:
            return
        off = t + ((d[t + 12] >> 4) << 2)
        flags = d[t + 13]
        sport = d[t] << 8 | d[t + 1]
        if flags & 0x12 == 0x12:
            tcp.syn_ack(d, a, n, t, sport)
            return
        if off >= iend:
            if flags & 5 and sport in tcp.ports:
                tcp.close(d[t : t + 4] + d[a : a + 2 * n])
            return
        if sport in tcp.ports:
            key = d[t : t + 4] + d[a : a + 2 * n]
            flow = tcp.flows.get(key)
            if flow is not None:
                tcp.resume(key, flow, d, t, off, iend, flags)
                return
        b0 = d[off]
        if b0 == 72 and d.startswith(b"HTTP/1.", off):
            tcp.start(d, a, n, t, off, iend, flags, "http", ts)
        elif b0 == 82 and d.startswith(b"RTSP/1.", off):
            tcp.start(d, a, n, t, off, iend, flags, "rtsp", ts)
        elif b0 == 22 and off + 6 <= iend and d[off + 1] == 3 and d[off + 5] == 2:
            tcp.start(d, a, n, t, off, iend, flags, "tls", ts)
        elif (
            (b0 == 71 and d.startswith(b"GET ", off))
            or (b0 == 80 and d.startswith(b"POST ", off))
            or (b0 == 72 and d.startswith(b"HEAD ", off))
        ):
            tcp.request(d, a, n, t, off, iend)
        elif sport in BANNER_KINDS:
            tcp.banner(d, a, n, t, off, iend, flags, sport, ts)

    def _udp_header(self, d: bytes, a: int, n: int, t: int, iend: int, ts: float) -> None:
        if t + 8 > iend:
            return
        sport = d[t] << 8 | d[t + 1]
        dport = d[t + 2] << 8 | d[t + 3]
        if sport in UDP_PORTS or dport in UDP_PORTS:
            ulen = d[t + 4] << 8 | d[t + 5]
            uend = t + ulen if ulen >= 8 and t + ulen <= iend else iend
            self._udp(address(d, a, n), sport, dport, bytes(d[t + 8 : uend]), ts)

    def _ipv6(self, d: bytes, q: int, end: int, ts: float) -> None:
        """An IPv6 packet (RFC 8200): the extension headers walked to TCP, UDP or ICMPv6. Fragments are not
        reassembled (counted): discovery answers over IPv6 fit one frame on a LAN."""
        if q + 40 > end or d[q] >> 4 != 6:
            return
        plen = d[q + 4] << 8 | d[q + 5]
        iend = q + 40 + plen
        if plen == 0 or iend > end:  # 0: a jumbogram or segmentation offload
            iend = end
        nh = d[q + 6]
        t = q + 40
        for _ in range(8):  # a bound on the chain of extension headers
            if nh in _IPV6_OPTION_HEADERS:
                if t + 8 > iend:
                    return
                nh, t = d[t], t + ((d[t + 1] + 1) << 3)
            elif nh == 44:  # fragment header: only an atomic fragment (offset 0, no more) is whole
                if t + 8 > iend:
                    return
                if (d[t + 2] << 8 | d[t + 3]) & 0xFFF9:
                    self._count("ipv6 fragments")
                    return
                nh, t = d[t], t + 8
            else:
                break
        if t > iend:
            return
        if nh == 6:
            self._tcp(d, q + 8, 16, t, iend, ts)
        elif nh == 17:
            self._udp_header(d, q + 8, 16, t, iend, ts)
        elif nh == 58:
            self._ndp(d, q, t, iend, ts)

    def _ndp(self, d: bytes, q: int, t: int, iend: int, ts: float) -> None:
        """Neighbor Discovery (RFC 4861): the link-layer address an IPv6 node gives for itself (source
        link-layer option of a Router/Neighbor Solicitation or a Router Advertisement) or for the target of its
        Neighbor Advertisement (target link-layer option): IPv6's ARP."""
        if t + 8 > iend or d[q + 7] != 255:  # RFC 4861 §7.1: hop limit 255, else it came from off the link
            return
        kind = d[t]
        start = _NDP_OPTIONS_AT.get(kind)
        if start is None or t + start > iend:
            return
        if kind == 136:
            ip, want = address(d, t + 8, 16), 2
        else:
            ip, want = address(d, q + 8, 16), 1
        o = t + start
        while o + 8 <= iend:
            size = d[o + 1] << 3
            if size == 0:
                return  # RFC 4861 §4.6: a zero-length option: the packet is to be dropped
            if d[o] == want and size == 8:
                self._neighbour(ip, bytes(d[o + 2 : o + 8]).hex(":"), ts)
                return
            o += size

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
            if family in (2, 0x02000000):
                return 0x0800, p + 4
            if family in _BSD_INET6:
                return 0x86DD, p + 4
            return 0, 0
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
        if pair is not None:
            self._neighbour(*pair, ts)

    def _neighbour(self, ip: str, mac: str, ts: float) -> None:
        """An address and the MAC that claims it, from ARP or IPv6 Neighbor Discovery."""
        if mac in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff") or ip in ("0.0.0.0", "::"):
            return
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
        elif port == 5060:
            self.add(src, sip.parse_message(payload, src), ts, "sip")
        elif port in (161, 162):  # a response from 161 or a trap to 162: both speak for their source
            self.add(src, snmp.parse_message(payload, src), ts, "snmp")
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
                    e.source, e.observed_at = "pcap:dhcp", _when(ts)
                    items.append(e)
        if msg.ciaddr != "0.0.0.0":
            self.dhcp_ip.setdefault(msg.mac, msg.ciaddr)
        elif msg.requested_ip:
            self.dhcp_ip.setdefault(msg.mac, msg.requested_ip)

    # -- the end

    def hosts(self) -> list[Host]:
        from scanner.passive.hosts import assemble_hosts

        return assemble_hosts(self)

    def limitations(self) -> list[str]:
        from scanner.passive.hosts import limitations

        return limitations(self)
