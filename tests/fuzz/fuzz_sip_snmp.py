#!/usr/bin/env python3
"""SIP messages and SNMP BER messages (scanner/discovery/sip.py, snmp.py), each input fed to both: never raises;
only `sip.user_agent` (at most two: User-Agent and Server) and `snmp.sysdescr` (at most one) Evidence; the
GetRequest reader the lab's agents use gives None or a well-typed request."""

from __future__ import annotations

from tests.fuzz.contract import check_evidence, fuzz, instrumented

with instrumented(__name__):
    from scanner.discovery import sip, snmp


def check(data: bytes) -> None:
    items = sip.parse_message(data, "10.77.0.21")
    check_evidence(items, ("sip.user_agent",))
    assert len(items) <= 2
    items = snmp.parse_message(data, "10.77.0.64")
    check_evidence(items, ("snmp.sysdescr",))
    assert len(items) <= 1
    request = snmp.read_get_request(data)  # what the lab's agents read: never raises
    if request is not None:
        community, request_id, oids = request
        assert isinstance(community, bytes) and isinstance(request_id, int) and all(isinstance(o, bytes) for o in oids)


fuzz(__name__, check)
