"""`/api/v1/sites/{slug}/register` (import the asset register CSV, read it back) and
`/api/v1/sites/{slug}/reconciliation` (the register against what the scans saw)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from scanner.service import register as reg
from scanner.service.api.app import Caller, need, service_of
from scanner.service.api.sites import site_for
from scanner.service.auth import Principal
from scanner.service.store.models import RegisterEntry

router = APIRouter(tags=["register"])

CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The register: UTF-8 CSV (BOM optional), comma or semicolon; a header with mac or ip, "
        "and asset_tag, location, owner, approved; or a NetBox device export.",
    }
}


@router.post("/sites/{slug}/register", openapi_extra=CSV_BODY)
async def import_register(slug: str, request: Request, who: Caller) -> dict[str, Any]:
    """Replace the site's register with the CSV body; 422 with every bad row's line number, nothing imported."""
    need(who, "operator")
    raw = await request.body()
    return await run_in_threadpool(_import, request, slug, raw, who)


def _import(request: Request, slug: str, raw: bytes, who: Principal) -> dict[str, Any]:
    try:
        parsed = reg.parse_register(raw)
    except reg.RegisterError as exc:
        raise HTTPException(422, [{"loc": ["body"], "msg": str(exc), "type": "register"}]) from None
    if parsed.errors:
        raise HTTPException(
            422,
            [{"loc": ["body", f"line {e['line']}"], "line": e["line"], "msg": e["msg"], "type": "register.row"}
             for e in parsed.errors],
        )  # fmt: skip
    with service_of(request).db.session() as s:
        site = site_for(s, slug, who)
        n = reg.import_register(s, site, parsed, who.name)
    return {"site": slug, "imported": n, "columns": parsed.columns}


@router.get("/sites/{slug}/register")
def get_register(slug: str, request: Request, who: Caller) -> dict[str, Any]:
    with service_of(request).db.session() as s:
        site = site_for(s, slug, who)
        rows = s.scalars(select(RegisterEntry).where(RegisterEntry.site_id == site.id).order_by(RegisterEntry.line))
        return {"items": [reg.entry_json(e) for e in rows], "next": None}


@router.get("/sites/{slug}/reconciliation")
def reconciliation(slug: str, request: Request, who: Caller) -> dict[str, Any]:
    """Unregistered devices, registered but unseen for N scans, flagged devices still present, approved
    devices that are flagged."""
    with service_of(request).db.session() as s:
        return reg.reconcile(s, site_for(s, slug, who))
