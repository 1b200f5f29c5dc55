#!/usr/bin/env python3
"""Evidence as JSON Lines (scanner/evidence_lines.py), as `camscan identify` and `report --evidence` read it:
parse_host_line returns a HostLine or raises LineError, nothing else; read_hosts turns every line it accepts
into a Host whose Evidence is capped, and names every line (and every item) it skips."""

from __future__ import annotations

import io

from tests.fuzz.contract import fuzz, instrumented

with instrumented(__name__):
    from scanner import evidence_lines
    from scanner.model import BODY_CAP, VALUE_CAP, Evidence


def check(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for line in text.splitlines() or [text]:
        try:
            host = evidence_lines.parse_host_line(line)
        except evidence_lines.LineError as exc:
            assert isinstance(exc.reason, str) and exc.reason
            continue
        assert isinstance(host.id, (str, int)) and not isinstance(host.id, bool)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in host.pairs())
    errors: list[str] = []
    hosts = list(evidence_lines.read_hosts(io.StringIO(text), "fuzz.jsonl", errors))
    lines = sum(1 for _ in evidence_lines.host_lines(io.StringIO(text)))
    skipped = sum(e.endswith("; line skipped") for e in errors)
    assert len(hosts) + skipped == lines, "a line was neither a host nor a named error"
    assert all(e.startswith("fuzz.jsonl:") for e in errors)
    for host in hosts:
        assert len(host.id) <= 256
        for e in host.evidence:
            assert isinstance(e, Evidence) and len(e.key) <= 128
            assert len(e.value) <= (BODY_CAP if e.key == "http.body" else VALUE_CAP)


fuzz(__name__, check)
