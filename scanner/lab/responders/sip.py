"""A SIP user agent on UDP 5060 (RFC 3261): an OPTIONS request gets `SIP/2.0 200 OK` with the persona's
`Server` header, sent back to the address and port it came from (RFC 3581 rport). Anything else is ignored."""

from __future__ import annotations

from scanner.lab.persona import SipService
from scanner.lab.responders.base import Context, answer_datagrams, unicast_socket

PORT = 5060
_ECHOED = ("via", "from", "to", "call-id", "cseq")  # RFC 3261 §8.2.6.2: copied from the request


def answer(request: bytes, svc: SipService, tag: str) -> bytes | None:
    """The 200 OK to an OPTIONS request; None for anything else."""
    if len(request) > 8192 or not request.startswith(b"OPTIONS "):
        return None
    lines = request.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").split("\r\n")
    if not lines[0].endswith(" SIP/2.0"):
        return None
    echoed = [line for line in lines[1:] if line.partition(":")[0].strip().lower() in _ECHOED]
    echoed = [f"{h};tag={tag}" if h.lower().startswith("to:") and ";tag=" not in h else h for h in echoed]
    out = ["SIP/2.0 200 OK", *echoed, f"Server: {svc.server}", f"Allow: {svc.allow}", "Content-Length: 0", "", ""]
    return "\r\n".join(out).encode()


async def start(ctx: Context) -> list[object]:
    svc = ctx.persona.services.sip
    if svc is None:
        return []
    tag = ctx.persona.id.replace("-", "")[:16]
    return await answer_datagrams(unicast_socket(ctx, PORT), lambda data: answer(data, svc, tag))
