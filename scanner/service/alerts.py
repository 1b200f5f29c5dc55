"""Alerts: events into an outbox in the transaction that caused them, and a worker that delivers them.

- An event (docs/service.md: device.new, device.flagged, device.gone, finding.new, finding.resolved,
  device.overdue, scan.failed, agent.offline) is one row of `alert_events` with the devices it is about.
  Ingest writes the scan's events in the ingest's own transaction (`derive_scan_events`), so an event
  exists iff the report that caused it is stored: a crash loses none and invents none. Other parts of
  the service call `emit_event` (a failed scan, the overdue check, the agents' `agent.offline`).
- With the events, the same transaction writes the deliveries the alert rules ask for: a webhook gets one
  POST per event; an email rule gets ONE summary mail per scan (or per emitted event outside a scan)
  listing every matching event, not one mail per device.
- `AlertWorker` (a thread of `camscan serve`) sends due deliveries: claims a batch (a lease on
  `next_attempt_at`, `FOR UPDATE SKIP LOCKED` on PostgreSQL, so two service processes never send the same
  one at once), sends, records every attempt, and retries failures with exponential backoff until
  `max_attempts`. Delivery is at least once: a receiver dedupes on `X-Camscan-Delivery`.

The webhook body is JSON `{"event", "site", "scan", "occurred_at", "devices": [...]}` signed with
`X-Camscan-Signature: sha256=<hex HMAC-SHA256 of the body with the rule's secret>`. Device strings are
hostile: they stay JSON strings in the body, and in mail they sit in the plain-text body with control
characters escaped (never in a header).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scanner import __version__
from scanner.service.store.db import Database
from scanner.service.store.models import (
    ALERT_EVENTS,
    AlertAttempt,
    AlertDelivery,
    AlertEvent,
    AlertRule,
    Device,
    Finding,
    Scan,
    Site,
    utcnow,
)

log = logging.getLogger("camscan.service.alerts")

ANY_EVENT = "*"
SIGNATURE_HEADER = "X-Camscan-Signature"
MAX_WEBHOOK_URL = 2000
MAX_EMAILS = 20
MAX_DEVICES_IN_MAIL = 200  # a summary, not a dump: the rest is "... and N more"


class AlertError(ValueError):
    """A rule that cannot be accepted (the message says which field and why)."""


# ---- rules -----------------------------------------------------------------------------------------


def check_event(event: str) -> str:
    if event != ANY_EVENT and event not in ALERT_EVENTS:
        raise AlertError(f"event: {event!r} is not one of {', '.join(ALERT_EVENTS)} (or * for every event)")
    return event


def check_webhook_url(url: str) -> str:
    """An absolute http(s) URL with a host; anything else (file:, javascript:, ftp:, relative) is refused."""
    url = url.strip()
    if len(url) > MAX_WEBHOOK_URL:
        raise AlertError(f"webhook.url: longer than {MAX_WEBHOOK_URL} characters")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise AlertError("webhook.url: contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise AlertError("webhook.url: not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise AlertError("webhook.url: only http:// and https:// URLs are accepted")
    if not parts.hostname:
        raise AlertError("webhook.url: the URL names no host")
    if port == 0:
        raise AlertError("webhook.url: port 0")
    return url


def check_email(address: str) -> str:
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain
        or len(address) > 254
        or any(c.isspace() or ord(c) < 32 or c in '<>,;"()' for c in address)
    ):
        raise AlertError(f"email: {address[:80]!r} is not a plain email address (name@example.org)")
    return address


def rule_json(rule: AlertRule, site_slug: str | None) -> dict[str, Any]:
    return {
        "id": rule.id,
        "event": rule.event,
        "site": site_slug,
        "webhook": {"url": rule.webhook_url, "secret_set": bool(rule.webhook_secret)} if rule.webhook_url else None,
        "email": list(rule.email or []) or None,
        "created_at": rule.created_at.isoformat(),
        "created_by": rule.created_by,
    }


# ---- events ----------------------------------------------------------------------------------------


def device_payload(device: Device, findings: Iterable[Any]) -> dict[str, Any]:
    """A device as an alert shows it (the contract's fields); findings are Finding rows or any objects with
    pack, rule and severity."""
    return {
        "id": device.id,
        "ip": device.ip,
        "mac": device.mac,
        "manufacturer": device.manufacturer,
        "brand": device.brand,
        "model": device.model,
        "findings": [{"pack": f.pack, "rule": f.rule, "severity": f.severity} for f in findings],
    }


def _rules_for(session: Session, site_id: int | None, events: set[str]) -> list[AlertRule]:
    query = select(AlertRule).where(AlertRule.event.in_([*events, ANY_EVENT])).order_by(AlertRule.id)
    query = query.where(AlertRule.site_id.is_(None) | (AlertRule.site_id == site_id))
    return list(session.scalars(query))


def record_events(session: Session, rows: Sequence[AlertEvent], now: datetime | None = None) -> list[AlertDelivery]:
    """Queue the deliveries for `rows` (events of one site and one occasion, already added): one per event
    for each matching webhook rule, one summary for each matching email rule."""
    if not rows:
        return []
    session.flush()
    now = now or utcnow()
    site_id = rows[0].site_id
    out: list[AlertDelivery] = []
    for rule in _rules_for(session, site_id, {r.event for r in rows}):
        matching = [r for r in rows if rule.event in (ANY_EVENT, r.event)]
        if not matching:
            continue
        if rule.webhook_url:
            out += [
                AlertDelivery(rule_id=rule.id, site_id=site_id, channel="webhook", target=rule.webhook_url,
                              event_ids=[r.id], status="pending", created_at=now, next_attempt_at=now)
                for r in matching
            ]  # fmt: skip
        if rule.email:
            out.append(
                AlertDelivery(rule_id=rule.id, site_id=site_id, channel="email", target=", ".join(rule.email),
                              event_ids=[r.id for r in matching], status="pending", created_at=now,
                              next_attempt_at=now)
            )  # fmt: skip
    session.add_all(out)
    session.flush()
    return out


def _storable(value: Any) -> Any:
    """JSON without NUL characters (PostgreSQL's JSONB refuses \\u0000; a device may send one)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def emit_event(
    session: Session,
    site: Site | None,
    event: str,
    *,
    scan_id: str | None = None,
    devices: Sequence[dict[str, Any]] = (),
    detail: dict[str, Any] | None = None,
    dedupe: str | None = None,
    occurred_at: datetime | None = None,
) -> AlertEvent | None:
    """Record one event (and its deliveries) in the caller's transaction; the worker sends it after commit.

    For the other parts of the service: `emit_event(s, site, "agent.offline", detail={"agent": name})`.
    With `dedupe`, an event of that key happens once: a second call returns None and records nothing."""
    check_event(event)
    if event == ANY_EVENT:
        raise AlertError("event: emit a named event, not *")
    if dedupe is not None and session.scalar(select(AlertEvent.id).where(AlertEvent.dedupe == dedupe)) is not None:
        return None
    row = AlertEvent(
        event=event,
        site_id=site.id if site else None,
        scan_id=scan_id,
        occurred_at=occurred_at or utcnow(),
        devices=_storable(list(devices)),
        detail=_storable(detail),
        dedupe=dedupe,
    )
    try:
        with session.begin_nested():  # another process may have recorded the same dedupe key a moment ago
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    record_events(session, [row])
    return row


def emit_scan_failed(session: Session, scan: Scan) -> AlertEvent | None:
    """`scan.failed`, in the transaction that marks the scan failed (the error goes in `detail`)."""
    site = session.get(Site, scan.site_id)
    return emit_event(session, site, "scan.failed", scan_id=scan.id, detail={"error": (scan.error or "")[:500]})


def derive_scan_events(
    session: Session, site: Site, scan: Scan, new: Sequence[int], gone: Sequence[int], flagged: Sequence[int]
) -> list[str]:
    """The events one ingested report causes, recorded with their deliveries in the ingest's transaction.

    device.new, device.gone and device.flagged are ingest's own lists (flagged: flagged in this scan and not
    at the device's previous sighting, or new and flagged); finding.new and finding.resolved are the findings
    this scan opened and resolved. Returns the names of the events recorded."""
    when = scan.report_started_at or utcnow()
    cols = (Finding.device_id, Finding.pack, Finding.rule, Finding.severity)
    opened: dict[int, list[Any]] = {}
    resolved: dict[int, list[Any]] = {}
    # both queries ride the (site_id, resolved_at) index: a finding is resolved at its scan's start time
    for f in session.execute(
        select(*cols)
        .where(Finding.site_id == site.id, Finding.resolved_at.is_(None), Finding.first_scan_id == scan.id)
        .order_by(Finding.id)
    ):
        opened.setdefault(f.device_id, []).append(f)
    for f in session.execute(
        select(*cols)
        .where(Finding.site_id == site.id, Finding.resolved_at == when, Finding.resolved_scan_id == scan.id)
        .order_by(Finding.id)
    ):
        resolved.setdefault(f.device_id, []).append(f)
    newly_flagged = list(flagged)
    open_by_device: dict[int, list[Any]] = {}
    with_open = sorted(set(new) | set(gone) | set(newly_flagged))
    for start in range(0, len(with_open), 500):
        for f in session.execute(
            select(*cols)
            .where(Finding.device_id.in_(with_open[start : start + 500]), Finding.resolved_at.is_(None))
            .order_by(Finding.id)
        ):
            open_by_device.setdefault(f.device_id, []).append(f)
    wanted = set(new) | set(gone) | set(newly_flagged) | set(opened) | set(resolved)
    devices: dict[int, Device] = {}
    ids = sorted(wanted)
    for start in range(0, len(ids), 500):
        for d in session.scalars(select(Device).where(Device.id.in_(ids[start : start + 500]))):
            devices[d.id] = d

    def payload(device_ids: Iterable[int], findings: dict[int, list[Any]]) -> list[dict[str, Any]]:
        return [device_payload(devices[i], findings.get(i, [])) for i in sorted(device_ids) if i in devices]

    plan = [
        ("device.new", payload(new, open_by_device)),
        ("device.flagged", payload(newly_flagged, open_by_device)),
        ("device.gone", payload(gone, open_by_device)),
        ("finding.new", payload(opened, opened)),
        ("finding.resolved", payload(resolved, resolved)),
    ]
    rows = [
        AlertEvent(event=name, site_id=site.id, scan_id=scan.id, occurred_at=when, devices=devs)
        for name, devs in plan
        if devs
    ]
    session.add_all(rows)
    record_events(session, rows)
    return [r.event for r in rows]


# ---- delivery ----------------------------------------------------------------------------------------


@dataclass
class SmtpSettings:
    """Where summary mails go out (`camscan serve --smtp-*`, or $CAMSCAN_SMTP_*)."""

    host: str | None = None
    port: int = 25
    sender: str = "camscan@localhost"
    starttls: bool = False
    tls: bool = False  # implicit TLS (port 465)
    username: str | None = None
    password: str | None = None
    timeout: float = 20.0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> SmtpSettings:
        def flag(name: str) -> bool:
            return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")

        return cls(
            host=env.get("CAMSCAN_SMTP_HOST") or None,
            port=int(env.get("CAMSCAN_SMTP_PORT") or 25),
            sender=env.get("CAMSCAN_SMTP_FROM") or "camscan@localhost",
            starttls=flag("CAMSCAN_SMTP_STARTTLS"),
            tls=flag("CAMSCAN_SMTP_TLS"),
            username=env.get("CAMSCAN_SMTP_USER") or None,
            password=env.get("CAMSCAN_SMTP_PASSWORD") or None,
        )


@dataclass
class DeliverySettings:
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    backoff: float = 30.0  # seconds before the second attempt; doubled for each further one
    backoff_cap: float = 6 * 3600.0
    max_attempts: int = 8
    timeout: float = 10.0
    lease: float = 300.0  # a claimed delivery not recorded by then (the sender died) is due again
    batch: int = 20
    ssl_context: ssl.SSLContext | None = None  # for STARTTLS/TLS and https webhooks; default: the system's


@dataclass
class Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_body(event: AlertEvent, site_slug: str | None) -> bytes:
    doc: dict[str, Any] = {
        "event": event.event,
        "site": site_slug,
        "scan": event.scan_id,
        "occurred_at": event.occurred_at.isoformat(),
        "devices": event.devices,
    }
    if event.detail:
        doc["detail"] = event.detail
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def post_webhook(url: str, body: bytes, headers: dict[str, str], settings: DeliverySettings) -> Outcome:
    """One POST, no redirects followed (a 3xx is a failure: the rule names the URL to use)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = settings.ssl_context or ssl.create_default_context()
        conn = http.client.HTTPSConnection(host, parts.port, timeout=settings.timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=settings.timeout)
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers={**headers, "Content-Length": str(len(body))})
        response = conn.getresponse()
        response.read(65536)
        code = response.status
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
    finally:
        conn.close()
    if 200 <= code < 300:
        return Outcome(True, code)
    return Outcome(False, code, f"HTTP {code}")


def _plain(value: object) -> str:
    """A device string made harmless for a plain-text mail: control characters escaped, length capped."""
    text = "" if value is None else str(value)
    if len(text) > 200:
        text = text[:200] + "…"
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


EVENT_TITLES = {
    "device.new": "New devices",
    "device.flagged": "Newly flagged devices",
    "device.gone": "Devices gone",
    "finding.new": "New findings",
    "finding.resolved": "Resolved findings",
    "device.overdue": "Replacements overdue",
    "scan.failed": "Scan failed",
    "agent.offline": "Agent offline",
}


def summary_mail(
    events: Sequence[AlertEvent], site: Site | None, settings: SmtpSettings, to: list[str]
) -> EmailMessage:
    """One plain-text mail listing what changed. The subject holds only the site's slug and counts (no
    device string ever reaches a header)."""
    slug = site.slug if site else "all sites"
    counts = ", ".join(f"{len(e.devices) or 1} {e.event}" for e in events)
    msg = EmailMessage()
    msg["Subject"] = f"camscan: {slug}: {counts}"
    msg["From"] = settings.sender
    msg["To"] = ", ".join(to)
    msg["Message-ID"] = make_msgid(domain="camscan.invalid")
    scans = sorted({e.scan_id for e in events if e.scan_id})
    lines = [f"camscan {__version__}: what changed at site {_plain(site.name) if site else slug} ({slug})", ""]
    if scans:
        lines.append("Scan: " + ", ".join(scans))
    lines.append(f"When: {min(e.occurred_at for e in events).isoformat()}")
    for e in events:
        lines += ["", f"{EVENT_TITLES.get(e.event, e.event)} ({e.event}): {len(e.devices)}"]
        if e.detail:
            lines.append("  " + ", ".join(f"{_plain(k)}: {_plain(v)}" for k, v in sorted(e.detail.items())))
        for d in e.devices[:MAX_DEVICES_IN_MAIL]:
            who = " ".join(_plain(d.get(k)) for k in ("manufacturer", "model") if d.get(k)) or "unknown maker"
            lines.append(f"  - device {d.get('id')}: {_plain(d.get('ip'))} {_plain(d.get('mac') or '')} {who}")
            for f in d.get("findings", [])[:20]:
                lines.append(f"      {_plain(f.get('severity'))}: {_plain(f.get('pack'))}/{_plain(f.get('rule'))}")
        if len(e.devices) > MAX_DEVICES_IN_MAIL:
            lines.append(f"  ... and {len(e.devices) - MAX_DEVICES_IN_MAIL} more")
    lines += ["", "This mail was sent by camscan's alert rules; the service's API lists every delivery."]
    msg.set_content("\n".join(lines) + "\n", charset="utf-8")
    return msg


def send_mail(msg: EmailMessage, to: list[str], settings: DeliverySettings) -> Outcome:
    smtp = settings.smtp
    if not smtp.host:
        return Outcome(False, None, "no SMTP server configured (camscan serve --smtp-host, or $CAMSCAN_SMTP_HOST)")
    context = settings.ssl_context or ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if smtp.tls:
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        with client:
            if smtp.starttls and not smtp.tls:
                client.starttls(context=context)
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            refused = client.send_message(msg, from_addr=smtp.sender, to_addrs=to)
    except (OSError, smtplib.SMTPException) as exc:
        code = getattr(exc, "smtp_code", None)
        return Outcome(False, code if isinstance(code, int) else None, f"{type(exc).__name__}: {exc}"[:500])
    if refused:
        return Outcome(False, None, f"refused by the server: {', '.join(sorted(refused))}"[:500])
    return Outcome(True, 250)


def _claim(db: Database, settings: DeliverySettings, now: datetime) -> list[int]:
    with db.session() as s:
        query = (
            select(AlertDelivery)
            .where(AlertDelivery.status == "pending", AlertDelivery.next_attempt_at <= now)
            .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
            .limit(settings.batch)
        )
        if db.is_postgresql:
            query = query.with_for_update(skip_locked=True)
        rows = list(s.scalars(query))
        for row in rows:
            row.next_attempt_at = now + timedelta(seconds=settings.lease)
        return [r.id for r in rows]


def backoff_delay(attempts: int, settings: DeliverySettings) -> float:
    """Seconds before the next attempt after `attempts` failed ones: backoff, 2x, 4x, ... capped."""
    return float(min(settings.backoff_cap, settings.backoff * (2 ** max(0, attempts - 1))))


def _send(
    delivery_id: int,
    channel: str,
    target: str,
    secret: str | None,
    events: list[AlertEvent],
    site: Site | None,
    settings: DeliverySettings,
) -> Outcome:
    if channel == "webhook":
        body = webhook_body(events[0], site.slug if site else None)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"camscan/{__version__}",
            "X-Camscan-Event": events[0].event,
            "X-Camscan-Delivery": str(delivery_id),
        }
        if secret:
            headers[SIGNATURE_HEADER] = sign(body, secret)
        return post_webhook(target, body, headers, settings)
    to = [a.strip() for a in target.split(",") if a.strip()]
    return send_mail(summary_mail(events, site, settings.smtp, to), to, settings)


def deliver_one(db: Database, delivery_id: int, settings: DeliverySettings, clock: Callable[[], datetime]) -> Outcome:
    with db.session() as s:
        d = s.get(AlertDelivery, delivery_id)
        if d is None or d.status != "pending":
            return Outcome(True)
        rule = s.get(AlertRule, d.rule_id) if d.rule_id is not None else None
        events = list(s.scalars(select(AlertEvent).where(AlertEvent.id.in_(d.event_ids)).order_by(AlertEvent.id)))
        site = s.get(Site, d.site_id) if d.site_id is not None else None
        channel, target = d.channel, d.target
        secret = rule.webhook_secret if rule else None
    started = time.monotonic()
    if rule is None:
        outcome = Outcome(False, None, "the alert rule was deleted")
    elif not events:
        outcome = Outcome(False, None, "the events of this delivery are gone (their site was deleted)")
    else:
        try:
            outcome = _send(delivery_id, channel, target, secret, events, site, settings)
        except Exception as exc:  # a bug or odd data costs one recorded attempt, never a stuck delivery
            log.exception("alert delivery %d crashed", delivery_id)
            outcome = Outcome(False, None, f"internal error: {type(exc).__name__}")
    elapsed = (time.monotonic() - started) * 1000
    now = clock()
    with db.session() as s:
        d = s.get(AlertDelivery, delivery_id)
        if d is None:
            return outcome
        d.attempts += 1
        s.add(AlertAttempt(delivery_id=d.id, at=now, ok=outcome.ok, status_code=outcome.status_code,
                           error=outcome.error, duration_ms=round(elapsed, 1)))  # fmt: skip
        if outcome.ok:
            d.status, d.delivered_at, d.last_error = "delivered", now, None
        else:
            d.last_error = outcome.error
            final = rule is None or not events or d.attempts >= settings.max_attempts
            if final:
                d.status = "failed"
            else:
                d.next_attempt_at = now + timedelta(seconds=backoff_delay(d.attempts, settings))
    if not outcome.ok:
        log.warning("alert delivery %d (%s) failed: %s", delivery_id, channel, outcome.error)
    return outcome


def deliver_due(db: Database, settings: DeliverySettings, clock: Callable[[], datetime] = utcnow) -> int:
    """Send every due delivery once; returns how many were attempted."""
    ids = _claim(db, settings, clock())
    for delivery_id in ids:
        deliver_one(db, delivery_id, settings, clock)
    return len(ids)


class AlertWorker:
    """The delivery loop of `camscan serve`: every `interval` seconds, the overdue check (once a minute)
    and the due deliveries."""

    def __init__(
        self,
        db: Database,
        settings: DeliverySettings | None = None,
        *,
        interval: float = 2.0,
        clock: Callable[[], datetime] = utcnow,
        today: Callable[[], date] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings or DeliverySettings()
        self.interval = interval
        self.clock = clock
        self.today = today or (lambda: self.clock().date())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_overdue = 0.0
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="camscan-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def tick(self) -> int:
        from scanner.service.lifecycle import check_overdue

        if time.monotonic() - self._last_overdue >= 60 or self._last_overdue == 0.0:
            with self.db.session() as s:
                check_overdue(s, self.today())
            self._last_overdue = time.monotonic()
        return deliver_due(self.db, self.settings, self.clock)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
                self.last_error = None
            except Exception as exc:  # a database hiccup must not end alerting for good
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("alert delivery pass failed")
            self._stop.wait(self.interval)
