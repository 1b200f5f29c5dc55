"""`camscan agent`: the scanner inside a building. A Celery worker that consumes its site's queue only.

It connects outward only: to the broker (for jobs) and to the service's API (heartbeats, reports); nothing
connects in to it. For each job:

1. The job must be for this agent's site, and every target must lie inside the agent's own `--allow`
   list (configured at the building, so a compromised broker or service cannot make it scan another
   network). Otherwise the job is refused without a packet sent, and the refusal is recorded as the
   scan's result (`POST /api/v1/scans/{id}/result`: the scan is failed with that error).
2. The agent asks the service whether the scan is still wanted (a job redelivered after the scan was
   stored, or one the service gave up on, is dropped).
3. It runs `camscan scan` in a child process with the job's time limit (capped by `--max-scan-time`), the
   child dying with the agent (PR_SET_PDEATHSIG), and keeps the report in its spool directory.
4. It posts the report to `POST /api/v1/scans/{id}/report`, retrying with exponential backoff; a report
   that could not be delivered stays spooled and the job goes back to the broker (Celery retry), so the
   scan is not run again. Ingest is idempotent by report_id, so a delivery repeated after a lost answer
   is harmless.

The message is acknowledged only after that (late acknowledgement): an agent killed in the middle of a
scan leaves its job in the queue, and the next agent to start on the site's queue runs it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from netaddr import IPSet

from scanner import __version__
from scanner.model import SCHEMA_VERSION
from scanner.scope import ScopeError, parse_targets
from scanner.service.agents import HEARTBEAT_EVERY, SCHEMA_HEADER, VERSION_HEADER
from scanner.service.broker import TASK_NAME, job_from_message, make_app, queue_name
from scanner.service.jobs import ScanJob
from scanner.service.local import start_scan

log = logging.getLogger("camscan.agent")
PR_SET_PDEATHSIG = 1
ERROR_TAIL = 2000


class ScanFailed(Exception):
    """The scan ended without a report (said in the message)."""


class DeliveryFailed(Exception):
    """The service could not be reached (or kept answering 5xx) for the whole delivery window."""


class Rejected(Exception):
    """The service refused what the agent sent, for good (4xx): retrying cannot help."""


Runner = Callable[[ScanJob, float], bytes]


def allowed(spec: list[str]) -> IPSet:
    """The agent's `--allow` list as a set of addresses; raises ScopeError on a bad entry."""
    if not spec:
        raise ScopeError("--allow: give the networks this agent may scan, e.g. 10.20.0.0/16")
    return parse_targets(spec)


def refusal(job: ScanJob, site: str, allow: IPSet, allow_text: list[str]) -> str | None:
    """Why the agent refuses `job`, or None when it may run it."""
    if job.site != site:
        return f"refused by the agent: the job is for site {job.site!r}, this agent serves {site!r}"
    try:
        wanted = parse_targets(job.targets)
    except ScopeError as exc:
        return f"refused by the agent: {exc}"
    outside = wanted - allow
    if outside.size or wanted.size == 0:
        shown = ", ".join(str(c) for c in list(outside.iter_cidrs())[:5])
        return (
            f"refused by the agent: targets outside its --allow list ({shown or 'no address'}); "
            f"the agent may scan {', '.join(allow_text)}"
        )
    return None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_scan(job: ScanJob, time_limit: float, work_dir: Path) -> bytes:
    """`camscan scan` for the job in a child process (its own process group, killed with the agent);
    the report's bytes, or ScanFailed."""
    work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    json_path, log_path = work_dir / f"{job.scan_id}.scan.json", work_dir / f"{job.scan_id}.log"
    json_path.unlink(missing_ok=True)
    proc = start_scan(job, json_path, log_path, preexec_fn=_die_with_parent)  # only a prctl: fork-safe
    try:
        try:
            code = proc.wait(time_limit)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            raise ScanFailed(f"the scan took longer than its time limit ({time_limit:.0f} s)") from None
        if code != 0:
            how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            tail = log_path.read_bytes()[-ERROR_TAIL:].decode("utf-8", errors="replace").strip()
            raise ScanFailed(f"the scan failed ({how}): {tail}")
        try:
            return json_path.read_bytes()
        except OSError as exc:
            raise ScanFailed(f"the scan wrote no report: {exc.strerror}") from None
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the scan left behind
        json_path.unlink(missing_ok=True)
        log_path.unlink(missing_ok=True)


