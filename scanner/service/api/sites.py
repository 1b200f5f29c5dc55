"""`/api/v1/sites` and `/api/v1/sites/{slug}/scans` (queue a scan)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scanner.service import sites as rules
from scanner.service.api.app import Caller, need, service_of
from scanner.service.auth import Principal, audit
from scanner.service.store.models import Scan, Site, utcnow

router = APIRouter(tags=["sites"])

Name = Field(min_length=1, max_length=200)
Targets = Field(min_length=1, max_length=rules.MAX_TARGETS)


class SiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(min_length=1, max_length=63)
    name: str = Name
    targets: list[str] = Targets
    interface: str | None = Field(default=None, max_length=15)
    schedule: str | None = Field(default=None, max_length=120)
    tz: str = Field(default="UTC", max_length=64)
    methods: list[str] | None = Field(default=None, max_length=32)
    packs: list[str] | None = Field(default=None, max_length=32)
    enabled: bool = True
    allow_public: bool = False
    removed_after_scans: int = Field(default=3, ge=1, le=1000)

    agent: str | None = Field(default=None, max_length=120)  # the agent that scans the site (None: this service)


class SitePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    targets: list[str] | None = Field(default=None, min_length=1, max_length=rules.MAX_TARGETS)
    interface: str | None = Field(default=None, max_length=15)
    schedule: str | None = Field(default=None, max_length=120)
    tz: str | None = Field(default=None, max_length=64)
    methods: list[str] | None = Field(default=None, max_length=32)
    packs: list[str] | None = Field(default=None, max_length=32)
    enabled: bool | None = None
    allow_public: bool | None = None
    removed_after_scans: int | None = Field(default=None, ge=1, le=1000)

    agent: str | None = Field(default=None, max_length=120)  # the agent that scans the site (None: this service)


def _invalid(exc: rules.SiteError) -> HTTPException:
    return HTTPException(422, str(exc))


def site_for(s: Session, slug: str, who: Principal) -> Site:
    """The site, or 404; 403 when the caller's token is limited to another site."""
    site = s.scalars(select(Site).where(Site.slug == slug)).first()
    if site is None:
        raise HTTPException(404, f"no site {slug!r}")
    if not who.may_see(site.id):
        raise HTTPException(403, "this token is limited to another site")
    return site


@router.post("/sites", status_code=201)
def create_site(body: SiteIn, request: Request, who: Caller) -> dict[str, Any]:
    need(who, "operator")
    if who.site_id is not None:
        raise HTTPException(403, "a token limited to one site cannot create sites")
    try:
        rules.check_slug(body.slug)
        targets = rules.check_targets(body.targets, body.allow_public)
        rules.check_interface(body.interface)
        rules.check_schedule_fields(body.schedule, body.tz)
        methods = rules.check_methods(body.methods)
        packs = rules.check_packs(body.packs)
    except rules.SiteError as exc:
        raise _invalid(exc) from None
    now = utcnow()
    site = Site(
        slug=body.slug,
        name=body.name,
        targets=targets,
        interface=body.interface,
        schedule=body.schedule,
        timezone=body.tz,
        methods=methods,
        packs=packs,
        enabled=body.enabled,
        allow_public=body.allow_public,
        removed_after_scans=body.removed_after_scans,

        agent=body.agent or None,
        created_at=now,
        updated_at=now,
    )
    rules.first_run(site, now)
    try:
        with service_of(request).db.session() as s:
            s.add(site)
            s.flush()
            audit(s, who.name, "site.create", f"site:{site.slug}", body.model_dump(mode="json"))
    except IntegrityError:
        raise HTTPException(409, f"a site {body.slug!r} exists already") from None
    return rules.site_json(site)


@router.get("/sites")
def list_sites(request: Request, who: Caller) -> dict[str, Any]:
    with service_of(request).db.session() as s:
        query = select(Site).order_by(Site.slug)
        if who.site_id is not None:
            query = query.where(Site.id == who.site_id)
        return {"items": [rules.site_json(site) for site in s.scalars(query)], "next": None}


