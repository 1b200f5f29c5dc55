"""The shape every UDP discovery protocol shares (WS-Discovery, SSDP, SADP, DHIP): send a probe to the
multicast group on the scan interface (when the scope allows it) and to each target by unicast, listen for
a while, and turn every answer from an in-scope address into Evidence with the protocol's pure parser."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterable

from scanner.model import Evidence, Observation, unique_evidence
from scanner.netctx import ScanContext, group_listener, multicast_sender, unicast_sender

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
    hear_group: bool = False,
    unicast_probe: Callable[[str, tuple[str, int]], bytes] | None = None,
) -> list[Observation]:
    """Probe, listen, parse. `probe()` is called for each send (fresh message ids); `unicast_probe(ip, local)`,
    when given, makes the datagram sent to one target instead (for a protocol whose unicast form differs, or
    that names its own address and port in the message: `local` is the socket's bound address and port). With
    `hear_group`, answers sent to the multicast group (not to the asker) are heard too. Answers from outside
    the scope, and our own datagrams, are dropped before parsing; every answer is parsed by
    `parse(data, source_ip)`."""
    loop = asyncio.get_running_loop()
    use_multicast = group is not None and ctx.scope.multicast_allowed
    try:
        sock = multicast_sender(ctx) if use_multicast else unicast_sender(ctx)
    except OSError as exc:
        ctx.errors.append(f"{name}: cannot open a socket: {exc}")
        return []
    listener = None
    if use_multicast and hear_group and group is not None:
        try:
            listener = group_listener(ctx, group, port)
        except OSError as exc:
            ctx.limitations.append(f"{name}: cannot hear {group}:{port} ({exc.strerror or exc}); only direct answers")
    socks = [sock] if listener is None else [sock, listener]
    found: dict[str, Observation] = {}
    dropped = 0
    pending: dict[asyncio.Task[tuple[bytes, tuple[str, int]]], socket.socket] = {}
    try:
        targets = [ip for ip in unicast if ctx.allowed(ip)]
        local: tuple[str, int] = sock.getsockname()[:2]
        for i in range(repeats):
            if use_multicast and group is not None:
                await ctx.rate.acquire()
                await loop.sock_sendto(sock, probe(), (group, port))
            if i == 0:  # unicast once per target: for routed networks where multicast does not reach
                for ip in targets:
                    await ctx.rate.acquire()
                    with contextlib.suppress(OSError):
                        datagram = unicast_probe(ip, local) if unicast_probe else probe()
                        await loop.sock_sendto(sock, datagram, (ip, port))
            if i + 1 < repeats:
                await asyncio.sleep(0.05)
        deadline = time.monotonic() + (ctx.listen if listen is None else listen)
        pending = {loop.create_task(loop.sock_recvfrom(s, MAX_DATAGRAM)): s for s in socks}
        while (remaining := deadline - time.monotonic()) > 0:
            done, _ = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                break
            for task in done:
                s = pending.pop(task)
                pending[loop.create_task(loop.sock_recvfrom(s, MAX_DATAGRAM))] = s
                try:
                    data, addr = task.result()
                except OSError:
                    continue  # e.g. ICMP port unreachable surfacing as ECONNREFUSED
                ip = addr[0]
                if ip == ctx.scope.interface_ip:
                    continue  # our own probe, heard on the group
                if not ctx.allowed(ip):
                    dropped += 1
                    continue
                items = parse(data, ip)
                if items:
                    found.setdefault(ip, Observation(ip)).evidence.extend(items)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for s in socks:
            s.close()
    if dropped:
        ctx.log.info("%s: %d answers from outside the scope dropped", name, dropped)
    for obs in found.values():  # the same answer twice (two probes) is one piece of evidence
        obs.evidence = unique_evidence(obs.evidence)
        obs.mac = obs.mac or next((e.value for e in obs.evidence if e.key == "mac"), None)
    return list(found.values())
