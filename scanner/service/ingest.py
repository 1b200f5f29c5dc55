"""A ScanReport JSON in, the inventory out: the one path by which scan results enter the store.

The report is kept exactly as the scan wrote it (zlib-compressed; decompression gives back every byte,
so the API serves it byte for byte and `camscan verify` passes on a download), with the SHA-256 of those
bytes and the report's own integrity digest. From it the derived tables are brought up to date:

- devices: one per stable identity within a site: the MAC, else a serial number the device gave (ONVIF,
  SADP, DHIP), else the IP address; first and last seen, present or gone (gone = not in the site's latest
  scan), the identity as last seen, and the device's record in that report (evidence, reasons, findings);
- observations: one row per device per scan, the device page's history;
- findings: a finding opens in the scan that first shows it and is resolved by the first later scan that
  sees the device without it (a device that is gone keeps its open findings: it may be unplugged only).

Only fields every schema version has are read (scan.report_id and started_at, devices, summary), so a
report of a newer minor schema ingests as long as scanner.model.ScanReport validates it. Everything runs
in the caller's transaction; ingesting a report whose report_id is already stored does nothing. Reports
that arrive out of order (older than the newest one of the site) are stored and the site's derived rows
rebuilt from all its reports, so the result never depends on arrival order (`rebuild`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from scanner.model import ScanReport
from scanner.report.export import verify_document
from scanner.service.store.models import Device, Finding, Observation, Scan, Site, utcnow

#: Evidence keys whose value is a serial number (shared/EVIDENCE.md), in order of trust.
SERIAL_KEYS = ("onvif.serial", "sadp.device_sn", "dhip.serial_no")
#: The largest report the service accepts (a /16 of verbose devices stays well below it).
MAX_REPORT_BYTES = 256 * 1024 * 1024


class IngestError(ValueError):
    """The bytes are not a camscan report the service can store (said in the message)."""


@dataclass
class IngestResult:
    scan_id: str
    duplicate: bool = False
    devices: int = 0
    new: list[int] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)


def parse_report(raw: bytes) -> tuple[ScanReport, dict[str, Any]]:
    """Validate a report: UTF-8 JSON, an intact integrity digest, and the ScanReport model."""
    if len(raw) > MAX_REPORT_BYTES:
        raise IngestError(f"the report is {len(raw)} bytes, more than the {MAX_REPORT_BYTES} accepted")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(f"the report is not UTF-8 JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise IngestError("the report is not a JSON object")
    ok, message = verify_document(doc)
    if not ok:
        raise IngestError(f"the report's integrity check fails: {message}")
    try:
        report = ScanReport.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise IngestError(
            f"not a valid camscan report: {exc.error_count()} problem(s), first: {where}: {first['msg']}"
        ) from None
    return report, doc


def pack_body(raw: bytes) -> bytes:
    return zlib.compress(raw, 6)


def unpack_body(stored: bytes) -> bytes:
    return zlib.decompress(stored)


def report_bytes(scan: Scan) -> bytes | None:
    """The stored report exactly as the scan wrote it."""
    return None if scan.report_body is None else unpack_body(scan.report_body)


def _serial(dev: dict[str, Any]) -> str | None:
    values = {e.get("key"): e.get("value") for e in dev.get("evidence", []) if isinstance(e, dict)}
    for key in SERIAL_KEYS:
        value = values.get(key)
        if isinstance(value, str):
            value = value.strip()
            if 4 <= len(value) <= 128 and len(set(value)) > 1:  # "0000" and such are placeholders, not serials
                return value
    return None


def identities(dev: dict[str, Any]) -> list[tuple[str, str]]:
    """The identities a report device could be known by, strongest first: MAC, serial, IP, report id."""
    found: list[tuple[str, str]] = []
    if dev.get("mac"):
        found.append(("mac", str(dev["mac"]).lower()[:160]))
    serial = _serial(dev)
    if serial:
        found.append(("serial", serial[:160]))
    if dev.get("ip"):
        found.append(("ip", str(dev["ip"])[:160]))
    found.append(("id", str(dev.get("id", ""))[:160]))
    return found


def _cut(value: Any, limit: int = 200) -> str | None:
    if value is None:
        return None
    text_value = str(value)
    return text_value[:limit]


def _flagged(dev: dict[str, Any]) -> bool:
    return any(f.get("kind") == "regime" for f in dev.get("findings", []))


def _identity_fields(dev: dict[str, Any]) -> dict[str, Any]:
    return {
        "ip": _cut(dev.get("ip"), 64),
        "mac": _cut(dev.get("mac"), 32),
        "manufacturer": _cut(dev.get("manufacturer")),
        "brand": _cut(dev.get("brand")),
        "model": _cut(dev.get("model")),
        "firmware": _cut(dev.get("firmware")),
        "device_type": _cut(dev.get("device_type"), 32),
        "flagged": _flagged(dev),
        "n_findings": len(dev.get("findings", [])),
    }


def ingest_report(
    session: Session,
    site: Site,
    raw: bytes,
    *,
    scan: Scan | None = None,
    trigger: str = "import",
    requested_by: str | None = None,
) -> IngestResult:
    """Store one report for `site` (into `scan` when the scheduler ran it) and update the inventory.

    Raises IngestError, with nothing changed, when the bytes are not a valid, intact camscan report."""
    report, doc = parse_report(raw)
    report_id = report.scan.report_id or hashlib.sha256(raw).hexdigest()
    existing = session.scalars(select(Scan).where(Scan.report_id == report_id)).first()
    if existing is not None:
        if scan is not None and scan.id != existing.id:
            scan.status, scan.finished_at = "succeeded", scan.finished_at or utcnow()
            scan.error = f"the report {report_id} was already stored with scan {existing.id}"
        return IngestResult(existing.id, duplicate=True)
    now = utcnow()
    if scan is None:
        scan = Scan(
            id=str(uuid.uuid4()),
            site_id=site.id,
            trigger=trigger,
            requested_by=requested_by,
            queued_at=report.scan.started_at,
            started_at=report.scan.started_at,
            finished_at=report.scan.finished_at,
            status="succeeded",
        )
        session.add(scan)
    scan.status = "succeeded"
    scan.finished_at = scan.finished_at or now
    scan.report_id = report_id
    scan.report_body = pack_body(raw)
    scan.report_sha256 = hashlib.sha256(raw).hexdigest()
    scan.report_digest = str(doc["integrity"]["digest"])
    scan.report_size = len(raw)
    scan.report_started_at = report.scan.started_at
    scan.summary = report.summary.model_dump(mode="json")
    session.flush()
    newer = session.scalar(
        select(func.count())
        .select_from(Scan)
        .where(Scan.site_id == site.id, Scan.id != scan.id, Scan.report_started_at > report.scan.started_at)
    )
    if newer:
        rebuild_site(session, site.id)
        return IngestResult(scan.id, devices=len(doc["devices"]))
    return apply_report(session, site.id, scan.id, report.scan.started_at, doc["devices"])


def apply_report(
    session: Session, site_id: int, scan_id: str, seen_at: datetime, devices: list[dict[str, Any]]
) -> IngestResult:
    """Bring the site's derived rows up to date with one report (the newest of the site)."""
    result = IngestResult(scan_id, devices=len(devices))
    known: dict[tuple[str, str], Device] = {
        (d.identity_kind, d.identity_key): d for d in session.scalars(select(Device).where(Device.site_id == site_id))
    }
    open_findings: dict[int, dict[str, Finding]] = {}
    for f in session.scalars(select(Finding).where(Finding.site_id == site_id, Finding.resolved_at.is_(None))):
        open_findings.setdefault(f.device_id, {})[f"{f.pack}/{f.rule}"] = f
    seen: set[int] = set()
    taken: set[tuple[str, str]] = set()
    observations: list[Observation] = []
    new_devices: list[tuple[Device, dict[str, Any]]] = []
    for dev in devices:
        options = identities(dev)
        chosen = next((i for i in options if _matches(known.get(i), dev, seen)), None)
        if chosen is None:
            chosen = next(i for i in options if i not in taken)
        taken.add(chosen)
        fields = _identity_fields(dev)
        serial = _serial(dev)
        row = known.get(chosen)
        if row is None:
            row = Device(
                site_id=site_id,
                identity_kind=chosen[0],
                identity_key=chosen[1],
                first_seen=seen_at,
                first_scan_id=scan_id,
                last_seen=seen_at,
                last_scan_id=scan_id,
                status="present",
                confidence=float(dev.get("confidence") or 0.0),
                serial=_cut(serial, 160),
                current=dev,
                **fields,
            )
            session.add(row)
            known[chosen] = row
            new_devices.append((row, dev))
            continue
        for name, value in fields.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
        row.serial = _cut(serial, 160)
        row.confidence = float(dev.get("confidence") or 0.0)
        row.last_seen, row.last_scan_id, row.status, row.current = seen_at, scan_id, "present", dev
        if row.first_scan_id is None:  # a row rebuild_site inserted ahead to keep the device's old id
            row.first_seen, row.first_scan_id = seen_at, scan_id
            result.new.append(row.id)
        seen.add(row.id)
        observations.append(_observation(row.id, scan_id, seen_at, fields))
        _update_findings(session, row, dev, open_findings.get(row.id, {}), scan_id, seen_at)
    session.flush()  # ids for the new devices
    for row, dev in new_devices:
        seen.add(row.id)
        result.new.append(row.id)
        observations.append(_observation(row.id, scan_id, seen_at, _identity_fields(dev)))
        _update_findings(session, row, dev, {}, scan_id, seen_at)
    session.add_all(observations)
    gone = [d.id for d in known.values() if d.id not in seen and d.status == "present"]
    if gone:
        session.execute(update(Device).where(Device.id.in_(gone)).values(status="gone"))
        for d in known.values():
            if d.id in gone:
                d.status = "gone"
    result.gone = gone
    session.flush()
    return result


