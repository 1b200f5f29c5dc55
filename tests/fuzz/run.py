"""Run the atheris fuzz targets of tests/fuzz/, each in its own process, and say per target what it did.

    python -m tests.fuzz.run                      every target for FUZZ_SECONDS (default 60) seconds
    python -m tests.fuzz.run --seconds 300 pcap   one target for five minutes
    python -m tests.fuzz.run --runs 2000          every target for a fixed number of executions (the CI smoke)

Per target it prints the executions, the coverage libFuzzer reached (`cov`: edges, `ft`: features), the corpus
size, and every crash with the file atheris wrote (under the work directory, `.fuzz/<target>/artifacts/`) and
the exception. Each target starts from its committed seeds (corpus/<target>/) plus what earlier runs found
(`.fuzz/<target>/corpus/`, not committed). A crash becomes a fixture: minimise it (`python -m
tests.fuzz.fuzz_<target> -minimize_crash=1 -runs=10000 <file>`), copy it to crashes/<target>/, fix the parser;
tests/fuzz/test_fuzz_smoke.py replays every file there. Exit status 1 when any target crashed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz.contract import CORPUS, CRASHES, ROOT

# target -> libFuzzer's -max_len: room for a whole seed (captures, rule files) where the format needs it
TARGETS: dict[str, int] = {
    "wsd": 16384,
    "sadp_dhip": 16384,
    "sip_snmp": 8192,
    "ssdp_upnp": 16384,
    "mdns": 8192,
    "arp_dhcp": 4096,
    "http_rtsp": 32768,
    "tls": 8192,
    "banner_onvif": 8192,
    "pcap": 32768,
    "frames": 32768,
    "nmap_xml": 16384,
    "rules_yaml": 65536,
    "policy_yaml": 65536,
    "evidence_lines": 16384,
}
WORK = ROOT / ".fuzz"

_STATUS = re.compile(r"^#(\d+)\s+(\w+)\s+cov: (\d+) ft: (\d+)(?: corp: (\d+)/)?", re.MULTILINE)
_EXECUTED = re.compile(r"stat::number_of_executed_units: (\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


@dataclass
class Result:
    target: str
    seconds: float = 0.0
    executions: int = 0
    cov: int = 0
    ft: int = 0
    corpus: int = 0
    crashes: list[tuple[str, str]] = field(default_factory=list)  # (artifact file, the exception's last line)
    returncode: int = 0
    log: str = ""

    def line(self) -> str:
        speed = self.executions / self.seconds if self.seconds else 0.0
        crashes = f"{len(self.crashes)} crash(es)" if self.crashes else "no crash"
        return (
            f"{self.target:15} {self.executions:>9} execs {speed:>7.0f}/s  cov {self.cov:>5}  ft {self.ft:>6}  "
            f"corpus {self.corpus:>5}  {crashes}"
        )


def _exception(log: str) -> str:
    """The exception atheris reported (the first line after its banner), or libFuzzer's own error line."""
    lines = log.splitlines()
    for i, text in enumerate(lines):
        if "Uncaught Python exception" in text:
            return next((t.strip()[:300] for t in lines[i + 1 :] if t.strip()), "")
    for text in reversed(lines):
        if "ERROR: libFuzzer" in text:
            return text.strip()[:300]
    return ""


def run_target(
    target: str, *, seconds: float | None, runs: int | None, seed: int, work: Path, keep_going: bool
) -> Result:
    result = Result(target)
    corpus = work / target / "corpus"
    artifacts = work / target / "artifacts"
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    attempt = 0
    while True:
        argv = [
            sys.executable,
            "-m",
            f"tests.fuzz.fuzz_{target}",
            str(corpus),
            str(CORPUS / target),
            f"-max_len={TARGETS[target]}",
            "-timeout=20",
            "-rss_limit_mb=3072",
            f"-artifact_prefix={artifacts}/",
            "-print_final_stats=1",
            f"-seed={seed + attempt}",
        ]
        if runs is not None:
            argv.append(f"-runs={runs}")
        else:
            left = (seconds or 0) - (time.monotonic() - started)
            if left < 1:
                break
            argv.append(f"-max_total_time={max(1, int(left))}")
        scratch = work / target / "tmp"
        env = dict(_env(), CAMSCAN_FUZZ_TMP=str(scratch))
        try:
            proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, errors="replace")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        log = proc.stdout + proc.stderr
        result.log += log
        statuses = _STATUS.findall(log)
        if statuses:
            last = statuses[-1]
            result.cov = max(result.cov, int(last[2]))
            result.ft = max(result.ft, int(last[3]))
            result.corpus = max(result.corpus, int(last[4] or 0))
        executed = _EXECUTED.findall(log)
        result.executions += int(executed[-1]) if executed else (int(statuses[-1][0]) if statuses else 0)
        result.returncode = proc.returncode
        if proc.returncode != 0:
            artifact = (_ARTIFACT.findall(log) or ["(no artifact written)"])[-1]
            result.crashes.append((artifact, _exception(log)))
            if keep_going and runs is None:
                attempt += 1
                continue
        break
    result.seconds = time.monotonic() - started
    return result


def _env() -> dict[str, str]:
    """libFuzzer re-runs a target as a program (`#!/usr/bin/env python3`) when it minimises: this Python first."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(ROOT), PATH=path)


def minimize(target: str, crash: Path, runs: int = 5000) -> Path:
    """Minimise one crash input of `target` (libFuzzer -minimize_crash) and keep it in crashes/<target>/."""
    out = CRASHES / target / f"min-{crash.name.removeprefix('crash-')[:16]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    script = Path(__file__).resolve().parent / f"fuzz_{target}.py"
    argv = [str(script), "-minimize_crash=1", f"-runs={runs}", f"-exact_artifact_path={out}", str(crash)]
    subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True, check=False)
    if not out.exists():
        raise SystemExit(f"{crash}: does not crash {target} (already fixed?), nothing written")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"default: all ({', '.join(TARGETS)})")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", "60")))
    parser.add_argument("--runs", type=int, default=None, help="a fixed number of executions instead of a time")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="targets run at once")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=WORK, help="grown corpora and crash artifacts")
    parser.add_argument("--keep-going", action="store_true", help="after a crash, fuzz on for the time left")
    parser.add_argument("--log", action="store_true", help="print libFuzzer's own output too")
    parser.add_argument("--minimize", type=Path, metavar="CRASH", help="minimise this crash of the one target given")
    args = parser.parse_args(argv)
    if args.minimize is not None:
        if len(args.targets) != 1:
            parser.error("--minimize takes exactly one target")
        print(minimize(args.targets[0], args.minimize.resolve()))
        return 0
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s) {unknown}; known: {', '.join(TARGETS)}")
    targets = args.targets or list(TARGETS)
    budget = f"{args.runs} runs" if args.runs is not None else f"{args.seconds:.0f} s"
    print(f"fuzzing {len(targets)} target(s), {budget} each, {args.jobs} at a time", flush=True)

    def one(target: str) -> Result:
        result = run_target(
            target,
            seconds=args.seconds,
            runs=args.runs,
            seed=args.seed,
            work=args.work,
            keep_going=args.keep_going,
        )
        print(result.line(), flush=True)
        for artifact, exception in result.crashes:
            print(f"    crash: {exception}\n           {artifact}", flush=True)
        if args.log:
            print(result.log, flush=True)
        return result

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(one, targets))
    total = sum(r.executions for r in results)
    crashed = [r.target for r in results if r.crashes]
    print(f"total: {total} executions; {'crashes in ' + ', '.join(crashed) if crashed else 'no crash'}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
