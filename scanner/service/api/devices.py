"""`/api/v1/devices`: the inventory across scans, a device's history and evidence, its lifecycle fields."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from scanner.service.api import paging
from scanner.service.api.app import Caller, need, service_of
from scanner.service.api.scans import _iso
from scanner.service.api.sites import site_for
from scanner.service.auth import Principal, audit
from scanner.service.ingest import device_record
from scanner.service.store.models import LIFECYCLE_STATES, Device, Finding, Observation, Site, utcnow

router = APIRouter(tags=["devices"])
HISTORY_MAX = 1000


def lifecycle_json(d: Device, today: date | None = None) -> dict[str, Any]:
    from scanner.service.lifecycle import active_exception, is_overdue

    today = today or utcnow().date()
    exception = active_exception(d, today)
    return {
        "state": d.lifecycle,
        "replacement_due": d.replacement_due.isoformat() if d.replacement_due else None,
        "replacement_owner": d.replacement_owner,
        "exception_reason": d.exception_reason,
        "exception_approver": d.exception_approver,
        "exception_expires": d.exception_expires.isoformat() if d.exception_expires else None,
        "note": d.lifecycle_note,
        "updated_at": _iso(d.lifecycle_updated_at),
        "updated_by": d.lifecycle_updated_by,
        "overdue": is_overdue(d, today),
        "exception_active": exception is not None,
    }


def device_json(d: Device, site_slug: str) -> dict[str, Any]:
    return {
        "id": d.id,
        "site": site_slug,
        "ip": d.ip,
        "mac": d.mac,
        "manufacturer": d.manufacturer,
        "brand": d.brand,
        "model": d.model,
        "device_type": d.device_type,
        "flagged": d.flagged,
        "first_seen": _iso(d.first_seen),
        "last_seen": _iso(d.last_seen),
        "status": d.status,
        "lifecycle": lifecycle_json(d),
    }


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@router.get("/devices")
def list_devices(
    request: Request,
    who: Caller,
    site: str | None = None,
    flagged: bool | None = None,
    manufacturer: Annotated[str | None, Query(max_length=200)] = None,
    status: Literal["present", "gone"] | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=paging.MAX_LIMIT)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Devices by id; filters combine (AND); `q` searches address, MAC, maker, brand and model."""
    position = paging.decode(cursor, (int,))
    with service_of(request).db.session() as s:
        query = select(Device, Site.slug).join(Site, Site.id == Device.site_id)
        if site is not None:
            query = query.where(Device.site_id == site_for(s, site, who).id)
        elif who.site_id is not None:
            query = query.where(Device.site_id == who.site_id)
        if flagged is not None:
            query = query.where(Device.flagged.is_(flagged))
        if manufacturer is not None:
            query = query.where(func.lower(Device.manufacturer) == manufacturer.lower())
        if status is not None:
            query = query.where(Device.status == status)
        if q:
            pattern = _like(q.lower())
            query = query.where(
                or_(
                    *(
                        func.lower(col).like(pattern, escape="\\")
                        for col in (Device.ip, Device.mac, Device.manufacturer, Device.brand, Device.model)
                    )
                )
            )
        if position is not None:
            query = query.where(Device.id > position[0])
        rows = s.execute(query.order_by(Device.id).limit(limit + 1)).all()
        items = [device_json(d, slug) for d, slug in rows[:limit]]
        nxt = paging.encode([rows[limit - 1][0].id]) if len(rows) > limit else None
        return {"items": items, "next": nxt}


def device_for(s: Session, device_id: int, who: Principal) -> tuple[Device, Site]:
    row = s.execute(select(Device, Site).join(Site, Site.id == Device.site_id).where(Device.id == device_id)).first()
    if row is None:
        raise HTTPException(404, f"no device {device_id}")
    device, site = row
    if not who.may_see(site.id):
        raise HTTPException(403, "this token is limited to another site")
    return device, site


