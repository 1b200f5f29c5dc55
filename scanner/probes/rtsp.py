"""RTSP probe (RFC 2326): `OPTIONS` then `DESCRIBE rtsp://ip:port/` on one connection, each with its CSeq.

Evidence: `rtsp.server` (the Server header of either answer) and `rtsp.www_authenticate` (the challenge of a
401 to DESCRIBE, whole, one per header). Hikvision sends no Server header but a realm such as
`IP Camera(C1214)`; Dahua and others send both. Nothing is played and no credentials are sent.
"""

from __future__ import annotations

import asyncio
import time

from scanner import __version__
from scanner.model import Evidence, evidence
from scanner.netctx import ScanContext
from scanner.probes.http import ParsedResponse, close_writer, parse_response, read_message

SOURCE = "rtsp"
MAX_HEAD = 16 * 1024  # an RTSP answer head is a few hundred bytes
MAX_BODY = 16 * 1024  # an SDP is a few kB
DEADLINE_FACTOR = 3.0


def build_request(method: str, url: str, cseq: int) -> bytes:
    extra = "Accept: application/sdp\r\n" if method == "DESCRIBE" else ""
    return f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: camscan/{__version__}\r\n{extra}\r\n".encode()


def parse_rtsp_response(raw: bytes) -> ParsedResponse:
    """One RTSP answer: status, headers and (SDP) body; `status` None when it is not RTSP. Never raises."""
    return parse_response(raw, protocol="RTSP/", max_body=MAX_BODY)


def response_evidence(resp: ParsedResponse) -> list[Evidence]:
    if resp.status is None:
        return []
    out = [evidence("rtsp.server", v, SOURCE) for v in resp.header_all("Server")[:5] if v.strip()]
    if resp.status == 401:
        out += [
            evidence("rtsp.www_authenticate", v, SOURCE) for v in resp.header_all("WWW-Authenticate")[:10] if v.strip()
        ]
    return out


def rtsp_evidence(answers: list[bytes]) -> list[Evidence]:
    """Evidence from the raw answers of one connection (OPTIONS, DESCRIBE), duplicates removed."""
    seen: set[tuple[str, str]] = set()
    out = []
    for raw in answers:
        for e in response_evidence(parse_rtsp_response(raw)):
            if (e.key, e.value) not in seen:
                seen.add((e.key, e.value))
                out.append(e)
    return out


async def exchange(ctx: ScanContext, ip: str, port: int) -> list[bytes]:
    """Send OPTIONS then DESCRIBE on one connection; the raw answers that came (possibly none)."""
    if not ctx.allowed(ip):
        return []
    deadline = time.monotonic() + DEADLINE_FACTOR * ctx.timeout
    await ctx.rate.acquire()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout=ctx.timeout)
    except (OSError, TimeoutError):
        return []
    url = f"rtsp://{ip}:{port}/"
    answers: list[bytes] = []
    leftover = b""
    try:
        for cseq, method in enumerate(("OPTIONS", "DESCRIBE"), start=1):
            writer.write(build_request(method, url, cseq))
            await asyncio.wait_for(writer.drain(), timeout=ctx.timeout)
            raw, leftover = await read_message(
                reader,
                deadline=deadline,
                step=ctx.timeout,
                limit=MAX_HEAD + MAX_BODY,
                protocol="RTSP/",
                until_close=False,
                initial=leftover,
            )
            if not raw:
                break
            answers.append(raw)
            if parse_rtsp_response(raw).status is None:
                break  # not RTSP: do not go on talking to it
    except (OSError, TimeoutError, EOFError):
        pass
    finally:
        await close_writer(writer)
    return answers


async def probe(ctx: ScanContext, ip: str, port: int) -> list[Evidence]:
    """`rtsp.server` and `rtsp.www_authenticate` of the RTSP service on `ip:port`. Never raises."""
    try:
        return rtsp_evidence(await exchange(ctx, ip, port))
    except Exception as exc:  # a probe never raises
        ctx.errors.append(f"rtsp {ip}:{port}: {exc.__class__.__name__}")
        return []
