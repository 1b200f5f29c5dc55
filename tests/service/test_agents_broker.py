"""Scan agents through the real broker, on loopback: the machine's RabbitMQ (a throwaway vhost, per-site
users confined to their queue), the service served by uvicorn with its scheduler and Celery executor, and
`camscan agent` processes that scan 127.0.0.1 for real and post their reports to the API.

The namespace WAN (two buildings on the same address range, kills and broker restarts) is in
test_agents_wan.py; the API rules (tokens, versions, idempotence) in test_agents_api.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from sqlalchemy import select

from scanner.service.auth import create_token
from scanner.service.store.db import Database
from scanner.service.store.models import AuditEntry, Scan, Site
from tests.service.agentkit import LiveService, Vhost, api, start_agent, stop, vhost, wait_for

__all__ = ["vhost"]  # the fixture, imported for the tests of this module


def _site(db: Database, slug: str, targets: list[str], agent: str | None) -> str:
    with db.session() as s:
        site = Site(slug=slug, name=slug.title(), targets=targets, methods=["ports", "http"], agent=agent)
        s.add(site)
        s.flush()
        return create_token(s, f"agent {slug}", "operator", site)[1]


def _scan(db: Database, scan_id: str) -> Scan | None:
    with db.session() as s:
        scan = s.get(Scan, scan_id)
        if scan is not None:
            s.expunge(scan)
        return scan


def _finished(db: Database, scan_id: str) -> Any:
    scan = _scan(db, scan_id)
    return scan if scan is not None and scan.status not in ("queued", "running") else None


@pytest.fixture
def setup(db: Database, vhost: Vhost, tmp_path: Path) -> Iterator[dict[str, Any]]:
    tokens = {slug: _site(db, slug, ["127.0.0.1"], slug) for slug in ("alpha", "beta")}
    with db.session() as s:
        admin = create_token(s, "admin", "admin")[1]
    with LiveService(db, vhost.service_url(), tmp_path / "work") as service:
        yield {"service": service, "tokens": tokens, "admin": admin}


def test_a_site_with_an_agent_is_scanned_there_and_stored_once(
    db: Database, vhost: Vhost, setup: dict[str, Any], tmp_path: Path
) -> None:
    service, tokens = setup["service"], setup["tokens"]
    agent = start_agent(tmp_path, "alpha", vhost.site_url("alpha"), service.url, tokens["alpha"], "127.0.0.0/8")
    logs = (tmp_path / "agent-alpha.log",)
    try:
        with api(service.url, setup["admin"]) as client:
            wait_for(lambda: any(a["online"] for a in client.get("/api/v1/agents").json()["items"]), 60,
                     "the agent's first heartbeat", logs)  # fmt: skip
            listed = client.get("/api/v1/agents").json()["items"]
            assert listed[0]["name"] == "alpha" and listed[0]["site"] == "alpha" and listed[0]["version"]
            assert listed[0]["allow"] == ["127.0.0.0/8"] and listed[0]["last_contact"]
            queued = client.post("/api/v1/sites/alpha/scans")
            assert queued.status_code == 202, queued.text
            scan = wait_for(lambda: _finished(db, queued.json()["id"]), 120, "the scan at the agent", logs)
            assert scan.status == "succeeded", scan.error
            assert "celery queue camscan.site.alpha" in (scan.runner or "")
            report = client.get(f"/api/v1/scans/{scan.id}/report.json")
            assert report.status_code == 200 and report.json()["scan"]["scope"][0] == "127.0.0.1/32"
            with db.session() as s:  # the report is stored once, in the scan the scheduler made
                assert s.scalars(select(Scan).where(Scan.report_id == scan.report_id)).all()[0].id == scan.id
                assert len(s.scalars(select(Scan)).all()) == 1
        assert vhost.queue_depth("camscan.site.alpha") == 0  # acknowledged once stored
    finally:
        stop(agent)


def test_a_job_outside_the_allow_list_is_refused_and_recorded(
    db: Database, vhost: Vhost, setup: dict[str, Any], tmp_path: Path
) -> None:
    service, tokens = setup["service"], setup["tokens"]
    # the building allows only 127.0.0.2: a job for 127.0.0.1 (as a compromised service could send) is refused
    agent = start_agent(tmp_path, "beta", vhost.site_url("beta"), service.url, tokens["beta"], "127.0.0.2/32")
    logs = (tmp_path / "agent-beta.log",)
    try:
        with api(service.url, setup["admin"]) as client:
            wait_for(lambda: client.get("/api/v1/agents").json()["items"], 60, "the agent's heartbeat", logs)
            queued = client.post("/api/v1/sites/beta/scans").json()
            scan = wait_for(lambda: _finished(db, queued["id"]), 90, "the refusal", logs)
        assert scan.status == "failed" and scan.report_id is None
        assert scan.error.startswith("refused by the agent: targets outside its --allow list (127.0.0.1/32)")
        assert "scan 127.0.0.1" not in (tmp_path / "agent-beta.log").read_text()  # no scan was started
        with db.session() as s:
            refusals = s.scalars(select(AuditEntry).where(AuditEntry.action == "scan.refused")).all()
            assert [r.target for r in refusals] == [f"scan:{scan.id}"]
    finally:
        stop(agent)


def test_an_offline_agent_skips_the_scan_and_raises_agent_offline(
    db: Database, vhost: Vhost, setup: dict[str, Any]
) -> None:
    with api(setup["service"].url, setup["admin"]) as client:  # nobody runs the agent of alpha
        queued = client.post("/api/v1/sites/alpha/scans").json()
        scan = wait_for(lambda: _finished(db, queued["id"]), 30, "the skipped scan")
        assert scan.status == "failed" and scan.error == "skipped: agent offline"
        assert client.get(f"/api/v1/scans/{scan.id}").json()["error"] == "skipped: agent offline"
    with db.session() as s:
        events = s.scalars(select(AuditEntry).where(AuditEntry.action == "agent.offline")).all()
        assert [e.detail["agent"] for e in events if e.detail] == ["alpha"]
        assert events[0].target == "site:alpha"
    assert vhost.queue_depth("camscan.site.alpha") in (None, 0)  # nothing published for nobody to read


def test_a_site_user_is_confined_to_its_own_queue(vhost: Vhost, setup: dict[str, Any]) -> None:
    """The broker, not only the agent, keeps sites apart: alpha's credentials cannot read beta's queue."""
    from amqp.exceptions import AccessRefused

    alpha_url = vhost.site_url("alpha")
    beta = Queue("camscan.site.beta", Exchange("camscan.site.beta", "direct", durable=True),
                 routing_key="camscan.site.beta", durable=True)  # fmt: skip
    with Connection(vhost.service_url()) as conn:  # the service declares beta's queue, as at a first job
        beta.bind(conn.channel()).declare()
    with Connection(alpha_url) as conn, pytest.raises(AccessRefused):
        conn.ensure_connection(max_retries=1)
        channel = conn.channel()
        channel.basic_consume("camscan.site.beta", callback=lambda *_: None)
    with Connection(alpha_url) as conn:  # its own queue: fine
        conn.ensure_connection(max_retries=1)
        Queue("camscan.site.alpha", Exchange("camscan.site.alpha", "direct", durable=True),
              routing_key="camscan.site.alpha", durable=True).bind(conn.channel()).declare()  # fmt: skip
