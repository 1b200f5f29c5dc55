"""ONVIF device service (SOAP 1.2 over the persona's HTTP server) as cameras answer it.

Before authentication, as ONVIF Core allows and most cameras do: GetSystemDateAndTime, GetCapabilities,
GetServices. Behind WS-Security UsernameToken PasswordDigest (Base64(SHA-1(nonce + created + password))):
GetDeviceInformation and GetScopes. The digest and user name are compared in constant time, a nonce is accepted
once, and `Created` may be off by five minutes either way. A failure is the SOAP fault real devices send:
env:Sender / ter:NotAuthorized, "Sender not Authorized", HTTP 400.

Requests are parsed with defusedxml (no DTDs, no entities). A hostile persona (`hostile.entity_bomb`) puts an
entity-expansion bomb (a DOCTYPE of nested entities) in front of every answer; the answer is built as text and
never parsed here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET

from scanner.lab.persona import HttpService, OnvifService
from scanner.lab.responders.base import Context, Request, Response

NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_TDS = "http://www.onvif.org/ver10/device/wsdl"
NS_TT = "http://www.onvif.org/ver10/schema"
NS_TER = "http://www.onvif.org/ver10/error"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PASSWORD_DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
CONTENT_TYPE = "application/soap+xml; charset=utf-8"
CLOCK_SKEW = 300.0  # seconds either way
MAX_NONCE = 64  # bytes, decoded
MAX_NONCES = 10_000
ONVIF_VERSION = (2, 40)

PUBLIC = frozenset({"GetSystemDateAndTime", "GetCapabilities", "GetServices"})
PROTECTED = frozenset({"GetDeviceInformation", "GetScopes"})

log = logging.getLogger("camscan.lab.onvif")


def http_service(ctx: Context) -> HttpService | None:
    onvif = ctx.persona.services.onvif
    if onvif is None:
        return None
    svc = getattr(ctx.persona.services, onvif.http, None)
    return svc if isinstance(svc, HttpService) else None


def device_xaddr(ctx: Context) -> str | None:
    """The device service URL as the persona advertises it (no port when it is the scheme's default, as
    cameras write it): http://10.77.0.11/onvif/device_service, http://127.77.0.11:8080/onvif/device_service."""
    onvif, svc = ctx.persona.services.onvif, http_service(ctx)
    if onvif is None or svc is None:
        return None
    scheme = "https" if svc.tls else "http"
    port = ctx.port(svc.port)
    host = ctx.ip if port == (443 if svc.tls else 80) else f"{ctx.ip}:{port}"
    return f"{scheme}://{host}{onvif.path}"


# ---------------------------------------------------------------------------------------------- envelopes

ENVELOPE_NS = (
    f'xmlns:env="{NS_SOAP}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    f'xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tt="{NS_TT}" xmlns:tds="{NS_TDS}" xmlns:ter="{NS_TER}"'
)

# Billion laughs: ten levels of ten references; `&lol9;` expands to 10**9 copies of "lol".
ENTITY_BOMB = (
    '<!DOCTYPE env:Envelope [\n <!ENTITY lol "lol">\n'
    + "".join(f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10))
    + "]>\n"
)


def _envelope(body: str, bomb: bool) -> bytes:
    doctype = ENTITY_BOMB if bomb else ""
    header = "<env:Header><tt:Note>&lol9;</tt:Note></env:Header>" if bomb else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}<env:Envelope {ENVELOPE_NS}>'
        f"{header}<env:Body>{body}</env:Body></env:Envelope>\n"
    ).encode()


def _fault(code: str, subcode: str | None, reason: str, detail: str | None = None) -> str:
    sub = f"<env:Subcode><env:Value>{subcode}</env:Value></env:Subcode>" if subcode else ""
    det = f"<env:Detail><env:Text>{escape(detail)}</env:Text></env:Detail>" if detail else ""
    return (
        f"<env:Fault><env:Code><env:Value>{code}</env:Value>{sub}</env:Code>"
        f'<env:Reason><env:Text xml:lang="en">{escape(reason)}</env:Text></env:Reason>{det}</env:Fault>'
    )


def _t(name: str, value: object) -> str:
    return f"<tt:{name}>{escape(str(value))}</tt:{name}>"


def _bool(name: str, value: bool) -> str:
    return _t(name, "true" if value else "false")


# ---------------------------------------------------------------------------------------------- the device


