#!/usr/bin/env python3
"""Service greetings (scanner/probes/banner.py: SSH, FTP, telnet with its option negotiation) and the ONVIF
GetSystemDateAndTime answer (probes/onvif.py). Never raises; one <kind>.banner of bounded length; telnet
refusals are whole IAC WONT/DONT triples; a device time, when given, is a UTC datetime."""

from __future__ import annotations

import datetime as dt

from tests.fuzz.contract import check_evidence, fuzz, instrumented

with instrumented(__name__):
    from scanner.probes import banner, onvif


def check(data: bytes) -> None:
    for kind, limit in (("ssh", banner.MAX_LINE), ("ftp", banner.MAX_LINE), ("telnet", banner.TELNET_BYTES)):
        items = banner.parse_banner(data, kind)
        check_evidence(items, (f"{kind}.banner", "ftp.greeting") if kind == "ftp" else (f"{kind}.banner",))
        banners = [e for e in items if e.key.endswith(".banner")]
        assert len(banners) <= 1 and all(len(e.value) <= limit for e in banners)
        assert all(e.key == "ftp.greeting" for e in items if e not in banners)
    assert banner.parse_banner(data, "smtp") == []
    text, replies = banner.strip_telnet(data)
    assert len(text) <= len(data) and len(replies) % 3 == 0
    for i in range(0, len(replies), 3):
        assert replies[i] == banner.IAC and replies[i + 1] in (banner.WONT, banner.DONT)
    when = onvif.parse_system_date_and_time(data)
    assert isinstance(when, onvif.DeviceTime) and isinstance(when.onvif, bool)
    assert when.utc is None or (isinstance(when.utc, dt.datetime) and when.utc.tzinfo is dt.UTC)


fuzz(__name__, check)
