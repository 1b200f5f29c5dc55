#!/usr/bin/env python3
"""Speed and memory of `camscan identify`, end to end (a subprocess reading and writing JSON Lines).

Generates N hosts with about six Evidence items each: values drawn from the rules' own examples (so
every rule family is exercised), random MACs across all OUIs, and per-host unique serials and titles (so
the engine's per-value cache cannot answer everything). Prints hosts per second and peak memory for two
sizes, to show that memory stays flat in the number of hosts, and the start-up (a run of one host). Each size
runs --repeat times and the fastest run is shown: a shared virtual machine's speed varies from run to run.
No assertion: figures only.

    python benchmarks/bench_identify.py [--hosts 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scanner.fingerprint.rules import load_ruleset


def generate(path: Path, hosts: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    rs = load_ruleset()
    pool: list[tuple[str, str]] = []
    for rule in rs.rules:
        for key in rule.keys:
            real_key = key if not key.endswith(".*") else key[:-1] + "device_description"
            if real_key == "model":
                real_key = "onvif.model"
            pool.extend((real_key, ex.value) for ex in rule.examples)
    ouis = [ex[:8] for r in (rs.oui.rules if rs.oui else []) for ex in r.examples] or ["44:19:b6"]
    with path.open("w", encoding="utf-8") as fh:
        for i in range(hosts):
            ev = [{"key": k, "value": v} for k, v in rng.sample(pool, 4)]
            mac = rng.choice(ouis) + "".join(f":{rng.randrange(256):02x}" for _ in range(3))
            ev.append({"key": "mac", "value": mac})
            ev.append({"key": "onvif.serial", "value": f"SN{rng.getrandbits(48):012X}"})
            if i % 3 == 0:
                ev.append({"key": "http.title", "value": f"Device {i} login"})
            fh.write(json.dumps({"id": f"h{i}", "evidence": ev}) + "\n")


def run(path: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS in MiB of the child, output lines)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-m", "scanner", "identify", str(path)], stdout=out)
        _pid, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"camscan identify failed with exit code {proc.returncode}")
        out.seek(0)
        lines = sum(1 for _ in out)
    return elapsed, usage.ru_maxrss / 1024, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per size; the fastest is shown (default 3)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        workers = min(4, os.cpu_count() or 1)  # camscan identify's default --jobs
        print(f"camscan identify, end to end (python {sys.version.split()[0]}, {workers} worker processes, ", end="")
        print(f"fastest of {args.repeat} runs)")
        print(f"{'hosts':>9} {'evidence':>9} {'seconds':>8} {'hosts/s':>9} {'after start':>11} {'peak MiB':>9}")
        startup = 0.0
        for n in sorted({1, max(1, args.hosts // 10), args.hosts}):
            path = Path(d) / f"hosts-{n}.jsonl"
            generate(path, n)
            evidence = sum(len(json.loads(line)["evidence"]) for line in path.open())
            runs = [run(path) for _ in range(max(1, args.repeat))]
            seconds, peak, lines = min(runs)
            assert lines == n, (lines, n)
            if n == 1:
                startup = seconds
                print(f"{n:>9} {evidence:>9} {seconds:>8.2f} {'':>9} {'(start-up)':>11} {peak:>9.1f}")
                continue
            steady = n / (seconds - startup) if seconds > startup else float("nan")
            print(f"{n:>9} {evidence:>9} {seconds:>8.2f} {n / seconds:>9.0f} {steady:>11.0f} {peak:>9.1f}")
        print("hosts/s: end to end, start-up included; after start: hosts / (seconds - the 1-host run's seconds).")
        print("peak MiB: the identify process's maximum resident set (os.wait4); flat memory = equal rows.")


if __name__ == "__main__":
    main()
