"""A maker's name where a protocol puts the vendor's product token (scanner/fingerprint/vendor_token.py):
where it is read, through which names, and when it names nobody. Small rule files written here, so the
tests do not depend on the shipped rules."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.fingerprint import vendor_token
from scanner.fingerprint.engine import MIN_CONFIDENCE, VENDOR_TOKEN_CONFIDENCE, Engine
from scanner.fingerprint.rules import load_ruleset

NAMES = """
family: test.names
keys: [onvif.manufacturer]
rules:
  - id: placeholder
    match: '(?i)^(?:IPCAM|IP ?Camera)$'
    candidates: [Hikvision, Dahua]
    source: test
    examples: ['IPCAM']
  - id: hikvision
    match: '(?i)^\\s*hikvision'
    brand: Hikvision
    confidence: 0.85
    source: test
    examples: ['HIKVISION']
  - id: ezviz
    match: '(?i)^\\s*ezviz'
    brand: EZVIZ
    confidence: 0.85
    source: test
    examples: ['EZVIZ']
"""

SERVERS = """
family: test.server
keys: [http.server, ssdp.server, nmap.product, snmp.sysdescr, sip.user_agent, ssh.banner, ftp.banner]
rules:
  - id: shared-webs
    match: '^Webs$'
    candidates: [Hikvision, Dahua]
    source: test
    examples: ['Webs']
  - id: avtech-software
    match: '(?i)^Avtech TemPageR'
    device_type: other
    confidence: 0.85
    source: test
    examples: ['Avtech TemPageR 3E temperature monitor httpd']
  - id: known-sonos
    match: '^Sonos/known'
    manufacturer: Sonos
    confidence: 0.95
    source: test
    examples: ['Sonos/known']
