"""WS-Discovery (the April 2005 draft that ONVIF uses) target service: answers Probes as an ONVIF camera does.

A Probe (SOAP 1.2, WS-Addressing 2004/08) whose Types are empty or all match the persona's types (by local
name, whatever the prefixes) and whose Scopes all match gets a ProbeMatch, unicast to the sender from port 3702.
The wire format copies real devices: Hikvision-style gSOAP (`env:`, `wsadis:`, `d:`, MAC-tailed uuids,
MetadataVersion 10) by default, Axis-style (`SOAP-ENV:`, `wsa:`, mustUnderstand, MetadataVersion 1) when the
persona's ONVIF manufacturer is Axis. Public captures of both were the model (see the module tests).

In netns mode the socket hears the multicast group on the persona's interface and unicast probes alike (routed
networks probe by unicast); on start it announces itself with one Hello to the group. In loopback mode it is
bound to the persona's 127.77.0.x address and answers unicast only.

Hostile personas (`hostile.oversize_wsd`) follow the normal answer with an oversized ProbeMatch (thousands of
scopes, as large as one UDP datagram can be) and a truncated one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET

from scanner.lab.persona import Persona, WsdService
from scanner.lab.responders.base import Context, udp_listener
from scanner.lab.responders.onvif import device_xaddr

WSD_GROUP = "239.255.255.250"
WSD_PORT = 3702
MAX_PROBE = 16384  # a Probe is well under 1 kB; anything bigger is dropped unparsed
MAX_UDP_PAYLOAD = 65507  # the largest IPv4 UDP datagram
MAX_ID = 256  # longest MessageID echoed back in RelatesTo

NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
NS_WSD_11 = "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01"
ANONYMOUS = NS_WSA + "/role/anonymous"
DISCOVERY_URN = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
MATCH_RFC3986 = {NS_WSD + "/rfc3986", NS_WSD_11 + "/rfc3986"}
MATCH_STRCMP = {NS_WSD + "/strcmp0", NS_WSD_11 + "/strcmp0"}

# prefixes persona type QNames may use, and what they stand for
TYPE_NAMESPACES = {
    "dn": "http://www.onvif.org/ver10/network/wsdl",
    "tdn": "http://www.onvif.org/ver10/network/wsdl",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "wsdp": "http://schemas.xmlsoap.org/ws/2006/02/devprof",
}

log = logging.getLogger("camscan.lab.wsd")


# ---------------------------------------------------------------------------------------------- parsing


@dataclass(slots=True)
class Probe:
    message_id: str
    types: list[str] = field(default_factory=list)  # local names
    scopes: list[str] = field(default_factory=list)
    match_by: str | None = None


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(parent: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in parent if _local(c.tag) == name), None)


def parse_probe(data: bytes) -> Probe | None:
    """A Probe from one datagram, or None for anything else (other messages, garbage, DTDs, oversize)."""
    if len(data) > MAX_PROBE or b"<" not in data:
        return None
    try:
        root = SafeET.fromstring(data, forbid_dtd=True)
    except (ET.ParseError, ValueError, UnicodeError, LookupError):  # defusedxml's refusals are ValueErrors
        return None
    if root.tag != f"{{{NS_SOAP}}}Envelope":
        return None
    header, body = _child(root, "Header"), _child(root, "Body")
    if header is None or body is None:
        return None
    probe = next((c for c in body if isinstance(c.tag, str)), None)
    if probe is None or probe.tag not in (f"{{{NS_WSD}}}Probe", f"{{{NS_WSD_11}}}Probe"):
        return None
    action = _child(header, "Action")
    if action is not None and not (action.text or "").strip().endswith("/Probe"):
        return None
    mid = _child(header, "MessageID")
    message_id = (mid.text or "").strip() if mid is not None else ""
    if not message_id or len(message_id) > MAX_ID or any(ch in message_id for ch in "<>&\"'"):
        return None
    result = Probe(message_id)
    types = _child(probe, "Types")
    if types is not None and types.text:
        result.types = [t.rsplit(":", 1)[-1] for t in types.text.split()]
    scopes = _child(probe, "Scopes")
    if scopes is not None:
        result.scopes = (scopes.text or "").split()
        result.match_by = scopes.get("MatchBy")
    return result


def _scope_matches(wanted: str, have: str, match_by: str | None) -> bool:
    if match_by in MATCH_STRCMP:
        return wanted == have
    if match_by not in (None, *MATCH_RFC3986):
        return False  # a matching rule this target does not support matches nothing
    # RFC 3986 rule of WS-Discovery: scheme and authority case-insensitive, path segment-wise prefix
    w_scheme, _, w_rest = wanted.partition("://")
    h_scheme, _, h_rest = have.partition("://")
    if w_scheme.lower() != h_scheme.lower():
        return False
    w_auth, _, w_path = w_rest.partition("/")
    h_auth, _, h_path = h_rest.partition("/")
    if w_auth.lower() != h_auth.lower():
        return False
    w_segs = [s for s in w_path.split("/") if s]
    h_segs = [s for s in h_path.split("/") if s]
    return h_segs[: len(w_segs)] == w_segs


def probe_matches(probe: Probe, types: Iterable[str], scopes: Iterable[str]) -> bool:
    """WS-Discovery matching: every requested type and every requested scope must be the target's."""
    have_types = {t.rsplit(":", 1)[-1] for t in types}
    if not all(t in have_types for t in probe.types):
        return False
    have_scopes = list(scopes)
    return all(any(_scope_matches(w, h, probe.match_by) for h in have_scopes) for w in probe.scopes)


