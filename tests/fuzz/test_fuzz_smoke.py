"""CI's short fuzz: every atheris target for a fixed number of executions from its committed seeds (a fixed
libFuzzer seed and hash seed, so a run is repeatable), two targets at a time; `make fuzz` is the long run.
Any crash fails the test with the exception and the input file atheris wrote."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fuzz.run import TARGETS, Result, run_target

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (pip install -e '.[dev]' brings it; it has wheels for Linux x86_64 and macOS)",
)

# executions per target: the YAML loaders parse a whole knowledge file per input (tens per second)
RUNS = {"rules_yaml": 40, "policy_yaml": 40, "pcap": 400, "frames": 1000}
DEFAULT_RUNS = 2000


def test_every_target_runs_without_a_crash(tmp_path: Path) -> None:
    def one(target: str) -> Result:
        runs = RUNS.get(target, DEFAULT_RUNS)
        return run_target(target, seconds=None, runs=runs, seed=1, work=tmp_path, keep_going=False)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, TARGETS))
    failures = [
        f"{r.target}: {exception} ({artifact})\n{r.log[-3000:]}" for r in results for artifact, exception in r.crashes
    ]
    assert not failures, "\n\n".join(failures)
    for r in results:
        assert r.returncode == 0
        assert r.executions >= RUNS.get(r.target, DEFAULT_RUNS), f"{r.target}: only {r.executions} executions"
        assert r.cov > 0, f"{r.target}: no coverage reported (is the target instrumented?)"