class OnvifDevice:
    def __init__(self, ctx: Context, onvif: OnvifService) -> None:
        self.ctx = ctx
        self.onvif = onvif
        self.bomb = ctx.persona.hostile.entity_bomb
        self.nonces: dict[bytes, float] = {}  # nonce -> when it may be forgotten (Created is then out of window)

    # -- responses

    def _answer(self, status: int, body: str) -> Response:
        return Response(status, [], _envelope(body, self.bomb), content_type=CONTENT_TYPE)

    def fault(self, status: int, code: str, subcode: str | None, reason: str, detail: str | None = None) -> Response:
        return self._answer(status, _fault(code, subcode, reason, detail))

    def not_authorized(self) -> Response:
        return self.fault(
            400,
            "env:Sender",
            "ter:NotAuthorized",
            "Sender not Authorized",
            "The action requested requires authorization and the sender is not authorized",
        )

    # -- authentication

    def authenticate(self, header: ET.Element | None, now: float | None = None) -> bool:
        """WS-Security UsernameToken with PasswordDigest; records the nonce when it succeeds."""
        if header is None:
            return False
        security = next((e for e in header if e.tag == f"{{{NS_WSSE}}}Security"), None)
        token = security.find(f"{{{NS_WSSE}}}UsernameToken") if security is not None else None
        if token is None:
            return False
        username = token.findtext(f"{{{NS_WSSE}}}Username") or ""
        password = token.find(f"{{{NS_WSSE}}}Password")
        nonce_b64 = token.findtext(f"{{{NS_WSSE}}}Nonce") or ""
        created = (token.findtext(f"{{{NS_WSU}}}Created") or "").strip()
        if password is None or password.get("Type") != PASSWORD_DIGEST or not created:
            return False
        try:
            nonce = base64.b64decode(nonce_b64.strip(), validate=True)
            when = datetime.fromisoformat(created)
        except (binascii.Error, ValueError):
            return False
        if not nonce or len(nonce) > MAX_NONCE or len(created) > 64:
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        now = time.time() if now is None else now
        if abs(when.timestamp() - now) > CLOCK_SKEW:
            return False
        user, secret = self.ctx.persona.credentials
        expected = base64.b64encode(hashlib.sha1(nonce + created.encode() + secret.encode()).digest())
        user_ok = hmac.compare_digest(username.strip().encode(), user.encode())
        digest_ok = hmac.compare_digest((password.text or "").strip().encode(), expected)
        if not (user_ok and digest_ok):
            return False
        self._forget_old_nonces(now)
        if nonce in self.nonces:
            return False  # replayed
        self.nonces[nonce] = now + 2 * CLOCK_SKEW
        return True

    def _forget_old_nonces(self, now: float) -> None:
        if len(self.nonces) < MAX_NONCES // 2:
            return
        for n in [n for n, until in self.nonces.items() if until < now]:
            del self.nonces[n]
        while len(self.nonces) >= MAX_NONCES:  # a flood of fresh nonces: drop the oldest
            del self.nonces[next(iter(self.nonces))]

    # -- operations

    def get_system_date_and_time(self, _req: ET.Element) -> str:
        now = datetime.now(UTC)

        def stamp(tag: str) -> str:
            return (
                f"<tt:{tag}><tt:Time>{_t('Hour', now.hour)}{_t('Minute', now.minute)}{_t('Second', now.second)}"
                f"</tt:Time><tt:Date>{_t('Year', now.year)}{_t('Month', now.month)}{_t('Day', now.day)}"
                f"</tt:Date></tt:{tag}>"
            )

        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            f"{_t('DateTimeType', 'Manual')}{_bool('DaylightSavings', False)}"
            f"<tt:TimeZone>{_t('TZ', 'UTC0')}</tt:TimeZone>{stamp('UTCDateTime')}{stamp('LocalDateTime')}"
            "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    def get_capabilities(self, _req: ET.Element) -> str:
        xaddr = device_xaddr(self.ctx) or ""
        major, minor = ONVIF_VERSION
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Device>"
            f"{_t('XAddr', xaddr)}"
            f"<tt:Network>{_bool('IPFilter', False)}{_bool('ZeroConfiguration', False)}"
            f"{_bool('IPVersion6', False)}{_bool('DynDNS', False)}</tt:Network>"
            f"<tt:System>{_bool('DiscoveryResolve', False)}{_bool('DiscoveryBye', True)}"
            f"{_bool('RemoteDiscovery', False)}{_bool('SystemBackup', False)}{_bool('SystemLogging', False)}"
            f"{_bool('FirmwareUpgrade', False)}"
            f"<tt:SupportedVersions>{_t('Major', major)}{_t('Minor', minor)}</tt:SupportedVersions></tt:System>"
            f"<tt:IO>{_t('InputConnectors', 0)}{_t('RelayOutputs', 0)}</tt:IO>"
            f"<tt:Security>{_bool('TLS1.1', False)}{_bool('TLS1.2', False)}{_bool('OnboardKeyGeneration', False)}"
            f"{_bool('AccessPolicyConfig', False)}{_bool('X.509Token', False)}{_bool('SAMLToken', False)}"
            f"{_bool('KerberosToken', False)}{_bool('RELToken', False)}</tt:Security>"
            "</tt:Device></tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def get_services(self, _req: ET.Element) -> str:
        xaddr = device_xaddr(self.ctx) or ""
        major, minor = ONVIF_VERSION
        return (
            "<tds:GetServicesResponse><tds:Service>"
            f"<tds:Namespace>{NS_TDS}</tds:Namespace><tds:XAddr>{escape(xaddr)}</tds:XAddr>"
            f"<tds:Version>{_t('Major', major)}{_t('Minor', minor)}</tds:Version>"
            "</tds:Service></tds:GetServicesResponse>"
        )

    def get_device_information(self, _req: ET.Element) -> str:
        o = self.onvif
        fields = [
            ("Manufacturer", o.manufacturer),
            ("Model", o.model),
            ("FirmwareVersion", o.firmware),
            ("SerialNumber", o.serial),
            ("HardwareId", o.hardware_id),
        ]
        inner = "".join(f"<tds:{k}>{escape(v)}</tds:{k}>" for k, v in fields)
        return f"<tds:GetDeviceInformationResponse>{inner}</tds:GetDeviceInformationResponse>"

    def get_scopes(self, _req: ET.Element) -> str:
        wsd = self.ctx.persona.services.wsd
        scopes = self.onvif.scopes or (wsd.scopes if wsd else [])
        items = []
        for scope in scopes:
            kind = "Configurable" if "/name/" in scope or "/location/" in scope else "Fixed"
            items.append(f"<tds:Scopes>{_t('ScopeDef', kind)}{_t('ScopeItem', scope)}</tds:Scopes>")
        return f"<tds:GetScopesResponse>{''.join(items)}</tds:GetScopesResponse>"

    # -- dispatch

    async def handle(self, req: Request) -> Response:
        if req.method != "POST":
            return Response(405, [("Allow", "POST")], b"Method Not Allowed", content_type="text/plain")
        try:
            root = SafeET.fromstring(req.body, forbid_dtd=True)
        except (ET.ParseError, ValueError, UnicodeError, LookupError):
            return self.fault(400, "env:Sender", "ter:WellFormed", "Well-formed Error", "XML is not well formed")
        if root.tag == f"{{{NS_SOAP11}}}Envelope":
            return self.fault(500, "env:VersionMismatch", None, "SOAP version mismatch")
        if root.tag != f"{{{NS_SOAP}}}Envelope":
            return self.fault(400, "env:Sender", "ter:InvalidArgVal", "Invalid Argument", "not a SOAP envelope")
        header = root.find(f"{{{NS_SOAP}}}Header")
        body = root.find(f"{{{NS_SOAP}}}Body")
        op = next((e for e in body if isinstance(e.tag, str)), None) if body is not None else None
        if op is None:
            return self.fault(400, "env:Sender", "ter:InvalidArgVal", "Invalid Argument", "empty Body")
        ns, _, name = op.tag[1:].partition("}") if op.tag.startswith("{") else ("", "", op.tag)
        if ns != NS_TDS or name not in PUBLIC | PROTECTED:
            return self.fault(500, "env:Receiver", "ter:ActionNotSupported", "Optional Action Not Implemented")
        if name in PROTECTED and not self.authenticate(header):
            log.info("%s: ONVIF %s refused (not authorised) from %s", self.ctx.persona.id, name, req.peer[0])
            return self.not_authorized()
        operations = {
            "GetSystemDateAndTime": self.get_system_date_and_time,
            "GetCapabilities": self.get_capabilities,
            "GetServices": self.get_services,
            "GetDeviceInformation": self.get_device_information,
            "GetScopes": self.get_scopes,
        }
        return self._answer(200, operations[name](op))


def register(ctx: Context) -> None:
    """Install the device service handler at the persona's ONVIF path (before the HTTP server starts)."""
    onvif = ctx.persona.services.onvif
    if onvif is None:
        return
    if http_service(ctx) is None:
        ctx.log.warning("%s: onvif.http names no HTTP service; ONVIF not served", ctx.persona.id)
        return
    ctx.http_handlers[onvif.path] = OnvifDevice(ctx, onvif).handle
