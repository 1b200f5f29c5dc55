"""HTTP and HTTPS as the persona's web server answers: its headers in its order, its pages, its realm.

Written on asyncio streams rather than http.server so that the byte order of the answer is the
device's own (nmap's service matching is sensitive to it) and so that a hostile persona can trickle.
Other responders (ONVIF, UPnP description) register handlers for their paths in Context.http_handlers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import ssl
from email.utils import formatdate

from scanner.lab.persona import HttpAuth, HttpRoute, HttpService
from scanner.lab.responders.base import MAX_REQUEST, Context, Request, Response

REASONS = {
    200: "OK",
    301: "Moved Permanently",
    302: "Found",
    401: "Unauthorized",
    404: "Not Found",
    400: "Bad Request",
    405: "Method Not Allowed",
    500: "Internal Server Error",
}
MAX_HEADER = 16384


async def read_request(reader: asyncio.StreamReader, peer: tuple[str, int]) -> Request | None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    if len(head) > MAX_HEADER:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    headers = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    length = next((v for k, v in headers if k.lower() == "content-length"), "0")
    body = b""
    if length.isdigit() and 0 < int(length) <= MAX_REQUEST:
        try:
            body = await asyncio.wait_for(reader.readexactly(int(length)), timeout=10)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return None
    path, _, query = target.partition("?")
    return Request(method, path, query, version, headers, body, peer)


def _challenge(auth: HttpAuth) -> str:
    if auth.header:
        return auth.header.replace("{nonce}", os.urandom(16).hex())
    if auth.scheme == "basic":
        return f'Basic realm="{auth.realm}"'
    return f'Digest realm="{auth.realm}", qop="auth", nonce="{os.urandom(16).hex()}", algorithm=MD5'


def authorised(auth: HttpAuth, credentials: tuple[str, str], req: Request) -> bool:
    value = req.header("Authorization") or ""
    user, password = credentials
    if auth.scheme == "basic" and value.startswith("Basic "):
        try:
            return base64.b64decode(value[6:]).decode() == f"{user}:{password}"
        except (ValueError, UnicodeDecodeError):
            return False
    if auth.scheme == "digest" and value.startswith("Digest "):
        fields = {}
        for item in value[7:].split(","):
            k, _, v = item.strip().partition("=")
            fields[k] = v.strip('"')
        if fields.get("username") != user:
            return False
        ha1 = hashlib.md5(f"{user}:{fields.get('realm', '')}:{password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{req.method}:{fields.get('uri', '')}".encode()).hexdigest()
        if "qop" in fields:
            expected = hashlib.md5(
                f"{ha1}:{fields.get('nonce')}:{fields.get('nc')}:{fields.get('cnonce')}:{fields['qop']}:{ha2}".encode()
            ).hexdigest()
        else:
            expected = hashlib.md5(f"{ha1}:{fields.get('nonce')}:{ha2}".encode()).hexdigest()
        return fields.get("response") == expected
    return False


def route_response(svc: HttpService, route: HttpRoute) -> Response:
    body = base64.b64decode(route.body_base64) if route.body_base64 else route.body.encode("utf-8")
    return Response(route.status, list(route.headers), body, route.reason, route.content_type)


def serialise(svc: HttpService, resp: Response, version: str = "HTTP/1.1", head_only: bool = False) -> bytes:
    lines = [f"{version} {resp.status} {resp.reason or REASONS.get(resp.status, 'OK')}"]
    for name in svc.header_order:
        if name == "Date":
            lines.append(f"Date: {formatdate(usegmt=True)}")
        elif name == "Server" and svc.server is not None:
            lines.append(f"Server: {svc.server}")
    lines.extend(f"{k}: {v}" for k, v in resp.headers)
    if resp.content_type and resp.body:
        lines.append(f"Content-Type: {resp.content_type}")
    lines.append(f"Content-Length: {len(resp.body)}")
    lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    return head if head_only else head + resp.body


async def answer(ctx: Context, svc: HttpService, req: Request) -> Response:
    handler = ctx.http_handlers.get(req.path)
    if handler is not None:
        return await handler(req)
    route = svc.routes.get(req.path)
    if route is None:
        return route_response(svc, svc.not_found)
    if (
        (route.auth or route.status == 401)
        and svc.auth is not None
        and (route.status == 401 or not authorised(svc.auth, ctx.persona.credentials, req))
    ):
        unauthorised = route if route.status == 401 else HttpRoute(status=401, body="Unauthorized")
        resp = route_response(svc, unauthorised)
        resp.headers.insert(0, ("WWW-Authenticate", _challenge(svc.auth)))
        return resp
    return route_response(svc, route)


def tls_context(ctx: Context, svc: HttpService) -> ssl.SSLContext:
    """The persona's TLS context. The key and certificate are written to its runtime directory, or, when it
    has none (a responder started by a test), to a temporary one removed once they are loaded."""
    import tempfile
    from pathlib import Path

    from scanner.lab.certs import make_certificate

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if ctx.runtime_dir is not None:
        tls.load_cert_chain(*make_certificate(svc.certificate, ctx.persona.id, ctx.runtime_dir))
        return tls
    with tempfile.TemporaryDirectory(prefix=f"camscan-lab-{ctx.persona.id}-") as scratch:
        tls.load_cert_chain(*make_certificate(svc.certificate, ctx.persona.id, Path(scratch)))
    return tls


async def serve(ctx: Context, svc: HttpService) -> asyncio.Server:
    trickle = ctx.persona.hostile.trickle_seconds
    wire_svc = svc
    if ctx.persona.hostile.oversize_http_header:  # hostile: a Server header of 200 kB
        wire_svc = svc.model_copy(update={"server": (svc.server or "") + "A" * 200_000})

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        try:
            req = await read_request(reader, peer)
            if req is None:
                return
            resp = await answer(ctx, svc, req)
            version = "HTTP/1.0" if req.version == "HTTP/1.0" else "HTTP/1.1"  # as embedded servers do
            data = serialise(wire_svc, resp, version, head_only=req.method == "HEAD")
            if trickle > 0:  # hostile: a few bytes at a time, so a scanner's timeouts are exercised
                step = max(1, len(data) // 50)
                for i in range(0, len(data), step):
                    writer.write(data[i : i + step])
                    await writer.drain()
                    await asyncio.sleep(trickle / 50)
            else:
                writer.write(data)
                await writer.drain()
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    tls = tls_context(ctx, svc) if svc.tls else None
    return await asyncio.start_server(handle, ctx.ip, ctx.port(svc.port), ssl=tls, reuse_address=True)
