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

import gc
import hashlib
import json
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json
from sqlalchemy import ColumnElement, Integer, any_, delete, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from scanner.model import ScanReport
from scanner.report.export import verify_document
from scanner.service.store.models import Base, Device, Finding, Observation, Scan, Site, UTCDateTime, utcnow

#: Evidence keys whose value is a serial number (docs/evidence.md), in order of trust.
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
    flagged: list[int] = field(default_factory=list)  # flagged now, not at the device's previous sighting (or new)


def parse_report(raw: bytes) -> tuple[ScanReport, dict[str, Any]]:
    """Validate a report: UTF-8 JSON, an intact integrity digest, and the ScanReport model."""
    if len(raw) > MAX_REPORT_BYTES:
        raise IngestError(f"the report is {len(raw)} bytes, more than the {MAX_REPORT_BYTES} accepted")
    doc = load_json(raw)
    if not isinstance(doc, dict):
        raise IngestError("the report is not a JSON object")
    try:
        ok, message = verify_document(doc)
    except UnicodeEncodeError:  # a lone surrogate (\ud800): no UTF-8 text, so no digest a scan could have written
        raise IngestError("the report is not UTF-8 JSON: a string holds a lone surrogate escape") from None
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


def load_json(raw: bytes) -> Any:
    """`json.loads(raw.decode("utf-8"))`, in a third of the time.

    pydantic-core's JSON reader (Rust) reads the document; for every document it accepts it gives the same
    objects as json.loads (same types, values, key order; tests/service/test_ingest_parse.py compares the
    two on generated and mangled documents), so the digest is verified over exactly what json.loads gives.
    What it refuses (malformed JSON, and the few documents json.loads takes: lone surrogate escapes,
    nesting deeper than 200) goes to json.loads, which decides and words the error."""
    try:
        return from_json(raw)
    except ValueError:
        pass
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # ValueError: bad UTF-8, bad JSON, an int of 4,300+ digits
        raise IngestError(f"the report is not UTF-8 JSON: {exc}") from None


def pack_body(raw: bytes) -> bytes:
    return zlib.compress(raw, 1)  # level 1: most of the gain (JSON shrinks ~10x) for a fifth of the time


def unpack_body(stored: bytes) -> bytes:
    return zlib.decompress(stored)


def report_bytes(scan: Scan) -> bytes | None:
    """The stored report exactly as the scan wrote it."""
    return None if scan.report_body is None else unpack_body(scan.report_body)


def _serial(dev: dict[str, Any]) -> str | None:
    values = {}  # the last value of each serial key, as a dict of all the evidence would hold it
    for e in dev.get("evidence", []):
        if isinstance(e, dict) and (key := e.get("key")) in SERIAL_KEYS:
            values[key] = e.get("value")
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
    with gc_paused():
        result, rebuild = _store(session, site, raw, scan, trigger, requested_by)
    if rebuild:  # an older report than the site's newest: the site's rows again from all its reports
        rebuild_site(session, site.id)
    return result


def _store(
    session: Session,
    site: Site,
    raw: bytes,
    scan: Scan | None,
    trigger: str,
    requested_by: str | None,
) -> tuple[IngestResult, bool]:
    """ingest_report up to the rebuild: (the result, whether the site must be rebuilt)."""
    report, doc = parse_report(raw)
    sha256 = hashlib.sha256(raw).hexdigest()
    report_id = report.scan.report_id or sha256
    other_scans = [Scan.id != scan.id] if scan is not None else []
    existing, newer = session.execute(  # one round trip: stored already? is a newer report of the site stored?
        select(
            select(Scan.id).where(Scan.report_id == report_id).scalar_subquery(),
            select(func.count())
            .select_from(Scan)
            .where(Scan.site_id == site.id, Scan.report_started_at > report.scan.started_at, *other_scans)
            .scalar_subquery(),
        )
    ).one()
    if existing is not None:
        if scan is not None and scan.id != existing:
            scan.status, scan.finished_at = "succeeded", scan.finished_at or utcnow()
            scan.error = f"the report {report_id} was already stored with scan {existing}"
        return IngestResult(existing, duplicate=True), False
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
    scan.report_sha256 = sha256
    scan.report_digest = str(doc["integrity"]["digest"])
    scan.report_size = len(raw)
    scan.report_started_at = report.scan.started_at
    scan.summary = report.summary.model_dump(mode="json")
    session.flush()
    if newer:
        return IngestResult(scan.id, devices=len(doc["devices"])), True
    result = apply_report(session, site.id, scan.id, report.scan.started_at, doc["devices"])
    after_ingest(session, site, scan, result)
    return result, False


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False
_gc_paused_at = 0.0
GC_PAUSE_LIMIT = 5.0  # seconds: ingests that overlap without a break longer than this collect on their way out