# ---------------------------------------------------------------------------------------------- building


@dataclass(frozen=True, slots=True)
class Style:
    """How a device family writes its envelope: prefixes, declarations, id forms, layout."""

    env: str
    wsa: str
    d: str
    namespaces: tuple[tuple[str, str], ...]  # extra declarations, in the device's order
    must_understand: str | None  # the value of env:mustUnderstand on To/Action/AppSequence, or no attribute
    metadata_version: int
    message_id_prefix: str
    mac_in_uuid: bool  # endpoint and message ids end in the MAC (gSOAP on Hikvision/Dahua does this)
    indent: bool


GSOAP = Style(
    env="env",
    wsa="wsadis",
    d="d",
    namespaces=(
        ("soapenc", "http://www.w3.org/2003/05/soap-encoding"),
        ("xsi", "http://www.w3.org/2001/XMLSchema-instance"),
        ("xs", "http://www.w3.org/2001/XMLSchema"),
        ("tt", "http://www.onvif.org/ver10/schema"),
        ("tds", "http://www.onvif.org/ver10/device/wsdl"),
        ("trt", "http://www.onvif.org/ver10/media/wsdl"),
        ("ter", "http://www.onvif.org/ver10/error"),
        ("dn", "http://www.onvif.org/ver10/network/wsdl"),
    ),
    must_understand=None,
    metadata_version=10,
    message_id_prefix="urn:uuid:",
    mac_in_uuid=True,
    indent=False,
)

AXIS = Style(
    env="SOAP-ENV",
    wsa="wsa",
    d="d",
    namespaces=(
        ("SOAP-ENC", "http://www.w3.org/2003/05/soap-encoding"),
        ("xsi", "http://www.w3.org/2001/XMLSchema-instance"),
        ("xsd", "http://www.w3.org/2001/XMLSchema"),
        ("dn", "http://www.onvif.org/ver10/network/wsdl"),
        ("tds", "http://www.onvif.org/ver10/device/wsdl"),
    ),
    must_understand="true",
    metadata_version=1,
    message_id_prefix="uuid:",
    mac_in_uuid=False,
    indent=True,
)


def style_for(persona: Persona) -> Style:
    onvif = persona.services.onvif
    maker = (onvif.manufacturer if onvif else persona.expect.manufacturer) or ""
    return AXIS if "axis" in maker.lower() else GSOAP


def endpoint_uuid(persona: Persona, style: Style | None = None) -> str:
    """The persona's stable endpoint uuid (without `urn:uuid:`): wsd.endpoint_uuid, else derived from its id."""
    wsd = persona.services.wsd
    if wsd is not None and wsd.endpoint_uuid:
        return wsd.endpoint_uuid.removeprefix("urn:").removeprefix("uuid:")
    base = uuid.uuid5(uuid.NAMESPACE_URL, f"https://camscan.invalid/lab/{persona.id}")
    if (style or style_for(persona)).mac_in_uuid:
        return str(uuid.UUID(base.hex[:20] + persona.mac.replace(":", "")))
    return str(base)


