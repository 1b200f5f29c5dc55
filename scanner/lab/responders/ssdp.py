"""SSDP (UPnP Device Architecture 1.1 §1) and the UPnP device description the persona serves over HTTP.

- Listens on UDP 1900 (joined to 239.255.255.250 on the lab interface in netns mode; its own 127.77.0.x
  address in loopback mode) and answers `M-SEARCH * HTTP/1.1` for `ssdp:all`, `upnp:rootdevice`,
  `uuid:<device uuid>`, the device type and the persona's own search targets, with a unicast `200 OK`
  sent within min(MX, 1) s (a random delay, as the spec asks), headers in the spec's (and libupnp's) order.
- In netns mode announces itself with `NOTIFY ssdp:alive` on start and `ssdp:byebye` on close.
- `register(ctx)` adds the description document handler at the persona's LOCATION path.

Every datagram is hostile: oversized, undecodable or malformed ones are dropped, never raised.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import re
import socket
import uuid
from email.utils import formatdate
from typing import cast
from xml.sax.saxutils import escape

from scanner.lab.persona import HttpService, SsdpService
from scanner.lab.responders.base import Context, Request, Response, udp_listener

GROUP = "239.255.255.250"
PORT = 1900
MAX_DATAGRAM = 8192  # an M-SEARCH is a few hundred bytes
MAX_AGE = 1800
MAX_PENDING = 256  # delayed answers queued at once
UUID_NAMESPACE = uuid.UUID("6c1b8f1e-6a8e-4d52-9a57-3e1d0c7a5a11")  # camscan lab, fixed forever
# UPnP DA 1.1 §2.3: the order of the <device> children
DEVICE_FIELDS = (
    "deviceType", "friendlyName", "manufacturer", "manufacturerURL", "modelDescription", "modelName",
    "modelNumber", "modelURL", "serialNumber", "UDN", "UPC", "presentationURL",
)  # fmt: skip
_ELEMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def device_uuid(ctx: Context) -> str:
    """The device UUID (no `uuid:` prefix): the description's UDN if the persona gives one, else stable from its id."""
    svc = ctx.persona.services.ssdp
    udn = (svc.description.get("UDN", "") if svc else "").strip()
    if udn:
        return udn[5:] if udn.lower().startswith("uuid:") else udn
    return str(uuid.uuid5(UUID_NAMESPACE, f"camscan-lab:{ctx.persona.id}"))


def device_type(svc: SsdpService) -> str:
    return svc.description.get("deviceType") or svc.device_type


def http_service(ctx: Context, svc: SsdpService) -> HttpService | None:
    http = getattr(ctx.persona.services, svc.http, None)
    return http if isinstance(http, HttpService) else None


def location(ctx: Context, svc: SsdpService) -> str | None:
    http = http_service(ctx, svc)
    if http is None:
        return None
    scheme = "https" if http.tls else "http"
    path = svc.location if svc.location.startswith("/") else "/" + svc.location
    return f"{scheme}://{ctx.ip}:{ctx.port(http.port)}{path}"


def targets(ctx: Context, svc: SsdpService) -> list[str]:
    """Every search target the device answers to, in the order it answers `ssdp:all` (root device first)."""
    out = ["upnp:rootdevice", f"uuid:{device_uuid(ctx)}", device_type(svc), *svc.st]
    return list(dict.fromkeys(t for t in out if t))


def usn(ctx: Context, st: str) -> str:
    udn = f"uuid:{device_uuid(ctx)}"
    return udn if st == udn else f"{udn}::{st}"


def _upnp_ids(svc: SsdpService) -> list[tuple[str, str]]:
    """UDA 1.1 devices send BOOTID/CONFIGID; the UPnP/1.0 stacks most cameras run (libupnp 1.6) do not."""
    return [("BOOTID.UPNP.ORG", "1"), ("CONFIGID.UPNP.ORG", "1")] if "UPnP/1.1" in svc.server else []


