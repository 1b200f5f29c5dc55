"""SSDP (UPnP Device Architecture 1.1 §1) on UDP 1900, then the UPnP device description (UDA 1.1 §2.3).

M-SEARCH for `ssdp:all` and for `upnp:rootdevice` (some stacks answer only the latter) to 239.255.255.250
when the scope allows multicast, and to each routed target by unicast. Each answer gives `ssdp.server`,
`ssdp.st` and `ssdp.usn` (whose UDN often carries a maker's domain, a serial or the MAC); its LOCATION is
fetched (HTTP GET, bounded in time and size) only when it names the very address that answered, and the
description's fields become `upnp.*` Evidence:

    ssdp.server          Linux/4.14.173-axis8, UPnP/1.0, Portable SDK for UPnP devices/1.8.7
    ssdp.st              urn:axis-com:service:BasicService:1
    ssdp.usn             uuid:Upnp-BasicDevice-1_0-ACCC8E270AD8::urn:axis-com:service:BasicService:1
    upnp.manufacturer    AXIS
    upnp.model_name      AXIS M1065-LW
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import urlsplit

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from scanner.discovery.udp import udp_discovery
from scanner.model import Evidence, Observation, evidence, unique_evidence
from scanner.netctx import ScanContext
from scanner.probes import http
from scanner.probes.http import ParsedResponse

GROUP, PORT = "239.255.255.250", 1900
SOURCE = "ssdp"
SEARCH_TARGETS = ("ssdp:all", "upnp:rootdevice")
MAX_ANSWER = 16384  # an SSDP answer is a few hundred bytes
MAX_HEADERS = 64
MAX_LOCATION = 1024
MAX_LOCATIONS_PER_HOST = 4
MAX_DESCRIPTION = 256 * 1024
MAX_DEVICES = 32  # embedded devices read from one description
USER_AGENT = "camscan UPnP/1.1"
# UDA 1.1 §2.3 <device> children -> Evidence keys (docs/evidence.md)
DESCRIPTION_FIELDS = {
    "manufacturer": "upnp.manufacturer",
    "manufacturerURL": "upnp.manufacturer_url",
    "modelName": "upnp.model_name",
    "modelNumber": "upnp.model_number",
    "modelDescription": "upnp.model_description",
    "friendlyName": "upnp.friendly_name",
}
_PARSE_ERRORS = (ET.ParseError, DefusedXmlException, ValueError, UnicodeError, LookupError, RecursionError)


def build_msearch(st: str, mx: int = 1, host: str | None = None) -> bytes:
    """An M-SEARCH for `st`: to the multicast group with MX (the devices spread their answers over MX
    seconds), or, with `host`, the unicast form of UDA 1.1 section 1.3.2: HOST is the device and there is no
    MX, so the device answers at once instead of after a random wait the listening window may not cover."""
    lines = ["M-SEARCH * HTTP/1.1", f"HOST: {host or GROUP}:{PORT}", 'MAN: "ssdp:discover"']
    if host is None:
        lines.append(f"MX: {mx}")
    lines += [f"ST: {st}", f"USER-AGENT: {USER_AGENT}", "", ""]
    return "\r\n".join(lines).encode()


def _headers(data: bytes) -> dict[str, str] | None:
    """Headers of an M-SEARCH answer or a NOTIFY (names upper-cased, first one wins); None for anything else."""
    if len(data) > MAX_ANSWER:
        return None
    text = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = text.replace("\r\n", "\n").split("\n")
    first = lines[0].strip().upper()
    if not (first.startswith("HTTP/1.") and first.split()[1:2] == ["200"]) and not first.startswith("NOTIFY "):
        return None  # M-SEARCHes (ours and others'), garbage
    headers: dict[str, str] = {}
    for line in lines[1 : MAX_HEADERS + 1]:
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers.setdefault(name.strip().upper(), value.strip())
    if first.startswith("NOTIFY") and headers.get("NTS", "").lower() == "ssdp:byebye":
        return None
    return headers


def parse_response(data: bytes, source_ip: str = "") -> list[Evidence]:
    """`ssdp.server`, `ssdp.st` (ST of an answer, NT of a NOTIFY) and `ssdp.usn` (UDA 1.1 §1.1.2: the UDN, then
    `::` and the target) from one datagram; [] for anything else."""
    try:
        headers = _headers(data)
    except Exception:  # a parser returns nothing on input it cannot read
        return []
    if headers is None:
        return []
    out = []
    if headers.get("SERVER"):
        out.append(evidence("ssdp.server", headers["SERVER"], SOURCE))
    st = headers.get("ST") or headers.get("NT")
    if st:
        out.append(evidence("ssdp.st", st, SOURCE))
    if headers.get("USN"):
        out.append(evidence("ssdp.usn", headers["USN"], SOURCE))
    return out


def parse_location(data: bytes) -> str | None:
    """The LOCATION header of an answer (kept for the description fetch; not Evidence)."""
    try:
        headers = _headers(data)
    except Exception:  # a parser returns nothing on input it cannot read
        return None
    location = (headers or {}).get("LOCATION", "")
    return location if 0 < len(location) <= MAX_LOCATION else None


def fetchable(location: str, source_ip: str) -> tuple[str, int, str, bool] | None:
    """(host, port, path, tls) when `location` is an http(s) URL on the very address that answered, else
    None: a device never makes us fetch from anywhere else (another host, a name, a different address)."""
    try:
        url = urlsplit(location.strip())
        if url.scheme.lower() not in ("http", "https") or url.username or url.password:
            return None
        host = url.hostname or ""
        if ipaddress.ip_address(host) != ipaddress.ip_address(source_ip) or host != source_ip:
            return None
        tls = url.scheme.lower() == "https"
        port = url.port or (443 if tls else 80)
    except ValueError:
        return None
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    if any(ch in path for ch in "\r\n ") or not path.startswith("/"):
        return None
    return host, port, path, tls


def _text(element: ET.Element) -> str:
    return "".join(element.itertext()).strip()


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _devices(root: ET.Element) -> list[ET.Element]:
    """The root device, then its embedded devices (deviceList/device, depth first), at most MAX_DEVICES."""
    first = next((c for c in root if _local(c.tag) == "device"), None)
    if first is None:
        return []
    out: list[ET.Element] = []
    stack = [first]
    while stack and len(out) < MAX_DEVICES:
        device = stack.pop()
        out.append(device)
        embedded: list[ET.Element] = []
        for child in device:
            if _local(child.tag) == "deviceList":
                embedded += [d for d in child if _local(d.tag) == "device"]
        stack.extend(reversed(embedded))
    return out


def parse_description(xml: bytes) -> list[Evidence]:
    """`upnp.*` Evidence from a UPnP device description: the root device's fields, and an embedded device's
    field only when it differs from what came before. [] for anything malformed or oversized; never raises."""
    if len(xml) > MAX_DESCRIPTION:
        return []
    start = xml.find(b"<")
    if start < 0:
        return []
    try:
        root = SafeET.fromstring(xml[start:], forbid_dtd=True)
        if _local(root.tag) != "root":
            return []
        out: list[Evidence] = []
        seen: set[tuple[str, str]] = set()
        for device in _devices(root):
            for child in device:
                key = DESCRIPTION_FIELDS.get(_local(child.tag))
                value = _text(child) if key else ""
                if key and value and (key, value) not in seen:
                    seen.add((key, value))
                    out.append(evidence(key, value, SOURCE))
        return out
    except _PARSE_ERRORS:
        return []
    except Exception:  # a parser returns nothing on input it cannot read
        return []


def description_body(resp: ParsedResponse | None) -> bytes | None:
    """The body of a 200 answer to the description fetch (framing already undone by the HTTP parser)."""
    if resp is None or resp.status != 200:
        return None
    return resp.body


async def fetch(ctx: ScanContext, host: str, port: int, path: str, tls: bool) -> bytes | None:
    """GET one description through the HTTP probe's client (the same TLS leniency, framing and bounds): at
    most MAX_DESCRIPTION bytes of body, ctx.timeout in all. Never raises."""
    deadline = time.monotonic() + ctx.timeout
    limit = http.MAX_HEAD + MAX_DESCRIPTION
    resp = await http.fetch(ctx, host, port, path, tls=tls, deadline=deadline, limit=limit, max_body=MAX_DESCRIPTION)
    return description_body(resp)


async def discover(ctx: ScanContext, unicast: list[str]) -> list[Observation]:
    locations: dict[str, list[str]] = {}
    fetches: list[asyncio.Task[tuple[str, list[Evidence]]]] = []
    loop = asyncio.get_running_loop()

    async def describe(ip: str, location: str) -> tuple[str, list[Evidence]]:
        target = fetchable(location, ip)
        if target is None:
            ctx.log.info("SSDP: %s gave LOCATION %r on another host; not fetched", ip, location[:200])
            return ip, []
        body = await fetch(ctx, *target)
        return ip, parse_description(body) if body else []

    def parse(data: bytes, source_ip: str) -> list[Evidence]:
        items = parse_response(data, source_ip)
        location = parse_location(data) if items else None
        if location and ctx.allowed(source_ip):
            known = locations.setdefault(source_ip, [])
            if location not in known and len(known) < MAX_LOCATIONS_PER_HOST:
                known.append(location)
                # fetch the description now, while the listening window is still open
                fetches.append(loop.create_task(describe(source_ip, location)))
        return items

    def probe_for(st: str) -> Callable[[], bytes]:
        return lambda: build_msearch(st)

    def unicast_probe_for(st: str) -> Callable[[str, tuple[str, int]], bytes]:
        return lambda ip, _local: build_msearch(st, host=ip)

    groups = await asyncio.gather(
        *(
            udp_discovery(
                ctx,
                name="SSDP",
                port=PORT,
                group=GROUP,
                probe=probe_for(st),
                parse=parse,
                unicast=unicast,
                unicast_probe=unicast_probe_for(st),
            )
            for st in SEARCH_TARGETS
        )
    )
    by_ip: dict[str, Observation] = {}
    for group in groups:
        for obs in group:
            by_ip.setdefault(obs.ip, Observation(obs.ip)).evidence.extend(obs.evidence)
    for ip, items in await asyncio.gather(*fetches):
        by_ip.setdefault(ip, Observation(ip)).evidence.extend(items)
    for obs in by_ip.values():
        obs.evidence = unique_evidence(obs.evidence)
    return [obs for obs in by_ip.values() if obs.evidence]
