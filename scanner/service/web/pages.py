"""The page routes: login and logout, overview, site, device, scan, downloads, admin pages.

Every route reads the person from the session cookie (`viewer`) and acts through the API's own functions
with their Principal, so the roles and site limits are the API's. A page asked for without a session
redirects (303) to /login; errors are HTML pages (the API under /api keeps its JSON errors).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select
from starlette.exceptions import HTTPException as StarletteHTTPException

from scanner.service.api.app import service_of
from scanner.service.auth import audit
from scanner.service.store.models import Device, Scan, Site
from scanner.service.web import sessions
from scanner.service.web.sessions import Viewer
from scanner.service.web.templating import ENV

log = logging.getLogger("camscan.service.web")

#: No script of any kind, styles and images from this origin only, forms post here only, never framed.
CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
STATIC = Path(__file__).resolve().parent / "static"
MAX_FORM = 64 * 1024
PAGE_SIZE = 50

router = APIRouter(include_in_schema=False)


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


# ---- plumbing shared by every page ----------------------------------------------------------------------


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def client_of(request: Request) -> str:
    return request.client.host if request.client else "-"


def viewer(request: Request) -> Viewer:
    """The logged-in person, from the session cookie; otherwise the page redirects to /login."""
    name, _ = sessions.cookie_names(is_https(request))
    token = request.cookies.get(name)
    found = None
    if token:
        with service_of(request).db.session() as s:
            found = sessions.viewer_for(s, token)
    if found is None:
        path = request.url.path + ("?" + request.url.query if request.url.query else "")
        raise LoginRequired(path if request.method == "GET" else "/")  # a form's target is no page to return to
    request.state.actor = found.principal.name
    return found


Page = Annotated[Viewer, Depends(viewer)]


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the only kind the pages send), first value of each field."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if not body:
        return {}
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "a form must be sent as application/x-www-form-urlencoded")
    return form_fields(body, MAX_FORM)


def form_fields(body: bytes, limit: int, max_fields: int = 200) -> dict[str, str]:
    """The first value of each field of an urlencoded body of at most `limit` bytes (413 above it)."""
    if len(body) > limit:
        raise HTTPException(413, "the form is too large")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "the form is not valid UTF-8 urlencoded data") from None
    return {k: v[0] for k, v in fields.items()}


Form = Annotated[dict[str, str], Depends(read_form)]


def check_csrf(who: Viewer, form: dict[str, str]) -> None:
    if not sessions.same(form.get("csrf"), who.csrf):
        raise HTTPException(403, "the form's CSRF token is missing or stale: reload the page and try again")


def render_page(request: Request, who: Viewer | None, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    body = ENV.get_template(template).render(
        who=who, csrf=who.csrf if who else "", path=request.url.path, nav=_nav(who), **values
    )
    return HTMLResponse(body, status)


def _nav(who: Viewer | None) -> list[tuple[str, str]]:
    if who is None:
        return []
    items = [("/", "Overview")]
    if who.principal.site_id is None:
        items.append(("/admin/audit", "Audit log"))
    if who.role == "admin":
        items += [("/admin/sites", "Sites"), ("/admin/users", "Users"), ("/admin/tokens", "Tokens")]
    return items


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, 303)


def _safe_next(value: str | None) -> str:
    """Only a path of this site (no scheme, no host, no `//evil`), else the overview."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 32 for c in value)
    ):
        return "/"
    return value


# ---- login, logout ----------------------------------------------------------------------------------------


def _login_form(request: Request, status: int = 200, error: str | None = None, email: str = "") -> HTMLResponse:
    token = sessions.new_token()
    response = render_page(
        request, None, "login.html.j2", status, error=error, email=email, login_csrf=token,
        next=_safe_next(request.query_params.get("next")),
    )  # fmt: skip
    _, name = sessions.cookie_names(is_https(request))
    response.set_cookie(name, token, max_age=3600, path="/", secure=is_https(request), httponly=True, samesite="strict")
    return response


@router.get("/login")
def login_page(request: Request) -> HTMLResponse:
    return _login_form(request)


