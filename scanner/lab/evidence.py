"""The Evidence a scan of a persona would collect, read from its persona file.

`camscan demo` uses this until live scanning lands (and says so in the report); the end-to-end tests
use it to check that what a real scan finds agrees with what the persona says. Only what an
unauthenticated scanner would see is included: no ONVIF GetDeviceInformation (it needs credentials).
"""

from __future__ import annotations

import base64
import html
import re

from scanner.lab.persona import HttpService, Persona
from scanner.model import Evidence, field_key
from scanner.probes.banner import ftp_greeting

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
BANNER_KEYS = {21: "ftp.banner", 22: "ssh.banner", 23: "telnet.banner"}


def _http(svc: HttpService, persona: Persona, tls: bool) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if svc.server:
        out.append(("http.server", svc.server))
    if tls and svc.certificate:
        out.append(("tls.subject", svc.certificate.subject))
        out.append(("tls.issuer", svc.certificate.issuer or svc.certificate.subject))
    root = svc.routes.get("/")
    if root is None:
        return out
    if 300 <= root.status < 400:
        loc = next((v for k, v in root.headers if k.lower() == "location"), None)
        if loc:
            out.append(("http.redirect", loc))
    elif (root.auth or root.status == 401) and svc.auth:
        out.append(
            (
                "http.www_authenticate",
                (svc.auth.header or f'{svc.auth.scheme.capitalize()} realm="{svc.auth.realm}"').replace(
                    "{nonce}", "0" * 32
                ),
            )
        )
    else:
        body = base64.b64decode(root.body_base64).decode("utf-8", "replace") if root.body_base64 else root.body
        m = _TITLE.search(body)
        if m:
            out.append(("http.title", html.unescape(m.group(1)).strip()))
        if body:
            out.append(("http.body", body[:65536]))
    return out


def persona_evidence(persona: Persona, with_mac: bool = True) -> list[Evidence]:
    s = persona.services
    pairs: list[tuple[str, str]] = []
    if with_mac:
        pairs.append(("mac", persona.mac))
    if persona.hostname:
        pairs.append(("hostname", persona.hostname))
    ports: list[int] = []
    for svc, tls in ((s.http, False), (s.https, True)):
        if svc is not None:
            pairs += _http(svc, persona, tls)
            ports.append(svc.port)
    if s.rtsp is not None:
        ports.append(s.rtsp.port)
        if s.rtsp.server:
            pairs.append(("rtsp.server", s.rtsp.server))
        if s.rtsp.auth is not None:
            a = s.rtsp.auth
            pairs.append(
                (
                    "rtsp.www_authenticate",
                    (a.header or f'{a.scheme.capitalize()} realm="{a.realm}"').replace("{nonce}", "0" * 32),
                )
            )
    for banner in s.tcp:
        ports.append(banner.port)
        if banner.banner and banner.port in BANNER_KEYS:
            if banner.port == 21:  # the whole greeting, its lines joined (docs/evidence.md)
                value = " ".join(ftp_greeting(banner.banner.encode("utf-8"))[0])
            else:
                value = banner.banner.splitlines()[0] if banner.port != 23 else banner.banner[:256]
            pairs.append((BANNER_KEYS[banner.port], value))
    pairs += [("port.open", f"{p}/tcp") for p in sorted(set(ports))]
    if s.wsd is not None:
        pairs += [("wsd.type", t) for t in s.wsd.types]
        scopes = s.wsd.scopes or (s.onvif.scopes if s.onvif else [])
        pairs += [("wsd.scope", sc) for sc in scopes]
    for rec in s.mdns:
        pairs += [("mdns.service", rec.type), ("mdns.instance", f"{rec.name}.{rec.type}")]
        pairs += [("mdns.txt", f"{k}={v}") for k, v in rec.txt.items()]
    if s.ssdp is not None:
        pairs.append(("ssdp.server", s.ssdp.server))
        pairs += [("ssdp.st", st) for st in s.ssdp.st]
        names = {
            "friendlyName": "upnp.friendly_name",
            "manufacturer": "upnp.manufacturer",
            "manufacturerURL": "upnp.manufacturer_url",
            "modelName": "upnp.model_name",
            "modelNumber": "upnp.model_number",
            "modelDescription": "upnp.model_description",
        }
        pairs += [(names[k], v) for k, v in s.ssdp.description.items() if k in names]
    for prefix, fields in (("sadp", s.sadp), ("dhip", s.dhip)):
        pairs += [(field_key(prefix, k), v) for k, v in (fields or {}).items()]
    return [Evidence(key=k, value=v, source="persona file") for k, v in pairs]
