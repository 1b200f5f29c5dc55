"""The data of the site page's panels: the register reconciliation, the site's alert rules with how their
last delivery went, and the audit pack's download link. Plain dicts and strings (device strings untouched:
the page's autoescaping template shows them as text); no markup here.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scanner.service.alerts import rule_json
from scanner.service.register import reconcile
from scanner.service.store.models import AlertDelivery, AlertRule, Site, utcnow

PANEL_ROWS = 20  # rows shown per list; the counts say how many there are in all


def reconciliation_panel(session: Session, site: Site, rows: int = PANEL_ROWS) -> dict[str, Any]:
    """Counts and the first `rows` of each reconciliation list."""
    full = reconcile(session, site)
    lists = ("unregistered", "registered_unseen", "flagged_present", "approved_flagged")
    return {
        "site": site.slug,
        "register_entries": full["register_entries"],
        "scans_considered": full["scans_considered"],
        "counts": {k: len(full[k]) for k in lists},
        **{k: full[k][:rows] for k in lists},
    }


def alert_rules_panel(session: Session, site: Site) -> list[dict[str, Any]]:
    """The rules that apply to the site (its own and those for every site), each with its deliveries'
    counts by status and the last one's status and time."""
    rules = list(
        session.scalars(
            select(AlertRule).where(AlertRule.site_id.is_(None) | (AlertRule.site_id == site.id)).order_by(AlertRule.id)
        )
    )
    out: list[dict[str, Any]] = []
    for rule in rules:
        counts = {
            status: int(n)
            for status, n in session.execute(
                select(AlertDelivery.status, func.count())
                .where(AlertDelivery.rule_id == rule.id, AlertDelivery.site_id == site.id)
                .group_by(AlertDelivery.status)
            )
        }
        last = session.scalars(
            select(AlertDelivery)
            .where(AlertDelivery.rule_id == rule.id, AlertDelivery.site_id == site.id)
            .order_by(AlertDelivery.id.desc())
            .limit(1)
        ).first()
        doc = rule_json(rule, site.slug if rule.site_id == site.id else None)
        doc["deliveries"] = counts
        doc["last_delivery"] = (
            None
            if last is None
            else {
                "status": last.status,
                "at": (last.delivered_at or last.created_at).isoformat(),
                "error": last.last_error,
            }
        )
        out.append(doc)
    return out


def audit_pack_link(site: Site, start: date | None = None, end: date | None = None, days: int = 90) -> dict[str, Any]:
    """The export URL for the site (default: the last `days` days up to today) and the file name it gets."""
    end = end or utcnow().date()
    start = start or end - timedelta(days=days)
    query = urlencode({"site": site.slug, "from": start.isoformat(), "to": end.isoformat()})
    return {
        "href": f"/api/v1/export?{query}",
        "from": start.isoformat(),
        "to": end.isoformat(),
        "filename": f"camscan-audit-{site.slug}-{start.isoformat()}-{end.isoformat()}.zip",
    }
