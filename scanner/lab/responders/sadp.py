"""Hikvision SADP (Search Active Devices Protocol) on UDP 37020: an XML Probe with Types 'inquiry' gets a
ProbeMatch carrying the device's fields (model, serial, MAC, firmware), sent back to the asker."""

from __future__ import annotations

from xml.sax.saxutils import escape

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from scanner.lab.responders.base import Context, answer_datagrams, udp_listener

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


async def start(ctx: Context) -> list[object]:
    fields = ctx.persona.services.sadp
    if not fields:
        return []

    def reply(data: bytes) -> bytes | None:
        uuid = probe_uuid(data)
        return probe_match(fields, uuid) if uuid is not None else None  # firmware 5.7+ answers by unicast

    return await answer_datagrams(udp_listener(ctx, GROUP, PORT), reply)