class ServiceClient:
    """The service's API as the agent uses it, with retries and backoff for deliveries."""

    def __init__(
        self, base_url: str, token: str, name: str, *, verify: bool | str = True, timeout: float = 60.0
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                VERSION_HEADER: __version__,
                SCHEMA_HEADER: SCHEMA_VERSION,
                "X-Camscan-Agent": name,
                "User-Agent": f"camscan-agent/{__version__}",
            },
            timeout=timeout,
            verify=verify,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.http.close()

    def send(self, method: str, path: str, *, deliver_for: float, **kwargs: Any) -> httpx.Response:
        """One request, repeated with exponential backoff (1 s, 2 s, 4 s ... 60 s) while the service cannot
        be reached or answers 5xx, 408 or 429, for at most `deliver_for` seconds (DeliveryFailed)."""
        deadline = time.monotonic() + deliver_for
        delay = 1.0
        while True:
            try:
                response = self.http.request(method, path, **kwargs)
                if response.status_code < 500 and response.status_code not in (408, 429):
                    return response
                why = f"HTTP {response.status_code}: {response.text[:300]}"
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            if time.monotonic() + delay > deadline:
                raise DeliveryFailed(f"{method} {path}: {why}")
            log.warning("%s %s failed (%s); again in %.0f s", method, path, why, delay)
            time.sleep(delay)
            delay = min(delay * 2, 60.0)


@dataclass
class Agent:
    site: str
    name: str
    client: ServiceClient
    allow: IPSet
    allow_text: list[str]
    spool: Path
    max_scan_time: float = 1500.0
    deliver_for: float = 600.0
    runner: Runner | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"scanned": 0, "refused": 0, "delivered": 0, "skipped": 0})

    def __post_init__(self) -> None:
        self.spool.mkdir(parents=True, exist_ok=True, mode=0o700)

    # ---- one job ---------------------------------------------------------------------------------
    def handle(self, doc: Any) -> str:
        """Run one job message to its end; what happened, in a word (for the log and the tests)."""
        if not isinstance(doc, dict):
            log.error("dropped a message that is not a scan job: %r", type(doc).__name__)
            return "invalid"
        try:
            job = job_from_message(doc)
        except ValueError as exc:
            log.error("dropped a message: %s", exc)
            return "invalid"
        reason = refusal(job, self.site, self.allow, self.allow_text)
        if reason is not None:
            log.warning("scan %s refused: %s", job.scan_id, reason)
            self.stats["refused"] += 1
            self._result(job.scan_id, reason, refused=True)
            return "refused"
        spooled = self.spool / f"{job.scan_id}.json"
        if not spooled.exists():
            status = self._status(job.scan_id)
            if status not in (None, "queued", "running"):
                log.info("scan %s is %s at the service already: job dropped", job.scan_id, status)
                self.stats["skipped"] += 1
                return "skipped"
            limit = min(job.time_limit, self.max_scan_time)
            log.info("scan %s of site %s: %s (time limit %.0f s)", job.scan_id, job.site, ", ".join(job.targets), limit)
            try:
                raw = self.runner(job, limit) if self.runner else run_scan(job, limit, self.spool / "work")
            except ScanFailed as exc:
                log.warning("scan %s failed: %s", job.scan_id, exc)
                self._result(job.scan_id, str(exc))
                return "failed"
            self.stats["scanned"] += 1
            part = spooled.with_suffix(".part")
            part.write_bytes(raw)
            os.replace(part, spooled)
        return self._deliver(job.scan_id, spooled)

    def _status(self, scan_id: str) -> str | None:
        try:
            response = self.client.send("GET", f"/api/v1/scans/{scan_id}", deliver_for=min(60.0, self.deliver_for))
        except DeliveryFailed as exc:
            log.warning("could not ask the service about scan %s (%s): scanning anyway", scan_id, exc)
            return None
        if response.status_code == 200:
            return str(response.json().get("status"))
        if response.status_code == 404:
            return "unknown"
        log.warning("the service answered %d about scan %s: scanning anyway", response.status_code, scan_id)
        return None

    def _deliver(self, scan_id: str, spooled: Path) -> str:
        raw = spooled.read_bytes()
        response = self.client.send(
            "POST",
            f"/api/v1/scans/{scan_id}/report",
            deliver_for=self.deliver_for,
            content=raw,
            headers={"Content-Type": "application/json"},
        )
        code = response.status_code
        if code in (200, 201):
            self.stats["delivered"] += 1
            log.info("scan %s: report delivered (%s)", scan_id, "again" if code == 200 else "stored")
            spooled.unlink(missing_ok=True)
            return "delivered"
        detail = _detail(response)
        spooled.unlink(missing_ok=True)  # refused for good: retrying the same bytes cannot help
        log.error("scan %s: the service refused the report (HTTP %d): %s", scan_id, code, detail)
        return "rejected"

    def _result(self, scan_id: str, error: str, refused: bool = False) -> None:
        response = self.client.send(
            "POST",
            f"/api/v1/scans/{scan_id}/result",
            deliver_for=self.deliver_for,
            json={"error": error[:4000], "refused": refused},
        )
        if response.status_code != 200:
            log.error("scan %s: the service refused the result (HTTP %d): %s", scan_id, response.status_code,
                      _detail(response))  # fmt: skip

    # ---- liveness ------------------------------------------------------------------------------------
    def heartbeat(self) -> httpx.Response:
        return self.client.http.post(
            "/api/v1/agents/heartbeat",
            json={
                "name": self.name,
                "site": self.site,
                "version": __version__,
                "schema_version": SCHEMA_VERSION,
                "hostname": socket.gethostname()[:200],
                "allow": self.allow_text,
            },
        )

    def heartbeats(self, stop: threading.Event, every: float = HEARTBEAT_EVERY) -> None:
        while not stop.wait(every):
            try:
                response = self.heartbeat()
                if response.status_code != 200:
                    log.error("heartbeat refused (HTTP %d): %s", response.status_code, _detail(response))
            except httpx.HTTPError as exc:
                log.warning("heartbeat failed: %s: %s", type(exc).__name__, exc)


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text
    return str(detail)[:500]


