"""Where a product header or banner names its vendor: the places a maker's name conventionally stands.

Several Evidence values are product identifiers their maker writes for machines to read, and by convention
the vendor's name comes first:

- HTTP and RTSP `Server`, SIP `User-Agent`/`Server`: product tokens, `product/version` (RFC 9110 §10.1.5
  and §10.2.4, RFC 2326 §12.36, RFC 3261 §20.35/§20.41): `Yealink SIP-T46S 66.85.0.5`, `Sonos/70.3`.
- SSDP `SERVER` (UPnP Device Architecture 1.1 §1.1.2): `OS/version UPnP/1.1 product/version`; the vendor's
  product token is the one after `UPnP/x.y` (`Linux/3.10 UPnP/1.0 Sonos/70.3-12345`).
- SSH identification strings (RFC 4253 §4.2): `SSH-2.0-softwareversion`; network gear puts its maker there
  (`SSH-2.0-HUAWEI-1.5`, `SSH-2.0-Cisco-1.25`).
- FTP greetings (RFC 959 reply 220): `220 KONICA MINOLTA FTP server ready.`
- SNMP sysDescr (RFC 1213): "the full name and version identification of the system's hardware type,
  software operating-system, and networking software", which makers begin with their name.
- nmap's product field, which nmap's own service-probe conventions start with the vendor's name.
- HTML titles of device web interfaces, which start with the maker's name more often than not (`D-Link Print
  Server`, `APC UPS Network Management Card`); anything else in a title is left to the title rules.
- Device names as devices announce them by default, maker then model: a DNS-SD instance name (`Canon
  MF743C`), the ONVIF `name` scope of WS-Discovery (`onvif://www.onvif.org/name/Sunell%20IPR`, URL-decoded).

`places(key, value)` gives the offsets where a vendor name may begin; the engine reads the text from each
one through the reviewed maker-name rules (the ONVIF and UPnP manufacturer rules, then the exact names of
fingerprints/makers.yaml). Nothing here guesses: a name no reviewed rule or maker entry knows stays unknown,
and a name a rule calls shared (`IPCAM`, `General`) names no maker. Pure functions.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# The keys whose values carry a vendor's product token, and how far into the value to look.
KEYS = frozenset(
    {
        "http.server",
        "rtsp.server",
        "ssdp.server",
        "sip.user_agent",
        "ssh.banner",
        "ftp.banner",
        "snmp.sysdescr",
        "nmap.product",
        "http.title",
        "wsd.scope",
        "mdns.instance",
    }
)

_UPNP_TOKEN = re.compile(r"(?i)\bUPnP/\d+(?:\.\d+)?[,;]?\s+")
_SSH_PREFIX = re.compile(r"^SSH-\d+\.\d+-")
_FTP_PREFIX = re.compile(r"^\d{3}[- ]\s*")
_NAME_SCOPE = "onvif://www.onvif.org/name/"
HEAD = 64  # a maker's name is short: the text read from each place


def places(key: str, value: str) -> list[int]:
    """Offsets into `value` where, by its protocol's convention, a vendor's name may begin (first the
    strongest), for a key of KEYS; [] for any other key."""
    if key not in KEYS or not value:
        return []
    if key == "ssh.banner":
        m = _SSH_PREFIX.match(value)
        return [m.end()] if m else []
    if key == "ftp.banner":
        m = _FTP_PREFIX.match(value)
        return [m.end()] if m else []
    if key == "wsd.scope":
        return [len(_NAME_SCOPE)] if value[: len(_NAME_SCOPE)].lower() == _NAME_SCOPE else []
    found = [0]
    if key in ("ssdp.server", "http.server"):
        # `OS/version UPnP/1.0 product/version`: the product token after UPnP/x.y is the vendor's
        found.extend(m.end() for m in _UPNP_TOKEN.finditer(value) if m.end() < len(value))
        if len(found) > 1:
            found = [*found[1:], 0]
    return list(dict.fromkeys(found))


def text_at(key: str, value: str, place: int) -> str:
    """The text a vendor's name is read from at `place`: HEAD characters, URL-decoded where the key's values
    are URIs (a WS-Discovery scope: `Acme%20IPC`); any other value as the device sent it."""
    text = value[place : place + HEAD]
    return unquote(text) if key == "wsd.scope" and "%" in text else text


def ends_word(text: str, end: int, camel: bool = False) -> bool:
    """Whether a name read from the start of `text` up to `end` ends a word there: at the end or before a
    separator, and with `camel` also at a camel-case join (`AvigilonServer`, `AsusWRT`); never inside a word
    (`Ringtone`, `Googlebot`)."""
    if end >= len(text):
        return True
    nxt = text[end]
    if not nxt.isalnum():
        return True
    return camel and end > 0 and nxt.isupper() and text[end - 1].islower()


def starts_with_name(text: str, name: str) -> bool:
    """Whether `text` begins with `name` (case-insensitively) as a whole word: `Sonos/70.3` and
    `Nanox WEB DVR` begin with Sonos and Nanox; `Ringtone` and `RingCentral` do not begin with Ring."""
    n = len(name)
    if len(text) < n or text[:n].casefold() != name.casefold():
        return False
    return ends_word(text, n)


_ALTERNATIVES = re.compile(r"(?i)\s(?:or|and|/)\s")
_SDK = re.compile(r"(?i)^[^\s/]*sdk|^[^/]*\bsdk\b")


def names_nobody(text: str) -> bool:
    """Whether the text at a vendor's place still names no maker: makers named as alternatives (`LTS or
    Q-See DVR`), or a software kit whose author is not the device's maker (`Intel SDK for UPnP devices/1.3`,
    `PhilipsIntelSDK/1.4`: UPnP stacks many makers build in)."""
    return _ALTERNATIVES.search(text) is not None or _SDK.search(text) is not None
