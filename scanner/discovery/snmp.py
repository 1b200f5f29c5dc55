"""SNMP (v1 RFC 1157, v2c RFC 1901/3416) messages: a device's sysDescr and sysObjectID.

When a monitoring system polls the network, each device answers with its `sysDescr.0` (RFC 3418), often its
maker, model and firmware (`Hikvision DS-2CD2143G0-I`, `Linux DS-7608NI 3.0.8 #1 ...`, `AXIS P3245-LVE Network
Camera 10.12.165`), and its `sysObjectID.0`, the vendor's identification of the kind of box, an OID under the
vendor's IANA Private Enterprise Number (1.3.6.1.4.1.<PEN>...); devices also send traps carrying them. In a
GetResponse (from UDP 161) or a trap (to UDP 162) they become `snmp.sysdescr` and `snmp.sysobjectid` (dotted
decimal) Evidence of the packet's source (docs/evidence.md).

A pure parser of the BER the messages are written in (X.690, definite lengths only, as SNMP requires):
bytes in, Evidence out, every length checked against what is there. SNMPv3 messages are skipped (their PDUs
are usually encrypted).

The scan asks each live host once: an SNMPv2c GetRequest for sysDescr.0 and sysObjectID.0 (two objects of
the MIB-II system group every agent has) to UDP 161 with the community of
`--snmp-community` (default `public`, the factory setting of most agents that are on at all; never logged or
reported). A read of the system group, as every network inventory does; an agent that is off or has another
community stays silent.
"""

from __future__ import annotations

import secrets

from scanner.model import Evidence, Observation, evidence
from scanner.netctx import ScanContext

PORT, TRAP_PORT = 161, 162
SOURCE = "snmp"
MAX_MESSAGE = 65535
MAX_VARBINDS = 256
# sysDescr.0 = 1.3.6.1.2.1.1.1.0, as the content octets of its OBJECT IDENTIFIER
SYSDESCR_OID = bytes([0x2B, 6, 1, 2, 1, 1, 1, 0])
SYSOBJECTID_OID = bytes([0x2B, 6, 1, 2, 1, 1, 2, 0])  # sysObjectID.0 = 1.3.6.1.2.1.1.2.0
MAX_ARCS = 128  # sub-identifiers of an OID value (RFC 2578 §3.5: at most 128)
_SEQUENCE, _INTEGER, _OCTET_STRING, _OID = 0x30, 0x02, 0x04, 0x06
_GET_REQUEST, _GET_RESPONSE, _TRAP_V1, _TRAP_V2, _INFORM = 0xA0, 0xA2, 0xA4, 0xA7, 0xA6
_NULL = b"\x05\x00"
MAX_COMMUNITY = 255


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


