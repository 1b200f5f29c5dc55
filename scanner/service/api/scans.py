"""`/api/v1/scans`: the list, one scan, its stored report (JSON byte for byte, HTML, CSV), and the diff."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from scanner.model import ScanReport
from scanner.service.api import paging
from scanner.service.api.app import Caller, service_of
from scanner.service.api.sites import site_for
from scanner.service.auth import Principal
from scanner.service.ingest import identities, report_bytes
from scanner.service.store.models import SCAN_STATUSES, Device, Scan, Site

router = APIRouter(tags=["scans"])

#: The HTML report's own policy: styles inline, nothing else (no script at all).
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def scan_json(scan: Scan, site_slug: str) -> dict[str, Any]:
    return {
        "id": scan.id,
        "site": site_slug,
        "status": scan.status,
        "trigger": scan.trigger,
        "requested_by": scan.requested_by,
        "queued_at": _iso(scan.queued_at),
        "started_at": _iso(scan.started_at),
        "finished_at": _iso(scan.finished_at),
        "error": scan.error,
        "summary": scan.summary,
        "report_id": scan.report_id,
        "report_sha256": scan.report_sha256,
        "retry_of": scan.retry_of,
    }


def scan_for(s: Session, scan_id: str, who: Principal) -> tuple[Scan, Site]:
    row = s.execute(select(Scan, Site).join(Site, Site.id == Scan.site_id).where(Scan.id == scan_id)).first()
    if row is None:
        raise HTTPException(404, f"no scan {scan_id!r}")
    scan, site = row
    if not who.may_see(site.id):
        raise HTTPException(403, "this token is limited to another site")
    return scan, site


@router.get("/scans")
def list_scans(
    request: Request,
    who: Caller,
    site: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=paging.MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Newest first."""
    if status is not None and status not in SCAN_STATUSES:
        raise HTTPException(422, f"status: one of {', '.join(SCAN_STATUSES)}")
    position = paging.decode(cursor, (str, str))
    with service_of(request).db.session() as s:
        query = select(Scan, Site.slug).join(Site, Site.id == Scan.site_id)
        if site is not None:
            query = query.where(Scan.site_id == site_for(s, site, who).id)
        elif who.site_id is not None:
            query = query.where(Scan.site_id == who.site_id)
        if status is not None:
            query = query.where(Scan.status == status)
        if position is not None:
            query = query.where(tuple_(Scan.queued_at, Scan.id) < (datetime.fromisoformat(position[0]), position[1]))
        rows = s.execute(query.order_by(Scan.queued_at.desc(), Scan.id.desc()).limit(limit + 1)).all()
        items = [scan_json(scan, slug) for scan, slug in rows[:limit]]
        nxt = None
        if len(rows) > limit:
            last = rows[limit - 1][0]
            nxt = paging.encode([last.queued_at.isoformat(), last.id])
        return {"items": items, "next": nxt}


@router.get("/scans/{scan_id}")
def get_scan(scan_id: str, request: Request, who: Caller) -> dict[str, Any]:
    with service_of(request).db.session() as s:
        scan, site = scan_for(s, scan_id, who)
        return scan_json(scan, site.slug)


def _stored_report(s: Session, scan_id: str, who: Principal) -> tuple[Scan, bytes]:
    scan, _ = scan_for(s, scan_id, who)
    raw = report_bytes(scan)
    if raw is None:
        raise HTTPException(404, f"scan {scan_id} has no report (status: {scan.status})")
    return scan, raw


def _model(raw: bytes) -> ScanReport:
    try:
        return ScanReport.model_validate_json(raw)
    except ValidationError:  # stored by an older or newer camscan whose model this one cannot read
        raise HTTPException(409, "the stored report cannot be read by this camscan's report model") from None


def _exceptions(s: Session, scan: Scan, report: ScanReport) -> dict[str, str]:
    """The lifecycle exceptions in force today for the report's devices (shown, never written into it)."""
    from scanner.service.lifecycle import exceptions_by_report_device
    from scanner.service.store.models import utcnow

    notes = exceptions_by_report_device(s, scan.site_id, list(report.devices), utcnow().date())
    return {device_id: note.text() for device_id, note in notes.items()}