@router.post("/login")
def login(request: Request, form: Form) -> Response:
    https = is_https(request)
    session_cookie, login_cookie = sessions.cookie_names(https)
    email = form.get("email", "").strip()[:254]
    if not sessions.same(form.get("csrf"), request.cookies.get(login_cookie)):
        return _login_form(request, 403, "The form had expired. Please log in again.", email)
    client = client_of(request)
    if not https and not sessions.is_loopback(client):
        return _login_form(
            request, 403, "Logging in over plain http is only allowed from this machine: use https.", email
        )
    user, token, limited = None, "", False
    with service_of(request).db.session() as s:
        if sessions.throttled(s, email, client):
            limited = True
        else:
            user = sessions.check_password(s, email, form.get("password", "")[:1024])
            if user is None:
                sessions.record_failure(s, email, client)
            else:
                token = sessions.start_session(s, user, email, client)
                audit(s, f"user:{user.email}", "user.login", f"user:{user.email}", {"client": client})
    if limited:
        log.warning("login throttled for a client %s", client)
        response = _login_form(request, 429, "Too many failed attempts. Wait 15 minutes and try again.", email)
        response.headers["Retry-After"] = str(int(sessions.WINDOW.total_seconds()))
        return response
    if user is None:
        return _login_form(request, 401, "The email or password is wrong.", email)
    redirect = see_other(_safe_next(form.get("next")))
    redirect.set_cookie(
        session_cookie, token, max_age=int(sessions.ABSOLUTE.total_seconds()), path="/", secure=https, httponly=True,
        samesite="lax",
    )  # fmt: skip
    redirect.delete_cookie(login_cookie, path="/", secure=https, httponly=True, samesite="strict")
    request.state.actor = f"user:{user.email}"
    return redirect


@router.post("/logout")
def logout(request: Request, who: Page, form: Form) -> Response:
    check_csrf(who, form)
    with service_of(request).db.session() as s:
        sessions.end_session(s, who.session_hash)
    response = see_other("/login")
    name, _ = sessions.cookie_names(is_https(request))
    response.delete_cookie(name, path="/", secure=is_https(request), httponly=True, samesite="lax")
    return response


@router.get("/static/camscan.css")
def stylesheet() -> Response:
    return Response((STATIC / "camscan.css").read_bytes(), media_type="text/css; charset=utf-8")


# ---- overview ---------------------------------------------------------------------------------------------


@router.get("/")
def overview(request: Request, who: Page) -> HTMLResponse:
    from scanner.service.web.overview import build_chart, flagged_history, site_rows

    with service_of(request).db.session() as s:
        rows = site_rows(s, who.principal)
        lines, hidden = flagged_history(s, who.principal)
        chart = build_chart(lines, hidden)
    totals = {k: sum(getattr(r, k) for r in rows) for k in ("devices", "cameras", "flagged", "overdue")}
    return render_page(request, who, "overview.html.j2", rows=rows, chart=chart, totals=totals)


# ---- site ---------------------------------------------------------------------------------------------------

SORTS = {
    "ip": Device.ip,
    "maker": Device.manufacturer,
    "model": Device.model,
    "type": Device.device_type,
    "flagged": Device.flagged,
    "status": Device.status,
    "lifecycle": Device.lifecycle,
    "last_seen": Device.last_seen,
}


@dataclass
class DeviceFilters:
    maker: str = ""
    flagged: str = ""  # "", "yes", "no"
    type: str = ""
    status: str = ""
    sort: str = "flagged"
    dir: str = "desc"
    page: int = 1

    @classmethod
    def from_query(cls, q: dict[str, str]) -> DeviceFilters:
        page = q.get("page", "1")
        return cls(
            maker=q.get("maker", "")[:200],
            flagged=q.get("flagged", "") if q.get("flagged") in ("yes", "no") else "",
            type=q.get("type", "")[:32],
            status=q.get("status", "") if q.get("status") in ("present", "gone") else "",
            sort=q.get("sort", "flagged") if q.get("sort") in SORTS else "flagged",
            dir="asc" if q.get("dir") == "asc" else "desc",
            page=int(page) if page.isdigit() and 0 < int(page) < 1_000_000 else 1,
        )

    def link(self, **changes: Any) -> str:
        values = {**self.__dict__, **changes}
        return "?" + urlencode({k: v for k, v in values.items() if v not in ("", None)})

    def sort_link(self, key: str) -> str:
        direction = "desc" if self.sort == key and self.dir == "asc" else "asc"
        return self.link(sort=key, dir=direction, page=1)


