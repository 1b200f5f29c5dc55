"""`camscan scan`: discover who is there, probe what they are, merge what was seen into hosts.

Phases (each backend with its own timeout; a failing backend becomes a line in errors/limitations):
  1. discovery, concurrently: ARP (or the neighbour table), WS-Discovery, SSDP, mDNS, SADP, DHIP
  2. ports: TCP connect check of the camera port set on every live host (every target when no layer-2
     discovery is possible: routed networks, loopback)
  3. probes per host and open port: HTTP(S), TLS certificate, RTSP, ONVIF, banners; `--nmap` adds nmap -sV
  4. merge by MAC, then by address; the neighbour table fills in MACs the kernel learnt on the way
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from scanner.model import Evidence
from scanner.netctx import Observation, ScanContext, unique_evidence
from scanner.report.build import Host

ALL_METHODS = ("arp", "wsd", "mdns", "ssdp", "sadp", "dhip", "ports", "http", "tls", "rtsp", "onvif", "banners")
HTTP_PORTS = (80, 8080, 8081, 5000, 2020, 8899)
HTTPS_PORTS = (443, 8443, 5001)
RTSP_PORTS = (554, 8554)
BANNER_PORTS = (21, 22, 23)
HOST_CONCURRENCY = 64

Progress = Callable[[str, int, int], None]


@dataclass
class ScanResult:
    hosts: list[Host]
    methods: list[str]
    phases: dict[str, float] = field(default_factory=dict)
    packets: int = 0


def _noop(phase: str, found: int, done: int) -> None:
    return None


async def _timed(name: str, coro: Awaitable[list[Observation]], ctx: ScanContext) -> list[Observation]:
    try:
        return await coro
    except Exception as exc:
        ctx.errors.append(f"{name}: {exc.__class__.__name__}: {str(exc)[:200]}")
        return []


async def discovery(ctx: ScanContext, methods: set[str], targets: list[str]) -> list[Observation]:
    from scanner.discovery import arp, dhip, mdns, sadp, ssdp, wsd

    scope = ctx.scope
    on_link: set[str] = set()
    if scope.interface_ip and scope.prefix is not None and scope.interface != "lo":
        net = ipaddress.ip_network(f"{scope.interface_ip}/{scope.prefix}", strict=False)
        on_link = {ip for ip in targets if ipaddress.ip_address(ip) in net}
    # Unicast probes go where multicast cannot: every target when multicast is not allowed here,
    # otherwise only the routed (off-link) ones.
    unicast = [ip for ip in targets if not scope.multicast_allowed or ip not in on_link]
    if not scope.multicast_allowed:
        ctx.limitations.append(
            "multicast discovery (WS-Discovery, SSDP, mDNS, SADP, DHIP) was not used: the scope does not cover the "
            "whole subnet of the scan interface, or the interface is loopback; unicast probes were sent instead"
        )
    jobs: list[Awaitable[list[Observation]]] = []
    if "arp" in methods:
        jobs.append(_timed("ARP", arp.sweep(ctx, targets), ctx))
    for name, mod in (("wsd", wsd), ("ssdp", ssdp), ("mdns", mdns), ("sadp", sadp), ("dhip", dhip)):
        if name in methods:
            jobs.append(_timed(name.upper(), mod.discover(ctx, unicast), ctx))
    results = await asyncio.gather(*jobs)
    return [o for group in results for o in group]


async def probe_host(ctx: ScanContext, ip: str, open_ports: set[int], methods: set[str]) -> list[Evidence]:
    from scanner.probes import banner, http, onvif, rtsp, tls

    jobs: list[Awaitable[list[Evidence]]] = []
    for port in sorted(open_ports):
        if "http" in methods and port in HTTP_PORTS:
            jobs.append(http.probe(ctx, ip, port, tls=False))
        if port in HTTPS_PORTS:
            if "http" in methods:
                jobs.append(http.probe(ctx, ip, port, tls=True))
            if "tls" in methods:
                jobs.append(tls.probe(ctx, ip, port))
        if "rtsp" in methods and port in RTSP_PORTS:
            jobs.append(rtsp.probe(ctx, ip, port))
        if "banners" in methods and port in BANNER_PORTS:
            jobs.append(banner.probe(ctx, ip, port))
    if "onvif" in methods and ctx.credentials is not None:
        onvif_port = next((p for p in (80, 8080, 2020, 8899, 8000) if p in open_ports), None)
        if onvif_port is not None:
            jobs.append(onvif.device_information(ctx, ip, onvif_port, ctx.credentials))
    results = await asyncio.gather(*jobs, return_exceptions=True)
    out: list[Evidence] = []
    for r in results:
        if isinstance(r, BaseException):
            ctx.errors.append(f"{ip}: probe failed: {r.__class__.__name__}")
        else:
            out.extend(r)
    return out


def merge(observations: Iterable[Observation]) -> list[Host]:
    """One Host per device: observations joined by address, then addresses joined by MAC."""
    by_ip: dict[str, Host] = {}
    for obs in observations:
        host = by_ip.setdefault(obs.ip, Host(id=obs.ip, ip=obs.ip))
        host.evidence.extend(obs.evidence)
        if obs.mac and not host.mac:
            host.mac = obs.mac
    by_mac: dict[str, Host] = {}
    merged: list[Host] = []
    for ip in sorted(by_ip, key=lambda a: ipaddress.ip_address(a)):
        host = by_ip[ip]
        host.evidence = unique_evidence(host.evidence)
        if host.mac and host.mac in by_mac:  # the same device on a second address
            first = by_mac[host.mac]
            first.evidence = unique_evidence(first.evidence + host.evidence)
            first.other_ips.append(ip)
            continue
        if host.mac:
            by_mac[host.mac] = host
        merged.append(host)
    return merged


async def run_scan(
    ctx: ScanContext,
    methods: Iterable[str] = ALL_METHODS,
    use_nmap: bool = False,
    progress: Progress = _noop,
) -> ScanResult:
    from scanner.discovery import arp, nmap, ports

    chosen = set(methods)
    phases: dict[str, float] = {}
    targets = list(ctx.scope.hosts())
    observations: list[Observation] = []

    t0 = time.monotonic()
    progress("discovery", 0, 0)
    observations += await discovery(ctx, chosen, targets)
    live = {o.ip for o in observations if ctx.allowed(o.ip)}
    phases["discovery"] = time.monotonic() - t0
    progress("ports", len(live), 0)

    t0 = time.monotonic()
    open_ports: dict[str, set[int]] = {}
    if "ports" in chosen:
        l2_done = "arp" in chosen and bool(arp.on_link(ctx, targets)) and len(arp.on_link(ctx, targets)) == len(targets)
        candidates = sorted(live) if l2_done else targets
        port_obs = await _timed("ports", ports.scan(ctx, candidates), ctx)
        for o in port_obs:
            open_ports[o.ip] = {int(e.value.split("/")[0]) for e in o.evidence}
        observations += port_obs
    live |= set(open_ports)
    phases["ports"] = time.monotonic() - t0
    progress("probes", len(live), 0)

    t0 = time.monotonic()
    sem = asyncio.Semaphore(HOST_CONCURRENCY)
    done = 0

    async def one(ip: str) -> Observation:
        nonlocal done
        async with sem:
            ev = await probe_host(ctx, ip, open_ports.get(ip, set()), chosen)
        done += 1
        progress("probes", len(live), done)
        return Observation(ip, ev)

    observations += await asyncio.gather(*(one(ip) for ip in sorted(live) if open_ports.get(ip)))
    phases["probes"] = time.monotonic() - t0

    if use_nmap:
        t0 = time.monotonic()
        progress("nmap", len(live), 0)
        observations += await _timed("nmap", nmap.scan(ctx, open_ports), ctx)
        phases["nmap"] = time.monotonic() - t0

    if "arp" in chosen:  # MACs the kernel learnt while we talked to the hosts
        observations += [o for o in arp.neighbour_table(ctx) if o.ip in live]
    hosts = merge(observations)
    used = [m for m in ALL_METHODS if m in chosen] + (["nmap"] if use_nmap else [])
    return ScanResult(hosts=hosts, methods=used, phases=phases, packets=ctx.rate.sent)
