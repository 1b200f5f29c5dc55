"""`/api/v1/alert-rules` (what to send where) and `/api/v1/alerts` (every delivery and its attempts)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from scanner.service import alerts
from scanner.service.api import paging
from scanner.service.api.app import Caller, need, service_of
from scanner.service.api.scans import _iso
from scanner.service.api.sites import site_for
from scanner.service.auth import Principal, audit
from scanner.service.store.models import AlertAttempt, AlertDelivery, AlertEvent, AlertRule, Site

router = APIRouter(tags=["alerts"])


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=alerts.MAX_WEBHOOK_URL)
    secret: str = Field(min_length=16, max_length=200)


class AlertRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: str = Field(min_length=1, max_length=32)
    site: str | None = Field(default=None, max_length=63)
    webhook: Webhook | None = None
    email: list[Annotated[str, Field(min_length=3, max_length=254)]] | None = Field(
        default=None, min_length=1, max_length=alerts.MAX_EMAILS
    )


def _rule_for(s: Session, rule_id: int, who: Principal) -> tuple[AlertRule, str | None]:
    row = s.execute(
        select(AlertRule, Site.slug).outerjoin(Site, Site.id == AlertRule.site_id).where(AlertRule.id == rule_id)
    ).first()
    if row is None:
        raise HTTPException(404, f"no alert rule {rule_id}")
    rule, slug = row
    if who.site_id is not None and rule.site_id != who.site_id:
        raise HTTPException(403, "this token is limited to another site")
    return rule, slug


@router.post("/alert-rules", status_code=201)
def create_rule(body: AlertRuleIn, request: Request, who: Caller) -> dict[str, Any]:
    """A rule: the event (or `*`), optionally one site, and a webhook and/or email addresses."""
    need(who, "operator")
    if body.webhook is None and not body.email:
        raise HTTPException(422, "a rule needs a webhook or email addresses (or both)")
    try:
        event = alerts.check_event(body.event)
        url = alerts.check_webhook_url(body.webhook.url) if body.webhook else None
        emails = [alerts.check_email(a) for a in body.email] if body.email else None
    except alerts.AlertError as exc:
        raise HTTPException(422, str(exc)) from None
    with service_of(request).db.session() as s:
        site = site_for(s, body.site, who) if body.site is not None else None
        if site is None and who.site_id is not None:
            raise HTTPException(403, "a token limited to one site can only make rules for that site")
        rule = AlertRule(
            event=event,
            site_id=site.id if site else None,
            webhook_url=url,
            webhook_secret=body.webhook.secret if body.webhook else None,
            email=emails,
            created_by=who.name,
        )
        s.add(rule)
        s.flush()
        shown = alerts.rule_json(rule, site.slug if site else None)
        audit(s, who.name, "alert_rule.create", f"alert_rule:{rule.id}", {k: v for k, v in shown.items() if k != "id"})
        return shown


@router.get("/alert-rules")
def list_rules(request: Request, who: Caller, site: str | None = None) -> dict[str, Any]:
    """Every rule (the webhook secret is never shown, only whether one is set)."""
    with service_of(request).db.session() as s:
        query = select(AlertRule, Site.slug).outerjoin(Site, Site.id == AlertRule.site_id).order_by(AlertRule.id)
        if site is not None:
            query = query.where(AlertRule.site_id == site_for(s, site, who).id)
        elif who.site_id is not None:
            query = query.where(AlertRule.site_id == who.site_id)
        return {"items": [alerts.rule_json(r, slug) for r, slug in s.execute(query)], "next": None}


@router.get("/alert-rules/{rule_id}")
def get_rule(rule_id: int, request: Request, who: Caller) -> dict[str, Any]:
    with service_of(request).db.session() as s:
        rule, slug = _rule_for(s, rule_id, who)
        return alerts.rule_json(rule, slug)


@router.delete("/alert-rules/{rule_id}", status_code=204)
def delete_rule(rule_id: int, request: Request, who: Caller) -> Response:
    """Delete a rule; its deliveries stay listed (pending ones fail: the rule is gone)."""
    need(who, "operator")
    with service_of(request).db.session() as s:
        rule, slug = _rule_for(s, rule_id, who)
        audit(s, who.name, "alert_rule.delete", f"alert_rule:{rule.id}", alerts.rule_json(rule, slug))
        s.delete(rule)
    return Response(status_code=204)


def delivery_json(
    d: AlertDelivery, slug: str | None, events: list[AlertEvent], attempts: list[AlertAttempt]
) -> dict[str, Any]:
    return {
        "id": d.id,
        "rule": d.rule_id,
        "site": slug,
        "channel": d.channel,
        "target": d.target,
        "status": d.status,
        "events": [
            {
                "id": e.id,
                "event": e.event,
                "scan": e.scan_id,
                "occurred_at": _iso(e.occurred_at),
                "devices": len(e.devices),
            }
            for e in events
        ],
        "created_at": _iso(d.created_at),
        "next_attempt_at": _iso(d.next_attempt_at) if d.status == "pending" else None,
        "delivered_at": _iso(d.delivered_at),
        "last_error": d.last_error,
        "attempts": [
            {"at": _iso(a.at), "ok": a.ok, "status_code": a.status_code, "error": a.error, "duration_ms": a.duration_ms}
            for a in attempts
        ],
    }


@router.get("/alerts")
def list_deliveries(
    request: Request,
    who: Caller,
    site: str | None = None,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=paging.MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Deliveries, newest first, each with its events and every attempt."""
    position = paging.decode(cursor, (int,))
    with service_of(request).db.session() as s:
        query = select(AlertDelivery, Site.slug).outerjoin(Site, Site.id == AlertDelivery.site_id)
        if site is not None:
            query = query.where(AlertDelivery.site_id == site_for(s, site, who).id)
        elif who.site_id is not None:
            query = query.where(AlertDelivery.site_id == who.site_id)
        if status is not None:
            query = query.where(AlertDelivery.status == status)
        if position is not None:
            query = query.where(AlertDelivery.id < position[0])
        rows = s.execute(query.order_by(AlertDelivery.id.desc()).limit(limit + 1)).all()
        page = rows[:limit]
        event_ids = sorted({i for d, _ in page for i in d.event_ids})
        events = (
            {e.id: e for e in s.scalars(select(AlertEvent).where(AlertEvent.id.in_(event_ids)))} if event_ids else {}
        )
        attempts: dict[int, list[AlertAttempt]] = {}
        if page:
            for a in s.scalars(
                select(AlertAttempt)
                .where(AlertAttempt.delivery_id.in_([d.id for d, _ in page]))
                .order_by(AlertAttempt.at, AlertAttempt.id)
            ):
                attempts.setdefault(a.delivery_id, []).append(a)
        items = []
        for d, slug in page:
            evs = [events[i] for i in d.event_ids if i in events]
            items.append(delivery_json(d, slug, evs, attempts.get(d.id, [])))
        nxt = paging.encode([rows[limit - 1][0].id]) if len(rows) > limit else None
        return {"items": items, "next": nxt}
