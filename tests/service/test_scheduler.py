"""The scheduler's decisions (cron, catch-up, one scan per site, recovery, leadership) on both databases,
and the local executor running real `camscan scan` children (loopback targets only).

The scheduler tests drive it with a recording executor, a test double of the job interface (jobs.py) that
lets a test say when and how each job ends, and a clock the test sets: the decisions are the subject.
The executor tests run the real child processes.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from scanner.report.export import verify_document
from scanner.service.jobs import JobOutcome, ScanJob
from scanner.service.local import LocalExecutor
from scanner.service.scheduler import (
    FileLeaderLock,
    ScheduleError,
    Scheduler,
    check_schedule,
    leader_lock_for,
    next_fire,
)
from scanner.service.store.db import Database
from scanner.service.store.models import Device, Scan, Site
from tests.service.conftest import HIK, Dev, add_site, make_report


class RecordingExecutor:
    """Implements the Executor protocol; jobs end when the test says so."""

    def __init__(self, room: int = 4) -> None:
        self.jobs: dict[str, ScanJob] = {}
        self.done: list[JobOutcome] = []
        self.room = room
        self.stopped: list[str] = []

    def submit(self, job: ScanJob) -> str:
        self.jobs[job.scan_id] = job
        return "recording"

    def has_room(self) -> bool:
        return len(self.jobs) < self.room

    def active(self) -> set[str]:
        return set(self.jobs)

    def poll(self) -> list[JobOutcome]:
        out, self.done = self.done, []
        return out

    def cancel(self, scan_id: str) -> None:
        self.jobs.pop(scan_id, None)

    def shutdown(self) -> list[str]:
        self.stopped = list(self.jobs)
        self.jobs.clear()
        return self.stopped

    def finish(self, scan_id: str, outcome: JobOutcome) -> None:
        del self.jobs[scan_id]
        self.done.append(outcome)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def make_scheduler(db: Database, clock: Clock, executor: RecordingExecutor) -> Scheduler:
    return Scheduler(db, executor, leader_lock_for(db), clock=clock)


def scans(db: Database) -> list[Scan]:
    with db.session() as s:
        return list(s.scalars(select(Scan).order_by(Scan.queued_at, Scan.id)))


def test_cron_follows_the_sites_time_zone_across_daylight_saving() -> None:
    assert next_fire("0 2 * * *", "Europe/London", datetime(2026, 1, 10, 12, tzinfo=UTC)) == datetime(
        2026, 1, 11, 2, tzinfo=UTC
    )
    assert next_fire("0 2 * * *", "Europe/London", datetime(2026, 3, 28, 12, tzinfo=UTC)) == datetime(
        2026,
        3,
        29,
        1,
        tzinfo=UTC,  # 02:00 BST
    )
    assert next_fire("*/15 * * * *", "UTC", datetime(2026, 1, 1, 0, 7, tzinfo=UTC)).minute == 15


@pytest.mark.parametrize(
    ("expr", "tz", "field"),
    [
        ("61 * * * *", "UTC", "schedule"),
        ("* * *", "UTC", "schedule"),
        ("0 2 * * * *", "UTC", "schedule"),
        ("banana", "UTC", "schedule"),
        ("0 2 * * *", "Europe/Nowhere", "tz"),
        ("0 2 * * *", "../etc/passwd", "tz"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_field(expr: str, tz: str, field: str) -> None:
    with pytest.raises(ScheduleError, match=f"^{field}:"):
        check_schedule(expr, tz)


def _scheduled_site(db: Database, expr: str, next_run: datetime | None) -> int:
    site_id = add_site(db)
    with db.session() as s:
        site = s.get(Site, site_id)
        assert site is not None
        site.schedule, site.next_run_at = expr, next_run
    return site_id


def test_a_due_site_is_queued_and_started_once(db: Database) -> None:
    _scheduled_site(db, "0 * * * *", T0 - timedelta(minutes=1))
    clock, executor = Clock(T0), RecordingExecutor()
    sched = make_scheduler(db, clock, executor)
    sched.tick()
    (scan,) = scans(db)
    assert (scan.trigger, scan.status) == ("schedule", "running")
    assert list(executor.jobs) == [scan.id] and executor.jobs[scan.id].targets == ("10.77.0.0/24",)
    sched.tick()
    assert len(scans(db)) == 1
    with db.session() as s:
        assert s.scalars(select(Site.next_run_at)).one() == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    sched.stop()


def test_runs_missed_while_down_run_once_not_once_per_slot(db: Database) -> None:
    _scheduled_site(db, "0 * * * *", T0 - timedelta(hours=30))  # thirty hourly slots missed
    clock, executor = Clock(T0), RecordingExecutor()
    sched = make_scheduler(db, clock, executor)
    sched.tick()
    assert len(scans(db)) == 1
    (scan_id,) = executor.jobs
    executor.finish(
        scan_id, JobOutcome(scan_id, ok=True, report=make_report([Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK))]))
    )
    sched.tick()
    assert len(scans(db)) == 1  # nothing more until the next slot
    clock.now = T0 + timedelta(hours=1, seconds=1)
    sched.tick()
    assert [s.trigger for s in scans(db)] == ["schedule", "schedule"]
    sched.stop()


def test_a_slot_that_comes_while_a_scan_runs_is_skipped(db: Database) -> None:
    site = _scheduled_site(db, "*/5 * * * *", T0)
    clock, executor = Clock(T0), RecordingExecutor()
    sched = make_scheduler(db, clock, executor)
    sched.tick()
    clock.now = T0 + timedelta(minutes=5, seconds=1)
    sched.tick()
    (scan,) = scans(db)
    assert scan.status == "running" and scan.site_id == site
    sched.stop()


def test_outcomes_are_recorded(db: Database) -> None:
    add_site(db)
    add_site(db, "annex")
    add_site(db, "depot")
    clock, executor = Clock(T0), RecordingExecutor()
    sched = make_scheduler(db, clock, executor)
    with db.session() as s:
        for i, site in enumerate(s.scalars(select(Site).order_by(Site.id))):
            s.add(Scan(id=f"scan-{i}", site_id=site.id, trigger="manual", status="queued", queued_at=T0))
    sched.tick()
    assert sorted(executor.jobs) == ["scan-0", "scan-1", "scan-2"]
    good = make_report([Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK))])
    executor.finish("scan-0", JobOutcome("scan-0", ok=True, report=good))
    executor.finish("scan-1", JobOutcome("scan-1", ok=False, error="the scan failed (exit status 2): boom"))
    executor.finish("scan-2", JobOutcome("scan-2", ok=True, report=good[:-50]))
    clock.now = T0 + timedelta(minutes=1)
    sched.tick()
    by_id = {s.id: s for s in scans(db)}
    assert by_id["scan-0"].status == "succeeded" and by_id["scan-0"].finished_at == clock.now
    assert (by_id["scan-1"].status, by_id["scan-1"].error) == ("failed", "the scan failed (exit status 2): boom")
    assert by_id["scan-2"].status == "failed" and "refused" in (by_id["scan-2"].error or "")
    with db.session() as s:
        assert len(s.scalars(select(Device)).all()) == 1
    sched.stop()


def test_a_scan_left_running_is_interrupted_and_queued_again_once(db: Database) -> None:
    site = add_site(db)
    with db.session() as s:
        s.add(Scan(id="old", site_id=site, trigger="schedule", status="running", queued_at=T0, started_at=T0,
                   runner="dead-host:1:abc local pid 999999999"))  # fmt: skip
    executor = RecordingExecutor(room=0)  # keep the retry queued, to look at it
    sched = make_scheduler(db, Clock(T0 + timedelta(minutes=3)), executor)
    sched.tick()
    old, retry = scans(db)
    assert (old.id, old.status, old.requeued) == ("old", "interrupted", True)
    assert (retry.status, retry.trigger, retry.retry_of) == ("queued", "retry", "old")
    sched.stop()
    again = make_scheduler(db, Clock(T0 + timedelta(minutes=4)), RecordingExecutor(room=0))
    again.tick()
    assert len(scans(db)) == 2  # not queued a second time
    again.stop()


def test_stop_marks_running_scans_interrupted_for_the_next_start(db: Database) -> None:
    site = add_site(db)
    with db.session() as s:
        s.add(Scan(id="now", site_id=site, trigger="manual", status="queued", queued_at=T0))
    executor = RecordingExecutor()
    sched = make_scheduler(db, Clock(T0), executor)
    sched.tick()
    assert sched.stop() == ["now"]
    (scan,) = scans(db)
    assert (scan.status, scan.requeued) == ("interrupted", False)
    nxt = make_scheduler(db, Clock(T0 + timedelta(minutes=1)), RecordingExecutor())
    nxt.tick()
    assert [(s.status, s.trigger) for s in scans(db)] == [("interrupted", "manual"), ("running", "retry")]
    nxt.stop()


def test_exactly_one_scheduler_per_database(db: Database) -> None:
    _scheduled_site(db, "0 * * * *", T0 - timedelta(minutes=1))
    first = make_scheduler(db, Clock(T0), RecordingExecutor())
    second_exec = RecordingExecutor()
    second = make_scheduler(db, Clock(T0), second_exec)
    first.tick()
    second.tick()
    assert (first.health(), second.health()) == ("ok", "standby")
    assert len(scans(db)) == 1 and not second_exec.jobs
    first.stop()  # the leader goes away: the other takes over
    second.tick()
    assert second.health() == "ok"
    second.stop()


def test_the_sqlite_lock_is_per_database_file(tmp_path: Path) -> None:
    a1, a2, b = (
        FileLeaderLock(tmp_path / "a.lock"),
        FileLeaderLock(tmp_path / "a.lock"),
        FileLeaderLock(tmp_path / "b.lock"),
    )
    assert a1.acquire() and not a2.acquire() and b.acquire()
    a1.release()
    assert a2.acquire()
    a2.release()
    b.release()


# ---- the local executor, with real child processes -------------------------------------------------------


def _wait(executor: LocalExecutor, timeout: float = 60) -> JobOutcome:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = executor.poll()
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError("the job did not end")


def test_the_local_executor_runs_a_real_scan(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path)
    name = "--allow-public --nmap"  # a site's name is free text: it must stay the name, never become options
    executor.submit(ScanJob("job-ok", "lo", name, ("127.0.0.1",), methods=("ports",)))
    outcome = _wait(executor)
    assert outcome.ok and outcome.report is not None, outcome.error
    doc = json.loads(outcome.report)
    assert verify_document(doc)[0] and doc["scan"]["site"] == name and doc["scan"]["methods"] == ["ports"]
    assert list(tmp_path.iterdir()) == []  # its files are cleaned up


def test_a_failing_scan_reports_why(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path)
    executor.submit(ScanJob("job-bad", "lo", "Loopback", ("127.0.0.1",), methods=("bogus",)))
    outcome = _wait(executor)
    assert not outcome.ok and "exit status 2" in (outcome.error or "") and "bogus" in (outcome.error or "")


def test_a_scan_over_its_time_limit_is_killed_with_its_process_group(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path)
    # 256 loopback addresses x the camera ports at --rate 500: many seconds, far over a 1 s limit
    executor.submit(ScanJob("job-slow", "lo", "Loopback", ("127.88.0.0/24",), methods=("ports",), time_limit=1.0))
    pid = executor._running["job-slow"].proc.pid
    outcome = _wait(executor)
    assert not outcome.ok and "time limit" in (outcome.error or "")
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