def oid_text(content: bytes) -> str | None:
    """The dotted form of an OBJECT IDENTIFIER's content octets (X.690 §8.19): the first octet-group is
    40*X+Y; each sub-identifier base 128, high bit = more. None for an encoding that is not a whole, minimal,
    bounded OID (a sub-identifier over 2**32-1, a leading 0x80, more than MAX_ARCS arcs, cut short)."""
    arcs: list[int] = []
    value = 0
    fresh = True
    for octet in content:
        if fresh and octet == 0x80:
            return None  # not minimal
        value = (value << 7) | (octet & 0x7F)
        fresh = False
        if value > 0xFFFFFFFF + 80:
            return None
        if not octet & 0x80:
            arcs.append(value)
            value, fresh = 0, True
            if len(arcs) >= MAX_ARCS:
                return None
    if not fresh or not arcs:
        return None
    top = min(arcs[0] // 40, 2)  # X.690 §8.19.4: the first sub-identifier is 40 * X + Y, X at most 2
    return ".".join(str(a) for a in [top, arcs[0] - 40 * top, *arcs[1:]])


def parse_message(data: bytes, source_ip: str = "") -> list[Evidence]:
    """`snmp.sysdescr` and `snmp.sysobjectid` from one SNMPv1/v2c GetResponse, trap or inform that carries
    sysDescr.0 or sysObjectID.0; [] otherwise."""
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
    out: list[Evidence] = []
    for vb_tag, b_start, b_end in _children(data, vb_start, vb_end):
        if vb_tag != _SEQUENCE:
            continue
        pair = _children(data, b_start, b_end)
        if len(pair) != 2 or pair[0][0] != _OID:
            continue
        name, (kind, v_start, v_end) = data[pair[0][1] : pair[0][2]], pair[1]
        if name == SYSDESCR_OID and kind == _OCTET_STRING:
            value = data[v_start:v_end].decode("utf-8", "replace").strip().strip("\x00").strip()
            if value:
                out.append(evidence("snmp.sysdescr", value, SOURCE))
        elif name == SYSOBJECTID_OID and kind == _OID:
            dotted = oid_text(data[v_start:v_end])
            if dotted and dotted != "0.0":  # 0.0: "no identification" (RFC 2578 zeroDotZero)
                out.append(evidence("snmp.sysobjectid", dotted, SOURCE))
    return out


def ber(tag: int, content: bytes) -> bytes:
    """One BER element with a definite length (short form, or long form of up to four octets)."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def _integer(value: int) -> bytes:
    """A BER INTEGER: two's complement in as few octets as hold it."""
    return ber(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _message(community: bytes, pdu_tag: int, request_id: int, bindings: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(ber(_SEQUENCE, ber(_OID, oid) + value) for oid, value in bindings)
    pdu = ber(pdu_tag, _integer(request_id) + _integer(0) + _integer(0) + ber(_SEQUENCE, body))
    return ber(_SEQUENCE, _integer(1) + ber(_OCTET_STRING, community) + pdu)


def build_get(community: str, request_id: int | None = None) -> bytes:
    """An SNMPv2c GetRequest for sysDescr.0 and sysObjectID.0."""
    rid = secrets.randbits(31) if request_id is None else request_id
    asked = [(SYSDESCR_OID, _NULL), (SYSOBJECTID_OID, _NULL)]
    return _message(community.encode("utf-8")[:MAX_COMMUNITY], _GET_REQUEST, rid, asked)


def oid_content(dotted: str) -> bytes:
    """The content octets of an OBJECT IDENTIFIER given in dotted form (the inverse of oid_text)."""
    arcs = [int(a) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or any(a < 0 for a in arcs):
        raise ValueError(f"not an OID: {dotted!r}")
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        groups = [arc & 0x7F]
        arc >>= 7
        while arc:
            groups.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(groups))
    return bytes(out)


def build_response(community: bytes, request_id: int, sysdescr: str, sysobjectid: str | None = None) -> bytes:
    """The GetResponse an agent sends for sysDescr.0 and, when it has one, sysObjectID.0 (the lab's agents)."""
    bindings = [(SYSDESCR_OID, ber(_OCTET_STRING, sysdescr.encode("utf-8")))]
    if sysobjectid:
        bindings.append((SYSOBJECTID_OID, ber(_OID, oid_content(sysobjectid))))
    return _message(community, _GET_RESPONSE, request_id, bindings)


def read_get_request(data: bytes) -> tuple[bytes, int, list[bytes]] | None:
    """(community, request id, the OIDs asked for) of an SNMPv1/v2c GetRequest; None for anything else."""
    if not data or len(data) > MAX_MESSAGE:
        return None
    try:
        tag, start, end = _tlv(data, 0, len(data))
        parts = _children(data, start, end) if tag == _SEQUENCE else []
        if len(parts) != 3 or parts[1][0] != _OCTET_STRING or parts[2][0] != _GET_REQUEST:
            return None
        fields = _children(data, parts[2][1], parts[2][2])
        if len(fields) != 4 or fields[0][0] != _INTEGER or fields[3][0] != _SEQUENCE:
            return None
        request_id = int.from_bytes(data[fields[0][1] : fields[0][2]], "big", signed=True)
        oids = []
        for vb_tag, b_start, b_end in _children(data, fields[3][1], fields[3][2]):
            pair = _children(data, b_start, b_end) if vb_tag == _SEQUENCE else []
            if pair and pair[0][0] == _OID:
                oids.append(data[pair[0][1] : pair[0][2]])
        return data[parts[1][1] : parts[1][2]], request_id, oids
    except _BadBer:
        return None


async def discover(ctx: ScanContext, unicast: list[str]) -> list[Observation]:
    """One GetRequest for sysDescr.0 and sysObjectID.0 to UDP 161 of each live host."""
    from scanner.discovery.udp import udp_discovery

    community = ctx.snmp_community
    return await udp_discovery(
        ctx,
        name="SNMP",
        port=PORT,
        group=None,
        probe=lambda: build_get(community),
        parse=parse_message,
        unicast=unicast,
        repeats=1,
    )
