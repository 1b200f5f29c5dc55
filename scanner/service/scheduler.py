"""The scheduler: which site is scanned when, one scan per site at a time, exactly one scheduler.

The queue is the `scans` table: the API inserts `queued` rows (a manual request), the scheduler inserts
them when a site's cron expression comes due, and starts queued scans on its executor. A unique partial
index lets at most one scan per site be queued or running, whoever inserts it.

- Cron with a time zone per site (croniter). The next run is stored with the site; a run missed while
  the service was down is due at start and runs once, and the next one is computed from now, not from
  the missed slot (so a week offline gives one catch-up scan, not seven).
- Exactly one scheduler per database: several service processes may share a PostgreSQL database (each
  serves the API); the one that holds the advisory lock schedules, the others stand by and take over
  when its connection ends. With SQLite the lock is an flock on a file beside the database.
- A scan still `running` when its scheduler took over was cut short (SIGKILL, power loss): it is marked
  `interrupted` and queued again once (`trigger: retry`). SIGTERM stops the children and marks their
  scans interrupted the same way; the next start re-queues them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from scanner.service.ingest import IngestError, ingest_report
from scanner.service.jobs import Executor, JobDeferred, JobOutcome, ScanJob, is_remote
from scanner.service.local import stop_orphan
from scanner.service.store.db import Database
from scanner.service.store.models import Agent, Scan, Site, utcnow

log = logging.getLogger("camscan.service.scheduler")
ACTIVE = ("queued", "running")

#: The advisory lock's key: the first 8 bytes of sha256("camscan-scheduler"), as a signed bigint.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"camscan-scheduler").digest()[:8], "big", signed=True)


class ScheduleError(ValueError):
    pass


def check_schedule(expr: str | None, tz: str | None) -> None:
    """Refuse a cron expression or time zone that cannot work, saying which field is wrong."""
    try:
        ZoneInfo(tz or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"tz: unknown time zone {tz!r} (use an IANA name such as Europe/London)") from None
    if expr is None:
        return
    fields = expr.split()
    if not expr.startswith("@") and len(fields) != 5:
        raise ScheduleError(
            f"schedule: {expr!r} is not a cron expression of five fields (minute hour day month weekday)"
        )
    if not croniter.is_valid(expr):
        raise ScheduleError(f"schedule: {expr!r} is not a valid cron expression")


def next_fire(expr: str, tz: str, after: datetime) -> datetime:
    """The first time strictly after `after` that the cron expression names, in the site's zone."""
    zone = ZoneInfo(tz)
    nxt = croniter(expr, after.astimezone(zone)).get_next(datetime)
    assert isinstance(nxt, datetime)
    return nxt.astimezone(ZoneInfo("UTC"))


class LeaderLock(Protocol):
    def acquire(self) -> bool: ...
    def held(self) -> bool: ...
    def release(self) -> None: ...


class PostgresLeaderLock:
    """A session-level advisory lock on a connection of its own: held until released or disconnected."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        if self.held():
            return True
        conn = self.db.engine.connect()
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar())
        conn.commit()
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except SQLAlchemyError:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.close()
            self._conn = None
            return False

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                self._conn.commit()
                self._conn.close()
            self._conn = None


class FileLeaderLock:
    """flock(2) on a file beside the SQLite database: released by the kernel when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def leader_lock_for(db: Database) -> LeaderLock:
    if db.is_postgresql:
        return PostgresLeaderLock(db)
    database = db.engine.url.database
    if not database or database == ":memory:":
        raise ValueError("an in-memory SQLite database cannot be shared: give a file")
    return FileLeaderLock(Path(database + ".scheduler.lock"))