@router.get("/sites/{slug}")
def site_page(slug: str, request: Request, who: Page) -> HTMLResponse:
    from scanner.service.api.sites import site_for
    from scanner.service.web.overview import overdue_clause
    from scanner.service.web.panels import PanelContext, render_panels, visible_actions

    f = DeviceFilters.from_query(dict(request.query_params))
    with service_of(request).db.session() as s:
        site = site_for(s, slug, who.principal)
        base = select(Device).where(Device.site_id == site.id)
        if f.maker:
            base = base.where(Device.manufacturer == f.maker)
        if f.flagged:
            base = base.where(Device.flagged.is_(f.flagged == "yes"))
        if f.type:
            base = base.where(Device.device_type == f.type)
        if f.status:
            base = base.where(Device.status == f.status)
        total = int(s.scalar(select(func.count()).select_from(base.subquery())) or 0)
        column = SORTS[f.sort]
        order = column.asc().nulls_last() if f.dir == "asc" else column.desc().nulls_last()
        devices = s.scalars(base.order_by(order, Device.id).offset((f.page - 1) * PAGE_SIZE).limit(PAGE_SIZE)).all()
        today = datetime.now(UTC).date()
        overdue_ids = set(s.scalars(select(Device.id).where(Device.site_id == site.id, overdue_clause(today))))
        makers = [m for m in s.scalars(
            select(Device.manufacturer).where(Device.site_id == site.id, Device.manufacturer.is_not(None))
            .distinct().order_by(Device.manufacturer)
        )]  # fmt: skip
        types = [t for t in s.scalars(
            select(Device.device_type).where(Device.site_id == site.id, Device.device_type.is_not(None))
            .distinct().order_by(Device.device_type)
        )]  # fmt: skip
        scans = s.scalars(select(Scan).where(Scan.site_id == site.id).order_by(Scan.queued_at.desc()).limit(25)).all()
        ctx = PanelContext(s, site, who.principal, who.csrf, dict(request.query_params))
        panels = render_panels(ctx)
        actions = visible_actions(who.principal, site.slug)
    pages = max(1, -(-total // PAGE_SIZE))
    return render_page(
        request, who, "site.html.j2", site=site, devices=devices, total=total, f=f, pages=pages, makers=makers,
        types=types, scans=scans, panels=panels, actions=actions, overdue_ids=overdue_ids, sorts=list(SORTS),
        may_scan=who.principal.has("operator"),
    )  # fmt: skip


@router.post("/sites/{slug}/scan")
def site_scan_now(slug: str, request: Request, who: Page, form: Form) -> Response:
    """Queue a scan of the site now (the API's own route: operator role, one scan per site at a time)."""
    from scanner.service.api.sites import queue_scan

    check_csrf(who, form)
    scan = queue_scan(slug, request, who.principal)
    return see_other(f"/scans/{scan['id']}")


# ---- device -------------------------------------------------------------------------------------------------


def _history_runs(observations: list[Any]) -> list[dict[str, Any]]:
    """Consecutive observations with the same address, MAC, firmware and model as one row (oldest first)."""
    runs: list[dict[str, Any]] = []
    for o in sorted(observations, key=lambda o: (o.seen_at, o.id)):
        key = (o.ip, o.mac, o.firmware, o.model, o.flagged)
        if runs and runs[-1]["key"] == key:
            runs[-1]["last"] = o.seen_at
            runs[-1]["scans"] += 1
            runs[-1]["last_scan"] = o.scan_id
        else:
            runs.append({"key": key, "ip": o.ip, "mac": o.mac, "firmware": o.firmware, "model": o.model,
                         "flagged": o.flagged, "first": o.seen_at, "last": o.seen_at, "scans": 1,
                         "first_scan": o.scan_id, "last_scan": o.scan_id})  # fmt: skip
    return list(reversed(runs))


def _device_page(
    request: Request, who: Viewer, device_id: int, status: int = 200, error: str | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:  # fmt: skip
    from scanner.service.api.devices import device_for
    from scanner.service.ingest import device_record
    from scanner.service.lifecycle import is_overdue
    from scanner.service.store.models import AuditEntry, Finding, Observation

    with service_of(request).db.session() as s:
        d, site = device_for(s, device_id, who.principal)
        observations = s.scalars(
            select(Observation).where(Observation.device_id == d.id).order_by(Observation.seen_at.desc()).limit(1000)
        ).all()
        findings = s.scalars(
            select(Finding).where(Finding.device_id == d.id).order_by(Finding.first_seen, Finding.id)
        ).all()
        record = device_record(s, d) or {}
        changes = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.target == f"device:{d.id}")
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .limit(50)
        ).all()
    cited = {(f.get("policy"), f.get("rule")): f for f in record.get("findings", []) if isinstance(f, dict)}
    rows = [(f, cited.get((f.pack, f.rule), {})) for f in findings]
    today = datetime.now(UTC).date()
    overdue = d.flagged and is_overdue(d, today)  # as the device.overdue alert decides
    return render_page(
        request, who, "device.html.j2", status, d=d, site=site, record=record, findings=rows,
        runs=_history_runs(list(observations)), changes=changes, error=error, values=values or {},
        overdue=overdue, may_change=who.principal.has("operator"), today=today.isoformat(),
        saved=request.query_params.get("saved") == "1",
    )  # fmt: skip


@router.get("/devices/{device_id}")
def device_page(device_id: int, request: Request, who: Page) -> HTMLResponse:
    return _device_page(request, who, device_id)


LIFECYCLE_ACTIONS = {
    "plan": ("replacement_planned", ("replacement_due", "replacement_owner", "note")),
    "exception": ("exception", ("exception_reason", "exception_approver", "exception_expires", "note")),
    "removed": ("removed", ("note",)),
    "reopen": ("flagged", ("note",)),
}


@router.post("/devices/{device_id}/lifecycle")
def device_lifecycle(device_id: int, request: Request, who: Page, form: Form) -> Response:
    """One lifecycle action of the device page, through the API's own PATCH logic (role check, audit)."""
    from scanner.service.api.devices import DevicePatch, LifecyclePatch, patch_device

    check_csrf(who, form)
    if not who.principal.has("operator"):
        raise HTTPException(403, f"changing a device's lifecycle needs the operator role; you are {who.role}")
    action = form.get("action", "")
    if action not in LIFECYCLE_ACTIONS:
        raise HTTPException(422, "action: one of plan, exception, removed, reopen")
    state, names = LIFECYCLE_ACTIONS[action]
    fields: dict[str, Any] = {"state": state}
    for name in names:
        value = form.get(name, "").strip()
        fields[name] = value or None
    missing = {
        "plan": [n for n in ("replacement_due", "replacement_owner") if not fields.get(n)],
        "exception": [n for n in ("exception_reason", "exception_approver", "exception_expires") if not fields.get(n)],
    }.get(action, [])
    if missing:
        error = "Please fill in: " + ", ".join(m.replace("_", " ") for m in missing) + "."
        return _device_page(request, who, device_id, 422, error, form)
    if action == "reopen":
        fields.update(replacement_due=None, replacement_owner=None, exception_reason=None, exception_approver=None,
                      exception_expires=None)  # fmt: skip
    try:
        patch = DevicePatch(lifecycle=LifecyclePatch(**fields))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _device_page(request, who, device_id, 422, f"Not saved: {problems}.", form)
    try:
        patch_device(device_id, patch, request, who.principal)
    except HTTPException as exc:
        if exc.status_code != 422:
            raise
        return _device_page(request, who, device_id, 422, f"Not saved: {exc.detail}", form)
    return see_other(f"/devices/{device_id}?saved=1#lifecycle")


# ---- scan ---------------------------------------------------------------------------------------------------


@router.get("/scans/{scan_id}")
def scan_page(scan_id: str, request: Request, who: Page) -> HTMLResponse:
    from scanner.service.api.scans import get_scan, scan_diff

    scan = get_scan(scan_id, request, who.principal)
    diff, diff_note = None, None
    if scan["status"] == "succeeded":
        try:
            diff = scan_diff(scan_id, request, who.principal)
        except HTTPException as exc:
            diff_note = str(exc.detail)
    with service_of(request).db.session() as s:
        site = s.scalars(select(Site).where(Site.slug == scan["site"])).one()
    return render_page(request, who, "scan.html.j2", scan=scan, site=site, diff=diff, diff_note=diff_note)


@router.get("/scans/{scan_id}/report.{kind}")
def scan_download(scan_id: str, kind: str, request: Request, who: Page) -> Response:
    """The API's downloads, with the session instead of a token."""
    from scanner.service.api import scans

    handlers = {"json": scans.report_json, "html": scans.report_html, "csv": scans.report_csv}
    if kind not in handlers:
        raise HTTPException(404, "downloads are report.json, report.html and report.csv")
    return handlers[kind](scan_id, request, who.principal)


# ---- error pages, headers, installation ---------------------------------------------------------------------


def _error_page(request: Request, status: int, detail: Any) -> Response:
    message = detail if isinstance(detail, str) else "The request could not be handled."
    name, _ = sessions.cookie_names(is_https(request))
    who = None
    if request.cookies.get(name):
        try:
            who = viewer(request)
        except LoginRequired:
            who = None
    return render_page(request, who, "error.html.j2", status, code=status, message=message)


class PageHeaders:
    """Adds the pages' security headers to every response that has no policy of its own (the API's HTML
    report download sets a stricter-for-its-purpose one, kept)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for key, value in PAGE_HEADERS.items():
                    if key.lower().encode() not in present:
                        headers.append((key.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add)


def install(app: Any) -> None:
    assert isinstance(app, FastAPI)
    json_errors = app.exception_handlers.get(StarletteHTTPException)

    async def errors(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if request.url.path.startswith("/api/") or json_errors is None:
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=getattr(exc, "headers", None))
        return _error_page(request, exc.status_code, exc.detail)

    async def to_login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return see_other("/login?next=" + quote(_safe_next(exc.next_path), safe="/"))

    app.add_exception_handler(StarletteHTTPException, errors)
    app.add_exception_handler(LoginRequired, to_login)
    app.include_router(router)
    from scanner.service.web import admin

    app.include_router(admin.router)
    app.add_middleware(PageHeaders)


__all__ = [
    "CSP",
    "Form",
    "Page",
    "check_csrf",
    "install",
    "read_form",
    "render_page",
    "see_other",
    "service_of",
    "viewer",
]
