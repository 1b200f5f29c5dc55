"""`camscan identify`: Evidence in, identities out, as JSON Lines (the contract of docs/evidence.md).

Streams: one input line is read, identified and written before the next, so memory stays flat however
many hosts there are. A bad line gets its own `{"id": ..., "error": ...}` line and the batch goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from scanner.fingerprint.engine import Engine

MAX_LINE = 16 * 1024 * 1024  # one host's evidence; longer lines are refused, not loaded
MAX_EVIDENCE = 10_000  # items per host


@dataclass(slots=True)
class Counts:
    hosts: int = 0
    errors: int = 0


def read_lines(stream: IO[str], limit: int = MAX_LINE) -> Iterator[str | None]:
    """Lines of a text stream; None for a line longer than `limit` (its rest is skipped, never held)."""
    while True:
        line = stream.readline(limit)
        if not line:
            return
        if len(line) >= limit and not line.endswith("\n"):
            while True:  # drain the rest of the over-long line in bounded chunks
                rest = stream.readline(limit)
                if not rest or rest.endswith("\n"):
                    break
            yield None
            continue
        yield line


def parse_host(line: str) -> tuple[Any, list[tuple[str, str]]]:
    """(id, [(key, value)...]) from one JSON line; ValueError with a reason if it is not a host."""
    try:
        doc = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("a host line must be a JSON object")
    host_id = doc.get("id")
    if "id" not in doc:
        raise ValueError("missing 'id'")
    if not isinstance(host_id, (str, int)) or isinstance(host_id, bool):
        raise _IdError(None, "'id' must be a string or an integer")
    evidence = doc.get("evidence")
    if not isinstance(evidence, list):
        raise _IdError(host_id, "missing 'evidence' list")
    if len(evidence) > MAX_EVIDENCE:
        raise _IdError(host_id, f"more than {MAX_EVIDENCE} evidence items")
    pairs: list[tuple[str, str]] = []
    for i, item in enumerate(evidence):
        if not isinstance(item, dict):
            raise _IdError(host_id, f"evidence[{i}] must be an object with 'key' and 'value'")
        key, value = item.get("key"), item.get("value")
        if not isinstance(key, str) or not isinstance(value, str):
            raise _IdError(host_id, f"evidence[{i}] needs string 'key' and 'value'")
        pairs.append((key, value))
    return host_id, pairs


class _IdError(ValueError):
    def __init__(self, host_id: Any, reason: str) -> None:
        super().__init__(reason)
        self.host_id = host_id


def identify_line(engine: Engine, line: str | None) -> tuple[str, bool]:
    """One input line (None: an over-long one) -> (one output line, whether it is an error line)."""
    if line is None:
        out: dict[str, Any] = {"id": None, "error": f"line longer than {MAX_LINE} bytes"}
    else:
        try:
            host_id, pairs = parse_host(line)
            out = engine.identify(pairs).identify_line(host_id)
        except _IdError as exc:
            out = {"id": exc.host_id, "error": str(exc)}
        except ValueError as exc:
            out = {"id": None, "error": str(exc)}
    return json.dumps(out, ensure_ascii=False) + "\n", "error" in out


def _host_lines(src: IO[str]) -> Iterator[str | None]:
    for line in read_lines(src):
        if line is None or line.strip():
            yield line


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


def _identify_batch(lines: list[str | None]) -> list[tuple[str, bool]]:
    assert _WORKER_ENGINE is not None
    return [identify_line(_WORKER_ENGINE, line) for line in lines]


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
    _WORKER_ENGINE = engine
    lines = _host_lines(src)
    in_flight: deque[Future[list[tuple[str, bool]]]] = deque()
    context = multiprocessing.get_context("fork")

    def drain_one() -> None:
        for out, failed in in_flight.popleft().result():
            counts.hosts += 1
            counts.errors += failed
            dst.write(out)

    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        while batch := list(islice(lines, BATCH)):
            in_flight.append(pool.submit(_identify_batch, batch))
            if len(in_flight) >= 2 * jobs:
                drain_one()
        while in_flight:
            drain_one()
    return counts
