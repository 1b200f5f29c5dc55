#!/usr/bin/env python3
"""A whole capture file (scanner/passive/capture.py read_capture, then the dissector and host assembly): the
input is written to a file and read as `camscan pcap` reads one. read_capture returns FileStats or raises
CaptureError, nothing else; every record it hands on lies inside the chunk it points into; the dissector
never raises on a packet (a sink that raises is counted as a decode failure, and that count must stay 0);
every host that comes out carries Evidence that obeys the contract."""

from __future__ import annotations

import atexit
import shutil

from tests.fuzz.contract import check_evidence, check_mac, fuzz, instrumented, scratch_dir

with instrumented(__name__):
    from scanner.passive import Analyzer, CaptureError, FileStats, read_capture

_DIR = scratch_dir("pcap")
atexit.register(shutil.rmtree, _DIR, True)
PATH = _DIR / "input.pcap"


def check(data: bytes) -> None:
    PATH.write_bytes(data)
    analyzer = Analyzer()
    failures: list[BaseException] = []

    def sink(chunk: bytes, offset: int, caplen: int, link: int, ts: float) -> None:
        assert offset >= 0 and caplen >= 0 and offset + caplen <= len(chunk), (offset, caplen, len(chunk))
        try:
            analyzer.feed(chunk, offset, caplen, link, ts)
        except Exception as exc:  # re-raised below, so the crash shows where the dissector failed
            failures.append(exc)
            raise

    stats = FileStats(PATH.name)
    try:
        read_capture(PATH, sink, stats)
    except CaptureError as exc:
        assert stats.packets == 0, f"CaptureError after {stats.packets} packets: {exc}"
        return
    if failures:
        raise failures[0]
    assert stats.packets > 0 and stats.decode_failures == 0
    assert stats.end_offset <= len(data)
    for line in stats.problems():
        assert isinstance(line, str) and "\n" not in line
    hosts = analyzer.hosts()
    for host in hosts:
        check_evidence(host.evidence)
        if host.mac is not None:
            check_mac(host.mac)
    for line in analyzer.limitations():
        assert isinstance(line, str)


fuzz(__name__, check)
