"""Service events of the scan agents (`agent.offline`, `scan.failed` of a job at an agent): one function,
`record_event`, that every agent code path calls.

It does two things in the caller's transaction: it raises the event as an alert (scanner/service/alerts.py
`emit_event`: the outbox row and the deliveries the alert rules ask for; `dedupe` makes it happen once),
and it appends the event to the audit log (action = the event's name, actor `camscan service`, target
`site:<slug>`), so the history of outages stays readable whether or not a rule asks for an alert.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scanner.service.auth import audit
from scanner.service.store.models import AuditEntry, Site

ACTOR = "camscan service"
AGENT_OFFLINE = "agent.offline"
SCAN_FAILED = "scan.failed"


def record_event(
    session: Session,
    event: str,
    *,
    site: Site | None,
    detail: dict[str, Any],
    scan_id: str | None = None,
    dedupe: str | None = None,
) -> None:
    """Raise `event` for `site` (None: the whole service) with a JSON-able `detail`; with `dedupe`, an event
    of that key is raised once (a second call records nothing)."""
    from scanner.service.alerts import emit_event

    row = emit_event(session, site, event, scan_id=scan_id, detail=detail, dedupe=dedupe)
    if row is None and dedupe is not None:
        return
    slug = site.slug if site else None
    audit(session, ACTOR, event, f"site:{slug}" if slug else None, {"event": event, "site": slug, **detail})


def events_since(session: Session, after_id: int, names: tuple[str, ...] = (AGENT_OFFLINE,)) -> list[AuditEntry]:
    """The events of `names` recorded in the audit log after the entry `after_id`, oldest first."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.id > after_id, AuditEntry.action.in_(names), AuditEntry.actor == ACTOR)
            .order_by(AuditEntry.id)
        )
    )
