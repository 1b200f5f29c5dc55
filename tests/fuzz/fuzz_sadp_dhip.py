#!/usr/bin/env python3
"""Hikvision SADP ProbeMatch XML and Dahua DHIP replies (scanner/discovery/sadp.py, dhip.py), each input fed to
both: never raises; only `mac` and sadp.<field> / dhip.<field> Evidence, MACs normalised."""

from __future__ import annotations

from tests.fuzz.contract import check_evidence, check_mac, fuzz, instrumented

with instrumented(__name__):
    from scanner.discovery import dhip, sadp


def check(data: bytes) -> None:
    for parse, prefix in ((sadp.parse_probe_match, "sadp."), (dhip.parse_reply, "dhip.")):
        items = parse(data, "10.77.0.12")
        check_evidence(items, ("mac", prefix))
        for e in items:
            if e.key == "mac":
                check_mac(e.value)
        assert len(items) <= 200  # at most 100 fields, each with its MAC at most once more


fuzz(__name__, check)