def _matches(row: Device | None, dev: dict[str, Any], seen: set[int]) -> bool:
    """Whether a report device is the stored `row`. An address alone never joins two different MACs: the
    address may have been given to another device since."""
    if row is None or row.id in seen:
        return False
    return not (row.identity_kind in ("ip", "id") and row.mac and dev.get("mac") and row.mac != dev.get("mac"))


def _observation(device_id: int, scan_id: str, seen_at: datetime, fields: dict[str, Any]) -> Observation:
    return Observation(device_id=device_id, scan_id=scan_id, seen_at=seen_at, **fields)


def _update_findings(
    session: Session,
    device: Device,
    dev: dict[str, Any],
    open_now: dict[str, Finding],
    scan_id: str,
    seen_at: datetime,
) -> None:
    current: dict[str, dict[str, Any]] = {}
    for f in dev.get("findings", []):
        current.setdefault(f"{f.get('policy')}/{f.get('rule')}", f)
    for key, f in current.items():
        row = open_now.get(key)
        if row is not None:
            row.last_seen, row.last_scan_id = seen_at, scan_id
            if row.severity != f.get("severity"):
                row.severity = str(f.get("severity"))[:16]
            continue
        session.add(
            Finding(
                device_id=device.id,
                site_id=device.site_id,
                pack=str(f.get("policy"))[:120],
                rule=str(f.get("rule"))[:200],
                kind=str(f.get("kind"))[:16],
                severity=str(f.get("severity"))[:16],
                title=str(f.get("title", "")),
                first_seen=seen_at,
                last_seen=seen_at,
                first_scan_id=scan_id,
                last_scan_id=scan_id,
            )
        )
    for key, row in open_now.items():
        if key not in current:
            row.resolved_at, row.resolved_scan_id = seen_at, scan_id


