"""Service events (`agent.offline`, ...): the one place where the service says that something happened
that people may want to be alerted about.

`record_event` appends the event to the audit log (action = the event's name, actor `camscan service`,
target `site:<slug>`, detail = what happened) and to the alert outbox (scanner/service/alerts.py, which
delivers it to the event's alert rules), both in the caller's transaction. The alerting part of the
service reads events from there (`events_since`), so every event raised is kept whether or not an alert
rule is configured for it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from scanner.service.auth import audit
from scanner.service.store.models import AuditEntry

ACTOR = "camscan service"
#: The events this module raises today (the alert rules of the contract name these and more).
AGENT_OFFLINE = "agent.offline"


def record_event(session: Session, event: str, *, site: str | None, detail: dict[str, Any]) -> None:
    """Raise `event` for `site` (a slug, or None for the whole service) with a JSON-able `detail`."""
    audit(session, ACTOR, event, f"site:{site}" if site else None, {"event": event, "site": site, **detail})
    # and into the alert outbox, in the same transaction: the alert rules of that event are delivered
    from scanner.service.alerts import emit_event
    from scanner.service.store.models import Site

    site_row = session.scalars(select(Site).where(Site.slug == site)).first() if site else None
    emit_event(session, site_row, event, detail=detail)


def events_since(session: Session, after_id: int, names: tuple[str, ...] = (AGENT_OFFLINE,)) -> list[AuditEntry]:
    """The events of `names` recorded after the audit entry `after_id`, oldest first."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.id > after_id, AuditEntry.action.in_(names), AuditEntry.actor == ACTOR)
            .order_by(AuditEntry.id)
        )
    )
