"""TCP port check of the camera port set with asyncio connects: `port.open` Evidence, no banner read."""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Iterable

from scanner.camera_ports import CAMERA_PORTS
from scanner.model import Observation, evidence
from scanner.netctx import ScanContext

CONCURRENCY = 256
SOURCE = "ports"


async def check(ctx: ScanContext, ip: str, port: int, sem: asyncio.Semaphore) -> bool | None:
    """True open, False closed (refused), None no answer (filtered, or no host)."""
    if not ctx.allowed(ip):
        return None
    async with sem:
        await ctx.rate.acquire()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout=ctx.timeout / 2)
        except TimeoutError:
            return None
        except OSError as exc:
            return False if exc.errno == errno.ECONNREFUSED else None
        writer.close()
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError, OSError):
            await asyncio.wait_for(writer.wait_closed(), timeout=0.5)
        return True


async def scan(ctx: ScanContext, hosts: Iterable[str], ports: Iterable[int] = CAMERA_PORTS) -> list[Observation]:
    sem = asyncio.Semaphore(CONCURRENCY)
    hosts = [h for h in hosts if ctx.allowed(h)]
    port_list = list(dict.fromkeys(ports))
    jobs = [(ip, port) for ip in hosts for port in port_list]
    results = await asyncio.gather(*(check(ctx, ip, port, sem) for ip, port in jobs))
    found: dict[str, Observation] = {}
    for (ip, port), state in zip(jobs, results, strict=True):
        if state:
            found.setdefault(ip, Observation(ip)).evidence.append(evidence("port.open", f"{port}/tcp", SOURCE))
    return list(found.values())