@router.get("/devices/{device_id}")
def get_device(
    device_id: int,
    request: Request,
    who: Caller,
    history: Annotated[int, Query(ge=0, le=HISTORY_MAX)] = 400,
) -> dict[str, Any]:
    """The device, its history (newest first, `history` entries at most), evidence, and findings."""
    with service_of(request).db.session() as s:
        d, site = device_for(s, device_id, who)
        observations = s.scalars(
            select(Observation)
            .where(Observation.device_id == d.id)
            .order_by(Observation.seen_at.desc(), Observation.id.desc())
            .limit(history)
        ).all()
        findings = s.scalars(
            select(Finding).where(Finding.device_id == d.id).order_by(Finding.first_seen, Finding.id)
        ).all()
        record = device_record(s, d) or {}
        doc = device_json(d, site.slug)
        from scanner.service.lifecycle import active_exception

        exception = active_exception(d, utcnow().date())
        doc.update(
            {
                "firmware": d.firmware,
                "serial": d.serial,
                "identity": {"kind": d.identity_kind, "key": d.identity_key},
                "confidence": d.confidence,
                "first_scan": d.first_scan_id,
                "last_scan": d.last_scan_id,
                "matched": record.get("matched", []),
                "notes": record.get("notes", []),
                "evidence": record.get("evidence", []),
                "findings": [
                    {
                        "pack": f.pack,
                        "rule": f.rule,
                        "kind": f.kind,
                        "severity": f.severity,
                        "title": f.title,
                        "first_seen": _iso(f.first_seen),
                        "last_seen": _iso(f.last_seen if f.resolved_at else d.last_seen),
                        "resolved_at": _iso(f.resolved_at),
                        "first_scan": f.first_scan_id,
                        "resolved_scan": f.resolved_scan_id,
                        # open, excepted (an exception in force covers it) or resolved
                        "status": "resolved" if f.resolved_at else ("excepted" if exception else "open"),
                        "exception": exception.as_dict() if exception and not f.resolved_at else None,
                    }
                    for f in findings
                ],
                "history": [
                    {
                        "scan": o.scan_id,
                        "seen_at": _iso(o.seen_at),
                        "ip": o.ip,
                        "mac": o.mac,
                        "manufacturer": o.manufacturer,
                        "brand": o.brand,
                        "model": o.model,
                        "firmware": o.firmware,
                        "device_type": o.device_type,
                        "flagged": o.flagged,
                        "findings": o.n_findings,
                    }
                    for o in observations
                ],
            }
        )
        return doc


class LifecyclePatch(BaseModel):
    """The lifecycle fields a person sets (docs/service.md); part 2 adds due-date alerts and removal rules."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["flagged", "replacement_planned", "removed", "exception"] | None = None
    replacement_due: date | None = None
    replacement_owner: str | None = Field(default=None, max_length=200)
    exception_reason: str | None = Field(default=None, max_length=2000)
    exception_approver: str | None = Field(default=None, max_length=200)
    exception_expires: date | None = None
    note: str | None = Field(default=None, max_length=2000)


class DevicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lifecycle: LifecyclePatch


@router.patch("/devices/{device_id}")
def patch_device(device_id: int, body: DevicePatch, request: Request, who: Caller) -> dict[str, Any]:
    need(who, "operator")
    given = body.lifecycle.model_dump(exclude_unset=True)
    assert set(LIFECYCLE_STATES) >= {body.lifecycle.state} - {None}
    if given.get("state") == "exception" and not (given.get("exception_reason") and given.get("exception_expires")):
        raise HTTPException(422, "lifecycle.exception_reason and lifecycle.exception_expires: an exception needs both")
    columns = {"state": "lifecycle", "note": "lifecycle_note"}
    with service_of(request).db.session() as s:
        d, site = device_for(s, device_id, who)
        for key, value in given.items():
            setattr(d, columns.get(key, key), value)
        d.lifecycle_updated_at, d.lifecycle_updated_by = utcnow(), who.name
        audit(
            s,
            who.name,
            "device.lifecycle",
            f"device:{d.id}",
            body.lifecycle.model_dump(mode="json", exclude_unset=True),
        )
        return device_json(d, site.slug)
