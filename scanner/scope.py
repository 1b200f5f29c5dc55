"""The scan's scope, and the guard every sender goes through: nothing leaves for an address outside it.

Targets are IPs, CIDRs and ranges (`10.0.0.5`, `10.0.0.0/24`, `10.0.0.10-10.0.0.40`, `10.0.0.10-40`).
Public addresses are refused unless `allow_public`. Multicast and broadcast discovery run only on the
scan's interface, and only when the targets cover that interface's whole subnet (otherwise a multicast
probe would reach devices outside the scope); answers from outside the scope are dropped unread.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import socket
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from netaddr import IPNetwork, IPRange, IPSet

from scanner.errors import CamscanError

MAX_HOSTS = 1 << 16  # a /16; larger scopes are refused (a council LAN segment is rarely above a /22)


class ScopeError(CamscanError, ValueError):
    pass


def parse_targets(specs: Iterable[str]) -> IPSet:
    result = IPSet()
    for raw in specs:
        spec = raw.strip()
        try:
            if "-" in spec:
                start, end = spec.split("-", 1)
                if "." not in end:  # 10.0.0.10-40
                    end = start.rsplit(".", 1)[0] + "." + end
                result.add(IPRange(start, end))
            else:
                result.add(IPNetwork(spec))
        except Exception as exc:  # netaddr raises several kinds
            raise ScopeError(f"not an address, network or range: {spec!r} ({exc})") from None
    return result


def check_networks(targets: IPSet, allow_public: bool, allowance: str = "--allow-public") -> None:
    """Refuse what camscan never scans, for the command line and the service's sites alike: no address, more
    than MAX_HOSTS, IPv6, multicast, unspecified and reserved (240.0.0.0/4, broadcast) ranges, and public
    ranges unless `allow_public` (given as `allowance`) says the user is authorised. Local means not
    global: the private ranges, loopback, link-local and RFC 6598 shared space (which some site networks
    use, as the passive reader also assumes)."""
    if targets.size == 0:
        raise ScopeError("the targets contain no address")
    if targets.size > MAX_HOSTS:
        raise ScopeError(f"{targets.size} addresses is more than camscan scans at once ({MAX_HOSTS}); split it")
    for cidr in targets.iter_cidrs():
        net = ipaddress.ip_network(str(cidr))
        if net.version != 4:
            raise ScopeError(f"{net}: camscan scans IPv4 networks")
        if net.is_multicast or net.is_unspecified or net.is_reserved:  # reserved: 240.0.0.0/4, broadcast too
            raise ScopeError(f"{net}: not a host address range (multicast, reserved or unspecified)")
        if net.is_global and not allow_public:
            raise ScopeError(
                f"{net} is a public address range: camscan scans local networks; {allowance} if you are "
                "authorised to scan it"
            )


def _interface_ipv4(name: str) -> tuple[str, int] | None:
    """(address, prefix length) of an interface, or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            packed = struct.pack("256s", name.encode()[:15])
            addr = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, packed)[20:24])  # SIOCGIFADDR
            mask = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x891B, packed)[20:24])  # SIOCGIFNETMASK
    except OSError:
        return None
    return addr, ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen


def _route_interface(target: str) -> tuple[str, str, int] | None:
    """(interface, its address, prefix) the kernel would use to reach `target` (no packet is sent)."""
    import subprocess

    proc = subprocess.run(["ip", "-o", "route", "get", target], capture_output=True, text=True, check=False)
    words = proc.stdout.split()
    if proc.returncode != 0 or "dev" not in words:
        return None
    dev = words[words.index("dev") + 1]
    found = _interface_ipv4(dev)
    return (dev, *found) if found else None


@dataclass
class Scope:
    targets: IPSet
    specs: list[str]
    interface: str | None = None
    interface_ip: str | None = None
    prefix: int | None = None
    allow_public: bool = False
    limitations: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, specs: list[str], interface: str | None = None, allow_public: bool = False) -> Scope:
        if not specs:
            raise ScopeError("give at least one target (an address, a network such as 10.0.0.0/24, or a range)")
        targets = parse_targets(specs)
        check_networks(targets, allow_public)
        scope = cls(targets=targets, specs=list(specs), allow_public=allow_public)
        first = str(next(iter(targets.iter_cidrs())).ip)
        if interface:
            found = _interface_ipv4(interface)
            if found is None:
                raise ScopeError(f"interface {interface!r} does not exist here or has no IPv4 address")
            scope.interface, (scope.interface_ip, scope.prefix) = interface, found
        else:
            route = _route_interface(first)
            if route is not None:
                scope.interface, scope.interface_ip, scope.prefix = route
        return scope

    def __contains__(self, ip: object) -> bool:
        try:
            return bool(str(ip) in self.targets)
        except Exception:
            return False

    def hosts(self) -> Iterator[str]:
        """Every target address except network and broadcast addresses of the interface's subnet."""
        skip = set()
        if self.interface_ip and self.prefix is not None:
            net = ipaddress.ip_network(f"{self.interface_ip}/{self.prefix}", strict=False)
            if net.prefixlen < 31:
                skip = {str(net.network_address), str(net.broadcast_address)}
            skip.add(self.interface_ip)
        for ip in self.targets:
            s = str(ip)
            if s not in skip:
                yield s

    @property
    def size(self) -> int:
        return int(self.targets.size)

    @property
    def multicast_allowed(self) -> bool:
        """Multicast/broadcast discovery only on the scan interface, and only if the scope covers its subnet."""
        if not (self.interface and self.interface_ip and self.prefix is not None):
            return False
        if self.interface == "lo" or self.interface_ip.startswith("127."):
            return False
        subnet = IPNetwork(f"{self.interface_ip}/{self.prefix}").cidr
        return bool(IPSet([subnet]).issubset(self.targets))

    def describe(self) -> list[str]:
        out = [str(c) for c in self.targets.iter_cidrs()]
        if self.interface:
            out.append(f"interface {self.interface} ({self.interface_ip}/{self.prefix})")
        return out


class RateLimiter:
    """At most `rate` packets per second across every backend (token bucket, burst of `rate / 10`)."""

    def __init__(self, rate: float) -> None:
        self.rate = max(1.0, rate)
        self.capacity = max(1.0, self.rate / 10)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.sent = 0
        self._lock = asyncio.Lock()

    async def acquire(self, n: int = 1) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= n:
                    self.tokens -= n
                    self.sent += n
                    return
                await asyncio.sleep((n - self.tokens) / self.rate)
