"""The FastAPI application: middleware (size limit, one log line per request, headers), error bodies,
authentication, and the routers of docs/service.md's HTTP contract.

Every error is JSON `{"detail": ...}`: a string saying what is wrong, or for a 422 the list of problems,
each with its location and message (the offending input itself is not echoed back: it may be large or
hostile). Device strings in responses are JSON-encoded data, never markup.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from scanner import __version__
from scanner.service.auth import Principal, authenticate
from scanner.service.scheduler import Scheduler
from scanner.service.store.db import Database

log = logging.getLogger("camscan.service.http")

MAX_BODY = 1024 * 1024  # bytes: a site or a lifecycle change is a few hundred

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Service:
    """What the routes need: the database and, in the process that runs it, the scheduler."""

    db: Database
    scheduler: Scheduler | None = None


class LimitAndLog:
    """Refuse bodies over `max_body` bytes (413, whatever Content-Length claims) and log one line per
    request: method, path, status, milliseconds, who. Control characters in the path are escaped."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body
        self.large: list[tuple[re.Pattern[str], int]] = []  # (path, its own limit): routes that take reports

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.monotonic()
        scope.setdefault("state", {})  # shared with the request, so the log line can name the caller
        status = {"code": 500, "started": False}
        limit = next((n for rx, n in self.large if rx.fullmatch(scope.get("path", ""))), self.max_body)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _send_json(send, 413, {"detail": f"the request body is over {limit} bytes"})
            self._log(scope, 413, t0)
            return
        receive_app = receive
        if declared is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            # no Content-Length (chunked): read the body here, up to the limit, and hand it on whole
            body = bytearray()
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                body += message.get("body", b"")
                if len(body) > limit:
                    await _send_json(send, 413, {"detail": f"the request body is over {limit} bytes"})
                    self._log(scope, 413, t0)
                    return
                if not message.get("more_body"):
                    break
            replay = [{"type": "http.request", "body": bytes(body), "more_body": False}]

            async def replay_receive() -> Message:
                return replay.pop() if replay else await receive()

            receive_app = replay_receive

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive_app, tracking_send)
        self._log(scope, int(status["code"]), t0)

    @staticmethod
    def _log(scope: Scope, code: int, t0: float) -> None:
        path = scope.get("path", "")
        query = scope.get("query_string", b"").decode("latin-1")
        shown = (path + ("?" + query if query else ""))[:300].encode("unicode_escape").decode("ascii")
        actor = (scope.get("state") or {}).get("actor", "-")
        client = scope.get("client") or ("-", 0)
        log.info(
            "%s %s %s %d %.1fms %s", client[0], scope.get("method"), shown, code, (time.monotonic() - t0) * 1000, actor
        )


async def _send_json(send: Send, code: int, body: dict[str, Any]) -> None:
    import json

    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


def service_of(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def principal(request: Request) -> Principal:
    """The caller, from `Authorization: Bearer TOKEN`; 401 without a valid one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "no API token: send Authorization: Bearer TOKEN", {"WWW-Authenticate": "Bearer"})
    with service_of(request).db.session() as s:
        who = authenticate(s, token.strip())
    if who is None:
        raise HTTPException(401, "the API token is unknown or revoked", {"WWW-Authenticate": "Bearer"})
    request.state.actor = who.name
    return who


Caller = Annotated[Principal, Depends(principal)]


def need(who: Principal, role: str) -> None:
    if not who.has(role):
        raise HTTPException(403, f"this needs the {role} role; the token has {who.role}")


def create_app(service: Service, max_body: int = MAX_BODY) -> FastAPI:
    from scanner.service.api import devices, scans, sites

    app = FastAPI(
        title="camscan service",
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url=None,  # the interactive pages load scripts from elsewhere; the spec is enough
        redoc_url=None,
    )
    app.state.service = service

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": problems}, 422)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__, exc_info=exc)
        return JSONResponse({"detail": "internal error (the service log has the details)"}, 500)

    @app.get("/api/v1/health", tags=["health"])
    def health(request: Request) -> JSONResponse:
        svc = service_of(request)
        database = "ok"
        try:
            with svc.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            database = f"error: {type(exc).__name__}"
        scheduler = svc.scheduler.health() if svc.scheduler is not None else "off"
        good = database == "ok" and scheduler in ("ok", "standby", "off")
        body = {
            "status": "ok" if good else "error",
            "database": database,
            "scheduler": scheduler,
            "version": __version__,
        }
        if svc.scheduler is not None:
            body["scheduler_instance"] = svc.scheduler.instance
        return JSONResponse(body, 200 if good else 503)

    app.include_router(sites.router, prefix="/api/v1")
    app.include_router(scans.router, prefix="/api/v1")
    app.include_router(devices.router, prefix="/api/v1")
    # alerts, the asset register, audit packs (part 2)
    from scanner.service.api import alerts, export, register

    app.include_router(alerts.router, prefix="/api/v1")
    app.include_router(register.router, prefix="/api/v1")
    app.include_router(export.router, prefix="/api/v1")
    # scan agents (the multi-site issue): their routes, and the larger body limit of report submissions
    from scanner.service.api import agents

    app.include_router(agents.router, prefix="/api/v1")
    # the dashboard's pages (scanner/service/web): their routes, HTML error pages and security headers
    from scanner.service.web import install as install_pages

    install_pages(app)
    wrapped: Any = LimitAndLog(app, max_body)
    wrapped.large.append((re.compile(r"/api/v1/scans/[^/]+/report"), max(max_body, agents.MAX_REPORT_BODY)))
    # the site page's register form: a CSV of the register's own limit, urlencoded or as a multipart file
    from scanner.service.web.site_panels import MAX_REGISTER_FORM

    wrapped.large.append((re.compile(r"/sites/[^/]+/register"), max(max_body, MAX_REGISTER_FORM)))
    app.state.asgi = wrapped
    return app


def settle_heap() -> None:
    """What the service process does once it has built its app, before it serves: collect, then move every
    object it holds (modules, the app and its routes, models, templates) out of the garbage collector's reach
    with gc.freeze(). Those objects live as long as the process; without this, every full collection walks
    them all (some 120,000), which showed as a 70 ms stall in about one request in twenty (a scan diff:
    p95 92 ms, 24 ms frozen). Objects freed by reference counting are freed as before."""
    import gc

    gc.collect()
    gc.freeze()


def asgi(service: Service, max_body: int = MAX_BODY) -> ASGIApp:
    """The app wrapped in the size limit and request log: what uvicorn serves."""
    app = create_app(service, max_body)
    wrapped: ASGIApp = app.state.asgi
    return wrapped
