"""`camscan identify`: Evidence in, identities out (JSON Lines; the contract of docs/evidence.md)."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from typing import Annotated

import typer

from scanner.cli.common import RulesDir, note
from scanner.errors import InputError


def register(app: typer.Typer) -> None:
    app.command()(identify)


def identify(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help='JSON Lines files of hosts ({"id", "evidence": [...]}); \'-\' is stdin.'),
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the JSON Lines; '-' is stdout.")] = "-",
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Worker processes (default: the CPU count, at most 4; 1 = no workers).")
    ] = 0,
    rules_dir: RulesDir = None,
) -> None:
    """Identify hosts from Evidence: one JSON line in, one JSON line out, in the same order.

    Each output line has id, manufacturer, brand, model, firmware, device_type, confidence and matched
    (the rules that fired). A bad input line gets {"id": ..., "error": ...} and the batch goes on.

    Example:  echo '{"id":"h1","evidence":[{"key":"http.server","value":"App-webs/"}]}' | camscan identify
    """
    from scanner.identify import Counts, identify_stream, identify_stream_parallel
    from scanner.knowledge import load_engine

    engine = load_engine(rules_dir or ())
    counts = Counts()
    workers = jobs if jobs > 0 else min(4, os.cpu_count() or 1)
    with ExitStack() as stack:
        dst = sys.stdout if output == "-" else stack.enter_context(open(output, "w", encoding="utf-8"))
        for name in inputs or ["-"]:
            if name == "-":
                src = sys.stdin
            else:
                try:
                    src = stack.enter_context(open(name, encoding="utf-8", errors="replace"))
                except OSError as exc:
                    raise InputError(f"cannot read {name}: {exc.strerror}") from None
            if workers > 1:
                identify_stream_parallel(engine, src, dst, workers, counts)
            else:
                identify_stream(engine, src, dst, counts)
    if counts.errors:
        note(f"{counts.hosts} hosts, {counts.errors} lines with errors (see their 'error' field)")
