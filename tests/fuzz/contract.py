"""What every parser promises about its output, checked the same way by the atheris targets and the hypothesis
property tests: Evidence keys from the vocabulary of docs/evidence.md, values trimmed and capped as
scanner/model.py `cap_value` says, and a source named.

Nothing from scanner/ is imported at module level: a fuzz target imports this module before it imports the
parsers under atheris's instrumentation, and a module imported earlier would go uninstrumented.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
CRASHES = Path(__file__).resolve().parent / "crashes"
MAX_KEY = 128  # scanner.model.Evidence.key max_length

_KEY_CELL = re.compile(r"^\| (`[^|]+`(?: / `[^|]+`)*) \|", re.MULTILINE)
_TICKED = re.compile(r"`([^`]+)`")


@cache
def vocabulary() -> tuple[frozenset[str], tuple[str, ...]]:
    """(exact keys, key prefixes) of the key table in docs/evidence.md: `sadp.<field>` is the prefix `sadp.`."""
    text = (ROOT / "docs" / "evidence.md").read_text(encoding="utf-8")
    exact: set[str] = set()
    prefixes: list[str] = []
    for cell in _KEY_CELL.findall(text):
        for key in _TICKED.findall(cell):
            if key.endswith(".<field>"):
                prefixes.append(key[: -len("<field>")])
            else:
                exact.add(key)
    assert exact and prefixes, "docs/evidence.md: the key table was not found"
    return frozenset(exact), tuple(prefixes)


def in_vocabulary(key: str) -> bool:
    exact, prefixes = vocabulary()
    return key in exact or any(key.startswith(p) and len(key) > len(p) for p in prefixes)


def check_evidence(items: Any, keys: Iterable[str] | None = None) -> None:
    """Raise AssertionError unless `items` is a list of Evidence obeying the contract (and, with `keys`,
    using only those keys or prefixes)."""
    from scanner.model import BODY_CAP, VALUE_CAP, Evidence

    assert isinstance(items, list), f"not a list: {type(items).__name__}"
    allowed = tuple(keys) if keys is not None else None
    for e in items:
        assert isinstance(e, Evidence), f"not Evidence: {e!r}"
        assert isinstance(e.key, str) and 0 < len(e.key) <= MAX_KEY, f"bad key {e.key!r}"
        assert in_vocabulary(e.key), f"key {e.key!r} is not in docs/evidence.md"
        if allowed is not None:
            assert any(e.key == k or (k.endswith(".") and e.key.startswith(k)) for k in allowed), (
                f"key {e.key!r} not among {allowed}"
            )
        assert isinstance(e.value, str), f"value of {e.key} is not text"
        assert e.value, f"empty value for {e.key}"
        assert e.value == e.value.strip(), f"value of {e.key} not trimmed: {e.value[:80]!r}"
        cap = BODY_CAP if e.key == "http.body" else VALUE_CAP
        assert len(e.value) <= cap, f"value of {e.key} is {len(e.value)} characters, over the cap {cap}"
        assert e.source, f"no source on {e.key}"


def check_mac(mac: Any) -> None:
    from scanner.model import normalise_mac

    assert isinstance(mac, str) and normalise_mac(mac) == mac, f"not a normalised MAC: {mac!r}"


@contextlib.contextmanager
def instrumented(module_name: str) -> Iterator[None]:
    """atheris's import instrumentation for scanner/ when the target runs as the fuzzer (`__main__`); nothing
    when a test imports the target to replay its crash fixtures."""
    if module_name != "__main__":
        yield
        return
    import atheris

    with atheris.instrument_imports(include=["scanner"]):
        yield


def fuzz(module_name: str, check: Any) -> None:
    """Run `check` under atheris when the target is the main program (argv: libFuzzer's options)."""
    if module_name != "__main__":
        return
    import atheris

    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


def scratch_dir(target: str) -> Path:
    """A private directory for a target's files. libFuzzer ends the process without running `atexit`, so the runner
    names one inside its work directory (CAMSCAN_FUZZ_TMP) and removes it after each run."""
    import os
    import tempfile

    parent = os.environ.get("CAMSCAN_FUZZ_TMP")
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"camscan-fuzz-{target}-", dir=parent or None))


def crash_files(target: str) -> list[Path]:
    d = CRASHES / target
    return sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")) if d.is_dir() else []
