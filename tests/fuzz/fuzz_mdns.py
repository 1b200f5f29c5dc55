#!/usr/bin/env python3
"""mDNS / DNS-SD answers and TXT records (scanner/discovery/mdns.py): never raises; mdns.* and hostname Evidence,
each (key, value) once; TXT gives at most MAX_TXT_ENTRIES non-empty entries, none without a key."""

from __future__ import annotations

from tests.fuzz.contract import check_evidence, fuzz, instrumented

with instrumented(__name__):
    from scanner.discovery import mdns


def check(data: bytes) -> None:
    items = mdns.parse_mdns_answer(data, "10.77.0.13")
    check_evidence(items, ("mdns.service", "mdns.instance", "mdns.txt", "hostname"))
    assert len({(e.key, e.value) for e in items}) == len(items)
    entries = mdns.parse_txt(data)
    assert isinstance(entries, list) and len(entries) <= mdns.MAX_TXT_ENTRIES
    for entry in entries:
        assert isinstance(entry, str) and entry and entry == entry.strip() and not entry.startswith("=")


fuzz(__name__, check)
