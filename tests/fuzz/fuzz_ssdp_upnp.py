#!/usr/bin/env python3
"""SSDP answers and NOTIFYs, their LOCATION, the same-host fetch check, and UPnP device description XML
(scanner/discovery/ssdp.py): never raises; ssdp.* and upnp.* Evidence only; a fetchable LOCATION is always the
very address that answered, with a clean absolute path."""

from __future__ import annotations

from tests.fuzz.contract import check_evidence, fuzz, instrumented

with instrumented(__name__):
    from scanner.discovery import ssdp

SOURCE_IP = "10.77.0.20"


def _check_target(target: object, source_ip: str) -> None:
    if target is None:
        return
    assert isinstance(target, tuple) and len(target) == 4
    host, port, path, tls = target
    assert host == source_ip, f"fetch from {host!r}, answered by {source_ip!r}"
    assert isinstance(port, int) and 0 <= port <= 65535
    assert isinstance(path, str) and path.startswith("/") and not any(c in path for c in "\r\n ")
    assert isinstance(tls, bool)


def check(data: bytes) -> None:
    items = ssdp.parse_response(data, SOURCE_IP)
    check_evidence(items, ("ssdp.server", "ssdp.st", "ssdp.usn"))
    assert len(items) <= 3  # server, st (or nt), usn
    location = ssdp.parse_location(data)
    assert location is None or 0 < len(location) <= ssdp.MAX_LOCATION
    if location is not None:
        _check_target(ssdp.fetchable(location, SOURCE_IP), SOURCE_IP)
    text = data[:2048].decode("utf-8", "replace")
    _check_target(ssdp.fetchable(text, SOURCE_IP), SOURCE_IP)
    _check_target(ssdp.fetchable(text, "::1"), "::1")
    described = ssdp.parse_description(data)
    check_evidence(described, tuple(ssdp.DESCRIPTION_FIELDS.values()))
    assert len({(e.key, e.value) for e in described}) == len(described)


fuzz(__name__, check)
