"""DHCP (RFC 2131; options RFC 2132): what a device says of itself when it asks for an address.

Passive only: camscan sends no DHCP. The passive audit (scanner.passive) reads clients' messages from a
capture: the client's MAC (chaddr) -> `mac`, option 12 -> `hostname`, option 60 -> `dhcp.vendor_class`, and
the address a server's DHCPACK gives it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass(slots=True)
class DhcpMessage:
    op: int
    mac: str
    ciaddr: str
    yiaddr: str
    message_type: int | None = None
    hostname: str | None = None
    vendor_class: str | None = None
    requested_ip: str | None = None


def _dhcp_text(raw: bytes) -> str | None:
    text = raw.rstrip(b"\x00").decode("utf-8", "replace").strip()
    return text or None


def parse_dhcp(data: bytes) -> DhcpMessage | None:
    """A BOOTP/DHCP message (RFC 2131, options RFC 2132) with an Ethernet client address; None otherwise."""
    if len(data) < 240 or data[0] not in (1, 2) or data[1] != 1 or data[2] != 6:
        return None
    if data[236:240] != b"\x63\x82\x53\x63":
        return None
    mac = data[28:34]
    if mac == b"\x00" * 6 or mac[0] & 1:
        return None
    msg = DhcpMessage(
        op=data[0],
        mac=mac.hex(":"),
        ciaddr=socket.inet_ntoa(data[12:16]),
        yiaddr=socket.inet_ntoa(data[16:20]),
    )
    pos = 240
    while pos < len(data):
        code = data[pos]
        if code == 0:
            pos += 1
            continue
        if code == 255 or pos + 1 >= len(data):
            break
        length = data[pos + 1]
        value = data[pos + 2 : pos + 2 + length]
        if len(value) < length:
            break
        if code == 53 and length == 1:
            msg.message_type = value[0]
        elif code == 12:
            msg.hostname = _dhcp_text(value)
        elif code == 60:
            msg.vendor_class = _dhcp_text(value)
        elif code == 50 and length == 4:
            msg.requested_ip = socket.inet_ntoa(value)
        pos += 2 + length
    return msg
