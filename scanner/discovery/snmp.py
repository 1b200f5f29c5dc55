"""SNMP (v1 RFC 1157, v2c RFC 1901/3416) messages seen in a capture: a device's sysDescr.

When a monitoring system polls the network, each device answers with its `sysDescr.0` (RFC 3418), often its
maker, model and firmware (`Hikvision DS-2CD2143G0-I`, `Linux DS-7608NI 3.0.8 #1 ...`, `AXIS P3245-LVE Network
Camera 10.12.165`); devices also send traps carrying it. The value of sysDescr.0 in a GetResponse (from UDP
161) or a trap (to UDP 162) becomes `snmp.sysdescr` Evidence of the packet's source (docs/evidence.md).

A pure parser of the BER the messages are written in (X.690, definite lengths only, as SNMP requires):
bytes in, Evidence out, nothing sent, every length checked against what is there. SNMPv3 messages are
skipped (their PDUs are usually encrypted).
"""

from __future__ import annotations

from scanner.model import Evidence, evidence

PORT, TRAP_PORT = 161, 162
SOURCE = "snmp"
MAX_MESSAGE = 65535
MAX_VARBINDS = 256
# sysDescr.0 = 1.3.6.1.2.1.1.1.0, as the content octets of its OBJECT IDENTIFIER
SYSDESCR_OID = bytes([0x2B, 6, 1, 2, 1, 1, 1, 0])
_SEQUENCE, _INTEGER, _OCTET_STRING, _OID = 0x30, 0x02, 0x04, 0x06
_GET_RESPONSE, _TRAP_V1, _TRAP_V2, _INFORM = 0xA2, 0xA4, 0xA7, 0xA6


class _BadBer(ValueError):
    pass


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of the content, end of the content) of the element at `pos`; _BadBer if it does not fit."""
    if pos + 2 > end:
        raise _BadBer("short element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise _BadBer("high tag number")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > end:
            raise _BadBer("bad length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > end:
        raise _BadBer("element longer than its container")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, c_start, c_end = _tlv(data, pos, end)
        out.append((tag, c_start, c_end))
        pos = c_end
        if len(out) > MAX_VARBINDS:
            raise _BadBer("too many elements")
    return out


def parse_message(data: bytes, source_ip: str = "") -> list[Evidence]:
    """`snmp.sysdescr` from one SNMPv1/v2c GetResponse, trap or inform that carries sysDescr.0; [] otherwise."""
    if not data or len(data) > MAX_MESSAGE:
        return []
    try:
        return _parse(data)
    except _BadBer:
        return []


def _parse(data: bytes) -> list[Evidence]:
    tag, start, end = _tlv(data, 0, len(data))
    if tag != _SEQUENCE:
        return []
    parts = _children(data, start, end)
    if len(parts) != 3 or parts[0][0] != _INTEGER or parts[1][0] != _OCTET_STRING:
        return []
    version = int.from_bytes(data[parts[0][1] : parts[0][2]], "big", signed=True)
    if version not in (0, 1):  # 0 = SNMPv1, 1 = SNMPv2c
        return []
    pdu_tag, p_start, p_end = parts[2]
    if pdu_tag not in (_GET_RESPONSE, _TRAP_V1, _TRAP_V2, _INFORM):
        return []
    fields = _children(data, p_start, p_end)
    if not fields or fields[-1][0] != _SEQUENCE:  # the variable bindings come last in every PDU of these
        return []
    _, vb_start, vb_end = fields[-1]
    for vb_tag, b_start, b_end in _children(data, vb_start, vb_end):
        if vb_tag != _SEQUENCE:
            continue
        pair = _children(data, b_start, b_end)
        if len(pair) != 2 or pair[0][0] != _OID or pair[1][0] != _OCTET_STRING:
            continue
        if data[pair[0][1] : pair[0][2]] == SYSDESCR_OID:
            value = data[pair[1][1] : pair[1][2]].decode("utf-8", "replace").strip().strip("\x00").strip()
            return [evidence("snmp.sysdescr", value, SOURCE)] if value else []
    return []
