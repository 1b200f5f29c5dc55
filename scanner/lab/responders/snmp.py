"""An SNMP agent on UDP 161 (SNMPv1/v2c): a GetRequest that carries the persona's community and asks for
sysDescr.0 gets a GetResponse with it (and the persona's sysObjectID.0, if it has one), sent back to the
asker. A wrong community, another object or anything else gets no answer, as a real agent configured that way
would give."""

from __future__ import annotations

from scanner.discovery import snmp
from scanner.lab.persona import SnmpService
from scanner.lab.responders.base import Context, answer_datagrams, unicast_socket


def answer(request: bytes, svc: SnmpService) -> bytes | None:
    read = snmp.read_get_request(request)
    if read is None:
        return None
    community, request_id, oids = read
    if community != svc.community.encode() or snmp.SYSDESCR_OID not in oids:
        return None
    return snmp.build_response(community, request_id, svc.sysdescr, svc.sysobjectid)


async def start(ctx: Context) -> list[object]:
    svc = ctx.persona.services.snmp
    if svc is None:
        return []
    return await answer_datagrams(unicast_socket(ctx, snmp.PORT), lambda data: answer(data, svc))
