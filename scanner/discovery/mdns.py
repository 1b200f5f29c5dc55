"""mDNS / DNS-SD (RFC 6762, RFC 6763): the services a host announces, their instances, TXT and host name.

Two paths:
- Browsing with python-zeroconf, pinned to the scan interface's address (never all interfaces), only when
  the scope allows multicast: service type enumeration (`_services._dns-sd._udp.local.`, RFC 6763 §9) plus
  a fixed list of camera and look-alike types, for about ctx.listen seconds; every instance found is
  resolved (SRV, TXT, A) and reported for its in-scope addresses.
- A direct query to port 5353 of each unicast target (RFC 6762 §5.1 "legacy unicast" from an ephemeral
  port, QU bit set), for routed networks and the loopback lab: PTR questions for the enumeration and the
  fixed types; the answer, with its additional records, is parsed by `parse_mdns_answer`.

    mdns.service   _axis-video._tcp.local.
    mdns.instance  AXIS M1065-LW - ACCC8E123431._axis-video._tcp.local.
    mdns.txt       macaddress=ACCC8E123431
    hostname       axis-accc8e123431
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from typing import Any

from zeroconf import BadTypeInNameException, IPVersion, ServiceStateChange
from zeroconf import Error as ZeroconfError
from zeroconf._dns import DNSPointer, DNSQuestion, DNSService, DNSText
from zeroconf._protocol.incoming import DNSIncoming
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf._utils.name import service_type_name
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from scanner.discovery.udp import udp_discovery
from scanner.model import Evidence, Observation, evidence
from scanner.netctx import ScanContext

PORT = 5353
SOURCE = "mdns"
ENUMERATION = "_services._dns-sd._udp.local."
# Camera makers' own types and the look-alikes that share a LAN with them (printers, NAS, media players,
# workstations): knowing that a host is a printer is as useful as knowing that it is a camera.
SERVICE_TYPES = (
    "_axis-video._tcp.local.",  # Axis (Home Assistant axis manifest; UniversalScanner Axis.cs)
    "_http._tcp.local.",
    "_rtsp._tcp.local.",
    "_onvif._tcp.local.",
    "_hap._tcp.local.",  # HomeKit cameras and doorbells
    "_ipp._tcp.local.",
    "_ipps._tcp.local.",
    "_printer._tcp.local.",
    "_pdl-datastream._tcp.local.",
    "_smb._tcp.local.",
    "_afpovertcp._tcp.local.",
    "_workstation._tcp.local.",
    "_device-info._tcp.local.",
    "_googlecast._tcp.local.",
    "_airplay._tcp.local.",
    "_raop._tcp.local.",
    "_ssh._tcp.local.",
    "_sftp-ssh._tcp.local.",
    "_nvstream._tcp.local.",
)
MAX_ANSWER = 65535
MAX_RECORDS = 256  # records read from one answer
MAX_TXT_ENTRIES = 64  # per TXT record
MAX_EXTRA_TYPES = 32  # types learnt from the enumeration and browsed too
MAX_INSTANCES = 128  # instances resolved in one scan
TYPE_PTR, TYPE_CLASS_IN = 12, 1  # RFC 1035 §3.2.2, §3.2.4


def _strip_local(name: str) -> str:
    """`axis-accc8e123431.local.` -> `axis-accc8e123431`; "" for a name of nothing but blanks and dots."""
    name = name.strip().rstrip(".").strip()
    return name[: -len(".local")] if name.lower().endswith(".local") else name


def parse_txt(raw: bytes) -> list[str]:
    """TXT character-strings (RFC 6763 §6): `key=value` entries as sent; an empty record gives []."""
    out: list[str] = []
    pos = 0
    while pos < len(raw) and len(out) < MAX_TXT_ENTRIES:
        length = raw[pos]
        entry = raw[pos + 1 : pos + 1 + length]
        pos += 1 + length
        text = entry.decode("utf-8", "replace").strip()
        if text and not text.startswith("="):  # RFC 6763 §6.4: a missing key is silently ignored
            out.append(text)
    return out


def _is_service_type(name: str) -> bool:
    """`_axis-video._tcp.local.`, not the enumeration name itself and not an instance or host name."""
    labels = name.rstrip(".").split(".")
    return (
        len(labels) == 3 and labels[0].startswith("_") and labels[1].lower() in ("_tcp", "_udp")
        and name.lower() != ENUMERATION
    )  # fmt: skip


def parse_mdns_answer(data: bytes, source_ip: str = "") -> list[Evidence]:
    """Evidence from one mDNS response: service types (enumeration and instance PTRs), instance names, TXT
    entries of instances, the SRV target as host name. [] for queries, garbage, oversize; never raises."""
    if len(data) > MAX_ANSWER or len(data) < 12:
        return []
    try:
        msg = DNSIncoming(data)
        if not msg.valid or not msg.is_response():
            return []
        records = msg.answers()[:MAX_RECORDS]
        out: list[Evidence] = []
        for rec in records:
            if isinstance(rec, DNSPointer):
                if rec.name.lower() == ENUMERATION and _is_service_type(rec.alias):
                    out.append(evidence("mdns.service", rec.alias, SOURCE))
                elif _is_service_type(rec.name) and rec.alias.lower().endswith("." + rec.name.lower()):
                    out.append(evidence("mdns.service", rec.name, SOURCE))
                    out.append(evidence("mdns.instance", rec.alias, SOURCE))
            elif isinstance(rec, DNSService):
                host = _strip_local(rec.server)
                if host:
                    out.append(evidence("hostname", host, SOURCE))
            elif isinstance(rec, DNSText) and not _is_service_type(rec.name):
                out += [evidence("mdns.txt", t, SOURCE) for t in parse_txt(rec.text)]
    except Exception:  # a parser returns nothing on input it cannot read
        return []
    unique: dict[tuple[str, str], Evidence] = {}
    for e in out:
        unique.setdefault((e.key, e.value), e)
    return list(unique.values())


def build_query(query_id: int | None = None) -> bytes:
    """One DNS-SD query: PTR for the enumeration and for every fixed type, QU bit set (RFC 6762 §5.4), and a
    query ID as a legacy resolver sends (RFC 6762 §6.7: the answer repeats it)."""
    out = DNSOutgoing(0, multicast=True)  # multicast=True only makes zeroconf write the QU bit (and ID 0)
    for name in (ENUMERATION, *SERVICE_TYPES):
        question = DNSQuestion(name, TYPE_PTR, TYPE_CLASS_IN)
        question.unicast = True
        out.add_question(question)
    packet = out.packets()[0]
    qid = random.randint(1, 0xFFFF) if query_id is None else query_id
    return struct.pack("!H", qid) + packet[2:]


def _service_evidence(info: AsyncServiceInfo) -> list[Evidence]:
    out = [evidence("mdns.service", info.type, SOURCE), evidence("mdns.instance", info.name, SOURCE)]
    out += [evidence("mdns.txt", t, SOURCE) for t in parse_txt(info.text or b"")]
    host = _strip_local(info.server or "")
    if host:
        out.append(evidence("hostname", host, SOURCE))
    return out


async def _browse(ctx: ScanContext, interface_ip: str) -> list[Observation]:
    """Browse and resolve with zeroconf pinned to `interface_ip`; the instance is always closed."""
    found: dict[str, str] = {}  # instance name -> its type
    browsed: set[str] = set()
    browsers: list[AsyncServiceBrowser] = []
    azc = AsyncZeroconf(interfaces=[interface_ip], ip_version=IPVersion.V4Only)
    try:
        zc = azc.zeroconf

        def on_change(zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange) -> None:
            if state_change is not ServiceStateChange.Added:
                return
            if service_type.lower() == ENUMERATION:
                if len(browsed) < len(SERVICE_TYPES) + MAX_EXTRA_TYPES:
                    start(name)
            elif len(found) < MAX_INSTANCES:
                found.setdefault(name, service_type)

        def start(stype: str) -> None:
            try:
                stype = service_type_name(stype, strict=False)
            except (BadTypeInNameException, ZeroconfError, ValueError):
                return
            if stype.lower() in browsed:
                return
            browsed.add(stype.lower())
            try:
                browsers.append(AsyncServiceBrowser(zc, stype, handlers=[on_change]))
            except (BadTypeInNameException, ZeroconfError, ValueError, RuntimeError) as exc:
                ctx.log.debug("mDNS: cannot browse %r: %s", stype, exc)

        # zeroconf schedules its own queries (a few per type in the first seconds); charge them up front
        await ctx.rate.acquire(min(int(ctx.rate.capacity), len(SERVICE_TYPES) + 1))
        for stype in (ENUMERATION, *SERVICE_TYPES):
            start(stype)
        await asyncio.sleep(ctx.listen)
        for browser in browsers:
            await browser.async_cancel()
        browsers.clear()

        async def resolve(name: str, stype: str) -> AsyncServiceInfo | None:
            info = AsyncServiceInfo(stype, name)
            if not info.load_from_cache(zc):
                await ctx.rate.acquire()
                if not await info.async_request(zc, int(min(ctx.timeout, 1.5) * 1000)):
                    return None
            return info

        infos = await asyncio.gather(*(resolve(n, t) for n, t in found.items()), return_exceptions=True)
        by_ip: dict[str, Observation] = {}
        for info in infos:
            if not isinstance(info, AsyncServiceInfo):
                continue
            for ip in info.parsed_addresses(IPVersion.V4Only):
                if ctx.allowed(ip):
                    by_ip.setdefault(ip, Observation(ip)).evidence.extend(_service_evidence(info))
        return list(by_ip.values())
    finally:
        for browser in browsers:
            with contextlib.suppress(Exception):
                await browser.async_cancel()
        await azc.async_close()


def _merge(groups: list[list[Observation]]) -> list[Observation]:
    by_ip: dict[str, Observation] = {}
    for group in groups:
        for obs in group:
            by_ip.setdefault(obs.ip, Observation(obs.ip)).evidence.extend(obs.evidence)
    for obs in by_ip.values():
        unique: dict[tuple[str, str], Evidence] = {}
        for e in obs.evidence:
            unique.setdefault((e.key, e.value), e)
        obs.evidence = list(unique.values())
    return list(by_ip.values())


async def discover(ctx: ScanContext, unicast: list[str]) -> list[Observation]:
    jobs = []
    if ctx.scope.multicast_allowed and ctx.scope.interface_ip:
        jobs.append(_browse(ctx, ctx.scope.interface_ip))
    if unicast:
        jobs.append(
            udp_discovery(
                ctx,
                name="mDNS",
                port=PORT,
                group=None,
                probe=build_query,
                parse=parse_mdns_answer,
                unicast=unicast,
                repeats=1,
            )
        )
    results = await asyncio.gather(*jobs, return_exceptions=True)
    groups: list[list[Observation]] = []
    for result in results:
        if isinstance(result, BaseException):
            ctx.errors.append(f"mDNS: {result.__class__.__name__}: {str(result)[:200]}")
        else:
            groups.append(result)
    return _merge(groups)
