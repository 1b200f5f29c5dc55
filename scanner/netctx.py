"""What every discovery backend and probe is given: the scope, the rate limit, timeouts, where to report.

Backends return Observations: Evidence about one address (and its MAC when the backend saw it). They
send only through `ScanContext.allowed(ip)` addresses, multicast only when `scope.multicast_allowed`,
with IP_MULTICAST_IF set to the scan interface's address and TTL 1, and call `await ctx.rate.acquire()`
before every packet. A backend that fails or lacks a privilege adds a line to `limitations` or `errors`
and returns what it has: the scan goes on.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from dataclasses import dataclass, field

from scanner.scope import RateLimiter, Scope


@dataclass
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never in a log or a report
        return "Credentials(<redacted>)"


@dataclass
class ScanContext:
    scope: Scope
    rate: RateLimiter
    timeout: float = 2.0  # per connection or request
    listen: float = 1.5  # how long multicast discovery listens for answers
    credentials: Credentials | None = None
    snmp_community: str = "public"  # for the SNMP GetRequest of sysDescr.0; never logged or reported
    errors: list[str] = field(default_factory=list)
    limitations: list[str] = field(default_factory=list)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("camscan.scan"))

    def allowed(self, ip: str) -> bool:
        return ip in self.scope


def multicast_sender(ctx: ScanContext, port: int = 0) -> socket.socket:
    """A UDP socket for multicast discovery on the scan interface only: bound to its address, with
    IP_MULTICAST_IF set to it and TTL 1 (the datagrams never leave the segment)."""
    if not ctx.scope.multicast_allowed or not ctx.scope.interface_ip:
        raise PermissionError("multicast is not allowed for this scope")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ctx.scope.interface_ip, port))
    local = socket.inet_aton(ctx.scope.interface_ip)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, local)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", 1))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    sock.setblocking(False)
    return sock


IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)  # Linux; not exported by Python 3.11


def group_listener(ctx: ScanContext, group: str, port: int) -> socket.socket:
    """A socket that hears a multicast group on the scan interface only (devices that answer, or announce,
    to the group rather than to the asker: older Hikvision firmware, WS-Discovery Hello).

    Bound to the group address, not the interface address: Linux delivers multicast only to sockets bound to
    the wildcard or the group. IP_MULTICAST_ALL off limits it to the membership made here, which names the
    scan interface, so datagrams from other interfaces never arrive."""
    if not ctx.scope.multicast_allowed or not ctx.scope.interface_ip:
        raise PermissionError("multicast is not allowed for this scope")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
        sock.bind((group, port))
        membership = socket.inet_aton(group) + socket.inet_aton(ctx.scope.interface_ip)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", 1))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def unicast_sender(ctx: ScanContext) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    sock.bind((ctx.scope.interface_ip or "0.0.0.0", 0))
    sock.setblocking(False)
    return sock
