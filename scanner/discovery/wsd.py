"""WS-Discovery (the April 2005 draft ONVIF devices speak, and WS-Discovery 1.1) on UDP 3702.

Two Probes, `dn:NetworkVideoTransmitter` (ONVIF cameras and encoders) and `tds:Device` (every ONVIF device,
recorders included), each sent twice to 239.255.255.250 with a fresh MessageID as nmap's
broadcast-wsdd-discover does (SOAP-over-UDP is lossy), and once by unicast to each routed target. A Probe
lists the types a target must *all* have, hence two Probes rather than one with both types.

Devices answer with a ProbeMatch; devices that start while we listen announce themselves with a Hello to the
group. Both carry Types, Scopes and XAddrs, each a whitespace-separated list; every item becomes one Evidence:

    wsd.type   dn:NetworkVideoTransmitter                                  (the QName, prefix as sent)
    wsd.scope  onvif://www.onvif.org/hardware/DS-2CD2085G1-I
    wsd.scope  onvif://www.onvif.org/name/HIKVISION%20DS-2CD2085G1-I
    wsd.xaddr  http://10.77.0.11/onvif/device_service
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from scanner.discovery.udp import MAX_DATAGRAM, udp_discovery
from scanner.model import Evidence, Observation, evidence
from scanner.netctx import ScanContext, group_listener

GROUP, PORT = "239.255.255.250", 3702
SOURCE = "wsd"
PROBE_TYPES = ("dn:NetworkVideoTransmitter", "tds:Device")
MAX_REPLY = 65536  # one UDP datagram; a ProbeMatch is 1-3 kB
MAX_SCOPES = 64  # per message: a hostile device may send thousands
MAX_TYPES = 16
MAX_XADDRS = 16
MAX_MATCHES = 8  # ProbeMatch elements per ProbeMatches (a device answers with one)
MAX_SEEN = 4096  # reply MessageIDs remembered for deduplication
IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)  # Linux; not exported by Python 3.11

NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_WSA_10 = "http://www.w3.org/2005/08/addressing"
NS_WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
NS_WSD_11 = "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01"
DISCOVERY_URN = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
_DISCOVERY_NS = (NS_WSD, NS_WSD_11)
_ANNOUNCEMENTS = ("ProbeMatch", "Hello")  # what a target says about itself (Bye and Probe carry nothing)
_PARSE_ERRORS = (ET.ParseError, DefusedXmlException, ValueError, UnicodeError, LookupError, RecursionError)


def build_probe(types: str, message_id: str) -> bytes:
    """A WS-Discovery Probe (SOAP 1.2, WS-Addressing 2004/08) for `types` (QNames with the `dn:` or `tds:`
    prefix, space separated). `message_id` is a fresh `urn:uuid:...` for every datagram sent."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{NS_SOAP}" xmlns:wsa="{NS_WSA}" xmlns:wsd="{NS_WSD}"'
        ' xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
        "<soap:Header>"
        f"<wsa:MessageID>{escape(message_id)}</wsa:MessageID>"
        f"<wsa:To>{DISCOVERY_URN}</wsa:To>"
        f"<wsa:Action>{NS_WSD}/Probe</wsa:Action>"
        "</soap:Header>"
        f"<soap:Body><wsd:Probe><wsd:Types>{escape(types)}</wsd:Types></wsd:Probe></soap:Body>"
        "</soap:Envelope>"
    ).encode()


def new_message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _ns(tag: object) -> str:
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def _child(parent: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in parent if _local(c.tag) == name), None)


def _items(parent: ET.Element, name: str, cap: int) -> list[str]:
    element = _child(parent, name)
    if element is None or not element.text:
        return []
    out: list[str] = []
    for item in element.text.split():  # whitespace-separated lists (WS-Discovery §5.1)
        if item not in out:
            out.append(item)
            if len(out) >= cap:
                break
    return out