def build_app(agent: Agent, broker_url: str, retry_after: float = 300.0) -> Any:
    """The agent's Celery app: its site's queue only, the scan task bound to `agent`."""
    app = make_app(broker_url, site=agent.site, name=f"camscan-agent-{agent.site}")

    def scan(self: Any, doc: Any) -> str:
        try:
            return agent.handle(doc)
        except DeliveryFailed as exc:  # the report stays spooled; the job comes back later to deliver it
            log.error("could not reach the service: %s; the job returns to the queue for %.0f s", exc, retry_after)
            raise self.retry(countdown=retry_after, exc=exc) from None

    app.task(name=TASK_NAME, bind=True, max_retries=None, acks_late=True, reject_on_worker_lost=True)(scan)
    return app


def start_check(agent: Agent) -> str | None:
    """The first heartbeat: None when the service takes it (or cannot be reached yet), else why the agent
    cannot work (a bad token, a token of another site, a version too old)."""
    try:
        response = agent.heartbeat()
    except httpx.HTTPError as exc:
        log.warning("the service cannot be reached yet (%s: %s); the agent starts anyway", type(exc).__name__, exc)
        return None
    if response.status_code == 200:
        if not response.json().get("assigned"):
            log.warning(
                "site %s is not assigned to agent %r yet: its scans run elsewhere until an admin sets the "
                "site's agent (PATCH /api/v1/sites/%s)", agent.site, agent.name, agent.site,
            )  # fmt: skip
        return None
    if response.status_code >= 500:
        return None
    return f"the service refused the agent (HTTP {response.status_code}): {_detail(response)}"


def run(agent: Agent, broker_url: str, *, heartbeat_every: float = HEARTBEAT_EVERY, loglevel: str = "INFO") -> int:
    """Run the worker until SIGTERM/SIGINT (a running scan is finished first, then the worker stops)."""
    problem = start_check(agent)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    stop = threading.Event()
    beat = threading.Thread(target=agent.heartbeats, args=(stop, heartbeat_every), name="heartbeat", daemon=True)
    beat.start()
    app = build_app(agent, broker_url)
    try:
        app.worker_main([
            "worker", "--pool=threads", "--concurrency=1", f"--queues={queue_name(agent.site)}",
            "--without-gossip", "--without-mingle", "--without-heartbeat", f"--loglevel={loglevel}",
            f"--hostname={agent.name}@{socket.gethostname()}",
        ])  # fmt: skip
    finally:
        stop.set()
        agent.client.close()
    return 0