class Scheduler:
    """One pass (`tick`) at a time, every `interval` seconds in a thread once `start`ed."""

    def __init__(
        self,
        db: Database,
        executor: Executor,
        lock: LeaderLock,
        *,
        interval: float = 1.0,
        time_limit: float = 900.0,
        clock: Callable[[], datetime] = utcnow,
        instance: str | None = None,
        remote: Executor | None = None,
        agent_offline_after: float | None = None,
        remote_deadline: float | None = None,
    ) -> None:
        from scanner.service.agents import OFFLINE_AFTER

        self.db = db
        self.executor = executor
        # Sites assigned to an agent are scanned there, through `remote` (the Celery executor); a scan
        # handed to an agent that has not answered after `remote_deadline` seconds is failed.
        self.remote = remote
        self.agent_offline_after = OFFLINE_AFTER if agent_offline_after is None else agent_offline_after
        self.remote_deadline = remote_deadline if remote_deadline is not None else 4 * time_limit + 600
        self.lock = lock
        self.interval = interval
        self.time_limit = time_limit
        self.clock = clock
        self.instance = instance or f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.state = "starting"
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leader = False
        self.last_pass: float | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="camscan-scheduler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
                self.last_error = None
                self.last_pass = time.monotonic()
            except Exception as exc:  # the loop must outlive a database hiccup; the health check shows it
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.state = "error"
                log.exception("scheduler pass failed")
            self._stop.wait(self.interval)

    def stop(self) -> list[str]:
        """Stop the loop, the running scans (marked interrupted, re-queued at the next start), the lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        stopped = self.executor.shutdown() if self._leader else []
        if self.remote is not None:
            self.remote.shutdown()  # jobs at agents go on; their reports reach whichever service runs then
        if stopped:
            try:
                with self.db.session() as s:
                    for scan in s.scalars(select(Scan).where(Scan.id.in_(stopped))):
                        scan.status, scan.finished_at = "interrupted", self.clock()
                        scan.error = "the service stopped during the scan; it is queued again at the next start"
            except SQLAlchemyError:
                log.exception("could not mark the stopped scans interrupted (the next start will)")
        self.lock.release()
        self._leader = False
        self.state = "stopped"
        return stopped

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def health(self) -> str:
        """ok (this process schedules), standby (another one does), or what is wrong: error (the last pass
        failed), stalled (no pass finished for a while), stopped."""
        if self._thread is not None:
            if not self.alive:
                return "stopped"
            if self.last_pass is not None and time.monotonic() - self.last_pass > max(30.0, 10 * self.interval):
                return "stalled"
        return self.state

    # ---- one pass ----------------------------------------------------------------------------------
    def tick(self) -> None:
        if not self._leader or not self.lock.held():
            self._leader = False
            if not self.lock.acquire():
                self.state = "standby"
                return
            self._leader = True
            self.recover()
        self.state = "ok"
        self.enqueue_due()
        self.collect()
        self.start_queued()
        if self.remote is not None:
            self.check_agents()
            self.expire_remote()

    def recover(self) -> None:
        """Mark scans a dead scheduler left running as interrupted; queue each interrupted scan once again."""
        now = self.clock()
        with self.db.session() as s:
            for scan in s.scalars(select(Scan).where(Scan.status == "running")):
                if scan.id in self.executor.active() or is_remote(scan.runner):
                    continue  # a job at an agent goes on without this process
                stop_orphan(scan.runner, scan.id)
                scan.status, scan.finished_at = "interrupted", now
                scan.error = "the service stopped during the scan (killed or crashed); it is queued again"
        with self.db.session() as s:
            pending = s.scalars(
                select(Scan).where(Scan.status == "interrupted", Scan.requeued.is_(False)).order_by(Scan.queued_at)
            ).all()
            for old in pending:
                old.requeued = True
                busy = s.scalar(select(Scan.id).where(Scan.site_id == old.site_id, Scan.status.in_(ACTIVE)))
                if busy is None:
                    s.add(
                        Scan(
                            id=str(uuid.uuid4()),
                            site_id=old.site_id,
                            trigger="retry",
                            requested_by=old.requested_by,
                            status="queued",
                            queued_at=now,
                            retry_of=old.id,
                        )
                    )
                    s.flush()
                log.info("scan %s was interrupted; queued again", old.id)

    def enqueue_due(self) -> None:
        now = self.clock()
        with self.db.session() as s:
            sites = s.scalars(select(Site).where(Site.enabled.is_(True), Site.schedule.is_not(None))).all()
            for site in sites:
                assert site.schedule is not None
                try:
                    upcoming = next_fire(site.schedule, site.timezone, now)
                except (ValueError, KeyError, ZoneInfoNotFoundError) as exc:
                    log.warning("site %s: bad schedule %r: %s", site.slug, site.schedule, exc)
                    continue
                if site.next_run_at is None:
                    site.next_run_at = upcoming
                    continue
                if site.next_run_at > now:
                    continue
                site.next_run_at = upcoming  # from now: a missed slot runs once, not once per slot missed
                busy = s.scalar(select(Scan.id).where(Scan.site_id == site.id, Scan.status.in_(ACTIVE)))
                if busy is not None:
                    log.info("site %s: scheduled scan skipped, scan %s is still queued or running", site.slug, busy)
                    continue
                scan = Scan(
                    id=str(uuid.uuid4()),
                    site_id=site.id,
                    trigger="schedule",
                    requested_by="scheduler",
                    status="queued",
                    queued_at=now,
                )
                try:
                    with s.begin_nested():
                        s.add(scan)
                except IntegrityError:  # a manual request got in first: that scan serves this slot
                    log.info("site %s: scheduled scan skipped, a manual one was just queued", site.slug)

    def start_queued(self) -> None:
        with self.db.session() as s:
            queued = s.execute(
                select(Scan, Site).join(Site, Site.id == Scan.site_id).where(Scan.status == "queued")
                .order_by(Scan.queued_at)
            ).all()  # fmt: skip
            broker_down = False  # after one refused publish, the others of this pass wait for the next one
            for scan, site in queued:
                if not site.agent and not self.executor.has_room():
                    continue
                if site.agent and broker_down:
                    continue
                job = ScanJob(
                    scan_id=scan.id,
                    site=site.slug,
                    site_name=site.name,
                    targets=tuple(site.targets),
                    interface=site.interface,
                    methods=tuple(site.methods or ()),
                    packs=tuple(site.packs or ()),
                    allow_public=site.allow_public,
                    operator=f"camscan service ({scan.trigger}{', ' + scan.requested_by if scan.requested_by else ''})",
                    time_limit=self.time_limit,
                )
                if site.agent:
                    broker_down = not self._start_remote(s, scan, site, job)
                    s.flush()
                    continue
                scan.status, scan.started_at = "running", self.clock()
                try:
                    scan.runner = f"{self.instance} {self.executor.submit(job)}"[:120]
                except OSError as exc:
                    scan.status, scan.finished_at = "failed", self.clock()
                    scan.error = f"the scan could not start: {exc}"
                    _scan_failed(s, scan)
                s.flush()

    # ---- scans at agents (the multi-site issue) ----------------------------------------------------
    def _start_remote(self, s: Session, scan: Scan, site: Site, job: ScanJob) -> bool:
        """Hand a job to the site's agent through the broker, or fail it at once when that cannot work;
        False when the broker did not take it (the scan stays queued)."""
        from scanner.service.agents import SKIPPED_OFFLINE, agent_for, is_online, mark_offline
        from scanner.service.events import AGENT_OFFLINE, record_event

        now = self.clock()
        if self.remote is None:
            scan.status, scan.started_at, scan.finished_at = "failed", now, now
            scan.error = (
                f"the site is assigned to agent {site.agent!r}, but this service has no broker to reach it "
                "(start it with --broker URL)"
            )
            _scan_failed(s, scan)
            return True
        agent = agent_for(s, site)
        if not is_online(agent, now, self.agent_offline_after):
            scan.status, scan.started_at, scan.finished_at = "failed", now, now
            scan.error = SKIPPED_OFFLINE
            if agent is not None:
                mark_offline(s, agent, site, now, "no heartbeat" if agent.refused is None else agent.refused)
            else:  # never called in for this site: said at every skipped scan, there is no outage to count
                detail = {"agent": site.agent, "last_contact": None, "reason": "the agent never called in"}
                record_event(s, AGENT_OFFLINE, site=site, detail=detail, scan_id=scan.id)
            _scan_failed(s, scan)
            log.warning("site %s: scan %s skipped, agent %s is offline", site.slug, scan.id, site.agent)
            return True
        scan.status, scan.started_at = "running", now
        try:
            scan.runner = f"{self.instance} {self.remote.submit(job)}"[:120]
        except JobDeferred as exc:
            scan.status, scan.started_at = "queued", None  # tried again at the next pass
            log.warning("site %s: scan %s stays queued: %s", site.slug, scan.id, exc)
            return False
        return True

    def check_agents(self) -> None:
        """Raise `agent.offline` (once per outage) for each agent that stopped calling in."""
        from scanner.service.agents import mark_offline

        now = self.clock()
        limit = now - timedelta(seconds=self.agent_offline_after)
        with self.db.session() as s:
            rows = s.execute(
                select(Agent, Site).join(Site, Site.id == Agent.site_id)
                .where(Agent.offline_since.is_(None), Agent.last_seen_at < limit)
            ).all()  # fmt: skip
            for agent, site in rows:
                mark_offline(s, agent, site, now, "no heartbeat")
                log.warning("agent %s of site %s is offline (last contact %s)", agent.name, site.slug,
                            agent.last_seen_at)  # fmt: skip

    def expire_remote(self) -> None:
        """Fail scans handed to an agent that gave no result within `remote_deadline` seconds (a report that
        arrives later is still stored: ingest turns the scan succeeded)."""
        now = self.clock()
        limit = now - timedelta(seconds=self.remote_deadline)
        with self.db.session() as s:
            for scan in s.scalars(select(Scan).where(Scan.status == "running", Scan.started_at < limit)):
                if not is_remote(scan.runner):
                    continue
                scan.status, scan.finished_at = "failed", now
                scan.error = (
                    f"no result from the site's agent within {self.remote_deadline:.0f} s; the job stays in its "
                    "queue and a report that comes later is still stored"
                )
                _scan_failed(s, scan)

    def collect(self) -> None:
        for outcome in self.executor.poll():
            self._record(outcome)

    def _record(self, outcome: JobOutcome) -> None:
        now = self.clock()
        try:
            with self.db.session() as s:
                scan = s.get(Scan, outcome.scan_id)
                if scan is None:
                    return
                scan.finished_at = now
                if outcome.ok and outcome.report is not None:
                    site = s.get(Site, scan.site_id)
                    assert site is not None
                    ingest_report(s, site, outcome.report, scan=scan)
                    return
                scan.status, scan.error = "failed", outcome.error
                _scan_failed(s, scan)
        except IngestError as exc:
            with self.db.session() as s:
                scan = s.get(Scan, outcome.scan_id)
                if scan is not None:
                    scan.status, scan.finished_at, scan.error = "failed", now, f"the scan's report was refused: {exc}"
                    _scan_failed(s, scan)


def _scan_failed(session: Session, scan: Scan) -> None:
    """The scan.failed alert, in the transaction that marks the scan failed."""
    from scanner.service.alerts import emit_scan_failed

    emit_scan_failed(session, scan)