@contextmanager
def gc_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while a report is read and applied.

    A report of 200 devices is some 50,000 dicts, lists and model objects, alive until ingest returns and
    freed by reference counting then. With the collector on, they set off collections that promote them,
    and every few reports a full collection walks the whole heap of the process (a third of the ingest
    time in the benchmark). The objects are still freed as before; only the collections during the ingest
    are skipped. The collector is on again when the last ingest of the process leaves; ingests that
    overlap for longer than GC_PAUSE_LIMIT seconds run a full collection on their way out."""
    global _gc_holders, _gc_was_enabled, _gc_paused_at
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled, _gc_paused_at = gc.isenabled(), time.monotonic()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        collect = False
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0:
                if _gc_was_enabled:
                    gc.enable()
            elif _gc_was_enabled and time.monotonic() - _gc_paused_at > GC_PAUSE_LIMIT:
                _gc_paused_at, collect = time.monotonic(), True
        if collect:
            gc.collect()


def after_ingest(session: Session, site: Site, scan: Scan, result: IngestResult) -> None:
    """The lifecycle rules and the alert events of a newly applied report, in the ingest's transaction."""
    from scanner.service.alerts import derive_scan_events
    from scanner.service.lifecycle import apply_removals

    apply_removals(session, site, scan.id)
    derive_scan_events(session, site, scan, result.new, result.gone, result.flagged)


IDENTITY_COLUMNS = ("ip", "mac", "manufacturer", "brand", "model", "firmware", "device_type", "flagged", "n_findings")
CHUNK = 500  # ids per IN (...) list: far below every database's limit on bound parameters


def apply_report(
    session: Session, site_id: int, scan_id: str, seen_at: datetime, devices: list[dict[str, Any]]
) -> IngestResult:
    """Bring the site's derived rows up to date with one report (the newest of the site).

    Written for a year of nightly scans of hundreds of devices: the site's devices and open findings are
    read once, unchanged devices and findings are touched by one UPDATE each, new devices go in with one
    multi-row INSERT that returns their ids, and only what changed is written row by row."""
    result = IngestResult(scan_id, devices=len(devices))
    cols = [getattr(Device, c) for c in IDENTITY_COLUMNS]
    known: dict[tuple[str, str], _Known] = {}
    for r in session.execute(
        select(Device.id, Device.identity_kind, Device.identity_key, Device.status, Device.first_scan_id,
               Device.serial, Device.confidence, Device.last_seen, Device.last_scan_id, *cols)
        .where(Device.site_id == site_id)
    ):  # fmt: skip
        fields = dict(zip(IDENTITY_COLUMNS, r[9:], strict=True))
        known[(r[1], r[2])] = _Known(r[0], r[1], r[3], r[4], r[5], r[6], fields, r[7], r[8])
    open_findings: dict[int, dict[str, tuple[int, str]]] = {}
    for f_id, device_id, pack, rule, severity in session.execute(
        select(Finding.id, Finding.device_id, Finding.pack, Finding.rule, Finding.severity).where(
            Finding.site_id == site_id, Finding.resolved_at.is_(None)
        )
    ):
        open_findings.setdefault(device_id, {})[f"{pack}/{rule}"] = (f_id, severity)
    seen: set[int] = set()
    taken: set[tuple[str, str]] = set()
    touched: list[int] = []  # seen devices whose identity did not change
    changed: list[dict[str, Any]] = []
    observations: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []  # (row, report device, fields)
    finding_work: list[tuple[int, dict[str, Any], datetime, str | None]] = []
    for dev in devices:
        options = identities(dev)
        chosen = next((i for i in options if _matches(known.get(i), dev, seen)), None)
        if chosen is None:
            chosen = next(i for i in options if i not in taken)
        taken.add(chosen)
        fields = _identity_fields(dev)
        serial = next((key for kind, key in options if kind == "serial"), None)  # _serial(dev), cut to 160
        confidence = float(dev.get("confidence") or 0.0)
        row = known.get(chosen)
        if row is None:
            pending.append(
                (
                    {"site_id": site_id, "identity_kind": chosen[0], "identity_key": chosen[1],
                     "first_seen": seen_at, "first_scan_id": scan_id, "last_seen": seen_at, "last_scan_id": scan_id,
                     "status": "present", "confidence": confidence, "serial": serial, **fields},
                    dev,
                    fields,
                )
            )  # fmt: skip
            known[chosen] = _Known(-1, chosen[0], "present", scan_id, serial, confidence, fields, seen_at, scan_id)
            continue
        seen.add(row.id)
        if fields["flagged"] and (row.first_scan_id is None or not row.fields.get("flagged")):
            result.flagged.append(row.id)
        if row.first_scan_id is None:  # a row rebuild_site inserted ahead to keep the device's old id
            changed.append({"id": row.id, **fields, "serial": serial, "confidence": confidence,
                            "first_seen": seen_at, "first_scan_id": scan_id})  # fmt: skip
            result.new.append(row.id)
        elif row.fields != fields or row.serial != serial or row.confidence != confidence:
            changed.append({"id": row.id, **fields, "serial": serial, "confidence": confidence})
        touched.append(row.id)
        observations.append({"device_id": row.id, "scan_id": scan_id, "seen_at": seen_at, **fields})
        finding_work.append((row.id, dev, row.last_seen, row.last_scan_id))
    new_ids = _insert_devices(session, [p[0] for p in pending])
    for new_id, (_, dev, fields) in zip(new_ids, pending, strict=True):
        seen.add(new_id)
        result.new.append(new_id)
        if fields["flagged"]:
            result.flagged.append(new_id)
        observations.append({"device_id": new_id, "scan_id": scan_id, "seen_at": seen_at, **fields})
        finding_work.append((new_id, dev, seen_at, scan_id))
    for ids in _id_sets(session, touched):
        session.execute(
            update(Device)
            .where(ids)
            .values(last_seen=seen_at, last_scan_id=scan_id, status="present")
            .execution_options(synchronize_session=False)
        )
    first_seen_rows = [c for c in changed if "first_seen" in c]
    for group in (first_seen_rows, [c for c in changed if "first_seen" not in c]):
        if group:
            session.execute(update(Device), group)
    _insert_rows(session, "observations", observations)
    _update_findings(session, site_id, finding_work, open_findings, scan_id, seen_at)
    gone = [k.id for k in known.values() if k.id not in seen and k.id != -1 and k.status == "present"]
    for ids in _id_sets(session, gone):
        session.execute(update(Device).where(ids).values(status="gone").execution_options(synchronize_session=False))
    result.gone = gone
    session.flush()
    return result