"""


@pytest.fixture
def engine(rules_dir: Path) -> Engine:
    (rules_dir / "maker_names.yaml").write_text(textwrap.dedent(NAMES))
    (rules_dir / "servers.yaml").write_text(textwrap.dedent(SERVERS))
    return Engine(load_ruleset(rules_dir))


# -- where a vendor's name stands ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value", "texts"),
    [
        ("sip.user_agent", "Yealink SIP-T46S 66.85.0.5", ["Yealink SIP-T46S 66.85.0.5"]),
        ("ssdp.server", "Linux/3.10 UPnP/1.0 Sonos/70.3", ["Sonos/70.3", "Linux/3.10 UPnP/1.0 Sonos/70.3"]),
        ("http.server", "Linux, UPnP/1.0, Acme/2.0", ["Acme/2.0", "Linux, UPnP/1.0, Acme/2.0"]),
        ("ssh.banner", "SSH-2.0-HUAWEI-1.5", ["HUAWEI-1.5"]),
        ("ssh.banner", "not an identification string", []),
        ("ftp.banner", "220 KONICA MINOLTA FTP server ready.", ["KONICA MINOLTA FTP server ready."]),
        ("ftp.banner", "220-Welcome", ["Welcome"]),
        ("snmp.sysdescr", "Xerox DocuPrint N4525", ["Xerox DocuPrint N4525"]),
        ("http.title", "D-Link Print Server", ["D-Link Print Server"]),
        ("wsd.scope", "onvif://www.onvif.org/name/Acme%20IPC", ["Acme%20IPC"]),
        ("wsd.scope", "onvif://www.onvif.org/hardware/Acme", []),  # only the name scope
        ("mdns.instance", "Canon MF743C", ["Canon MF743C"]),
        ("telnet.banner", "Sonos", []),  # a greeting is free text after option negotiation
        ("http.server", "", []),
    ],
)
def test_places_follow_each_protocols_convention(key: str, value: str, texts: list[str]) -> None:
    assert [value[p:] for p in vendor_token.places(key, value)] == texts


def test_a_name_is_a_whole_word() -> None:
    assert vendor_token.starts_with_name("Ring/1.0", "Ring")
    assert vendor_token.starts_with_name("ring", "Ring")
    assert not vendor_token.starts_with_name("Ringtone Server", "Ring")
    assert not vendor_token.starts_with_name("RingCentral", "Ring")
    assert not vendor_token.starts_with_name("Rin", "Ring")
    assert vendor_token.ends_word("AvigilonServer/2.1", 8, camel=True)
    assert not vendor_token.ends_word("Googlebot", 6, camel=True)


@pytest.mark.parametrize(
    "text",
    ["LTS or Q-See DVR video server", "Intel SDK for UPnP devices/1.3.1", "PhilipsIntelSDK/1.4", "A / B camera"],
)
def test_alternatives_and_software_kits_name_nobody(text: str) -> None:
    assert vendor_token.names_nobody(text)


@given(st.sampled_from(sorted(vendor_token.KEYS)), st.text(max_size=200))
def test_places_are_offsets_inside_the_value(key: str, value: str) -> None:
    found = vendor_token.places(key, value)
    assert len(found) == len(set(found))
    assert all(0 <= p < max(len(value), 1) for p in found)


# -- what the engine makes of it ----------------------------------------------------------------------
def test_an_exact_maker_name_as_the_product_token_names_that_maker(engine: Engine) -> None:
    r = engine.identify([("ssdp.server", "Linux/3.10 UPnP/1.0 Sonos/70.3-35220")])
    assert (r.manufacturer, r.brand) == ("Sonos", "Sonos")
    assert r.matched == ["test.server/vendor-token"]
    assert r.confidence == pytest.approx(VENDOR_TOKEN_CONFIDENCE) and VENDOR_TOKEN_CONFIDENCE >= MIN_CONFIDENCE
    assert r.device_type == "other"  # Sonos makes no cameras (makers.yaml kind other)
    assert "vendor" in r.hits[0].source


def test_a_name_goes_through_the_reviewed_manufacturer_rules(engine: Engine) -> None:
    r = engine.identify([("sip.user_agent", "EZVIZ DoorPhone 1.0")])
    assert (r.manufacturer, r.brand) == ("Hikvision", "EZVIZ")  # an owned brand names its owner
    assert "test.names/ezviz" in r.hits[0].source


def test_a_camera_makers_name_alone_does_not_say_it_is_a_camera(engine: Engine) -> None:
    r = engine.identify([("nmap.product", "Nanox Web Digital Video Recorder http config")])
    assert r.manufacturer == "Nanox"
    assert r.device_type is None  # its print servers and gateways carry the same name


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("http.server", "Webs"),  # a rule calls it shared
        ("sip.user_agent", "IPCAM SIP 1.0"),  # a placeholder the name rules call shared
        ("nmap.product", "LTS or Q-See DVR video server"),
        ("ssdp.server", "Linux/2.6 UPnP/1.0 Intel SDK for UPnP devices/1.3.1"),
        ("nmap.product", "Avtech TemPageR 3E temperature monitor httpd"),  # a rule says: not the camera maker
        ("http.server", "Ringtone Server/1.0"),
        ("http.title", "RingCentral Phone"),  # no camel-case join for an exact maker name
        ("telnet.banner", "Sonos"),
        ("http.server", "Sonos/known"),  # a rule knows it: no second opinion from the token
    ],
)
def test_no_token_hit_where_the_name_is_not_a_vendors(engine: Engine, key: str, value: str) -> None:
    assert not any(h.rule.endswith("/vendor-token") for h in engine.identify([(key, value)]).hits)


def test_a_name_rule_must_end_on_a_word(engine: Engine) -> None:
    """The name rules match a field's start (`^\\s*hikvision`); in a header the name must end a word there."""
    assert engine.identify([("http.server", "Hikvisionary/1.0")]).manufacturer is None
    assert engine.identify([("http.server", "HikvisionServer/1.0")]).manufacturer == "Hikvision"  # camel-case join


def test_the_token_is_a_label_another_makers_firmware_outweighs(engine: Engine) -> None:
    r = engine.identify([("http.server", "Sonos/known"), ("ssdp.server", "Linux UPnP/1.0 Hikvision/1.0")])
    assert r.manufacturer == "Sonos"
    assert [c.manufacturer for c in r.conflicts] == ["Hikvision"]


_SHIPPED: list[Engine] = []


def _shipped() -> Engine:
    if not _SHIPPED:
        _SHIPPED.append(Engine(load_ruleset()))
    return _SHIPPED[0]


@settings(deadline=None)  # the first example loads the shipped rules
@given(
    st.sampled_from(sorted(vendor_token.KEYS)),
    st.one_of(
        st.text(max_size=120),
        st.builds(lambda a, b: a + b, st.sampled_from(["Hikvision", "Sonos/", "SSH-2.0-", "220 ", "ring"]), st.text()),
    ),
)
def test_any_value_gives_a_known_label_or_none(key: str, value: str) -> None:
    """Whatever a device sends, the shipped engine raises nothing and a vendor token names a maker of makers.yaml."""
    engine = _shipped()
    result = engine.identify([(key, value)])
    for hit in result.hits:
        if hit.rule.endswith("/vendor-token"):
            assert hit.brand in engine.ruleset.makers
