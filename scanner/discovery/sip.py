"""SIP (RFC 3261) messages seen in a capture: who sent them, by their `User-Agent` or `Server` header.

Door stations, intercoms, indoor monitors and network speakers register with a SIP server and answer its
OPTIONS keep-alives, so a capture of a building's network holds their SIP traffic. Every SIP request carries
the sender's `User-Agent` (RFC 3261 §20.41) and most responses the responder's `Server` (§20.35), often with
maker and model: `2N Helios IP Verso 2.30.0.40.2`, `Grandstream GDS3710 1.0.11.27`, `DAHUA VTO2000A`. Both
speak for the packet's source, so both become `sip.user_agent` Evidence (docs/evidence.md) of that address.

The parser is pure: bytes in, Evidence out. The passive audit reads messages on the SIP port (UDP 5060 as
source or destination; SIP over TLS, 5061, is encrypted, and TCP SIP is rare on a LAN). The scan asks each
target once by unicast with an OPTIONS request (RFC 3261 §11: "what can you do", no call, no account, no
credentials), as SIP clients and PBXs do to check a peer is alive; the answer's `Server` or `User-Agent` is the
Evidence. Its Via names our address and port and asks for `rport` (RFC 3581), so the answer comes back to the
port that asked.
"""

from __future__ import annotations

import contextlib
import secrets
import socket

from scanner.model import Evidence, Observation, evidence
from scanner.netctx import ScanContext

PORT = 5060
SOURCE = "sip"
MAX_MESSAGE = 65535  # one UDP datagram
MAX_HEADERS = 96
# RFC 3261 §7.1, §7.2: Request-Line "METHOD SP Request-URI SP SIP/2.0", Status-Line "SIP/2.0 SP code SP reason"
_VERSION = "SIP/2.0"
_HEADERS = {"user-agent", "server"}
USER_AGENT = "camscan"


def parse_message(data: bytes, source_ip: str = "") -> list[Evidence]:
    """`sip.user_agent` for each `User-Agent` and `Server` header of one SIP request or response (the first
    of each name); [] for anything that is not a SIP message."""
    if not data or len(data) > MAX_MESSAGE:
        return []
    head = data.split(b"\r\n\r\n", 1)[0]
    text = head.decode("utf-8", "replace")
    lines = text.replace("\r\n", "\n").split("\n")
    if not _is_start_line(lines[0]):
        return []
    found: dict[str, str] = {}
    for line in lines[1 : MAX_HEADERS + 1]:
        if not line or line[0] in " \t":  # RFC 3261 §7.3.1 folded continuation lines: not a header of ours
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if sep and name in _HEADERS and name not in found and value.strip():
            found[name] = value.strip()
    return [evidence("sip.user_agent", found[name], SOURCE) for name in ("user-agent", "server") if name in found]


def _is_start_line(line: str) -> bool:
    parts = line.strip().split(" ")
    if len(parts) >= 2 and parts[0] == _VERSION:
        return len(parts[1]) == 3 and parts[1].isdigit()
    return (
        len(parts) == 3
        and parts[2] == _VERSION
        and parts[0].isascii()
        and parts[0].isalpha()
        and parts[0].isupper()
        and ":" in parts[1]
    )


def build_options(target: str, local: tuple[str, int]) -> bytes:
    """An OPTIONS request to `target` from `local` (address, port), with fresh branch, tag and Call-ID."""
    address, port = local
    branch, tag, call_id = (secrets.token_hex(8) for _ in range(3))
    lines = [
        f"OPTIONS sip:{target} SIP/2.0",
        f"Via: SIP/2.0/UDP {address}:{port};rport;branch=z9hG4bK{branch}",
        "Max-Forwards: 70",
        f"From: <sip:camscan@{address}>;tag={tag}",
        f"To: <sip:{target}>",
        f"Call-ID: {call_id}@{address}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:camscan@{address}:{port}>",
        "Accept: application/sdp",
        f"User-Agent: {USER_AGENT}",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


async def discover(ctx: ScanContext, unicast: list[str]) -> list[Observation]:
    """One OPTIONS to UDP 5060 of each target (no multicast: SIP devices do not listen on a group)."""
    from scanner.discovery.udp import udp_discovery

    return await udp_discovery(
        ctx,
        name="SIP",
        port=PORT,
        group=None,
        probe=lambda: b"",
        parse=_answers_only,
        unicast=unicast,
        repeats=1,
        unicast_probe=lambda target, local: build_options(target, _as_seen_by(target, local)),
    )


def _as_seen_by(target: str, local: tuple[str, int]) -> tuple[str, int]:
    """Our (address, port) as the target sees it, for the Via header: the socket's own, or, for a socket bound to
    every address, the address the routing table picks for the target (a UDP connect sends nothing)."""
    address, port = local
    if address in ("0.0.0.0", ""):
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as route:
            route.connect((target, PORT))
            address = route.getsockname()[0]
    return address, port


def _answers_only(data: bytes, source_ip: str) -> list[Evidence]:
    """Only a response speaks for the target here (a request arriving on our port is not an answer)."""
    return parse_message(data, source_ip) if data.startswith(_VERSION.encode()) else []
