"""`/api/v1/export`: a site's audit pack (zip) over a date range; `camscan verify PACK.zip` checks it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import date
from typing import IO, Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from scanner.service.api.app import Caller, service_of
from scanner.service.api.sites import site_for
from scanner.service.auth import Principal, audit
from scanner.service.pack import build_audit_pack

router = APIRouter(tags=["export"])


def _chunks(fh: IO[bytes]) -> Iterator[bytes]:
    try:
        fh.seek(0)
        while chunk := fh.read(1024 * 1024):
            yield chunk
    finally:
        fh.close()


@router.get("/export", response_class=StreamingResponse, responses={200: {"content": {"application/zip": {}}}})
def export_pack(
    request: Request,
    who: Caller,
    site: Annotated[str, Query(max_length=63, description="The site's slug.")],
    from_: Annotated[date | None, Query(alias="from", description="First day (UTC), included.")] = None,
    to: Annotated[date | None, Query(description="Last day (UTC), included.")] = None,
) -> StreamingResponse:
    """The audit pack: every scan's JSON export in the range (byte for byte), device, history, findings,
    lifecycle, exception and register CSVs, and manifest.json with each file's SHA-256."""
    return pack_response(request, who, site, from_, to)


def pack_response(
    request: Request, who: Principal, site: str, from_: date | None, to: date | None
) -> StreamingResponse:
    """The audit pack of `site` as a zip download, for the API and the site page alike (same role checks:
    anyone who may see the site, auditors included; a site-limited caller only their site)."""
    if from_ and to and from_ > to:
        raise HTTPException(422, "from: after to")
    out = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115 - closed by the stream
    try:
        with service_of(request).db.session() as s:
            chosen = site_for(s, site, who)
            manifest = build_audit_pack(s, chosen, from_, to, out, who.name)
            audit(s, who.name, "export.pack", f"site:{chosen.slug}",
                  {"from": manifest["from"], "to": manifest["to"], "reports": manifest["reports"]})  # fmt: skip
    except BaseException:
        out.close()
        raise
    name = f"camscan-audit-{chosen.slug}-{from_ or 'start'}-{to or 'now'}.zip"
    size = out.tell()
    return StreamingResponse(
        _chunks(out),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Content-Length": str(size)},
    )