LIFECYCLE_FIELDS = (
    "lifecycle",
    "replacement_due",
    "replacement_owner",
    "exception_reason",
    "exception_approver",
    "exception_expires",
    "lifecycle_note",
    "lifecycle_updated_at",
    "lifecycle_updated_by",
)


def rebuild_site(session: Session, site_id: int) -> int:
    """Recompute a site's devices, observations and findings from its stored reports, oldest first.

    Device ids and the lifecycle fields people set are kept for every identity that comes back."""
    keep: dict[tuple[str, str], dict[str, Any]] = {}
    for d in session.scalars(select(Device).where(Device.site_id == site_id)):
        keep[(d.identity_kind, d.identity_key)] = {"id": d.id, **{f: getattr(d, f) for f in LIFECYCLE_FIELDS}}
    session.execute(delete(Finding).where(Finding.site_id == site_id))
    session.execute(
        delete(Observation).where(Observation.device_id.in_(select(Device.id).where(Device.site_id == site_id)))
    )
    session.execute(delete(Device).where(Device.site_id == site_id))
    session.expunge_all()
    scans = session.execute(
        select(Scan.id, Scan.report_started_at, Scan.report_body)
        .where(Scan.site_id == site_id, Scan.status == "succeeded", Scan.report_body.is_not(None))
        .order_by(Scan.report_started_at, Scan.id)
    ).all()
    for scan_id, started_at, body in scans:
        if body is None or started_at is None:
            continue
        doc = json.loads(unpack_body(body))
        for dev in doc["devices"]:  # reuse each identity's old id, so links to /devices/{id} stay valid
            for ident in identities(dev):
                if ident in keep and "claimed" not in keep[ident]:
                    keep[ident]["claimed"] = True
                    _preallocate(session, site_id, ident, keep[ident]["id"])
                    break
        apply_report(session, site_id, scan_id, started_at, doc["devices"])
    for d in session.scalars(select(Device).where(Device.site_id == site_id)):
        old = keep.get((d.identity_kind, d.identity_key))
        if old is not None:
            for f in LIFECYCLE_FIELDS:
                setattr(d, f, old[f])
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT setval(pg_get_serial_sequence('devices', 'id'), GREATEST((SELECT max(id) FROM devices), 1))")
        )
    session.flush()
    return len(scans)


def _preallocate(session: Session, site_id: int, ident: tuple[str, str], device_id: int) -> None:
    """Insert the device row for `ident` with its old id, so apply_report finds and updates it."""
    epoch = datetime.fromtimestamp(0, UTC)
    session.add(
        Device(
            id=device_id,
            site_id=site_id,
            identity_kind=ident[0],
            identity_key=ident[1],
            first_seen=epoch,
            last_seen=epoch,
            status="new",
        )
    )
    session.flush()


def rebuild_all(session: Session) -> dict[str, int]:
    """`camscan db rebuild`: every site's derived tables from its stored reports."""
    done: dict[str, int] = {}
    for site in session.scalars(select(Site).order_by(Site.id)).all():
        done[site.slug] = rebuild_site(session, site.id)
    return done