def search_response(ctx: Context, svc: SsdpService, loc: str, st: str) -> bytes:
    headers = [
        ("CACHE-CONTROL", f"max-age={MAX_AGE}"),
        ("DATE", formatdate(usegmt=True)),
        ("EXT", ""),
        ("LOCATION", loc),
        ("SERVER", svc.server),
        ("ST", st),
        ("USN", usn(ctx, st)),
        *_upnp_ids(svc),
    ]
    lines = ["HTTP/1.1 200 OK", *(f"{k}: {v}" if v else f"{k}:" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def notify(ctx: Context, svc: SsdpService, loc: str, nt: str, nts: str) -> bytes:
    headers = [("HOST", f"{GROUP}:{PORT}")]
    if nts == "ssdp:alive":
        headers += [("CACHE-CONTROL", f"max-age={MAX_AGE}"), ("LOCATION", loc)]
    headers += [("NT", nt), ("NTS", nts)]
    if nts == "ssdp:alive":
        headers.append(("SERVER", svc.server))
    headers += [("USN", usn(ctx, nt)), *_upnp_ids(svc)]
    lines = ["NOTIFY * HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def parse_msearch(data: bytes) -> tuple[str, int | None] | None:
    """(ST, MX) of a well-formed M-SEARCH, MX None when absent or invalid; None for anything else."""
    if len(data) > MAX_DATAGRAM or not data.startswith(b"M-SEARCH "):
        return None
    text = data.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[0].split() != ["M-SEARCH", "*", "HTTP/1.1"]:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().upper(), value.strip())
    if headers.get("MAN", "").strip('"') != "ssdp:discover":
        return None
    st = headers.get("ST", "")
    if not st or len(st) > 256:
        return None
    mx_text = headers.get("MX", "")
    mx = int(mx_text) if mx_text.isascii() and mx_text.isdigit() and len(mx_text) < 6 else None
    return st, mx


def matching(ctx: Context, svc: SsdpService, st: str) -> list[str]:
    known = targets(ctx, svc)
    if st == "ssdp:all":
        return known
    return [st] if st in known else []


class SsdpResponder(asyncio.DatagramProtocol):
    def __init__(self, ctx: Context, svc: SsdpService, loc: str) -> None:
        self.ctx = ctx
        self.svc = svc
        self.loc = loc
        self.transport: asyncio.DatagramTransport | None = None
        self._pending: dict[int, asyncio.TimerHandle] = {}
        self._seq = 0
        self.sent = 0  # datagrams sent (answers and NOTIFYs)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # asyncio's selector class is no subclass

    def error_received(self, exc: Exception) -> None:
        self.ctx.log.debug("%s: SSDP socket error: %s", self.ctx.persona.id, exc)

    def _peer_allowed(self, addr: tuple[str, int]) -> bool:
        """Answer unicast peers only, and in loopback mode only loopback ones (the lab's network rule)."""
        try:
            ip = ipaddress.ip_address(addr[0])
        except ValueError:
            return False
        if addr[1] == 0 or ip.is_multicast or ip.is_unspecified or str(ip).endswith(".255"):
            return False
        return ip.is_loopback or self.ctx.multicast

    def datagram_received(self, data: bytes, addr: tuple[str | bytes, int]) -> None:
        try:
            self._handle(data, (str(addr[0]), int(addr[1])))
        except Exception as exc:  # one bad datagram must never stop the responder
            self.ctx.log.warning("%s: SSDP datagram from %s dropped: %r", self.ctx.persona.id, addr, exc)

    def _handle(self, data: bytes, addr: tuple[str, int]) -> None:
        parsed = parse_msearch(data)
        if parsed is None or not self._peer_allowed(addr):
            return
        st, mx = parsed
        answers = matching(self.ctx, self.svc, st)
        if not answers:
            return
        # UDA 1.1 §1.3.3: reply after a random delay in [0, MX]; the lab caps it at 1 s. A unicast M-SEARCH
        # carries no MX and is answered at once.
        delay = random.uniform(0, min(mx, 1)) if mx is not None else 0.0
        if len(self._pending) >= MAX_PENDING:  # a flood of searches: answer what is queued, drop the rest
            return
        msgs = [search_response(self.ctx, self.svc, self.loc, target) for target in answers]
        self._seq += 1
        key = self._seq
        self._pending[key] = asyncio.get_running_loop().call_later(delay, self._send_batch, key, msgs, addr)

    def _send_batch(self, key: int, msgs: list[bytes], addr: tuple[str, int]) -> None:
        self._pending.pop(key, None)
        for msg in msgs:
            self._send(msg, addr)

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.sendto(data, addr)
        self.sent += 1

    def announce(self, nts: str) -> None:
        """NOTIFY to the SSDP group on the lab interface (netns mode only: the socket's IP_MULTICAST_IF and
        TTL 1 keep it on the lab segment)."""
        if not self.ctx.multicast:
            return
        for nt in targets(self.ctx, self.svc):
            self._send(notify(self.ctx, self.svc, self.loc, nt, nts), (GROUP, PORT))

    def close(self) -> None:
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.announce("ssdp:byebye")
            self.transport.close()


async def start(ctx: Context) -> list[object]:
    """Start the SSDP responder; returns it (its `close()` sends byebye in netns mode and closes the socket)."""
    svc = ctx.persona.services.ssdp
    if svc is None:
        return []
    loc = location(ctx, svc)
    if loc is None:
        ctx.log.error(
            "%s: SSDP names HTTP service %r, which the persona lacks; SSDP not started", ctx.persona.id, svc.http
        )
        return []
    sock: socket.socket = udp_listener(ctx, GROUP, PORT)
    loop = asyncio.get_running_loop()
    try:
        _, responder = await loop.create_datagram_endpoint(lambda: SsdpResponder(ctx, svc, loc), sock=sock)
    except BaseException:
        sock.close()
        raise
    responder.announce("ssdp:alive")
    ctx.log.info("%s: SSDP on %s:%d, description at %s", ctx.persona.id, ctx.ip, ctx.port(PORT), loc)
    return [responder]


def _xml_text(value: str) -> str:
    return escape(_XML_ILLEGAL.sub("", value))


def description_xml(ctx: Context, svc: SsdpService) -> bytes:
    """The UPnP device description (UDA 1.1 §2.3) from the persona's fields, every value escaped."""
    fields = {k: v for k, v in svc.description.items() if _ELEMENT.match(k)}
    for key in svc.description.keys() - fields.keys():
        ctx.log.warning("%s: UPnP description field %r is not an XML name; left out", ctx.persona.id, key)
    fields["deviceType"] = device_type(svc)
    fields["UDN"] = f"uuid:{device_uuid(ctx)}"
    ordered = [k for k in DEVICE_FIELDS if k in fields] + [k for k in fields if k not in DEVICE_FIELDS]
    lines = [
        '<?xml version="1.0"?>',
        '<root xmlns="urn:schemas-upnp-org:device-1-0">',
        "<specVersion><major>1</major><minor>0</minor></specVersion>",
        "<device>",
        *(f"<{k}>{_xml_text(fields[k])}</{k}>" for k in ordered),
        "</device>",
        "</root>",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def register(ctx: Context) -> None:
    """Serve the device description at the persona's LOCATION path (call before the HTTP server starts)."""
    svc = ctx.persona.services.ssdp
    if svc is None:
        return
    body = description_xml(ctx, svc)
    path = svc.location if svc.location.startswith("/") else "/" + svc.location

    async def description(req: Request) -> Response:
        if req.method not in ("GET", "HEAD"):
            return Response(405, [("Allow", "GET, HEAD")], b"Method Not Allowed", content_type="text/plain")
        return Response(200, body=body, content_type='text/xml; charset="utf-8"')

    ctx.http_handlers[path] = description
