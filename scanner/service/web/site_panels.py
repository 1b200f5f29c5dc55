"""The site page's panels of part 2, wired through the extension point (scanner/service/web/panels.py):
the register reconciliation, the site's alert rules and the audit pack, with their page routes
(`GET /sites/{slug}/export`: the audit pack with the session; `POST /sites/{slug}/register`: the register
pasted into a form). The data comes from scanner/service/panels.py and the API's own functions, called with
the logged-in person's Principal, so the roles and site limits are the API's.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from scanner.service import panels as data
from scanner.service import register as reg
from scanner.service.api.app import service_of
from scanner.service.api.export import pack_response
from scanner.service.api.sites import site_for
from scanner.service.web.pages import Page, check_csrf, form_fields, see_other
from scanner.service.web.panels import PanelContext, SiteAction, register_site_action, site_panel
from scanner.service.web.sessions import Viewer

router = APIRouter(include_in_schema=False)

RECONCILIATION = "Register reconciliation"
ALERT_RULES = "Alert rules"
AUDIT_PACK = "Audit pack"


# ---- the panels ---------------------------------------------------------------------------------------------


@site_panel(RECONCILIATION, order=20, min_role="auditor")
def reconciliation(ctx: PanelContext) -> Markup:
    r = data.reconciliation_panel(ctx.session, ctx.site)
    return ctx.render(
        "panels/reconciliation.html.j2", r=r, may_import=ctx.who.has("operator"),
        imported=ctx.query.get("register") == "imported",
    )  # fmt: skip


def webhook_host(url: str | None) -> str | None:
    """Only the host of a webhook URL: its path, query and user part may carry a secret."""
    if not url:
        return None
    try:
        return urlsplit(url).hostname or "(no host)"
    except ValueError:
        return "(unreadable URL)"


@site_panel(ALERT_RULES, order=30, min_role="auditor")
def alert_rules(ctx: PanelContext) -> Markup:
    rules = data.alert_rules_panel(ctx.session, ctx.site)
    if ctx.who.site_id is not None:  # like GET /api/v1/alert-rules: a site-limited person sees their site's rules
        rules = [r for r in rules if r["site"] is not None]
    shown: list[dict[str, Any]] = []
    for r in rules:
        shown.append({
            "id": r["id"],
            "event": r["event"],
            "scope": "this site" if r["site"] else "every site",
            "webhook_host": webhook_host((r["webhook"] or {}).get("url")),
            "email": r["email"] or [],
            "last": r["last_delivery"],
            "deliveries": r["deliveries"],
        })  # fmt: skip
    return ctx.render("panels/alert_rules.html.j2", rules=shown)


@site_panel(AUDIT_PACK, order=40, min_role="auditor")
def audit_pack(ctx: PanelContext) -> Markup:
    return ctx.render("panels/audit_pack.html.j2", link=data.audit_pack_link(ctx.site))


register_site_action(SiteAction("Audit pack", "/sites/{slug}#panel-audit-pack"))


# ---- page routes --------------------------------------------------------------------------------------------


def _day(name: str, value: str | None) -> date | None:
    if value is None or value.strip() == "":
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise HTTPException(422, f"{name}: a date as YYYY-MM-DD, please") from None


@router.get("/sites/{slug}/export")
def site_export(slug: str, request: Request, who: Page) -> StreamingResponse:
    """The audit pack of GET /api/v1/export with the session: the same zip, the same role checks."""
    q = request.query_params
    return pack_response(request, who.principal, slug, _day("from", q.get("from")), _day("to", q.get("to")))


MAX_REGISTER_FORM = 3 * reg.MAX_REGISTER_BYTES + 4096  # urlencoding at most triples the CSV


@router.post("/sites/{slug}/register")
async def site_register(slug: str, request: Request, who: Page) -> Response:
    """Replace the site's register with a CSV file chosen in the panel's form (multipart/form-data, field
    `file`) or pasted into it (field `csv`); operators only, like the API's import. A file is passed on as
    its bytes, as the API's import is, so a spreadsheet's UTF-16 or Windows-1252 export is refused with a
    message saying how to save it rather than read wrongly."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form, raw = await _multipart(request)
    elif kind == "application/x-www-form-urlencoded":
        form, raw = form_fields(await request.body(), MAX_REGISTER_FORM, max_fields=10), None
    else:
        raise HTTPException(415, "a form must be sent as application/x-www-form-urlencoded or multipart/form-data")
    check_csrf(who, form)
    if not who.principal.has("operator"):
        raise HTTPException(403, f"importing the register needs the operator role; you are {who.role}")
    if raw is None:
        raw = form.get("csv", "").replace("\r\n", "\n").encode("utf-8")
    return await run_in_threadpool(_import, request, who, slug, raw)


async def _multipart(request: Request) -> tuple[dict[str, str], bytes | None]:
    """(the text fields, the file's bytes or None when no file was chosen). At most one file and ten fields;
    a file over the register's limit is refused before it is read whole."""
    from starlette.datastructures import UploadFile
    from starlette.formparsers import MultiPartException

    try:
        form = await request.form(max_files=1, max_fields=10, max_part_size=reg.MAX_REGISTER_BYTES)
    except (MultiPartException, ValueError) as exc:
        raise HTTPException(400, f"the form is not valid multipart data: {exc}") from None
    try:
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not (upload.filename or upload.size):
            return fields, None
        raw = await upload.read(reg.MAX_REGISTER_BYTES + 1)
        if len(raw) > reg.MAX_REGISTER_BYTES:
            raise HTTPException(413, f"the register file is over {reg.MAX_REGISTER_BYTES} bytes")
        return fields, raw
    finally:
        await form.close()


def _shown(raw: bytes) -> str:
    """The CSV as text for the form to show again ("" when it cannot be read as text)."""
    try:
        return reg.decode(raw) if len(raw) <= reg.MAX_REGISTER_BYTES else ""
    except reg.RegisterError:
        return ""


def _import(request: Request, who: Viewer, slug: str, raw: bytes) -> Response:
    from scanner.service.web.pages import render_page

    errors: list[dict[str, Any]] = []
    problem = None
    parsed = None
    try:
        parsed = reg.parse_register(raw)
        errors = list(parsed.errors)
    except reg.RegisterError as exc:
        problem = str(exc)
    with service_of(request).db.session() as s:
        site = site_for(s, slug, who.principal)
        if parsed is not None and not errors and problem is None:
            reg.import_register(s, site, parsed, who.principal.name)
            return see_other(f"/sites/{site.slug}?register=imported#panel-register-reconciliation")
        name = site.name
    return render_page(
        request, who, "register_errors.html.j2", 422, slug=slug, site_name=name, problem=problem, errors=errors,
        text=_shown(raw),
    )  # fmt: skip
