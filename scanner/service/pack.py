"""The audit pack of one site over a date range (`GET /api/v1/export`), from the service's database:

    reports/<started>-<scan id>.json   every succeeded scan's report in the range, byte for byte as stored
    devices.csv                        the site's devices with their lifecycle (as of the pack's making)
    history.csv                        every observation of a device in the range (device x scan)
    findings.csv                       findings first seen in the range or open during it, with resolution
    lifecycle.csv                      the audit log's lifecycle entries of the site's devices (people and camscan)
    exceptions.csv                     every exception recorded, whether in force today, and until when
    register.csv                       the site's asset register
    manifest.json                      each file's size and SHA-256 (scanner/report/pack.py checks it)

CSV cells are neutralised like every camscan CSV (a formula stays text).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from scanner import __version__
from scanner.report.csv_export import neutralise
from scanner.report.pack import write_pack
from scanner.service.ingest import report_bytes
from scanner.service.lifecycle import active_exception, is_overdue
from scanner.service.store.models import AuditEntry, Device, Finding, Observation, RegisterEntry, Scan, Site, utcnow


def _csv(header: list[str], rows: Iterator[list[Any]] | list[list[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([neutralise(_cell(v)) for v in row])
    return buf.getvalue().encode("utf-8")


def _cell(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def bounds(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """The range as UTC instants: from the start of `start` to the end of `end` (both days included)."""
    lo = datetime.combine(start, time(0), UTC) if start else None
    hi = datetime.combine(end + timedelta(days=1), time(0), UTC) if end else None
    return lo, hi


def pack_files(session: Session, site: Site, start: date | None, end: date | None) -> list[tuple[str, bytes]]:
    lo, hi = bounds(start, end)
    today = utcnow().date()
    files: list[tuple[str, bytes]] = []
    query = select(Scan).where(Scan.site_id == site.id, Scan.status == "succeeded", Scan.report_body.is_not(None))
    if lo:
        query = query.where(Scan.report_started_at >= lo)
    if hi:
        query = query.where(Scan.report_started_at < hi)
    scans = list(session.scalars(query.order_by(Scan.report_started_at, Scan.id)))
    scan_ids = [s.id for s in scans]
    for scan in scans:
        raw = report_bytes(scan)
        if raw is None or scan.report_started_at is None:
            continue
        stamp = scan.report_started_at.strftime("%Y%m%dT%H%M%SZ")
        files.append((f"reports/{stamp}-{scan.id}.json", raw))
    devices = list(session.scalars(select(Device).where(Device.site_id == site.id).order_by(Device.id)))
    files.append(
        (
            "devices.csv",
            _csv(
                ["id", "identity_kind", "identity_key", "ip", "mac", "serial", "manufacturer", "brand", "model",
                 "firmware", "device_type", "flagged", "status", "first_seen", "last_seen", "lifecycle",
                 "replacement_due", "replacement_owner", "overdue", "exception_in_force", "lifecycle_note",
                 "lifecycle_updated_at", "lifecycle_updated_by"],
                [[d.id, d.identity_kind, d.identity_key, d.ip, d.mac, d.serial, d.manufacturer, d.brand, d.model,
                  d.firmware, d.device_type, d.flagged, d.status, d.first_seen, d.last_seen, d.lifecycle,
                  d.replacement_due, d.replacement_owner, is_overdue(d, today), active_exception(d, today) is not None,
                  d.lifecycle_note, d.lifecycle_updated_at, d.lifecycle_updated_by] for d in devices],
            ),
        )
    )  # fmt: skip
    history: list[list[Any]] = []
    for start_i in range(0, len(scan_ids), 500):
        for o in session.scalars(
            select(Observation)
            .where(Observation.scan_id.in_(scan_ids[start_i : start_i + 500]))
            .order_by(Observation.seen_at, Observation.device_id)
        ):
            history.append([o.device_id, o.scan_id, o.seen_at, o.ip, o.mac, o.manufacturer, o.brand, o.model,
                            o.firmware, o.device_type, o.flagged, o.n_findings])  # fmt: skip
    files.append(
        ("history.csv", _csv(["device_id", "scan", "seen_at", "ip", "mac", "manufacturer", "brand", "model",
                              "firmware", "device_type", "flagged", "findings"], history))
    )  # fmt: skip
    fq = select(Finding).where(Finding.site_id == site.id)
    if hi:
        fq = fq.where(Finding.first_seen < hi)
    if lo:
        fq = fq.where(or_(Finding.resolved_at.is_(None), Finding.resolved_at >= lo))
    findings = session.scalars(fq.order_by(Finding.first_seen, Finding.id))
    files.append(
        (
            "findings.csv",
            _csv(["device_id", "pack", "rule", "kind", "severity", "title", "first_seen", "first_scan",
                  "resolved_at", "resolved_scan"],
                 [[f.device_id, f.pack, f.rule, f.kind, f.severity, f.title, f.first_seen, f.first_scan_id,
                   f.resolved_at, f.resolved_scan_id] for f in findings]),
        )
    )  # fmt: skip
    targets = [f"device:{d.id}" for d in devices]
    changes: list[AuditEntry] = []
    for start_i in range(0, len(targets), 500):
        aq = select(AuditEntry).where(
            AuditEntry.action.like("device.%"), AuditEntry.target.in_(targets[start_i : start_i + 500])
        )
        if hi:
            aq = aq.where(AuditEntry.at < hi)
        changes += session.scalars(aq)
    changes.sort(key=lambda e: (e.at, e.id))
    lifecycle = [[e.at, e.actor, e.action, e.target, e.detail] for e in changes]
    files.append(("lifecycle.csv", _csv(["at", "actor", "action", "target", "detail"], lifecycle)))
    files.append(
        (
            "exceptions.csv",
            _csv(["device_id", "ip", "mac", "manufacturer", "model", "reason", "approver", "expires", "in_force_today"],
                 [[d.id, d.ip, d.mac, d.manufacturer, d.model, d.exception_reason, d.exception_approver,
                   d.exception_expires, active_exception(d, today) is not None]
                  for d in devices if d.exception_reason or d.lifecycle == "exception"]),
        )
    )  # fmt: skip
    entries = session.scalars(
        select(RegisterEntry).where(RegisterEntry.site_id == site.id).order_by(RegisterEntry.line)
    )
    files.append(
        (
            "register.csv",
            _csv(["line", "mac", "ip", "name", "asset_tag", "location", "owner", "approved"],
                 [[e.line, e.mac, e.ip, e.name, e.asset_tag, e.location, e.owner, e.approved] for e in entries]),
        )
    )  # fmt: skip
    return files


def build_audit_pack(
    session: Session, site: Site, start: date | None, end: date | None, out: IO[bytes], actor: str
) -> dict[str, Any]:
    """Write the site's audit pack to `out`; returns its manifest."""
    files = pack_files(session, site, start, end)
    meta = {
        "site": site.slug,
        "site_name": site.name,
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "created_at": utcnow().isoformat(),
        "created_by": actor,
        "camscan": __version__,
        "reports": sum(1 for name, _ in files if name.startswith("reports/")),
    }
    return write_pack(out, files, meta)