def _parse(data: bytes) -> tuple[str | None, list[Evidence]]:
    """(the message's own MessageID, its Evidence); (None, []) for anything that is not a ProbeMatches or
    Hello envelope: our own Probe, Bye, garbage, DTDs and entity tricks, oversize."""
    if len(data) > MAX_REPLY:
        return None, []
    start = data.find(b"<")
    if start < 0:
        return None, []
    try:
        root = SafeET.fromstring(data[start:], forbid_dtd=True)
    except _PARSE_ERRORS:
        return None, []
    if _local(root.tag) != "Envelope" or _ns(root.tag) != NS_SOAP:
        return None, []
    body = _child(root, "Body")
    if body is None:
        return None, []
    message = next((c for c in body if isinstance(c.tag, str)), None)
    if message is None or _ns(message.tag) not in _DISCOVERY_NS:
        return None, []
    if _local(message.tag) == "ProbeMatches":
        described = [m for m in message if _local(m.tag) == "ProbeMatch" and _ns(m.tag) in _DISCOVERY_NS]
        described = described[:MAX_MATCHES]
    elif _local(message.tag) == "Hello":
        described = [message]
    else:
        return None, []
    message_id = None
    header = _child(root, "Header")
    if header is not None:
        mid = _child(header, "MessageID")
        if mid is not None and mid.text and _ns(mid.tag) in (NS_WSA, NS_WSA_10):
            message_id = mid.text.strip()[:256]
    out: list[Evidence] = []
    for match in described:
        out += [evidence("wsd.type", t, SOURCE) for t in _items(match, "Types", MAX_TYPES)]
        out += [evidence("wsd.scope", s, SOURCE) for s in _items(match, "Scopes", MAX_SCOPES)]
        out += [evidence("wsd.xaddr", x, SOURCE) for x in _items(match, "XAddrs", MAX_XADDRS)]
    return message_id, out


def parse_probe_matches(data: bytes, source_ip: str = "") -> list[Evidence]:
    """Evidence from one WS-Discovery ProbeMatches or Hello datagram; [] for anything else. Never raises."""
    try:
        return _parse(data)[1]
    except Exception:  # a parser returns nothing on input it cannot read
        return []


class _Deduplicator:
    """Drops a reply seen before: SOAP-over-UDP senders repeat a message with the same MessageID."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], None] = {}
        self.messages = 0

    def __call__(self, data: bytes, source_ip: str) -> list[Evidence]:
        try:
            message_id, items = _parse(data)
        except Exception:  # a parser returns nothing on input it cannot read
            return []
        if not items:
            return []
        if message_id:
            key = (source_ip, message_id)
            if key in self.seen:
                return []
            self.seen[key] = None
            if len(self.seen) > MAX_SEEN:
                self.seen.pop(next(iter(self.seen)))
        self.messages += 1
        return items


def _hello_socket(ctx: ScanContext) -> socket.socket:
    return group_listener(ctx, GROUP, PORT)


async def _listen_hellos(
    ctx: ScanContext,
    sock: socket.socket,
    parse: Callable[[bytes, str], list[Evidence]],
    found: dict[str, Observation],
) -> None:
    """Collect Hellos (and anything else parseable sent to the group) until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data, addr = await loop.sock_recvfrom(sock, MAX_DATAGRAM)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        ip = addr[0]
        if not ctx.allowed(ip):
            continue
        items = parse(data, ip)
        if items:
            found.setdefault(ip, Observation(ip)).evidence.extend(items)


def _merge(groups: list[list[Observation]]) -> list[Observation]:
    by_ip: dict[str, Observation] = {}
    for group in groups:
        for obs in group:
            merged = by_ip.setdefault(obs.ip, Observation(obs.ip))
            have = {(e.key, e.value) for e in merged.evidence}
            for e in obs.evidence:
                if (e.key, e.value) not in have:
                    have.add((e.key, e.value))
                    merged.evidence.append(e)
    return list(by_ip.values())


async def discover(ctx: ScanContext, unicast: list[str]) -> list[Observation]:
    """Probe for both types (multicast when the scope allows it, unicast to `unicast`), listen ctx.listen
    seconds, and while probing hear Hellos sent to the group by in-scope devices."""
    dedupe = _Deduplicator()
    hellos: dict[str, Observation] = {}
    listener: asyncio.Task[None] | None = None
    hello_sock: socket.socket | None = None
    if ctx.scope.multicast_allowed:
        try:
            hello_sock = _hello_socket(ctx)
        except OSError as exc:
            ctx.limitations.append(f"WS-Discovery: Hello announcements not heard (UDP {PORT} unavailable: {exc})")
        else:
            listener = asyncio.create_task(_listen_hellos(ctx, hello_sock, dedupe, hellos))

    def probe_for(types: str) -> Callable[[], bytes]:
        return lambda: build_probe(types, new_message_id())

    try:
        groups = await asyncio.gather(
            *(
                udp_discovery(
                    ctx,
                    name="WS-Discovery",
                    port=PORT,
                    group=GROUP,
                    probe=probe_for(t),
                    parse=dedupe,
                    unicast=unicast,
                    repeats=2,
                )
                for t in PROBE_TYPES
            )
        )
    finally:
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        if hello_sock is not None:
            hello_sock.close()
    if hellos:
        ctx.log.info("WS-Discovery: Hello heard from %d in-scope hosts", len(hellos))
    return _merge([*groups, list(hellos.values())])
