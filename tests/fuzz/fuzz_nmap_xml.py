#!/usr/bin/env python3
"""nmap's XML output (scanner/discovery/nmap.py parse_nmap_xml): never raises (bad XML gives what was read
before it); one Observation per IPv4 host with open, described ports; nmap.* Evidence only."""

from __future__ import annotations

from tests.fuzz.contract import check_evidence, fuzz, instrumented

with instrumented(__name__):
    from scanner.discovery import nmap
    from scanner.model import Observation

KEYS = tuple(f"nmap.{f}" for f in (*nmap.FIELDS, "cpe"))


def check(data: bytes) -> None:
    found = nmap.parse_nmap_xml(data)
    assert isinstance(found, list)
    for obs in found:
        assert isinstance(obs, Observation) and isinstance(obs.ip, str) and obs.ip
        assert obs.evidence, "an Observation without Evidence"
        check_evidence(obs.evidence, KEYS)


fuzz(__name__, check)
