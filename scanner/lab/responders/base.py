"""What every lab responder gets: the persona, where to bind, and the shared HTTP handler table."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from scanner.lab.persona import Persona

MAX_REQUEST = 1 << 20  # a request body the lab accepts (ONVIF SOAP is a few kB)


@dataclass(slots=True)
class Request:
    method: str
    path: str  # without the query
    query: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    peer: tuple[str, int]

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)  # after Date/Server, before Content-*
    body: bytes = b""
    reason: str | None = None
    content_type: str | None = "text/html"


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(slots=True)
class Context:
    persona: Persona
    ip: str  # the address every socket binds to
    iface: str | None  # "lab0" in netns mode (multicast may be used on it); None in loopback mode (unicast only)
    port_offset: int = 0  # added to ports below 1024 (loopback mode without root)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("camscan.lab"))
    http_handlers: dict[str, Handler] = field(default_factory=dict)  # exact path -> handler, any method
    runtime_dir: Path | None = None  # private scratch directory of this persona process (TLS key, certificate)

    def port(self, port: int) -> int:
        return port + self.port_offset if port < 1024 else port

    @property
    def multicast(self) -> bool:
        return self.iface is not None


def multicast_socket(ctx: Context, group: str, port: int) -> socket.socket:
    """A UDP socket bound to `port`, joined to `group` on the lab interface only (IP_MULTICAST_IF and the
    membership both name the persona's address), TTL 1: nothing leaves the lab segment."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", port))  # inside the persona's namespace: lab0 and lo are its only interfaces
    local = socket.inet_aton(ctx.ip)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + local)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, local)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", 1))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    sock.setblocking(False)
    return sock


def unicast_socket(ctx: Context, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ctx.ip, ctx.port(port)))
    sock.setblocking(False)
    return sock


def udp_listener(ctx: Context, group: str | None, port: int) -> socket.socket:
    """The persona's UDP socket for a discovery protocol: in netns mode bound to the port on its own
    namespace's interfaces and joined to `group` (hears multicast and unicast); in loopback mode bound to
    its 127.77.0.x address only (unicast)."""
    if ctx.multicast and group:
        return multicast_socket(ctx, group, port)
    return unicast_socket(ctx, port)


class _Answering(asyncio.DatagramProtocol):
    """A datagram protocol that sends `reply(data)` back to the asker, when it is not None."""

    def __init__(self, reply: Callable[[bytes], bytes | None]) -> None:
        self.reply = reply
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = self.reply(data)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


async def answer_datagrams(sock: socket.socket, reply: Callable[[bytes], bytes | None]) -> list[object]:
    """Serve `sock`: every datagram gets `reply(data)` sent back to where it came from (None: no answer). The
    discovery responders (SADP, DHIP, SIP, SNMP) differ only in `reply`. Returns what to close at shutdown."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Answering(reply), sock=sock)
    return [transport]
