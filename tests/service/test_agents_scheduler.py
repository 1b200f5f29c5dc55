"""The scheduler's part for sites with an agent, on SQLite and PostgreSQL, with a clock the test moves:
`agent.offline` raised once per outage and cleared by the next heartbeat, scans at agents left alone
by a restarted service, and failed when their agent never answers. The executor is the real Celery one;
nothing here publishes (no agent is online), so no broker connection is made."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from scanner import __version__
from scanner.model import SCHEMA_VERSION
from scanner.service.local import LocalExecutor
from scanner.service.remote import CeleryExecutor
from scanner.service.scheduler import Scheduler
from scanner.service.store.db import Database
from scanner.service.store.models import Agent, AlertEvent, AuditEntry, Scan, Site, utcnow
from tests.service.agentkit import AlwaysLeader
from tests.service.conftest import add_site


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def _scheduler(db: Database, tmp_path: Path, clock: Clock) -> Scheduler:
    remote = CeleryExecutor("amqp://nobody:nothing@127.0.0.1:5672/cag-unused")
    return Scheduler(db, LocalExecutor(tmp_path / "work"), AlwaysLeader(), clock=clock, remote=remote,
                     agent_offline_after=60, time_limit=100)  # fmt: skip


def _offline_events(db: Database) -> list[AuditEntry]:
    """The agent.offline events in the audit log, checked to be the same as the alert outbox's."""
    with db.session() as s:
        logged = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "agent.offline").order_by(AuditEntry.id)))
        alerts = list(s.scalars(select(AlertEvent).where(AlertEvent.event == "agent.offline").order_by(AlertEvent.id)))
        assert [(a.detail or {}).get("agent") for a in alerts] == [(e.detail or {}).get("agent") for e in logged]
        return logged


def test_agent_offline_is_raised_once_per_outage(db: Database, tmp_path: Path) -> None:
    clock = Clock()
    site_id = add_site(db, "annex")
    with db.session() as s:
        s.add(Agent(name="annex", site_id=site_id, version=__version__, schema_version=SCHEMA_VERSION,
                    first_seen_at=clock.now, last_seen_at=clock.now))  # fmt: skip
    scheduler = _scheduler(db, tmp_path, clock)
    scheduler.tick()
    assert _offline_events(db) == []
    clock.now += timedelta(seconds=61)
    scheduler.tick()
    scheduler.tick()
    events = _offline_events(db)
    assert len(events) == 1 and events[0].target == "site:annex" and events[0].actor == "camscan service"
    assert events[0].detail and events[0].detail["agent"] == "annex" and events[0].detail["last_contact"]
    with db.session() as s:  # a heartbeat ends the outage (what the API route does)
        agent = s.scalars(select(Agent)).one()
        agent.last_seen_at, agent.offline_since = clock.now, None
    clock.now += timedelta(seconds=120)
    scheduler.tick()
    assert len(_offline_events(db)) == 2  # a second outage, a second event
    scheduler.stop()


def test_scans_at_agents_survive_a_service_restart_and_expire_unanswered(db: Database, tmp_path: Path) -> None:
    clock = Clock()
    site_id = add_site(db, "annex")
    with db.session() as s:
        site = s.get(Site, site_id)
        assert site is not None
        site.agent = "annex"
        runner = "old:1 celery queue camscan.site.annex"
        remote = Scan(id=str(uuid.uuid4()), site_id=site_id, trigger="schedule", status="running",
                      queued_at=clock.now, started_at=clock.now, runner=runner)  # fmt: skip
        s.add(remote)
    scheduler = _scheduler(db, tmp_path, clock)
    scheduler.tick()  # takes over: recover() must not call the agent's scan interrupted
    with db.session() as s:
        again = s.get(Scan, remote.id)
        assert again is not None and again.status == "running"
    clock.now += timedelta(seconds=scheduler.remote_deadline + 1)
    scheduler.tick()
    with db.session() as s:
        scan = s.get(Scan, remote.id)
        assert scan is not None and scan.status == "failed"
        assert scan.error and scan.error.startswith("no result from the site's agent")
    scheduler.stop()


def test_a_site_whose_agent_never_called_in_is_skipped(db: Database, tmp_path: Path) -> None:
    clock = Clock()
    site_id = add_site(db, "annex")
    with db.session() as s:
        site = s.get(Site, site_id)
        assert site is not None
        site.agent = "annex"
        s.add(Scan(id=str(uuid.uuid4()), site_id=site_id, trigger="manual", status="queued", queued_at=clock.now))
    scheduler = _scheduler(db, tmp_path, clock)
    scheduler.tick()
    with db.session() as s:
        scan = s.scalars(select(Scan)).one()
        assert (scan.status, scan.error) == ("failed", "skipped: agent offline")
    events = _offline_events(db)
    assert len(events) == 1 and events[0].detail and events[0].detail["reason"] == "the agent never called in"
    with db.session() as s:  # the skipped scan is a failed scan for the alert rules too
        failed = s.scalars(select(AlertEvent).where(AlertEvent.event == "scan.failed")).all()
        assert [(f.scan_id, (f.detail or {}).get("error")) for f in failed] == [(scan.id, "skipped: agent offline")]
    scheduler.stop()
