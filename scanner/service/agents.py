"""The service's view of its scan agents: who they are, whether they are too old, whether they are online.

An agent calls in (`POST /api/v1/agents/heartbeat`) every 30 seconds with its camscan version and the
report schema it writes. The service refuses an agent whose reports it cannot read (a schema it does
not know, or a camscan older than MIN_AGENT_VERSION), with a message that says what to upgrade; the
same check guards every report an agent submits. An agent not heard from for `offline_after` seconds is
offline: its site's scheduled scans are marked failed with the error `skipped: agent offline` instead of
waiting in a queue nobody reads, and `agent.offline` is raised once per outage (events.py).
"""

from __future__ import annotations

import typing
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from scanner import __version__
from scanner.model import ScanReport
from scanner.service.events import AGENT_OFFLINE, record_event
from scanner.service.store.models import Agent, Site

#: The oldest camscan whose agent this service takes reports from.
MIN_AGENT_VERSION = "0.1.0"
#: Seconds without a heartbeat after which an agent is offline (3 missed heartbeats and some).
OFFLINE_AFTER = 100.0
HEARTBEAT_EVERY = 30.0
SKIPPED_OFFLINE = "skipped: agent offline"
VERSION_HEADER = "X-Camscan-Agent-Version"
SCHEMA_HEADER = "X-Camscan-Schema-Version"


def accepted_schemas() -> tuple[str, ...]:
    """The report schema versions this camscan's report model reads."""
    return tuple(str(v) for v in typing.get_args(ScanReport.model_fields["schema_version"].annotation))


def _version_tuple(version: str) -> tuple[int, ...] | None:
    parts = version.strip().split("+")[0].split(".")
    try:
        return tuple(int("".join(ch for ch in p if ch.isdigit()) or "x") for p in parts[:3])
    except ValueError:
        return None


def too_old(version: str | None, schema: str | None) -> str | None:
    """Why an agent of camscan `version` writing report schema `schema` is refused, or None if it is not."""
    accepted = accepted_schemas()
    upgrade = f"upgrade camscan at the agent to {MIN_AGENT_VERSION} or newer (this service runs {__version__})"
    if not version:
        return f"the agent did not say its camscan version ({VERSION_HEADER}): {upgrade}"
    mine = _version_tuple(version)
    if mine is None:
        return f"the agent's camscan version {version[:32]!r} is not a version number: {upgrade}"
    if mine < (_version_tuple(MIN_AGENT_VERSION) or ()):
        return f"the agent runs camscan {version[:32]}, too old for this service's report schema: {upgrade}"
    if schema is not None and schema not in accepted:
        return (
            f"the agent writes report schema {schema[:16]}, this service reads {', '.join(accepted)}: "
            f"run the same camscan version at the agent and the service (this service runs {__version__})"
        )
    return None


def is_online(agent: Agent | None, now: datetime, offline_after: float = OFFLINE_AFTER) -> bool:
    return agent is not None and agent.refused is None and now - agent.last_seen_at <= timedelta(seconds=offline_after)


def agent_for(session: Session, site: Site) -> Agent | None:
    """The agent a site is assigned to, if it has called in for that site."""
    if not site.agent:
        return None
    agent = session.scalars(select(Agent).where(Agent.name == site.agent)).first()
    return agent if agent is not None and agent.site_id == site.id else None


def mark_offline(session: Session, agent: Agent, site: Site | None, now: datetime, reason: str) -> None:
    """Note that `agent` is offline and raise `agent.offline`, once per outage."""
    if agent.offline_since is not None:
        return
    agent.offline_since = now
    record_event(
        session,
        AGENT_OFFLINE,
        site=site,
        dedupe=f"agent.offline:{agent.id}:{now.isoformat()}",
        detail={
            "agent": agent.name,
            "last_contact": agent.last_seen_at.isoformat(),
            "version": agent.version,
            "reason": reason,
        },
    )


def agent_json(agent: Agent, site_slug: str, now: datetime, offline_after: float = OFFLINE_AFTER) -> dict[str, object]:
    return {
        "name": agent.name,
        "site": site_slug,
        "version": agent.version,
        "schema_version": agent.schema_version,
        "hostname": agent.hostname,
        "allow": agent.allow,
        "first_seen_at": agent.first_seen_at.isoformat(),
        "last_contact": agent.last_seen_at.isoformat(),
        "seconds_since_contact": round((now - agent.last_seen_at).total_seconds(), 1),
        "online": is_online(agent, now, offline_after),
        "offline_since": agent.offline_since.isoformat() if agent.offline_since else None,
        "refused": agent.refused,
    }
