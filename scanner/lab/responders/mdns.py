"""mDNS / DNS-SD as the persona announces itself: its services (type, instance, port, TXT) and its host name.

python-zeroconf does the protocol (probing, announcing, answering multicast, QU and legacy unicast queries,
goodbyes). It is pinned to the persona's own address (`interfaces=[ctx.ip]`, IPv4 only) and runs in its own
thread with its own event loop, so that `close()` can send the goodbye packets synchronously from anywhere.

Netns mode only: mDNS is multicast on 224.0.0.251:5353, and in loopback mode there is no multicast and no
way to take port 5353 on one 127.77.0.x address without zeroconf also listening on every interface.
The host name is announced as the services' SRV target (with its A record); a persona without DNS-SD
services announces nothing (python-zeroconf has no host-only registration, and a camera that runs no
DNS-SD service usually runs no mDNS at all).
"""

from __future__ import annotations

import asyncio
import socket
import threading

from zeroconf import Error as ZeroconfError
from zeroconf import IPVersion, ServiceInfo, Zeroconf

from scanner.lab.persona import MdnsRecord
from scanner.lab.responders.base import Context


def host_name(ctx: Context) -> str:
    """The persona's mDNS host name as a fully qualified name: `axis-accc8e123456.local.`."""
    name = (ctx.persona.hostname or ctx.persona.id).strip().rstrip(".")
    if not name.endswith(".local"):
        name += ".local"
    return name + "."


def service_type(rec: MdnsRecord) -> str:
    """`_axis-video._tcp.local.`, whatever the persona file's spelling of the trailing dot and domain."""
    stype = rec.type.strip().rstrip(".")
    if not stype.endswith(".local"):
        stype += ".local"
    return stype + "."


def service_info(ctx: Context, rec: MdnsRecord) -> ServiceInfo:
    stype = service_type(rec)
    return ServiceInfo(
        stype,
        f"{rec.name}.{stype}",
        port=ctx.port(rec.port),
        properties=dict(rec.txt),
        server=host_name(ctx),
        addresses=[socket.inet_aton(ctx.ip)],
    )


class MdnsResponder:
    """The running zeroconf instance and the services registered on it; `close()` says goodbye and stops."""

    def __init__(self, ctx: Context, zc: Zeroconf) -> None:
        self.ctx = ctx
        self.zc = zc
        self.infos: list[ServiceInfo] = []
        self._lock = threading.Lock()
        self._closed = False

    def register(self, info: ServiceInfo) -> None:
        """Blocking (about 0.45 s with cooperating responders): call from a worker thread."""
        self.zc.register_service(info, cooperating_responders=True, strict=False)
        self.infos.append(info)

    def close(self) -> None:
        """Unregister every service (goodbye packets, TTL 0) and close the sockets. Blocks ~0.4 s; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.zc.unregister_all_services()
        except Exception as exc:  # a failed goodbye must not leave the sockets open
            self.ctx.log.warning("%s: mDNS goodbye failed: %s", self.ctx.persona.id, exc)
        finally:
            self.zc.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


async def start(ctx: Context) -> list[object]:
    """Announce the persona's DNS-SD services; returns the responder (its `close()` unregisters and closes)."""
    records = ctx.persona.services.mdns
    if not records:
        ctx.log.debug("%s: no DNS-SD services; mDNS not started", ctx.persona.id)
        return []
    if not ctx.multicast:
        ctx.log.info("%s: mDNS needs multicast (netns mode); not started in loopback mode", ctx.persona.id)
        return []
    # Pinned to the persona's address: never InterfaceChoice.All. use_asyncio=False gives zeroconf its own
    # thread and loop, so the lab's loop never blocks on it and close() can be called synchronously.
    zc = await asyncio.to_thread(Zeroconf, interfaces=[ctx.ip], ip_version=IPVersion.V4Only, use_asyncio=False)
    responder = MdnsResponder(ctx, zc)
    try:
        infos: list[ServiceInfo] = []
        for rec in records:
            try:
                infos.append(service_info(ctx, rec))
            except (ZeroconfError, ValueError) as exc:
                ctx.log.error("%s: bad mDNS record %s %r: %r", ctx.persona.id, rec.type, rec.name, exc)
        results = await asyncio.gather(
            *(asyncio.to_thread(responder.register, info) for info in infos), return_exceptions=True
        )
        for info, result in zip(infos, results, strict=True):
            if isinstance(result, BaseException):
                ctx.log.error("%s: mDNS registration of %s failed: %r", ctx.persona.id, info.name, result)
            else:
                ctx.log.info("%s: mDNS %s on %s", ctx.persona.id, info.name, ctx.ip)
    except BaseException:
        await responder.aclose()
        raise
    return [responder]
