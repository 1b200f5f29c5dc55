"""Admin pages: sites, users, API tokens (for admins), and the audit log (read-only, for anyone not limited
to one site). Changes go through the same functions as the CLI and the API, and each one is audited."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from scanner.service.auth import AuthError, add_user, audit, create_token
from scanner.service.store.models import ROLES, ApiToken, AuditEntry, Site, User, UserSite, utcnow
from scanner.service.web.pages import Form, Page, check_csrf, render_page, see_other, service_of
from scanner.service.web.sessions import Viewer, end_sessions_of

router = APIRouter(prefix="/admin", include_in_schema=False)
AUDIT_PAGE = 100


def _admin(who: Viewer) -> None:
    if who.role != "admin" or who.principal.site_id is not None:
        raise HTTPException(403, "the admin pages need the admin role")


# ---- sites ----------------------------------------------------------------------------------------------


def _sites_page(request: Request, who: Viewer, status: int = 200, error: str | None = None,
                values: dict[str, str] | None = None) -> HTMLResponse:  # fmt: skip
    with service_of(request).db.session() as s:
        sites = s.scalars(select(Site).order_by(Site.name, Site.slug)).all()
    return render_page(request, who, "admin_sites.html.j2", status, sites=sites, error=error, values=values or {})


@router.get("/sites")
def sites_page(request: Request, who: Page) -> HTMLResponse:
    _admin(who)
    return _sites_page(request, who)


@router.post("/sites")
def sites_add(request: Request, who: Page, form: Form) -> Response:
    """A new site, through the API's create_site (the same checks of slug, targets, schedule)."""
    from pydantic import ValidationError

    from scanner.service.api.sites import SiteIn, create_site

    _admin(who)
    check_csrf(who, form)
    targets = [t.strip() for t in form.get("targets", "").replace("\n", ",").split(",") if t.strip()]
    try:
        body = SiteIn(
            slug=form.get("slug", "").strip(),
            name=form.get("name", "").strip(),
            targets=targets,
            interface=form.get("interface", "").strip() or None,
            schedule=form.get("schedule", "").strip() or None,
            tz=form.get("tz", "").strip() or "UTC",
        )
        create_site(body, request, who.principal)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return _sites_page(request, who, 422, f"Not added: {problems}.", form)
    except HTTPException as exc:
        if exc.status_code not in (409, 422):
            raise
        return _sites_page(request, who, exc.status_code, f"Not added: {exc.detail}", form)
    return see_other("/admin/sites")


@router.post("/sites/{slug}/enable")
def sites_enable(slug: str, request: Request, who: Page, form: Form) -> Response:
    """Pause (`enable=0`) or resume (`enable=1`) a site's schedule, through the API's PATCH."""
    from scanner.service.api.sites import SitePatch, patch_site

    _admin(who)
    check_csrf(who, form)
    patch_site(slug, SitePatch(enabled=form.get("enable") == "1"), request, who.principal)
    return see_other("/admin/sites")


@router.post("/sites/{slug}/delete")
def sites_delete(slug: str, request: Request, who: Page, form: Form) -> Response:
    """Delete a site with its scans and devices, through the API's DELETE (409 while it scans); the slug
    must be typed again in `confirm`, as a person deleting a year of history would expect."""
    from scanner.service.api.sites import delete_site

    _admin(who)
    check_csrf(who, form)
    if form.get("confirm", "").strip() != slug:
        return _sites_page(request, who, 422, f"Not deleted: type the slug {slug!r} to confirm.")
    try:
        delete_site(slug, request, who.principal)
    except HTTPException as exc:
        if exc.status_code != 409:
            raise
        return _sites_page(request, who, 409, f"Not deleted: {exc.detail}")
    return see_other("/admin/sites")


# ---- users ----------------------------------------------------------------------------------------------


def _users_page(request: Request, who: Viewer, status: int = 200, error: str | None = None,
                values: dict[str, str] | None = None) -> HTMLResponse:  # fmt: skip
    with service_of(request).db.session() as s:
        users = s.execute(
            select(User, Site.slug)
            .outerjoin(UserSite, UserSite.user_id == User.id)
            .outerjoin(Site, Site.id == UserSite.site_id)
            .order_by(User.email)
        ).all()
        sites = s.scalars(select(Site).order_by(Site.name)).all()
    return render_page(
        request, who, "admin_users.html.j2", status, users=users, sites=sites, roles=ROLES, error=error,
        values=values or {},
    )  # fmt: skip


@router.get("/users")
def users_page(request: Request, who: Page) -> HTMLResponse:
    _admin(who)
    return _users_page(request, who)


def _site_id(s: Any, slug: str) -> int | None:
    if not slug:
        return None
    site = s.scalars(select(Site).where(Site.slug == slug)).first()
    if site is None:
        raise AuthError(f"no site {slug!r}")
    return int(site.id)


@router.post("/users")
def users_add(request: Request, who: Page, form: Form) -> Response:
    _admin(who)
    check_csrf(who, form)
    try:
        with service_of(request).db.session() as s:
            site_id = _site_id(s, form.get("site", ""))
            user = add_user(
                s, form.get("email", ""), form.get("role", ""), form.get("password", ""), who.principal.name
            )
            if site_id is not None:
                s.add(UserSite(user_id=user.id, site_id=site_id))
                audit(s, who.principal.name, "user.site", f"user:{user.email}", {"site": form.get("site")})
    except AuthError as exc:
        values = {k: v for k, v in form.items() if k != "password"}
        return _users_page(request, who, 422, f"Not added: {exc}", values)
    return see_other("/admin/users")


