"""Identification with the shipped rules: relabels, shared banners, OUI look-alikes, covered brands."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.fingerprint.engine import Engine
from scanner.fingerprint.rules import load_ruleset

DAHUA_REALM = 'Digest realm="Login to AMC0123456789ABCDE", qop="auth", nonce="8f6a1d", opaque="5ccc069c"'


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_ruleset())


def ident(engine: Engine, *pairs: tuple[str, str]) -> tuple[str | None, str | None]:
    r = engine.identify(list(pairs))
    return r.manufacturer, r.brand


@pytest.mark.parametrize(
    "firmware_evidence",
    [
        ("onvif.model", "IPC-HDW2431T-AS"),  # Dahua's model-number scheme
        ("http.www_authenticate", DAHUA_REALM),  # Dahua's web UI login realm
        ("dhip.device_type", "IPC-HDW2431T-AS-S2"),  # a DHDiscover answer
    ],
    ids=["model-number", "web-ui", "dhip"],
)
def test_amcrest_label_with_dahua_firmware_evidence_is_dahua_made(engine: Engine, firmware_evidence) -> None:  # type: ignore[no-untyped-def]
    r = engine.identify([("onvif.manufacturer", "Amcrest"), firmware_evidence])
    assert (r.manufacturer, r.brand) == ("Dahua", "Amcrest")
    assert r.relabel is not None and r.relabel.relationship == "oem_reported"
    assert r.confidence >= 0.8


def test_amcrest_label_alone_is_not_enough(engine: Engine) -> None:
    assert ident(engine, ("onvif.manufacturer", "Amcrest")) == ("Amcrest", "Amcrest")
    assert ident(engine, ("onvif.manufacturer", "Amcrest"), ("onvif.model", "IP8M-2496EB")) == ("Amcrest", "Amcrest")


@pytest.mark.parametrize(
    ("pairs", "maker", "brand"),
    [
        ([("onvif.manufacturer", "EZVIZ")], "Hikvision", "EZVIZ"),
        ([("onvif.model", "CS-C6N-A0-1C2WFR")], "Hikvision", "EZVIZ"),
        ([("sadp.device_description", "IPC-B121H")], "Hikvision", "HiLook"),
        ([("onvif.manufacturer", "HIKVISION"), ("onvif.model", "DS-2CD2143G2-I")], "Hikvision", "Hikvision"),
        ([("mac", "44:19:b6:00:00:01")], "Hikvision", "Hikvision"),
        ([("mac", "64:f2:fb:27:3d:56")], "Hikvision", "EZVIZ"),
        ([("dhip.device_type", "DHI-NVR4108HS-8P-4KS2")], "Dahua", "Dahua"),
        ([("mac", "f8:ce:07:12:34:56")], "Dahua", "Dahua"),
        ([("onvif.manufacturer", "LTS"), ("http.server", "App-webs/")], "Hikvision", "LTS"),
        ([("onvif.manufacturer", "AXIS"), ("mac", "ac:cc:8e:12:34:56")], "Axis", "Axis"),
    ],
)
def test_covered_makers_and_their_brands(engine: Engine, pairs, maker, brand) -> None:  # type: ignore[no-untyped-def]
    assert ident(engine, *pairs) == (maker, brand)


@pytest.mark.parametrize(
    "pairs",
    [
        [("wsd.scope", "onvif://www.onvif.org/location/city/hangzhou")],  # shared by several Chinese makers
        [("http.server", "Boa/0.94.14rc21")],
        [("http.server", "GoAhead-Webs")],
        [("ssh.banner", "SSH-2.0-dropbear_2019.78")],
        [("port.open", "8000/tcp")],  # Hikvision's SDK port, but also a common web port
        [("port.open", "554/tcp"), ("port.open", "80/tcp")],
    ],
)
def test_shared_or_weak_evidence_names_no_confident_maker(engine: Engine, pairs) -> None:  # type: ignore[no-untyped-def]
    r = engine.identify(pairs)
    assert r.manufacturer is None and r.confidence == 0.0


def _lookalike_macs() -> list[tuple[str, str]]:
    table = load_ruleset().oui
    assert table is not None
    return [(lk.registry_name, mac) for lk in table.lookalikes for mac in lk.examples]


@pytest.mark.parametrize(("registry_name", "mac"), _lookalike_macs())
def test_oui_lookalikes_are_not_mistaken(engine: Engine, registry_name: str, mac: str) -> None:
    r = engine.identify([("mac", mac)])
    assert r.manufacturer is None, f"{registry_name} ({mac}) was taken for {r.manufacturer}"


def test_every_hikvision_and_dahua_registration_is_mapped(engine: Engine) -> None:
    from netaddr.eui import ieee

    names = set()
    registry = Path(ieee.__file__).with_name("oui.txt")
    with registry.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if "(hex)" in line:
                org = line.split("(hex)", 1)[1].strip()
                low = org.lower()
                if "hikvision" in low or ("dahua" in low and "scale" not in low):
                    names.add(org)
    assert names, "the bundled registry lists Hikvision and Dahua"
    table = engine.ruleset.oui
    from scanner.fingerprint.oui import fold

    mapped = {fold(n): r.manufacturer for r in table.rules for n in r.registry_names}
    for org in sorted(names):
        assert fold(org) in mapped, f"IEEE registrant {org!r} is not in fingerprints/oui.yaml"
        assert mapped[fold(org)] in ("Hikvision", "Dahua"), (org, mapped[fold(org)])


def test_non_cameras_are_not_cameras(engine: Engine) -> None:
    printer = engine.identify([("mdns.service", "_ipp._tcp.local."), ("http.title", "Synology DiskStation")])
    assert printer.device_type == "other"
    hp = engine.identify([("http.server", "HP HTTP Server; HP OfficeJet Pro 9010 series - 1KR53A; Serial Number: X")])
    assert (hp.manufacturer, hp.device_type) == ("HP", "other")


def test_an_unlisted_manufacturer_label_is_reported_as_the_device_states_it(engine: Engine) -> None:
    r = engine.identify(
        [
            ("onvif.manufacturer", "Zhejiang Acme Vision Technology Co., Ltd."),
            ("wsd.type", "dn:NetworkVideoTransmitter"),
        ]
    )
    assert (r.manufacturer, r.device_type) == ("Acme Vision", "camera")
    assert r.confidence < 0.7 and "onvif.manufacturer/unlisted-manufacturer" in r.matched
    for placeholder in ("IPCAM", "General", "Manufacturer", "<script>x</script>", "=cmd|' /C calc'!A0"):
        assert engine.identify([("onvif.manufacturer", placeholder)]).manufacturer is None, placeholder
    # a known maker's label is never replaced, and a covered maker is never reported this way by accident
    assert engine.identify([("onvif.manufacturer", "HIKVISION")]).manufacturer == "Hikvision"
