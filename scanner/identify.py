"""`camscan identify`: Evidence in, identities out, as JSON Lines (the contract of docs/evidence.md).

Streams: one input line is read, identified and written before the next, so memory stays flat however
many hosts there are. A bad line gets its own `{"id": ..., "error": ...}` line and the batch goes on.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from scanner.evidence_lines import MAX_LINE, LineError, host_lines, parse_host_line, read_lines
from scanner.fingerprint.engine import Engine

__all__ = ["MAX_LINE", "Counts", "identify_line", "identify_stream", "identify_stream_parallel", "read_lines"]


# json.dumps(out, ensure_ascii=False), without making a new encoder for every line
_ENCODER = json.JSONEncoder(ensure_ascii=False)


@dataclass(slots=True)
class Counts:
    hosts: int = 0
    errors: int = 0


def identify_line(engine: Engine, line: str | None) -> tuple[str, bool]:
    """One input line (None: an over-long one) -> (one output line, whether it is an error line)."""
    try:
        host = parse_host_line(line)
        out: dict[str, Any] = engine.identify(host.pairs()).identify_line(host.id)
    except LineError as exc:
        out = {"id": exc.host_id, "error": exc.reason}
    return _ENCODER.encode(out) + "\n", "error" in out


def _host_lines(src: IO[str]) -> Iterator[str | None]:
    return (line for _, line in host_lines(src))


def identify_stream(engine: Engine, src: IO[str], dst: IO[str], counts: Counts | None = None) -> Counts:
    counts = counts or Counts()
    for line in _host_lines(src):
        out, failed = identify_line(engine, line)
        counts.hosts += 1
        counts.errors += failed
        dst.write(out)
    return counts


# -- several processes: the engine is loaded once, then the workers are forked and share it ---------------
_WORKER_ENGINE: Engine | None = None
BATCH = 2000


def _identify_batch(lines: list[str | None]) -> tuple[str, int]:
    """(the batch's output lines as one string, how many of them are error lines): one object back to the
    parent instead of a pair per host, so the parent (which shares the cores) does less."""
    assert _WORKER_ENGINE is not None
    out: list[str] = []
    errors = 0
    for line in lines:
        text, failed = identify_line(_WORKER_ENGINE, line)
        out.append(text)
        errors += failed
    return "".join(out), errors


def identify_stream_parallel(
    engine: Engine, src: IO[str], dst: IO[str], jobs: int, counts: Counts | None = None
) -> Counts:
    """Like identify_stream, on `jobs` forked worker processes, in batches, output in input order. At most
    2 x jobs batches are in flight, so memory stays flat however long the input is."""
    import multiprocessing
    from collections import deque
    from concurrent.futures import Future, ProcessPoolExecutor
    from itertools import islice

    global _WORKER_ENGINE
    counts = counts or Counts()
    engine.warm()
    _WORKER_ENGINE = engine
    # The rules and the MAC registry live as long as the process: freeze them out of the collector, so a
    # full collection in a worker does not walk them (and does not touch their pages, which the forked
    # workers share copy-on-write).
    gc.collect()
    gc.freeze()
    lines = _host_lines(src)
    in_flight: deque[tuple[int, Future[tuple[str, int]]]] = deque()
    context = multiprocessing.get_context("fork")

    def drain_one() -> None:
        size, future = in_flight.popleft()
        text, errors = future.result()
        counts.hosts += size
        counts.errors += errors
        dst.write(text)

    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        while batch := list(islice(lines, BATCH)):
            in_flight.append((len(batch), pool.submit(_identify_batch, batch)))
            if len(in_flight) >= 2 * jobs:
                drain_one()
        while in_flight:
            drain_one()
    return counts
