"""Dahua DHDiscover on UDP 37810: a 32-byte 'DHIP' header plus JSON. A `DHDiscover.search` request gets a
`client.notifyDevInfo` answer with the device's fields (model, serial, firmware, vendor), sent to the asker."""

from __future__ import annotations

import json
import struct

from scanner.lab.responders.base import Context, answer_datagrams, udp_listener

GROUP, PORT = "239.255.255.251", 37810
MAGIC = b"\x20\x00\x00\x00DHIP"


def frame(doc: dict[str, object]) -> bytes:
    body = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
    n = len(body)
    return MAGIC + b"\x00" * 8 + struct.pack("<I", n) + b"\x00" * 4 + struct.pack("<I", n) + b"\x00" * 4 + body


def is_search(data: bytes) -> bool:
    if len(data) > 4096 or not data.startswith(MAGIC) or len(data) < 32:
        return False
    try:
        doc = json.loads(data[32:].decode("utf-8", "replace").strip("\x00\r\n "))
    except (json.JSONDecodeError, RecursionError):
        return False
    return isinstance(doc, dict) and doc.get("method") == "DHDiscover.search"


async def start(ctx: Context) -> list[object]:
    fields = ctx.persona.services.dhip
    if not fields:
        return []
    info: dict[str, object] = dict(fields)
    info.setdefault("IPv4Address", {"IPAddress": ctx.ip, "SubnetMask": "255.255.255.0", "DhcpEnable": False})
    answer = frame({"mac": ctx.persona.mac, "method": "client.notifyDevInfo", "params": {"deviceInfo": info}})
    return await answer_datagrams(udp_listener(ctx, GROUP, PORT), lambda data: answer if is_search(data) else None)
