"""One persona's process: start every service its persona file enables, say READY, run until SIGTERM.

    python -m scanner.lab.serve --persona FILE --ip 10.77.0.11 --iface lab0 --ready FILE

The lab runs it inside the persona's network namespace (netns mode) or on 127.77.0.x (loopback mode).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scanner.lab.persona import load_persona
from scanner.lab.responders.base import Context

log = logging.getLogger("camscan.lab.serve")


async def start_services(ctx: Context) -> list[Any]:
    """Start everything the persona enables; return what must be closed at shutdown."""
    svc = ctx.persona.services
    closers: list[Any] = []
    if svc.onvif is not None:
        from scanner.lab.responders import onvif

        onvif.register(ctx)
    if svc.ssdp is not None:
        from scanner.lab.responders import ssdp

        ssdp.register(ctx)
    from scanner.lab.responders import http, rtsp, tcp

    for web in (svc.http, svc.https):
        if web is not None:
            closers.append(await http.serve(ctx, web))
    if svc.rtsp is not None:
        closers.append(await rtsp.serve(ctx, svc.rtsp))
    for banner in svc.tcp:
        closers.append(await tcp.serve(ctx, banner))
    from scanner.lab.responders import dhip, sadp

    closers += await sadp.start(ctx)
    closers += await dhip.start(ctx)
    if svc.sip is not None:
        from scanner.lab.responders import sip

        closers += await sip.start(ctx)
    if svc.snmp is not None:
        from scanner.lab.responders import snmp

        closers += await snmp.start(ctx)
    if svc.wsd is not None:
        from scanner.lab.responders import wsd

        closers += await wsd.start(ctx)
    if svc.ssdp is not None:
        from scanner.lab.responders import ssdp

        closers += await ssdp.start(ctx)
    if svc.mdns or ctx.persona.hostname:
        from scanner.lab.responders import mdns

        closers += await mdns.start(ctx)
    return closers


async def close_all(closers: list[Any]) -> None:
    for c in reversed(closers):
        try:
            result = c.close()
            if asyncio.iscoroutine(result):
                await result
            if isinstance(c, asyncio.Server):
                await c.wait_closed()
        except Exception as exc:
            log.warning("closing %r: %s", c, exc)


async def run(args: argparse.Namespace) -> int:
    persona = load_persona(Path(args.persona))
    # keys and certificates: in the directory the lab gives (under its state directory, which `lab down`
    # removes, so a persona killed with SIGKILL leaves no key behind), else in a temporary directory
    if args.runtime_dir:
        runtime_dir = Path(args.runtime_dir)
        shutil.rmtree(runtime_dir, ignore_errors=True)
        runtime_dir.mkdir(parents=True, mode=0o700)
        cleanup: Callable[[], None] = functools.partial(shutil.rmtree, runtime_dir, ignore_errors=True)
    else:
        runtime = tempfile.TemporaryDirectory(prefix=f"camscan-lab-{persona.id}-")
        runtime_dir, cleanup = Path(runtime.name), runtime.cleanup
    ctx = Context(
        persona=persona,
        ip=args.ip,
        iface=args.iface or None,
        port_offset=args.port_offset,
        log=log,
        runtime_dir=runtime_dir,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    closers = await start_services(ctx)
    if args.ready:
        Path(args.ready).write_text("ready\n")
    log.info("%s ready on %s", persona.id, args.ip)
    await stop.wait()
    await close_all(closers)
    cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scanner.lab.serve", description=__doc__.splitlines()[0])
    ap.add_argument("--persona", required=True)
    ap.add_argument("--ip", required=True)
    ap.add_argument("--iface", default="")
    ap.add_argument("--port-offset", type=int, default=0)
    ap.add_argument("--ready", default="")
    ap.add_argument("--runtime-dir", default="", help="private directory for keys (made, then removed)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