@router.get("/sites/{slug}")
def get_site(slug: str, request: Request, who: Caller) -> dict[str, Any]:
    with service_of(request).db.session() as s:
        return rules.site_json(site_for(s, slug, who))


@router.patch("/sites/{slug}")
def patch_site(slug: str, body: SitePatch, request: Request, who: Caller) -> dict[str, Any]:
    need(who, "operator")
    given = body.model_dump(exclude_unset=True)
    with service_of(request).db.session() as s:
        site = site_for(s, slug, who)
        allow_public = given.get("allow_public", site.allow_public)
        try:
            for key in ("name", "enabled", "tz", "targets", "allow_public", "removed_after_scans"):
                if given.get(key, ...) is None:
                    raise rules.SiteError(f"{key}: may not be null")
            targets = rules.check_targets(given.get("targets", site.targets), allow_public)
            interface = rules.check_interface(given.get("interface", site.interface))
            schedule, tz = given.get("schedule", site.schedule), given.get("tz", site.timezone)
            rules.check_schedule_fields(schedule, tz)
            methods = rules.check_methods(given["methods"]) if "methods" in given else site.methods
            packs = rules.check_packs(given["packs"]) if "packs" in given else site.packs
        except rules.SiteError as exc:
            raise _invalid(exc) from None
        rerun = schedule != site.schedule or tz != site.timezone
        site.name = given.get("name", site.name)
        site.targets, site.interface, site.schedule, site.timezone = targets, interface, schedule, tz
        site.methods, site.packs, site.allow_public = methods, packs, allow_public
        site.enabled = given.get("enabled", site.enabled)
        site.removed_after_scans = given.get("removed_after_scans", site.removed_after_scans)

        site.agent = (given["agent"] or None) if "agent" in given else site.agent
        site.updated_at = utcnow()
        if rerun:
            rules.first_run(site, site.updated_at)
        audit(s, who.name, "site.update", f"site:{site.slug}", body.model_dump(mode="json", exclude_unset=True))
        return rules.site_json(site)


@router.delete("/sites/{slug}", status_code=204)
def delete_site(slug: str, request: Request, who: Caller) -> Response:
    need(who, "admin")
    with service_of(request).db.session() as s:
        site = site_for(s, slug, who)
        busy = s.scalar(select(Scan.id).where(Scan.site_id == site.id, Scan.status == "running"))
        if busy is not None:
            raise HTTPException(409, f"scan {busy} of this site is running; delete the site when it ends")
        audit(s, who.name, "site.delete", f"site:{site.slug}", rules.site_json(site))
        s.delete(site)
    return Response(status_code=204)


@router.post("/sites/{slug}/scans", status_code=202)
def queue_scan(slug: str, request: Request, who: Caller) -> dict[str, Any]:
    """Queue a scan of the site now; 409 while one is queued or running for it."""
    from scanner.service.api.scans import scan_json

    need(who, "operator")
    try:
        with service_of(request).db.session() as s:
            site = site_for(s, slug, who)
            busy = s.scalar(select(Scan.id).where(Scan.site_id == site.id, Scan.status.in_(("queued", "running"))))
            if busy is not None:
                raise HTTPException(409, f"scan {busy} of site {slug!r} is already queued or running")
            scan = Scan(
                id=str(uuid.uuid4()),
                site_id=site.id,
                trigger="manual",
                requested_by=who.name,
                status="queued",
                queued_at=utcnow(),
            )
            s.add(scan)
            s.flush()
            audit(s, who.name, "scan.queue", f"scan:{scan.id}", {"site": slug})
            return scan_json(scan, site.slug)
    except IntegrityError:  # the scheduler queued one at the same moment (one active scan per site)
        raise HTTPException(409, f"a scan of site {slug!r} is already queued or running") from None
