#!/usr/bin/env python3
"""Raw link-layer frames straight into the dissector (scanner/passive/dissect.py Analyzer.feed), without a
capture file around them, so the fuzzer spends its time on the protocols rather than on file framing.

Input: one byte choosing the link type, one byte choosing the packet time, then frames, each as a 2-byte
big-endian length and its bytes. Several frames per input let TCP reassembly and IPv4 fragment reassembly be
reached. feed() never raises; the hosts at the end carry Evidence that obeys the contract."""

from __future__ import annotations

from tests.fuzz.contract import check_evidence, check_mac, fuzz, instrumented

with instrumented(__name__):
    from scanner.passive import Analyzer

LINKS = (1, 0, 101, 108, 113, 276, 228, 12, 147)  # Ethernet, BSD null, raw IP, loop, SLL, SLL2, IPv4, DLT_RAW, other
# packet times a capture can carry: ordinary, zero, negative (pcapng offset), past year 3000, pcapng's largest
TIMES = (1_700_000_000.0, 0.0, -5.0, 33_000_000_000.0, 1.8e19, 1e-9)
MAX_FRAMES = 64


def frames(data: bytes) -> tuple[int, float, list[bytes]]:
    """(link type, time, frames) of one input."""
    if len(data) < 2:
        return LINKS[0], TIMES[0], []
    link = LINKS[data[0] % len(LINKS)]
    ts = TIMES[data[1] % len(TIMES)]
    out: list[bytes] = []
    pos = 2
    while pos + 2 <= len(data) and len(out) < MAX_FRAMES:
        n = data[pos] << 8 | data[pos + 1]
        out.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return link, ts, out


def build(link: int, ts_index: int, packets: list[bytes]) -> bytes:
    """The input that `frames` reads back as these packets (for the seed corpus and the property tests)."""
    body = b"".join(len(p).to_bytes(2, "big") + p for p in packets)
    return bytes((LINKS.index(link), ts_index)) + body


def check(data: bytes) -> None:
    link, ts, packets = frames(data)
    analyzer = Analyzer()
    for i, frame in enumerate(packets):
        # the frame at an offset inside a larger chunk, as the capture reader hands it over
        chunk = b"\x00" * 3 + frame + b"\xee" * 5
        analyzer.feed(chunk, 3, len(frame), link, ts + i)
    for host in analyzer.hosts():
        check_evidence(host.evidence)
        if host.mac is not None:
            check_mac(host.mac)
    analyzer.limitations()


fuzz(__name__, check)