@router.get("/scans/{scan_id}/report.json")
def report_json(scan_id: str, request: Request, who: Caller) -> Response:
    """The report exactly as the scan wrote it (so `camscan verify` passes on the download)."""
    with service_of(request).db.session() as s:
        scan, raw = _stored_report(s, scan_id, who)
    return Response(
        raw,
        media_type="application/json",
        headers={
            "X-Camscan-Report-SHA256": scan.report_sha256 or "",
            "Content-Disposition": f'attachment; filename="camscan-{scan.id}.json"',
        },
    )


def _readable(request: Request, scan_id: str, who: Principal) -> tuple[Scan, ScanReport, dict[str, str]]:
    """The stored report as the model reads it, with the exceptions in force, for the HTML and CSV views."""
    with service_of(request).db.session() as s:
        scan, raw = _stored_report(s, scan_id, who)
        report = _model(raw)
        return scan, report, _exceptions(s, scan, report)


@router.get("/scans/{scan_id}/report.html")
def report_html(scan_id: str, request: Request, who: Caller) -> Response:
    from scanner.report.html import render_html

    _, report, exceptions = _readable(request, scan_id, who)
    return Response(
        render_html(report, exceptions),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": REPORT_CSP},
    )


@router.get("/scans/{scan_id}/report.csv")
def report_csv(scan_id: str, request: Request, who: Caller) -> Response:
    from scanner.report.csv_export import render_csv

    scan, report, exceptions = _readable(request, scan_id, who)
    return Response(
        render_csv(report, exceptions),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="camscan-{scan.id}.csv"'},
    )


@router.get("/scans/{scan_id}/diff")
def scan_diff(scan_id: str, request: Request, who: Caller, against: str | None = None) -> dict[str, Any]:
    """Devices new, gone and changed, findings new and resolved, since `against` (default: the site's
    previous succeeded scan)."""
    from scanner.report.diff import diff_reports

    with service_of(request).db.session() as s:
        scan, raw = _stored_report(s, scan_id, who)
        if against is None:
            previous = s.scalars(
                select(Scan)
                .where(
                    Scan.site_id == scan.site_id,
                    Scan.status == "succeeded",
                    Scan.report_started_at < scan.report_started_at,
                )
                .order_by(Scan.report_started_at.desc())
                .limit(1)
            ).first()
            if previous is None:
                raise HTTPException(404, f"scan {scan_id} has no earlier succeeded scan of its site to compare with")
            old_scan, old_raw = previous, report_bytes(previous)
            assert old_raw is not None
        else:
            old_scan, old_raw = _stored_report(s, against, who)
            if old_scan.site_id != scan.site_id:
                raise HTTPException(422, "against: that scan is of another site")
        ids = {
            (d.identity_kind, d.identity_key): d.id
            for d in s.execute(
                select(Device.identity_kind, Device.identity_key, Device.id).where(Device.site_id == scan.site_id)
            )
        }
    d = diff_reports(_model(old_raw), _model(raw))

    def device_id(dev: Any) -> int | None:
        record = {"mac": dev.mac, "ip": dev.ip, "id": dev.id, "evidence": [e.model_dump() for e in dev.evidence]}
        return next((ids[i] for i in identities(record) if i in ids), None)

    doc = d.as_dict()
    for key, devices in (("new", d.new), ("gone", d.gone), ("changed", [c.device for c in d.changed])):
        for item, dev in zip(doc[key], devices, strict=True):  # type: ignore[call-overload]
            item["device_id"] = device_id(dev)
    findings_new = [
        {"device_id": device_id(dev), "ip": dev.ip, "finding": f"{f.policy}/{f.rule}"}
        for dev in d.new
        for f in dev.findings
    ] + [{"device_id": device_id(c.device), "ip": c.device.ip, "finding": k} for c in d.changed for k in c.findings_new]
    findings_resolved = [
        {"device_id": device_id(c.device), "ip": c.device.ip, "finding": k}
        for c in d.changed
        for k in c.findings_resolved
    ] + [
        {"device_id": device_id(dev), "ip": dev.ip, "finding": f"{f.policy}/{f.rule}"}
        for dev in d.gone
        for f in dev.findings
    ]
    return {
        "scan": scan.id,
        "against": old_scan.id,
        "new": doc["new"],
        "gone": doc["gone"],
        "changed": doc["changed"],
        "findings_new": findings_new,
        "findings_resolved": findings_resolved,
    }
