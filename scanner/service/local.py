"""The local executor: each scan is `python -m scanner scan ... --json FILE` in a child process.

A child process, not a thread, so that a scan that hangs, leaks or crashes cannot take the service with it:
it has a time limit after which its whole process group (nmap included) is killed, and its exit status and
the tail of its error output become the scan's error. Each child leads its own process group and its
runner note records its pid, so that a service restarted after SIGKILL can find and stop an orphan
(`stop_orphan`). The child inherits the service's network namespace: a service started inside the lab's
scanner namespace scans the lab.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scanner.service.jobs import JobOutcome, ScanJob

ERROR_TAIL = 2000


@dataclass
class _Running:
    job: ScanJob
    proc: subprocess.Popen[bytes]
    json_path: Path
    log_path: Path
    deadline: float


def scan_argv(job: ScanJob, json_path: Path) -> list[str]:
    """`python -m scanner scan` for the job: options as `--name=value` and the targets after `--`, so that a
    value starting with a dash (a site's name is free text) can never be read as an option."""
    argv = [sys.executable, "-m", "scanner", "scan", f"--json={json_path}"]
    if job.interface:
        argv.append(f"--interface={job.interface}")
    if job.methods:
        argv.append(f"--methods={','.join(job.methods)}")
    argv += [f"--policy={pack}" for pack in job.packs]
    if job.allow_public:
        argv.append("--allow-public")
    argv += [f"--site={job.site_name}", f"--operator={job.operator}", "--", *job.targets]
    return argv


def start_scan(
    job: ScanJob, json_path: Path, log_path: Path, preexec_fn: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    """`camscan scan` for the job as a child process in its own process group (killed as one, nmap
    included), its output in `log_path`; the local executor and the scan agent both start scans here."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            scan_argv(job, json_path),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec_fn,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"},
        )


class LocalExecutor:
    """Runs jobs as child processes; `work_dir` holds their JSON output and logs until ingested."""

    def __init__(self, work_dir: Path, max_parallel: int = 2) -> None:
        self.work_dir = work_dir
        self.max_parallel = max_parallel
        self._running: dict[str, _Running] = {}
        work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    def submit(self, job: ScanJob) -> str:
        json_path = self.work_dir / f"{job.scan_id}.json"
        log_path = self.work_dir / f"{job.scan_id}.log"
        json_path.unlink(missing_ok=True)
        proc = start_scan(job, json_path, log_path)
        self._running[job.scan_id] = _Running(job, proc, json_path, log_path, time.monotonic() + job.time_limit)
        return f"local pid {proc.pid}"

    def active(self) -> set[str]:
        return set(self._running)

    def has_room(self) -> bool:
        return len(self._running) < self.max_parallel

    def poll(self) -> list[JobOutcome]:
        done: list[JobOutcome] = []
        for scan_id, run in list(self._running.items()):
            code = run.proc.poll()
            if code is None and time.monotonic() > run.deadline:
                _kill_group(run.proc)
                del self._running[scan_id]
                done.append(self._finish(run, f"the scan took longer than its time limit ({run.job.time_limit:.0f} s)"))
                continue
            if code is None:
                continue
            del self._running[scan_id]
            if code != 0:
                how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                done.append(self._finish(run, f"the scan failed ({how}): {_tail(run.log_path)}"))
                continue
            try:
                raw = run.json_path.read_bytes()
            except OSError as exc:
                done.append(self._finish(run, f"the scan wrote no report: {exc.strerror}"))
                continue
            done.append(self._finish(run, None, raw))
        return done

    def _finish(self, run: _Running, error: str | None, raw: bytes | None = None) -> JobOutcome:
        run.json_path.unlink(missing_ok=True)
        log = _tail(run.log_path)
        run.log_path.unlink(missing_ok=True)
        if error is not None:
            return JobOutcome(run.job.scan_id, ok=False, error=error)
        return JobOutcome(run.job.scan_id, ok=True, report=raw, details={"log": log})

    def cancel(self, scan_id: str) -> None:
        run = self._running.pop(scan_id, None)
        if run is not None:
            _kill_group(run.proc)
            run.json_path.unlink(missing_ok=True)
            run.log_path.unlink(missing_ok=True)

    def shutdown(self) -> list[str]:
        ids = list(self._running)
        for run in self._running.values():  # all at once: the grace periods run side by side
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(run.proc.pid, signal.SIGTERM)
        for scan_id in ids:
            self.cancel(scan_id)
        return ids


def _kill_group(proc: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # grandchildren that outlived the leader


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()[-ERROR_TAIL:]
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace").strip()


def stop_orphan(runner: str | None, scan_id: str) -> bool:
    """Kill the child of a scan whose service died (SIGKILL), if it still runs: found by the pid in its
    runner note, and only if that process's command line is this scan's (a pid may have been reused)."""
    if not runner or not runner.startswith("local pid "):
        return False
    try:
        pid = int(runner.rsplit(" ", 1)[1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (ValueError, OSError):
        return False
    if f"{scan_id}.json".encode() not in cmdline:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    return True
