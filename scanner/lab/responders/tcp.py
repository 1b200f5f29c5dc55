"""Plain TCP services: a port that is open (Hikvision SDK 8000, Dahua 37777) or sends a banner (telnet, SSH)."""

from __future__ import annotations

import asyncio

from scanner.lab.persona import TcpBanner
from scanner.lab.responders.base import Context


async def serve(ctx: Context, svc: TcpBanner) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if svc.banner is not None:
                writer.write(svc.banner.encode("utf-8") + b"\r\n")
                await writer.drain()
            await asyncio.wait_for(reader.read(4096), timeout=5)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, ctx.ip, ctx.port(svc.port), reuse_address=True)
