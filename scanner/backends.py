"""The scan's backends, registered in one place.

A discovery backend answers "who is there" for the whole scope at once (`Discovery`); a probe backend
answers "what is it" for one open port of one host (`Probe`). Each is a protocol module under discovery/ or
probes/ with a pure parser and a thin async sender; the entries below name it, say what it does (the
`--methods` help is made from them), and import it only when a scan uses it, so `camscan --help` stays fast.
`METHODS` is the order of `--methods` and of the report's `methods`; the scan (scan.py) runs the discovery
backends at once, then the port check (`ports`), then the probes on the ports camera_ports.PORTS gives them,
and, beside them, the discovery backends marked `live_only` on the hosts found alive (SIP has no multicast
group, and asking every address of a large scope would cost as much as the ARP sweep again).

To add a backend: write its module, add an adapter and an entry here, and name it in the port table if it is a
probe.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from scanner.camera_ports import CameraPort
from scanner.model import Evidence, Observation
from scanner.netctx import ScanContext


class Discovery(Protocol):
    """Find hosts and what they announce: every target (for sweeps) and the ones to ask by unicast (routed
    networks where multicast cannot reach). Returns what each answering address said."""

    def __call__(self, ctx: ScanContext, targets: list[str], unicast: list[str]) -> Awaitable[list[Observation]]: ...


class Probe(Protocol):
    """Ask one open port of one host what it is. Never raises: a failure is an empty list (and a line in
    ctx.errors where it says something)."""

    def __call__(self, ctx: ScanContext, ip: str, port: CameraPort) -> Awaitable[list[Evidence]]: ...


@dataclass(frozen=True, slots=True)
class DiscoveryBackend:
    name: str
    title: str
    run: Discovery
    live_only: bool = False  # asks only the hosts found alive, after the port check (no group to ask)


@dataclass(frozen=True, slots=True)
class ProbeBackend:
    name: str
    title: str
    run: Probe
    per_host: bool = False  # once per host, on the first open port (in table order) whose row names it


# -- adapters: each imports its protocol module when first used ------------------------------------------------


async def _arp(ctx: ScanContext, targets: list[str], unicast: list[str]) -> list[Observation]:
    from scanner.discovery import arp

    return await arp.sweep(ctx, targets)


async def _wsd(ctx: ScanContext, targets: list[str], unicast: list[str]) -> list[Observation]:
    from scanner.discovery import wsd

    return await wsd.discover(ctx, unicast)


async def _mdns(ctx: ScanContext, targets: list[str], unicast: list[str]) -> list[Observation]:
    from scanner.discovery import mdns

    return await mdns.discover(ctx, unicast)


async def _ssdp(ctx: ScanContext, targets: list[str], unicast: list[str]) -> list[Observation]:
    from scanner.discovery import ssdp

    return await ssdp.discover(ctx, unicast)


async def _sadp(ctx: ScanContext, targets: list[str], unicast: list[str]) -> list[Observation]:
    from scanner.discovery import sadp

    return await sadp.discover(ctx, unicast)


async def _dhip(ctx: ScanContext, targets: list[str], unicast: list[str]) -> list[Observation]:
    from scanner.discovery import dhip

    return await dhip.discover(ctx, unicast)


async def _sip(ctx: ScanContext, targets: list[str], unicast: list[str]) -> list[Observation]:
    from scanner.discovery import sip

    return await sip.discover(ctx, targets)  # SIP has no group to ask: each live host, once, by unicast


async def _snmp(ctx: ScanContext, targets: list[str], unicast: list[str]) -> list[Observation]:
    from scanner.discovery import snmp

    return await snmp.discover(ctx, targets)


async def _http(ctx: ScanContext, ip: str, port: CameraPort) -> list[Evidence]:
    from scanner.probes import http

    return await http.probe(ctx, ip, port.number, tls=port.tls)


async def _tls(ctx: ScanContext, ip: str, port: CameraPort) -> list[Evidence]:
    from scanner.probes import tls

    return await tls.probe(ctx, ip, port.number)


async def _rtsp(ctx: ScanContext, ip: str, port: CameraPort) -> list[Evidence]:
    from scanner.probes import rtsp

    return await rtsp.probe(ctx, ip, port.number)


async def _onvif(ctx: ScanContext, ip: str, port: CameraPort) -> list[Evidence]:
    if ctx.credentials is None:  # GetDeviceInformation needs them; nothing is tried without
        return []
    from scanner.probes import onvif

    return await onvif.device_information(ctx, ip, port.number, ctx.credentials)


async def _banners(ctx: ScanContext, ip: str, port: CameraPort) -> list[Evidence]:
    from scanner.probes import banner

    return await banner.probe(ctx, ip, port.number, port.service)


DISCOVERY: tuple[DiscoveryBackend, ...] = (
    DiscoveryBackend("arp", "ARP sweep (root) or the kernel neighbour table: MAC addresses", _arp),
    DiscoveryBackend("wsd", "ONVIF WS-Discovery Probe: scopes (name, hardware, mfr), types, addresses", _wsd),
    DiscoveryBackend("mdns", "mDNS/DNS-SD: service types, instance names, TXT records", _mdns),
    DiscoveryBackend("ssdp", "SSDP M-SEARCH, then the UPnP device description", _ssdp),
    DiscoveryBackend("sadp", "Hikvision SADP inquiry (UDP 37020): model, serial, firmware, MAC", _sadp),
    DiscoveryBackend("dhip", "Dahua DHDiscover (UDP 37810): model, serial, firmware, vendor", _dhip),
    DiscoveryBackend("sip", "SIP OPTIONS to UDP 5060 of each live host: door stations' user agent", _sip, True),
    DiscoveryBackend("snmp", "SNMPv2c get of sysDescr.0 (UDP 161, --snmp-community) from each live host", _snmp, True),
)
PORT_CHECK = "ports"  # the TCP connect check of camera_ports.PORTS, between discovery and the probes
PROBES: tuple[ProbeBackend, ...] = (
    ProbeBackend("http", "HTTP(S) GET / (one same-host redirect) and the favicon", _http),
    ProbeBackend("tls", "the TLS certificate's subject and issuer", _tls),
    ProbeBackend("rtsp", "RTSP OPTIONS and DESCRIBE", _rtsp),
    ProbeBackend("onvif", "ONVIF GetDeviceInformation (only with --credentials)", _onvif, per_host=True),
    ProbeBackend("banners", "the greeting of FTP, SSH and telnet", _banners),
)
METHODS: tuple[str, ...] = (*(b.name for b in DISCOVERY), PORT_CHECK, *(b.name for b in PROBES))


def methods_help() -> str:
    """The `--methods` help: every backend with what it does."""
    titles = [f"{b.name} ({b.title})" for b in DISCOVERY]
    titles.append(f"{PORT_CHECK} (TCP connect check of the camera ports)")
    titles += [f"{b.name} ({b.title})" for b in PROBES]
    return "Comma-separated subset of the backends (default: all): " + "; ".join(titles) + "."
