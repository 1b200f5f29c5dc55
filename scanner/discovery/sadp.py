"""Hikvision SADP on UDP 37020: an XML inquiry to 239.255.255.250 (and each target); devices answer with a
ProbeMatch listing model, serial, MAC and firmware. Every field becomes `sadp.<field>` Evidence."""

from __future__ import annotations

import uuid

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from scanner.discovery.udp import udp_discovery
from scanner.model import Evidence, Observation, evidence, field_key, normalise_mac
from scanner.netctx import ScanContext

GROUP, PORT = "239.255.255.250", 37020
MAX_REPLY = 16384
MAX_KEY = 128  # Evidence.key's max_length (scanner/model.py): a longer element name makes no Evidence key
SOURCE = "sadp"


def build_probe(probe_id: str | None = None) -> bytes:
    pid = (probe_id or str(uuid.uuid4())).upper()
    return (f'<?xml version="1.0" encoding="utf-8"?><Probe><Uuid>{pid}</Uuid><Types>inquiry</Types></Probe>').encode()


def parse_probe_match(data: bytes, source_ip: str = "") -> list[Evidence]:
    """Evidence from one SADP ProbeMatch; nothing for anything else (our own probe, garbage, oversize)."""
    if len(data) > MAX_REPLY:
        return []
    start = data.find(b"<")
    if start < 0:
        return []
    try:
        root = ElementTree.fromstring(data[start:])
    except (ElementTree.ParseError, DefusedXmlException, ValueError, UnicodeError, LookupError):
        return []  # LookupError: an XML declaration naming an encoding Python does not know
    if root.tag != "ProbeMatch":
        return []
    out = []
    for child in list(root)[:100]:
        if child.tag in ("Uuid", "Types") or len(child):
            continue
        text = (child.text or "").strip()
        key = field_key("sadp", child.tag)
        if not text or len(key) > MAX_KEY:
            continue
        if child.tag == "MAC":
            mac = normalise_mac(text)
            if mac:
                out.append(evidence("mac", mac, SOURCE))
        out.append(evidence(key, text, SOURCE))
    return out


async def discover(ctx: ScanContext, unicast: list[str]) -> list[Observation]:
    # hear_group: firmware that answers to the multicast group instead of the asker is heard too
    return await udp_discovery(
        ctx,
        name="SADP",
        port=PORT,
        group=GROUP,
        probe=build_probe,
        parse=parse_probe_match,
        unicast=unicast,
        hear_group=True,
    )
