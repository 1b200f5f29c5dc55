"""Hikvision SADP (Search Active Devices Protocol) on UDP 37020: an XML Probe with Types 'inquiry' gets a
ProbeMatch carrying the device's fields (model, serial, MAC, firmware), sent back to the asker."""

from __future__ import annotations

import asyncio
from xml.sax.saxutils import escape

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from scanner.lab.responders.base import Context, udp_listener

GROUP, PORT = "239.255.255.250", 37020


def probe_uuid(data: bytes) -> str | None:
    """The Uuid of a SADP inquiry, or None if the datagram is not one."""
    if len(data) > 4096:
        return None
    start = data.find(b"<?xml")
    try:
        root = ElementTree.fromstring(data[start if start >= 0 else 0 :])
    except (ElementTree.ParseError, DefusedXmlException, ValueError):
        return None
    if root.tag != "Probe" or (root.findtext("Types") or "").strip().lower() not in ("inquiry", "inquiry_v32"):
        return None
    return (root.findtext("Uuid") or "").strip()


def probe_match(fields: dict[str, str], uuid: str) -> bytes:
    body = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ProbeMatch><Uuid>{escape(uuid)}</Uuid><Types>inquiry</Types>'
        f"{body}</ProbeMatch>"
    ).encode()


class _Sadp(asyncio.DatagramProtocol):
    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = fields
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        uuid = probe_uuid(data)
        if uuid is not None and self.transport is not None:
            self.transport.sendto(probe_match(self.fields, uuid), addr)  # firmware 5.7+ answers by unicast


async def start(ctx: Context) -> list[object]:
    fields = ctx.persona.services.sadp
    if not fields:
        return []
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Sadp(fields), sock=udp_listener(ctx, GROUP, PORT))
    return [transport]
