#!/usr/bin/env python3
"""WS-Discovery ProbeMatches and Hello datagrams (scanner/discovery/wsd.py): never raises, only wsd.* Evidence
within the per-message caps, and the deduplicator gives the same Evidence once per (address, MessageID)."""

from __future__ import annotations

from tests.fuzz.contract import check_evidence, fuzz, instrumented

with instrumented(__name__):
    from scanner.discovery import wsd

SOURCE_IP = "10.77.0.11"


def check(data: bytes) -> None:
    items = wsd.parse_probe_matches(data, SOURCE_IP)
    check_evidence(items, ("wsd.type", "wsd.scope", "wsd.xaddr"))
    per_key = {k: sum(e.key == k for e in items) for k in ("wsd.type", "wsd.scope", "wsd.xaddr")}
    assert per_key["wsd.type"] <= wsd.MAX_TYPES * wsd.MAX_MATCHES
    assert per_key["wsd.scope"] <= wsd.MAX_SCOPES * wsd.MAX_MATCHES
    assert per_key["wsd.xaddr"] <= wsd.MAX_XADDRS * wsd.MAX_MATCHES
    dedupe = wsd._Deduplicator()
    first = dedupe(data, SOURCE_IP)
    assert [(e.key, e.value) for e in first] == [(e.key, e.value) for e in items]
    again = dedupe(data, SOURCE_IP)
    assert again == [] or [(e.key, e.value) for e in again] == [(e.key, e.value) for e in items]


fuzz(__name__, check)
