"""Passive audit: packet captures in, the same Evidence the active scan gives out; no packet is sent.

    capture.py   reading pcap and pcapng records (one record loop; damage counted, never fatal)
    dissect.py   packets -> link/IP/UDP -> the protocol parsers of discovery/ -> Evidence per address
    flows.py     TCP reassembly (bounded) -> the parsers of probes/ (HTTP, RTSP, TLS, banners)
    hosts.py     one Host per device at the end (joined by MAC), and what the capture could not tell
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from scanner.model import Host
from scanner.passive.capture import CaptureError, FileStats, read_capture
from scanner.passive.dissect import Analyzer

__all__ = ["Analyzer", "CaptureError", "FileStats", "PassiveResult", "analyse_captures", "read_capture"]


@dataclass
class PassiveResult:
    hosts: list[Host]
    files: list[FileStats]
    errors: list[str]
    limitations: list[str]


def _when(ts: float | None) -> str:
    if ts is None:
        return "?"
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{ts:.0f}"


def analyse_captures(paths: Iterable[Path]) -> PassiveResult:
    """Every capture through one Analyzer. A capture from which not one packet can be read is an error: listed
    in `errors` when another capture could be read, raised (CaptureError, with the file and the byte offset)
    when none could; damage inside a readable one is a counted error and its good records are still used."""
    analyzer = Analyzer()
    files: list[FileStats] = []
    errors: list[str] = []
    limitations: list[str] = []
    failures: list[CaptureError] = []
    for path in paths:
        stats = FileStats(path.name)
        try:
            read_capture(path, analyzer.feed, stats)
        except CaptureError as exc:  # nothing readable in this one: the others still count
            failures.append(exc)
            errors.append(f"{exc}; nothing read from this file")
            continue
        files.append(stats)
        errors += stats.problems()
        span = f"{_when(stats.first)} to {_when(stats.last)}" if stats.first is not None else "no timestamps"
        limitations.append(
            f"capture {stats.name} ({stats.format}): {stats.packets} packets, time span {span}; passive analysis: "
            "only what the devices sent while it was recorded is known"
        )
        if stats.cut_by_snaplen:
            limitations.append(
                f"{stats.name}: {stats.cut_by_snaplen} packets were cut by the capture's snap length; what was cut "
                "off is unknown"
            )
        if stats.unknown_blocks:
            limitations.append(f"{stats.name}: {stats.unknown_blocks} pcapng blocks of unknown type skipped")
    if failures and not files:
        raise failures[0]
    hosts = analyzer.hosts()
    limitations += analyzer.limitations()
    return PassiveResult(hosts=hosts, files=files, errors=errors, limitations=limitations)
