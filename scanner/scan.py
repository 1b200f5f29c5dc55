"""`camscan scan`: discover who is there, probe what they are, merge what was seen into hosts.

Phases (the backends are those of scanner.backends; each has its own timeout, and a failing backend becomes
a line in errors/limitations):
  1. discovery, concurrently: ARP (or the neighbour table), WS-Discovery, SSDP, mDNS, SADP, DHIP
  2. ports: TCP connect check of the camera ports (camera_ports.PORTS) on every live host (every target when
     no layer-2 discovery is possible: routed networks, loopback)
  3. probes per host and open port, as the port table says: HTTP(S), TLS certificate, RTSP, ONVIF, banners;
     `--nmap` adds nmap -sV
  4. merge by MAC, then by address; the neighbour table fills in MACs the kernel learnt on the way
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from scanner.backends import DISCOVERY, METHODS, PROBES
from scanner.camera_ports import PORTS
from scanner.model import Evidence, Host, Observation, merge_observations
from scanner.netctx import ScanContext

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
    chosen = [b for b in DISCOVERY if b.name in methods and not b.live_only]
    jobs = [_timed(b.name.upper(), b.run(ctx, targets, unicast), ctx) for b in chosen]
    results = await asyncio.gather(*jobs)
    return [o for group in results for o in group]


async def probe_host(ctx: ScanContext, ip: str, open_ports: set[int], methods: set[str]) -> list[Evidence]:
    """Every chosen probe on the open ports the port table gives it (a per-host probe on the first one)."""
    jobs: list[Awaitable[list[Evidence]]] = []
    rows = [row for row in PORTS if row.number in open_ports]  # in table order: the per-host preference
    for backend in PROBES:
        if backend.name not in methods:
            continue
        wanted = [row for row in rows if backend.name in row.probes]
        for row in wanted[:1] if backend.per_host else wanted:
            jobs.append(backend.run(ctx, ip, row))
    results = await asyncio.gather(*jobs, return_exceptions=True)
    out: list[Evidence] = []
    for r in results:
        if isinstance(r, BaseException):
            ctx.errors.append(f"{ip}: probe failed: {r.__class__.__name__}")
        else:
            out.extend(r)
    return out


async def run_scan(
    ctx: ScanContext,
    methods: Iterable[str] = METHODS,
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

    alive = sorted(live)
    asked = [
        _timed(b.name.upper(), b.run(ctx, alive, alive), ctx) for b in DISCOVERY if b.live_only and b.name in chosen
    ]
    probed = asyncio.gather(*(one(ip) for ip in alive if open_ports.get(ip)))
    per_host, answers = await asyncio.gather(probed, asyncio.gather(*asked))
    observations += per_host
    observations += [o for group in answers for o in group]
    phases["probes"] = time.monotonic() - t0

    if use_nmap:
        t0 = time.monotonic()
        progress("nmap", len(live), 0)
        observations += await _timed("nmap", nmap.scan(ctx, open_ports), ctx)
        phases["nmap"] = time.monotonic() - t0

    if "arp" in chosen:  # MACs the kernel learnt while we talked to the hosts
        observations += [o for o in arp.neighbour_table(ctx) if o.ip in live]
    hosts = merge_observations(observations)
    used = [m for m in METHODS if m in chosen] + (["nmap"] if use_nmap else [])
    return ScanResult(hosts=hosts, methods=used, phases=phases, packets=ctx.rate.sent)
