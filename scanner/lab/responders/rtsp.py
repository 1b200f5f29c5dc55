"""RTSP (RFC 2326) as a camera's stream server answers OPTIONS and DESCRIBE, with its Server and realm."""

from __future__ import annotations

import asyncio
from email.utils import formatdate

from scanner.lab.persona import RtspService
from scanner.lab.responders.base import Context, Request
from scanner.lab.responders.http import _challenge, authorised

SDP = (
    "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=Media Presentation\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=1\r\n"
)


def _head(svc: RtspService, status: str, cseq: str) -> list[str]:
    lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}"]
    if svc.server:
        lines.append(f"Server: {svc.server}")
    lines.append(f"Date: {formatdate(usegmt=True)}")
    return lines


def rtsp_answer(ctx: Context, svc: RtspService, req: Request) -> bytes:
    cseq = req.header("CSeq") or "0"
    if req.method == "OPTIONS":
        lines = [*_head(svc, "200 OK", cseq), f"Public: {svc.public}"]
    elif req.method == "DESCRIBE":
        if svc.auth is not None and not authorised(svc.auth, ctx.persona.credentials, req):
            lines = [*_head(svc, "401 Unauthorized", cseq), f"WWW-Authenticate: {_challenge(svc.auth)}"]
        else:
            sdp = SDP.format(ip=ctx.ip)
            lines = [*_head(svc, "200 OK", cseq), "Content-Type: application/sdp", f"Content-Length: {len(sdp)}"]
            return ("\r\n".join(lines) + "\r\n\r\n" + sdp).encode()
    else:
        lines = [*_head(svc, "405 Method Not Allowed", cseq), f"Allow: {svc.public}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def serve(ctx: Context, svc: RtspService) -> asyncio.Server:
    from scanner.lab.responders.http import read_request

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        try:
            for _ in range(8):  # a client may send OPTIONS then DESCRIBE on one connection
                req = await read_request(reader, peer)
                if req is None:
                    break
                writer.write(rtsp_answer(ctx, svc, req))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, ctx.ip, ctx.port(svc.port), reuse_address=True)
