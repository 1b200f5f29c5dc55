"""Who is on the segment, and their MAC (the strongest single clue): an ARP sweep with scapy when root,
else the unprivileged fallback (a UDP poke makes the kernel ARP; then read its neighbour table).

Only in-scope addresses on the scan interface's own subnet are asked; answers are checked against the scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
from pathlib import Path

from scanner.model import Observation, evidence, normalise_mac
from scanner.netctx import ScanContext

SOURCE_ARP, SOURCE_NEIGH = "arp", "neighbour-table"


def on_link(ctx: ScanContext, ips: list[str]) -> list[str]:
    scope = ctx.scope
    if not (scope.interface and scope.interface_ip and scope.prefix is not None) or scope.interface == "lo":
        return []
    net = ipaddress.ip_network(f"{scope.interface_ip}/{scope.prefix}", strict=False)
    return [ip for ip in ips if ctx.allowed(ip) and ipaddress.ip_address(ip) in net and ip != scope.interface_ip]


def parse_proc_net_arp(text: str, interface: str | None = None) -> dict[str, str]:
    """{ip: mac} of complete entries of /proc/net/arp (optionally of one interface)."""
    out: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 6 or parts[2] == "0x0":  # flags 0x0: incomplete
            continue
        if interface and parts[5] != interface:
            continue
        mac = normalise_mac(parts[3])
        if mac and mac != "00:00:00:00:00:00":
            out[parts[0]] = mac
    return out


def parse_arp(data: bytes) -> tuple[str, str] | None:
    """(sender IPv4, sender MAC) of an Ethernet/IPv4 ARP packet (RFC 826); None for anything else, and for
    a sender address of 0.0.0.0 (an ARP probe, RFC 5227)."""
    if len(data) < 28 or data[0:2] != b"\x00\x01" or data[2:4] != b"\x08\x00" or data[4] != 6 or data[5] != 4:
        return None
    sender = data[14:18]
    if sender == b"\x00\x00\x00\x00":
        return None
    mac = data[8:14]
    if mac == b"\x00" * 6 or mac == b"\xff" * 6 or mac[0] & 1:
        return None
    return socket.inet_ntoa(sender), mac.hex(":")


def neighbour_table(ctx: ScanContext) -> list[Observation]:
    try:
        text = Path("/proc/net/arp").read_text()
    except OSError:
        return []
    return [
        Observation(ip, [evidence("mac", mac, SOURCE_NEIGH)], mac)
        for ip, mac in parse_proc_net_arp(text, ctx.scope.interface).items()
        if ctx.allowed(ip)
    ]


def _scapy_sweep(ctx: ScanContext, ips: list[str], timeout: float) -> list[tuple[str, str]]:
    from scapy.config import conf
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import srp

    conf.verb = 0
    conf.ifaces.reload()  # scapy caches interfaces and routes at import: re-read them in this namespace
    conf.route.resync()
    answered, _ = srp(
        Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst=ips, psrc=ctx.scope.interface_ip),
        iface=ctx.scope.interface,
        timeout=timeout,
        inter=1.0 / ctx.rate.rate,
        verbose=0,
    )
    return [(r.psrc, r.hwsrc) for _, r in answered]


async def sweep(ctx: ScanContext, ips: list[str]) -> list[Observation]:
    targets = on_link(ctx, ips)
    if not targets:
        ctx.limitations.append(
            "ARP: no target is on the scan interface's subnet; MAC addresses come only from protocols that carry them"
        )
        return []
    if os.geteuid() == 0:
        try:
            pairs = await asyncio.to_thread(_scapy_sweep, ctx, targets, min(1.0, ctx.timeout))
            ctx.rate.sent += len(targets)
            return [
                Observation(ip, [evidence("mac", m, SOURCE_ARP)], m)
                for ip, raw in pairs
                if ctx.allowed(ip) and (m := normalise_mac(raw))
            ]
        except Exception as exc:
            ctx.limitations.append(
                f"ARP sweep with raw sockets failed ({exc.__class__.__name__}: {exc}); "
                "used the kernel neighbour table instead"
            )
    else:
        ctx.limitations.append(
            "not root: no raw-socket ARP sweep; MACs from the kernel neighbour table after a UDP poke"
        )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        for ip in targets:
            await ctx.rate.acquire()
            with contextlib.suppress(OSError):
                sock.sendto(b"", (ip, 9))  # discard port: the kernel ARPs for the address
    finally:
        sock.close()
    await asyncio.sleep(1.2)
    return neighbour_table(ctx)
