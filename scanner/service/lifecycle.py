"""The device lifecycle of docs/service.md, beyond the fields people set through PATCH /devices/{id}:

- removed: a tracked device (flagged, or in a lifecycle state) absent from the site's last N consecutive
  succeeded scans (N = the site's `removed_after_scans`, default 3) is marked removed by camscan; one that
  comes back afterwards is tracked again (state `flagged` if it still is, else none). Both go into the audit
  log, as every change by a person does.
- overdue: a device whose replacement is due before today and is not removed (nor excepted) is overdue;
  `check_overdue` emits `device.overdue` once per device per due date (a new due date may alert again).
- exception: reason, approver, expiry. Until it expires (the expiry day included) the device's findings are
  shown as excepted in every report and export; after it they are open again, with nothing to undo.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from scanner.service.auth import audit
from scanner.service.ingest import identities
from scanner.service.store.models import Device, Finding, Scan, Site, utcnow

SYSTEM_ACTOR = "camscan"
TRACKED = ("flagged", "replacement_planned", "exception")
DEFAULT_REMOVED_AFTER = 3


@dataclass(frozen=True)
class ExceptionNote:
    """An exception in force, as reports and exports show it."""

    reason: str
    approver: str | None
    expires: date

    def text(self) -> str:
        by = f", approved by {self.approver}" if self.approver else ""
        return f"Exception until {self.expires.isoformat()}{by}: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "approver": self.approver, "expires": self.expires.isoformat()}


def active_exception(d: Device, today: date) -> ExceptionNote | None:
    """The device's exception if it is in force today (its expiry day included)."""
    if d.lifecycle != "exception" or not d.exception_reason or d.exception_expires is None:
        return None
    if d.exception_expires < today:
        return None
    return ExceptionNote(d.exception_reason, d.exception_approver, d.exception_expires)


def is_overdue(d: Device, today: date) -> bool:
    return (
        d.replacement_due is not None
        and d.replacement_due < today
        and d.lifecycle not in ("removed",)
        and active_exception(d, today) is None
    )


def recent_scan_starts(session: Session, site: Site) -> tuple[int, list[datetime]]:
    """N (the site's `removed_after_scans`) and the start times of the site's last N succeeded scans, newest
    first (fewer while the site has fewer): a device last seen before the oldest of them is absent from all."""
    n = max(1, site.removed_after_scans or DEFAULT_REMOVED_AFTER)
    starts = session.scalars(
        select(Scan.report_started_at)
        .where(Scan.site_id == site.id, Scan.status == "succeeded", Scan.report_started_at.is_not(None))
        .order_by(Scan.report_started_at.desc())
        .limit(n)
    )
    return n, [t for t in starts if t is not None]


def apply_removals(session: Session, site: Site, scan_id: str) -> tuple[list[int], list[int]]:
    """After a report of `site` was applied: mark removed the tracked devices unseen in the last N scans,
    and track again the removed ones this scan saw. Returns (removed, returned) device ids."""
    n, starts = recent_scan_starts(session, site)
    now = utcnow()
    removed: list[int] = []
    if len(starts) >= n:
        oldest = starts[-1]  # absent from all of the last n scans = last seen before the oldest of them
        for d in session.scalars(
            select(Device).where(
                Device.site_id == site.id,
                Device.status == "gone",
                Device.last_seen < oldest,
                or_(Device.lifecycle.is_(None), Device.lifecycle != "removed"),
                or_(Device.flagged, Device.lifecycle.in_(TRACKED)),
            )
        ):
            before = d.lifecycle
            d.lifecycle, d.lifecycle_updated_at, d.lifecycle_updated_by = "removed", now, SYSTEM_ACTOR
            removed.append(d.id)
            audit(session, SYSTEM_ACTOR, "device.removed", f"device:{d.id}",
                  {"from": before, "reason": f"absent from {n} consecutive scans", "scan": scan_id})  # fmt: skip
    returned: list[int] = []
    for d in session.scalars(
        select(Device).where(Device.site_id == site.id, Device.last_scan_id == scan_id, Device.lifecycle == "removed")
    ):
        d.lifecycle = "flagged" if d.flagged else None
        d.lifecycle_updated_at, d.lifecycle_updated_by = now, SYSTEM_ACTOR
        returned.append(d.id)
        audit(session, SYSTEM_ACTOR, "device.returned", f"device:{d.id}",
              {"to": d.lifecycle, "reason": "seen again after it was removed", "scan": scan_id})  # fmt: skip
    session.flush()
    return removed, returned


def check_overdue(session: Session, today: date) -> int:
    """Emit `device.overdue` for every overdue device not yet alerted for its current due date."""
    from scanner.service.alerts import device_payload, emit_event

    emitted = 0
    rows = session.execute(
        select(Device, Site)
        .join(Site, Site.id == Device.site_id)
        .where(Device.replacement_due.is_not(None), Device.replacement_due < today)
        .order_by(Device.id)
    ).all()
    for d, site in rows:
        if not is_overdue(d, today):
            continue
        assert d.replacement_due is not None
        findings = session.scalars(
            select(Finding).where(Finding.device_id == d.id, Finding.resolved_at.is_(None)).order_by(Finding.id)
        ).all()
        event = emit_event(
            session,
            site,
            "device.overdue",
            devices=[device_payload(d, findings)],
            detail={"replacement_due": d.replacement_due.isoformat(), "owner": d.replacement_owner},
            dedupe=f"device.overdue:{d.id}:{d.replacement_due.isoformat()}",
        )
        if event is not None:
            emitted += 1
            audit(session, SYSTEM_ACTOR, "device.overdue", f"device:{d.id}",
                  {"replacement_due": d.replacement_due.isoformat()})  # fmt: skip
    return emitted


def exceptions_by_report_device(
    session: Session, site_id: int, devices: list[Any], today: date
) -> dict[str, ExceptionNote]:
    """The exceptions in force for a stored report's devices, keyed by the report's device id (for the HTML
    and CSV renderings; the stored report itself is never changed)."""
    active: dict[tuple[str, str], ExceptionNote] = {}
    known: set[tuple[str, str]] = set()
    for d in session.scalars(select(Device).where(Device.site_id == site_id)):
        known.add((d.identity_kind, d.identity_key))
        note = active_exception(d, today)
        if note is not None:
            active[(d.identity_kind, d.identity_key)] = note
    if not active:
        return {}
    out: dict[str, ExceptionNote] = {}
    for dev in devices:
        record = {"mac": dev.mac, "ip": dev.ip, "id": dev.id, "evidence": [e.model_dump() for e in dev.evidence]}
        ident = next((i for i in identities(record) if i in known), None)
        if ident is not None and ident in active:
            out[dev.id] = active[ident]
    return out
