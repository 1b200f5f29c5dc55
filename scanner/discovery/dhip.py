"""Dahua DHDiscover on UDP 37810: a 32-byte 'DHIP' header plus JSON `DHDiscover.search`, to 239.255.255.251
(and each target); devices answer `client.notifyDevInfo` with model, serial, firmware and vendor. Every
deviceInfo field with a plain value becomes `dhip.<field>` Evidence (nested objects such as IPv4Address are
not Evidence keys of docs/evidence.md and are skipped)."""

from __future__ import annotations

import json
import struct

from scanner.discovery.udp import udp_discovery
from scanner.model import Evidence, Observation, evidence, field_key, normalise_mac
from scanner.netctx import ScanContext

GROUP, PORT = "239.255.255.251", 37810
MAGIC = b"\x20\x00\x00\x00DHIP"
MAX_REPLY = 65536
MAX_KEY = 128  # Evidence.key's max_length (scanner/model.py): a longer JSON name makes no Evidence key
SOURCE = "dhip"


def build_probe() -> bytes:
    body = b'{"method":"DHDiscover.search","params":{"mac":"","uni":1}}\n'
    n = struct.pack("<I", len(body))
    return MAGIC + b"\x00" * 8 + n + b"\x00" * 4 + n + b"\x00" * 4 + body


def parse_reply(data: bytes, source_ip: str = "") -> list[Evidence]:
    if len(data) > MAX_REPLY or len(data) < 34 or data[4:8] != b"DHIP":
        return []
    start = data.find(b"{", 32)
    if start < 0:
        return []
    try:
        doc = json.loads(data[start:].decode("utf-8", "replace").rstrip("\x00\r\n "))
    except (json.JSONDecodeError, RecursionError, ValueError):
        return []
    if not isinstance(doc, dict) or doc.get("method") == "DHDiscover.search":
        return []  # our own probe, looped back
    params = doc.get("params")
    info = params.get("deviceInfo") if isinstance(params, dict) else None
    if not isinstance(info, dict):
        return []
    out: list[Evidence] = []
    mac = normalise_mac(str(doc.get("mac", ""))) or normalise_mac(str(info.get("MAC", "")))
    if mac:
        out.append(evidence("mac", mac, SOURCE))
    for k, v in list(info.items())[:100]:
        key = field_key("dhip", str(k))
        if not str(k).strip() or len(key) > MAX_KEY:  # no Evidence key: an empty name, or one too long
            continue
        if isinstance(v, (str, int, float)) and not isinstance(v, bool) and str(v).strip():
            out.append(evidence(key, str(v), SOURCE))
    return out


async def discover(ctx: ScanContext, unicast: list[str]) -> list[Observation]:
    # hear_group: firmware that answers to the multicast group instead of the asker is heard too
    return await udp_discovery(
        ctx,
        name="DHIP",
        port=PORT,
        group=GROUP,
        probe=build_probe,
        parse=parse_reply,
        unicast=unicast,
        hear_group=True,
    )
