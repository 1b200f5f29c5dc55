"""`/api/v1/agents` and the routes by which scan agents return their results.

- `POST /api/v1/agents/heartbeat`: an agent says it is alive, with its version (426 when too old).
- `GET /api/v1/agents`: every agent with its last contact and whether it is online.
- `POST /api/v1/scans/{id}/report`: the agent's ScanReport JSON (the body, byte for byte) for a scan the
  service handed to it. Ingest is idempotent by the report's `report_id`: a delivery retried after a lost
  answer gets 200 with `duplicate: true`; a different report for a scan that already has one is 409.
- `POST /api/v1/scans/{id}/result`: a job that produced no report (refused by the agent's allow list, the
  scan failed): `{"error": ...}` marks the scan failed with it.

A token limited to a site can do all of this for that site only (403 for another site's scan), and needs
the operator role. Reports and results are refused from an agent too old for the report schema (426).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from scanner.service.agents import (
    OFFLINE_AFTER,
    SCHEMA_HEADER,
    VERSION_HEADER,
    agent_json,
    too_old,
)
from scanner.service.alerts import emit_event
from scanner.service.api.app import Caller, need, service_of
from scanner.service.api.scans import scan_for, scan_json
from scanner.service.auth import Principal, audit
from scanner.service.ingest import IngestError, ingest_report
from scanner.service.store.models import Agent, Site, utcnow

router = APIRouter(tags=["agents"])
#: The largest report body an agent may send (the API's other bodies are limited to 1 MiB).
MAX_REPORT_BODY = 64 * 1024 * 1024
UPGRADE = 426


class Heartbeat(BaseModel):
    name: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    site: str = Field(min_length=1, max_length=63)
    version: str = Field(min_length=1, max_length=32)
    schema_version: str | None = Field(default=None, max_length=16)
    hostname: str | None = Field(default=None, max_length=200)
    allow: list[str] = Field(default_factory=list, max_length=256)


class Result(BaseModel):
    error: str = Field(min_length=1, max_length=4000)
    refused: bool = False


def _offline_after(request: Request) -> float:
    scheduler = service_of(request).scheduler
    return scheduler.agent_offline_after if scheduler is not None else OFFLINE_AFTER


def _agent_headers(request: Request) -> tuple[str | None, str | None, str]:
    version = request.headers.get(VERSION_HEADER)
    schema = request.headers.get(SCHEMA_HEADER)
    name = request.headers.get("X-Camscan-Agent", "")[:120]
    return version, schema, name


@router.post("/agents/heartbeat")
def heartbeat(body: Heartbeat, request: Request, who: Caller) -> Any:
    need(who, "operator")
    now = utcnow()
    with service_of(request).db.session() as s:
        site = s.scalars(select(Site).where(Site.slug == body.site)).first()
        if site is None:
            raise HTTPException(404, f"no site {body.site!r}")
        if not who.may_see(site.id):
            raise HTTPException(403, "this token is limited to another site")
        agent = s.scalars(select(Agent).where(Agent.name == body.name)).first()
        if agent is not None and agent.site_id != site.id:
            raise HTTPException(409, f"an agent named {body.name!r} serves another site; give this one another --name")
        refused = too_old(body.version, body.schema_version)
        if agent is None:
            agent = Agent(name=body.name, site_id=site.id, version=body.version, first_seen_at=now, last_seen_at=now)
            s.add(agent)
            audit(s, who.name, "agent.register", f"site:{site.slug}", {"agent": body.name, "version": body.version})
        agent.version, agent.schema_version = body.version, body.schema_version
        agent.hostname, agent.allow, agent.refused = body.hostname, body.allow, refused
        if refused is None:
            if agent.offline_since is not None:
                audit(s, who.name, "agent.online", f"site:{site.slug}", {"agent": agent.name})
            agent.last_seen_at, agent.offline_since = now, None
        s.flush()
        if refused is not None:  # answered, not raised: the refusal stays on record (GET /agents shows it)
            return JSONResponse({"detail": refused}, UPGRADE)
        return {**agent_json(agent, site.slug, now, _offline_after(request)), "assigned": site.agent == agent.name}


@router.get("/agents")
def list_agents(request: Request, who: Caller) -> dict[str, Any]:
    now = utcnow()
    with service_of(request).db.session() as s:
        query = select(Agent, Site.slug).join(Site, Site.id == Agent.site_id).order_by(Site.slug, Agent.name)
        if who.site_id is not None:
            query = query.where(Agent.site_id == who.site_id)
        items = [agent_json(agent, slug, now, _offline_after(request)) for agent, slug in s.execute(query)]
    return {"items": items, "next": None}


def _submit(request: Request, who: Principal, scan_id: str, raw: bytes, version: str | None, schema: str | None,
            agent: str) -> tuple[int, dict[str, Any]]:  # fmt: skip
    with service_of(request).db.session() as s:
        scan, site = scan_for(s, scan_id, who)
        if scan.report_id is not None:
            from scanner.service.ingest import parse_report

            try:
                report, _ = parse_report(raw)
            except IngestError as exc:
                raise HTTPException(422, f"the report is refused: {exc}") from None
            if report.scan.report_id == scan.report_id:
                return 200, {"duplicate": True, **scan_json(scan, site.slug)}
            raise HTTPException(409, f"scan {scan_id} has a report already ({scan.report_id}); this one is not stored")
        try:
            with s.begin_nested():
                result = ingest_report(s, site, raw, scan=scan)
        except IngestError as exc:
            raise HTTPException(422, f"the report is refused: {exc}") from None
        if result.duplicate:  # stored already under another scan (sent twice for two jobs)
            return 200, {"duplicate": True, **scan_json(scan, site.slug)}
        scan.error = None
        scan.runner = (f"{scan.runner or ''} agent {agent}")[-120:] if agent else scan.runner
        detail = {"site": site.slug, "agent": agent or None, "agent_version": version, "report_id": scan.report_id}
        audit(s, who.name, "scan.report", f"scan:{scan.id}", detail)
        s.flush()
        return 201, {"duplicate": False, "devices": result.devices, **scan_json(scan, site.slug)}


@router.post("/scans/{scan_id}/report", status_code=201)
async def submit_report(scan_id: str, request: Request, who: Caller) -> Any:
    """Store the ScanReport JSON of the body (exactly those bytes) as the result of scan `scan_id`."""
    need(who, "operator")
    version, schema, agent = _agent_headers(request)
    refused = too_old(version, schema)
    if refused is not None:
        raise HTTPException(UPGRADE, refused)
    raw = await request.body()
    code, body = await run_in_threadpool(_submit, request, who, scan_id, raw, version, schema, agent)
    return JSONResponse(body, code)


@router.post("/scans/{scan_id}/result")
def submit_result(scan_id: str, body: Result, request: Request, who: Caller) -> dict[str, Any]:
    """A job that ended without a report: the scan is failed with the agent's `error`."""
    need(who, "operator")
    version, schema, agent = _agent_headers(request)
    refused = too_old(version, schema)
    if refused is not None:
        raise HTTPException(UPGRADE, refused)
    with service_of(request).db.session() as s:
        scan, site = scan_for(s, scan_id, who)
        if scan.status == "succeeded":
            raise HTTPException(409, f"scan {scan_id} succeeded already; its report stays")
        scan.status, scan.finished_at = "failed", utcnow()
        scan.error = body.error
        emit_event(s, site, "scan.failed", scan_id=scan.id, detail={"error": body.error[:500], "agent": agent or None})
        audit(s, who.name, "scan.refused" if body.refused else "scan.failed", f"scan:{scan.id}",
              {"site": site.slug, "agent": agent or None, "error": body.error[:500]})  # fmt: skip
        return scan_json(scan, site.slug)
