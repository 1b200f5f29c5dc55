"""Persona files (scanner/lab/personas/*.yaml): one simulated device, the services it runs, what it says.

Values come from public documentation and fingerprint databases (each persona names its sources); the
`expect` block is what camscan should conclude about it, for the tests and the demo's truth table.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scanner.errors import CamscanError

PERSONA_DIR = Path(__file__).resolve().parent / "personas"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expect(_M):
    manufacturer: str | None
    brand: str | None = None
    model: str | None = None
    firmware: str | None = None
    device_type: str | None = None
    flagged: bool = False  # breaks a regime pack rule (us-ndaa-889 and friends)


class HttpRoute(_M):
    status: int = 200
    reason: str | None = None
    headers: list[tuple[str, str]] = Field(default_factory=list, description="in the order the device sends them")
    body: str = ""
    body_base64: str | None = None
    content_type: str | None = "text/html"
    auth: bool = False  # answer 401 with the service's challenge unless the request carries credentials


class HttpAuth(_M):
    scheme: Literal["basic", "digest"]
    realm: str
    # the WWW-Authenticate header exactly as the device sends it; {nonce} is replaced by a fresh nonce
    header: str | None = None


class Certificate(_M):
    subject: str = Field(description="RFC 4514, e.g. CN=IPC,O=HIKVISION,C=CN")
    issuer: str | None = Field(default=None, description="RFC 4514; default: self-signed (issuer = subject)")


class HttpService(_M):
    port: int = 80
    tls: bool = False
    certificate: Certificate | None = None
    server: str | None = None  # the Server header, placed where `header_order` says
    # headers every answer carries, in order; "Date" gets the current date, "Server" the server string
    header_order: list[str] = Field(default_factory=lambda: ["Date", "Server"])
    routes: dict[str, HttpRoute] = Field(default_factory=dict)
    not_found: HttpRoute = Field(
        default_factory=lambda: HttpRoute(status=404, body="Not Found", content_type="text/plain")
    )
    auth: HttpAuth | None = None


class RtspService(_M):
    port: int = 554
    server: str | None = None
    auth: HttpAuth | None = None  # OPTIONS answers without auth; DESCRIBE is challenged when set
    public: str = "OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER"


class OnvifService(_M):
    http: str = "http"  # the key of the HTTP service that carries the device service
    path: str = "/onvif/device_service"
    manufacturer: str
    model: str
    firmware: str
    serial: str
    hardware_id: str
    scopes: list[str] = Field(default_factory=list)


class WsdService(_M):
    types: list[str] = Field(default_factory=lambda: ["dn:NetworkVideoTransmitter", "tds:Device"])
    scopes: list[str] = Field(default_factory=list)
    hello: bool = True
    endpoint_uuid: str | None = None  # default: derived from the persona id


class MdnsRecord(_M):
    type: str  # "_axis-video._tcp.local."
    name: str  # instance name, without the type
    port: int = 80
    txt: dict[str, str] = Field(default_factory=dict)


class SsdpService(_M):
    server: str
    st: list[str] = Field(default_factory=lambda: ["upnp:rootdevice"])
    http: str = "http"
    location: str = "/upnp/description.xml"
    description: dict[str, str] = Field(
        default_factory=dict, description="UPnP device fields: friendlyName, manufacturer, ..."
    )
    device_type: str = "urn:schemas-upnp-org:device:Basic:1"


class SipService(_M):
    """A SIP user agent on UDP 5060 (door stations, intercoms): it answers OPTIONS with 200 OK."""

    server: str  # the Server header of its answers
    allow: str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER"


class SnmpService(_M):
    """An SNMP agent on UDP 161: a GetRequest with its community gets sysDescr.0 (and sysObjectID.0 when the
    persona has one); any other is ignored."""

    sysdescr: str
    sysobjectid: str | None = None
    community: str = "public"


class TcpBanner(_M):
    port: int
    banner: str | None = None  # sent on connect (telnet, FTP, SSH); None: accept and wait silently


class Hostile(_M):
    """Misbehaviour for the hostile persona: camscan must survive it and inject nothing."""

    oversize_wsd: bool = False  # a ProbeMatch of several hundred kB, and a malformed one
    entity_bomb: bool = False  # an XML entity expansion bomb in SOAP answers
    trickle_seconds: float = 0.0  # send HTTP answers a few bytes at a time over this long
    oversize_http_header: bool = False  # a Server header of 200 kB


class Services(_M):
    http: HttpService | None = None
    https: HttpService | None = None
    rtsp: RtspService | None = None
    onvif: OnvifService | None = None
    wsd: WsdService | None = None
    mdns: list[MdnsRecord] = Field(default_factory=list)
    ssdp: SsdpService | None = None
    sadp: dict[str, str] | None = None  # Hikvision SADP reply fields, XML element name -> value
    dhip: dict[str, str] | None = None  # Dahua DHDiscover reply fields (params.deviceInfo)
    sip: SipService | None = None
    snmp: SnmpService | None = None
    tcp: list[TcpBanner] = Field(default_factory=list)


class Persona(_M):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")
    name: str
    description: str = ""
    sources: list[str] = Field(min_length=1, description="where the device's strings come from")
    mac: str = Field(pattern=r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
    ip: str = Field(description="its address in the netns lab (10.77.0.0/24); loopback mode uses 127.77.0.<same>")
    hostname: str | None = None
    credentials: tuple[str, str] = ("admin", "camscan-lab")
    expect: Expect
    services: Services
    hostile: Hostile = Field(default_factory=Hostile)

    @field_validator("ip")
    @classmethod
    def _in_lab_subnet(cls, v: str) -> str:
        addr = ipaddress.ip_address(v)
        if addr not in ipaddress.ip_network("10.77.0.0/24") or int(addr) & 0xFF in (0, 1, 2, 255):
            raise ValueError("persona addresses live in 10.77.0.3-254 (.1 is the bridge, .2 the scanner)")
        return v

    def loopback_ip(self) -> str:
        return "127.77.0." + self.ip.rsplit(".", 1)[1]


class PersonaError(CamscanError, ValueError):
    pass


def load_persona(path: Path) -> Persona:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Persona.model_validate(doc)
    except (yaml.YAMLError, ValidationError, OSError) as exc:
        raise PersonaError(f"{path.name}: {exc}") from None


def persona_files(directory: Path | None = None) -> list[tuple[Path, Persona]]:
    """(file, persona) for every persona file of a directory; ids, addresses and MACs must be unique."""
    found = [(f, load_persona(f)) for f in sorted((directory or PERSONA_DIR).glob("*.yaml"))]
    seen: dict[str, str] = {}
    for _, p in found:
        for key in (p.id, p.ip, p.mac):
            if key in seen:
                raise PersonaError(f"{p.id}: {key} is also used by {seen[key]}")
            seen[key] = p.id
    return found


def load_personas(directory: Path | None = None) -> list[Persona]:
    return [p for _, p in persona_files(directory)]