class Announcer:
    """Builds the persona's discovery messages."""

    def __init__(self, ctx: Context, wsd: WsdService) -> None:
        persona = ctx.persona
        self.style = style_for(persona)
        self.mac = int(persona.mac.replace(":", ""), 16)
        self.endpoint = "urn:uuid:" + endpoint_uuid(persona, self.style)
        self.types = list(wsd.types)
        onvif = persona.services.onvif
        self.scopes = list(wsd.scopes or (onvif.scopes if onvif else []))
        xaddr = device_xaddr(ctx)
        self.xaddrs = [xaddr] if xaddr else []
        self.instance_id = int(time.time()) % 100_000_000  # gSOAP uses boot time; any per-start constant will do
        self.message_number = 0

    def message_id(self) -> str:
        if self.style.mac_in_uuid:
            return self.style.message_id_prefix + str(uuid.uuid1(node=self.mac))
        return self.style.message_id_prefix + str(uuid.uuid4())

    def _envelope(self, header: list[str], body: str) -> bytes:
        s = self.style
        decls = [f'xmlns:{s.env}="{NS_SOAP}"']
        prefixes = {s.env, s.wsa, s.d}
        for prefix, ns in s.namespaces:
            decls.append(f'xmlns:{prefix}="{ns}"')
            prefixes.add(prefix)
        decls += [f'xmlns:{s.wsa}="{NS_WSA}"', f'xmlns:{s.d}="{NS_WSD}"']
        for qname in self.types:  # declare whatever prefix a persona's types use
            prefix = qname.split(":", 1)[0] if ":" in qname else ""
            if prefix and prefix not in prefixes and prefix in TYPE_NAMESPACES:
                decls.append(f'xmlns:{prefix}="{TYPE_NAMESPACES[prefix]}"')
                prefixes.add(prefix)
        indent = "    " if s.indent else ""
        head = "\n".join(indent + h for h in header)
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<{s.env}:Envelope {" ".join(decls)}>\n'
            f"<{s.env}:Header>\n{head}\n</{s.env}:Header>\n"
            f"<{s.env}:Body>{body}</{s.env}:Body>\n</{s.env}:Envelope>\n"
        ).encode()

    def _header(self, to: str, action: str, relates_to: str | None) -> list[str]:
        s, w = self.style, self.style.wsa
        mu = f' {s.env}:mustUnderstand="{s.must_understand}"' if s.must_understand else ""
        self.message_number += 1
        lines = [f"<{w}:MessageID>{self.message_id()}</{w}:MessageID>"]
        if relates_to is not None:
            lines.append(f"<{w}:RelatesTo>{escape(relates_to)}</{w}:RelatesTo>")
        lines.append(f"<{w}:To{mu}>{to}</{w}:To>")
        lines.append(f"<{w}:Action{mu}>{NS_WSD}/{action}</{w}:Action>")
        if s.must_understand:
            lines.append(
                f'<{s.d}:AppSequence{mu} MessageNumber="{self.message_number}" InstanceId="{self.instance_id}">'
                f"</{s.d}:AppSequence>"
            )
        else:
            lines.append(f'<{s.d}:AppSequence InstanceId="{self.instance_id}" MessageNumber="{self.message_number}"/>')
        return lines

    def _description(self, element: str, scopes: list[str]) -> str:
        s, w, d = self.style, self.style.wsa, self.style.d
        parts = [
            f"<{w}:EndpointReference><{w}:Address>{self.endpoint}</{w}:Address></{w}:EndpointReference>",
            f"<{d}:Types>{escape(' '.join(self.types))}</{d}:Types>",
            f"<{d}:Scopes>{escape(' '.join(scopes))}</{d}:Scopes>",
        ]
        if self.xaddrs:
            parts.append(f"<{d}:XAddrs>{escape(' '.join(self.xaddrs))}</{d}:XAddrs>")
        parts.append(f"<{d}:MetadataVersion>{s.metadata_version}</{d}:MetadataVersion>")
        inner = "\n".join(parts)
        if element == "ProbeMatch":
            return f"\n<{d}:ProbeMatches>\n<{d}:ProbeMatch>\n{inner}\n</{d}:ProbeMatch>\n</{d}:ProbeMatches>\n"
        return f"\n<{d}:{element}>\n{inner}\n</{d}:{element}>\n"

    def probe_match(self, relates_to: str, scopes: list[str] | None = None) -> bytes:
        return self._envelope(
            self._header(ANONYMOUS, "ProbeMatches", relates_to),
            self._description("ProbeMatch", self.scopes if scopes is None else scopes),
        )

    def hello(self) -> bytes:
        return self._envelope(self._header(DISCOVERY_URN, "Hello", None), self._description("Hello", self.scopes))

    def oversize_probe_match(self, relates_to: str) -> bytes:
        """A valid ProbeMatch with thousands of scopes, as close to the largest UDP datagram as it gets.
        (A single IPv4 datagram cannot carry more than 65,507 bytes, so `~300 kB` is capped here.)"""
        base = len(self.probe_match(relates_to))
        budget = MAX_UDP_PAYLOAD - base - 64
        junk: list[str] = []
        used = 0
        while True:
            scope = f"onvif://www.onvif.org/location/floor/{len(junk):05d}/{'x' * 8}"
            if used + len(scope) + 1 > budget:
                break
            junk.append(scope)
            used += len(scope) + 1
        return self.probe_match(relates_to, self.scopes + junk)

    def malformed_probe_match(self, relates_to: str) -> bytes:
        data = self.probe_match(relates_to)
        return data[: len(data) * 2 // 3]  # cut mid-element: not well-formed


# ---------------------------------------------------------------------------------------------- serving


class WsdProtocol(asyncio.DatagramProtocol):
    def __init__(self, ctx: Context, wsd: WsdService) -> None:
        self.ctx = ctx
        self.announcer = Announcer(ctx, wsd)
        self.hostile = ctx.persona.hostile.oversize_wsd
        self.seen: OrderedDict[str, None] = OrderedDict()  # recent MessageIDs: a repeated Probe is answered once
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            self._handle(data, addr)
        except Exception:  # one bad datagram must never stop the responder
            log.exception("%s: WS-Discovery datagram from %s not handled", self.ctx.persona.id, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("%s: WS-Discovery socket error: %s", self.ctx.persona.id, exc)

    def _handle(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if self.transport is None or len(addr) < 2 or not isinstance(addr[0], str) or addr[1] == 0:
            return
        probe = parse_probe(data)
        if probe is None:
            return
        if probe.message_id in self.seen:
            return
        self.seen[probe.message_id] = None
        while len(self.seen) > 512:
            self.seen.popitem(last=False)
        a = self.announcer
        if not probe_matches(probe, a.types, a.scopes):
            return
        peer = (addr[0], addr[1])
        self.transport.sendto(a.probe_match(probe.message_id), peer)
        log.debug("%s: ProbeMatch to %s:%s", self.ctx.persona.id, *peer)
        if self.hostile:
            self.transport.sendto(a.oversize_probe_match(probe.message_id), peer)
            self.transport.sendto(a.malformed_probe_match(probe.message_id), peer)

    def send_hello(self) -> None:
        if self.transport is not None:
            self.transport.sendto(self.announcer.hello(), (WSD_GROUP, WSD_PORT))


async def start(ctx: Context) -> list[object]:
    """Listen on UDP 3702 for the persona (if it has a wsd service); returns what to close at shutdown."""
    wsd = ctx.persona.services.wsd
    if wsd is None:
        return []
    sock = udp_listener(ctx, WSD_GROUP, WSD_PORT)
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(lambda: WsdProtocol(ctx, wsd), sock=sock)
    except BaseException:
        sock.close()
        raise
    if ctx.multicast and wsd.hello:
        protocol.send_hello()  # the multicast socket's IP_MULTICAST_IF is the persona's address, TTL 1
    log.info("%s: WS-Discovery on %s:%d%s", ctx.persona.id, ctx.ip, WSD_PORT, " (multicast)" if ctx.multicast else "")
    return [transport]
