"""The shape every UDP discovery protocol shares (WS-Discovery, SSDP, SADP, DHIP): send a probe to the
multicast group on the scan interface (when the scope allows it) and to each target by unicast, listen for
a while, and turn every answer from an in-scope address into Evidence with the protocol's pure parser."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

from scanner.model import Evidence
from scanner.netctx import Observation, ScanContext, multicast_sender, unicast_sender, unique_evidence

MAX_DATAGRAM = 65535

Parser = Callable[[bytes, str], list[Evidence]]


async def udp_discovery(
    ctx: ScanContext,
    *,
    name: str,
    port: int,
    group: str | None,
    probe: Callable[[], bytes],
    parse: Parser,
    unicast: Iterable[str] = (),
    repeats: int = 2,
    listen: float | None = None,
) -> list[Observation]:
    """Probe, listen, parse. `probe()` is called for each send (fresh message ids). Answers from outside
    the scope are dropped before parsing; every answer is parsed by `parse(data, source_ip)`."""
    loop = asyncio.get_running_loop()
    use_multicast = group is not None and ctx.scope.multicast_allowed
    try:
        sock = multicast_sender(ctx) if use_multicast else unicast_sender(ctx)
    except OSError as exc:
        ctx.errors.append(f"{name}: cannot open a socket: {exc}")
        return []
    found: dict[str, Observation] = {}
    dropped = 0
    try:
        targets = [ip for ip in unicast if ctx.allowed(ip)]
        for i in range(repeats):
            if use_multicast and group is not None:
                await ctx.rate.acquire()
                await loop.sock_sendto(sock, probe(), (group, port))
            if i == 0:  # unicast once per target: for routed networks where multicast does not reach
                for ip in targets:
                    await ctx.rate.acquire()
                    with contextlib.suppress(OSError):
                        await loop.sock_sendto(sock, probe(), (ip, port))
            if i + 1 < repeats:
                await asyncio.sleep(0.05)
        deadline = time.monotonic() + (ctx.listen if listen is None else listen)
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, MAX_DATAGRAM), timeout=remaining)
            except TimeoutError:
                break
            except OSError:
                continue  # e.g. ICMP port unreachable surfacing as ECONNREFUSED
            ip = addr[0]
            if not ctx.allowed(ip):
                dropped += 1
                continue
            items = parse(data, ip)
            if items:
                found.setdefault(ip, Observation(ip)).evidence.extend(items)
    finally:
        sock.close()
    if dropped:
        ctx.log.info("%s: %d answers from outside the scope dropped", name, dropped)
    for obs in found.values():  # the same answer twice (two probes) is one piece of evidence
        obs.evidence = unique_evidence(obs.evidence)
        obs.mac = obs.mac or next((e.value for e in obs.evidence if e.key == "mac"), None)
    return list(found.values())