@router.post("/users/{user_id}/disable")
def users_disable(user_id: int, request: Request, who: Page, form: Form) -> Response:
    _admin(who)
    check_csrf(who, form)
    enable = form.get("enable") == "1"
    with service_of(request).db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise HTTPException(404, f"no user {user_id}")
        if f"user:{user.email}" == who.principal.name and not enable:
            raise HTTPException(409, "you cannot disable yourself")
        user.disabled = not enable
        if not enable:
            end_sessions_of(s, user.id)
        audit(s, who.principal.name, "user.enable" if enable else "user.disable", f"user:{user.email}")
    return see_other("/admin/users")


@router.post("/users/{user_id}/access")
def users_access(user_id: int, request: Request, who: Page, form: Form) -> Response:
    """Change a person's role and site limit. Their sessions end, so the change holds from their next page;
    an admin cannot change their own (the service must keep an admin who can undo a mistake)."""
    _admin(who)
    check_csrf(who, form)
    role, slug = form.get("role", ""), form.get("site", "")
    try:
        with service_of(request).db.session() as s:
            user = s.get(User, user_id)
            if user is None:
                raise HTTPException(404, f"no user {user_id}")
            if f"user:{user.email}" == who.principal.name:
                raise HTTPException(409, "you cannot change your own role or site")
            if role not in ROLES:
                raise AuthError(f"role must be one of {', '.join(ROLES)}")
            site_id = _site_id(s, slug)
            limit = s.scalars(select(UserSite).where(UserSite.user_id == user.id)).first()
            before = {"role": user.role, "site_id": limit.site_id if limit else None}
            if before == {"role": role, "site_id": site_id}:
                return see_other("/admin/users")
            user.role = role
            if site_id is None and limit is not None:
                s.delete(limit)
            elif site_id is not None and limit is not None:
                limit.site_id = site_id
            elif site_id is not None:
                s.add(UserSite(user_id=user.id, site_id=site_id))
            end_sessions_of(s, user.id)
            audit(s, who.principal.name, "user.access", f"user:{user.email}", {"role": role, "site": slug or None})
    except AuthError as exc:
        return _users_page(request, who, 422, f"Not changed: {exc}")
    return see_other("/admin/users")


# ---- tokens ---------------------------------------------------------------------------------------------


def _tokens_page(request: Request, who: Viewer, status: int = 200, error: str | None = None,
                 new_token: str | None = None, values: dict[str, str] | None = None) -> HTMLResponse:  # fmt: skip
    with service_of(request).db.session() as s:
        tokens = s.execute(
            select(ApiToken, Site.slug)
            .outerjoin(Site, Site.id == ApiToken.site_id)
            .order_by(ApiToken.created_at.desc())
        ).all()
        sites = s.scalars(select(Site).order_by(Site.name)).all()
    return render_page(
        request, who, "admin_tokens.html.j2", status, tokens=tokens, sites=sites, roles=ROLES, error=error,
        new_token=new_token, values=values or {},
    )  # fmt: skip


@router.get("/tokens")
def tokens_page(request: Request, who: Page) -> HTMLResponse:
    _admin(who)
    return _tokens_page(request, who)


@router.post("/tokens")
def tokens_create(request: Request, who: Page, form: Form) -> Response:
    """The new token is shown once, on this response (never stored, never in a URL)."""
    _admin(who)
    check_csrf(who, form)
    try:
        with service_of(request).db.session() as s:
            site_id = _site_id(s, form.get("site", ""))
            site = s.get(Site, site_id) if site_id else None
            _, token = create_token(s, form.get("name", ""), form.get("role", ""), site, who.principal.name)
    except AuthError as exc:
        return _tokens_page(request, who, 422, f"Not created: {exc}", values=form)
    return _tokens_page(request, who, 201, new_token=token)


@router.post("/tokens/{token_id}/revoke")
def tokens_revoke(token_id: int, request: Request, who: Page, form: Form) -> Response:
    _admin(who)
    check_csrf(who, form)
    with service_of(request).db.session() as s:
        row = s.get(ApiToken, token_id)
        if row is None:
            raise HTTPException(404, f"no token {token_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            audit(s, who.principal.name, "token.revoke", f"token:{row.id}", {"name": row.name})
    return see_other("/admin/tokens")


# ---- the audit log --------------------------------------------------------------------------------------


@router.get("/audit")
def audit_page(request: Request, who: Page, before: int | None = None) -> HTMLResponse:
    """Newest first, AUDIT_PAGE entries a page; `before` is the id to continue below."""
    if who.principal.site_id is not None:
        raise HTTPException(403, "the audit log covers every site; your account is limited to one")
    with service_of(request).db.session() as s:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(AUDIT_PAGE + 1)
        if before is not None:
            query = query.where(AuditEntry.id < before)
        entries = s.scalars(query).all()
    more = entries[AUDIT_PAGE - 1].id if len(entries) > AUDIT_PAGE else None
    return render_page(request, who, "admin_audit.html.j2", entries=entries[:AUDIT_PAGE], more=more)