def _insert_devices(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert new devices (rows of the same columns) with multi-row INSERTs; their ids, in the rows' order
    (read back by identity, unique within the site, so no reliance on the order RETURNING gives)."""
    if not rows:
        return []
    session.flush()  # anything pending goes first, as the unit of work would have ordered it
    ids: dict[tuple[str, str], int] = {}
    for device_id, kind, key in session.execute(
        insert(Device).returning(Device.id, Device.identity_kind, Device.identity_key), rows
    ):
        ids[(kind, key)] = int(device_id)
    return [ids[(r["identity_kind"], r["identity_key"])] for r in rows]


@dataclass
class _Known:
    id: int
    kind: str
    status: str
    first_scan_id: str | None
    serial: str | None
    confidence: float
    fields: dict[str, Any]
    last_seen: datetime
    last_scan_id: str | None

    @property
    def mac(self) -> str | None:
        value = self.fields.get("mac")
        return None if value is None else str(value)


def _id_sets(session: Session, ids: list[int]) -> list[ColumnElement[bool]]:
    """`Device.id` among `ids`: on PostgreSQL one `= ANY(array)` (one parameter, one cached statement), elsewhere
    IN lists of at most CHUNK ids."""
    if not ids:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return [Device.id == any_(literal(ids, ARRAY(Integer)))]
    return [Device.id.in_(ids[i : i + CHUNK]) for i in range(0, len(ids), CHUNK)]


def _matches(row: _Known | None, dev: dict[str, Any], seen: set[int]) -> bool:
    """Whether a report device is the stored `row`. An address alone never joins two different MACs: the
    address may have been given to another device since."""
    if row is None or row.id in seen or row.id == -1:
        return False
    mac = row.mac
    return not (row.kind in ("ip", "id") and mac and dev.get("mac") and mac != str(dev.get("mac"))[:32])


def _update_findings(
    session: Session,
    site_id: int,
    work: list[tuple[int, dict[str, Any], datetime, str | None]],
    open_findings: dict[int, dict[str, tuple[int, str]]],
    scan_id: str,
    seen_at: datetime,
) -> None:
    """Open new findings, resolve the ones a device no longer shows. An open finding is not rewritten on
    every scan: while open it was last seen when its device was (the API says so); its own last_seen and
    last_scan_id are written when it is resolved: the device's previous scan."""
    resolved: list[dict[str, Any]] = []
    new_rows: list[dict[str, Any]] = []
    severity_changes: list[dict[str, Any]] = []
    for device_id, dev, previous_seen, previous_scan in work:
        current: dict[str, dict[str, Any]] = {}
        for f in dev.get("findings", []):
            current.setdefault(f"{f.get('policy')}/{f.get('rule')}", f)
        open_now = open_findings.get(device_id, {})
        for key, f in current.items():
            severity = str(f.get("severity"))[:16]
            if key in open_now:
                f_id, old_severity = open_now[key]
                if old_severity != severity:
                    severity_changes.append({"id": f_id, "severity": severity})
                continue
            new_rows.append(
                {
                    "device_id": device_id,
                    "site_id": site_id,
                    "pack": str(f.get("policy"))[:120],
                    "rule": str(f.get("rule"))[:200],
                    "kind": str(f.get("kind"))[:16],
                    "severity": severity,
                    "title": str(f.get("title", "")),
                    "first_seen": seen_at,
                    "last_seen": seen_at,
                    "first_scan_id": scan_id,
                    "last_scan_id": scan_id,
                }
            )
        resolved += [
            {"id": f_id, "resolved_at": seen_at, "resolved_scan_id": scan_id, "last_seen": previous_seen,
             "last_scan_id": previous_scan or scan_id}
            for key, (f_id, _) in open_now.items()
            if key not in current
        ]  # fmt: skip
    if resolved:
        session.execute(update(Finding), resolved)
    if severity_changes:
        session.execute(update(Finding), severity_changes)
    _insert_rows(session, "findings", new_rows)


def _insert_rows(session: Session, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert many rows: with PostgreSQL's COPY (one stream instead of a statement per row), elsewhere with
    executemany. Datetimes go in as naive UTC, as UTCDateTime stores them."""
    if not rows:
        return
    target = Base.metadata.tables[table]
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(target), rows)
        return
    columns = list(rows[0])
    times = [i for i, c in enumerate(columns) if isinstance(target.c[c].type, UTCDateTime)]
    naive: dict[datetime, datetime] = {}  # the rows of one ingest share a few times
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            values = [row[c] for c in columns]
            for i in times:
                value = values[i]
                if value is not None:
                    if value not in naive:
                        naive[value] = _naive(value)
                    values[i] = naive[value]
            copy.write_row(values)


def _naive(value: Any) -> Any:
    return value.astimezone(UTC).replace(tzinfo=None) if isinstance(value, datetime) else value


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
    for obj in list(session):  # the rows just deleted must not linger in the identity map
        if isinstance(obj, Device | Finding | Observation):
            session.expunge(obj)
    scans = session.execute(
        select(Scan.id, Scan.report_started_at, Scan.report_body)
        .where(Scan.site_id == site_id, Scan.status == "succeeded", Scan.report_body.is_not(None))
        .order_by(Scan.report_started_at, Scan.id)
    ).all()
    for scan_id, started_at, body in scans:
        if body is None or started_at is None:
            continue
        with gc_paused():
            doc = load_json(unpack_body(body))
            for dev in doc["devices"]:  # reuse each identity's old id, so links to /devices/{id} stay valid
                for ident in identities(dev):
                    if ident in keep and "claimed" not in keep[ident]:
                        keep[ident]["claimed"] = True
                        _preallocate(session, site_id, ident, keep[ident]["id"])
                        break
            apply_report(session, site_id, scan_id, started_at, doc["devices"])
    for d in session.scalars(select(Device).where(Device.site_id == site_id).execution_options(populate_existing=True)):
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


def device_record(session: Session, device: Device) -> dict[str, Any] | None:
    """The device's record (evidence, reasons, findings) in the last report that saw it."""
    if device.last_scan_id is None:
        return None
    body = session.scalar(select(Scan.report_body).where(Scan.id == device.last_scan_id))
    if body is None:
        return None
    doc = json.loads(unpack_body(body))
    wanted = (device.identity_kind, device.identity_key)
    for dev in doc.get("devices", []):
        if wanted in identities(dev):
            return dict(dev)
    return None
