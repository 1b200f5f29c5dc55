"""The shipped policy packs: every example holds, and the regimes flag what they must and nothing else."""

from __future__ import annotations

import pytest

from scanner.fingerprint.engine import Engine
from scanner.fingerprint.rules import load_ruleset
from scanner.model import Evidence, Host
from scanner.policy.packs import PackError, check_examples, load_packs
from scanner.report.build import build_device

REGIMES = ("us-ndaa-889", "us-fcc-covered-list", "uk-cabinet-office-2022", "us-la-procurement")


def _checks():  # type: ignore[no-untyped-def]
    try:
        return check_examples(load_packs(load_ruleset().makers))
    except PackError as exc:
        return [exc]


CHECKS = _checks()


@pytest.mark.parametrize(
    "check", CHECKS, ids=[getattr(c, "pack", "load") + ":" + getattr(c, "example", "") for c in CHECKS]
)
def test_pack_example_holds(check) -> None:  # type: ignore[no-untyped-def]
    assert not isinstance(check, Exception), str(check)
    assert check.ok, f"{check.pack}: {check.example}: {check.message}"


@pytest.fixture(scope="module")
def assess():  # type: ignore[no-untyped-def]
    engine = Engine(load_ruleset())
    packs = load_packs(engine.ruleset.makers)
    assert {p.id for p in packs} >= {*REGIMES, "camera-risk"}

    def run(*pairs: tuple[str, str]):  # type: ignore[no-untyped-def]
        host = Host(id="h", evidence=[Evidence(key=k, value=v) for k, v in pairs])
        return build_device(host, engine, packs)

    return run


HIKVISION_MADE = {
    "hikvision": [("onvif.manufacturer", "HIKVISION"), ("onvif.model", "DS-2CD2143G2-I"), ("http.server", "App-webs/")],
    "hilook": [("sadp.device_description", "IPC-B121H"), ("sadp.software_version", "V5.5.0build 170725")],
    "ezviz": [("onvif.manufacturer", "EZVIZ"), ("onvif.model", "CS-C6N-A0-1C2WFR")],
    "lts-relabel": [("onvif.manufacturer", "LTS"), ("http.server", "App-webs/"), ("mac", "14:2f:fd:2e:40:56")],
    "nvr": [("sadp.device_description", "DS-7608NI-K2/8P"), ("mac", "c0:56:e3:4b:20:12")],
}
DAHUA_MADE = {
    "dahua": [("dhip.device_type", "IPC-HDW2431T-AS-S2"), ("mac", "f8:ce:07:12:34:56")],
    "amcrest-relabel": [
        ("onvif.manufacturer", "Amcrest"),
        ("http.www_authenticate", 'Digest realm="Login to AMC0123456789ABCDE", qop="auth", nonce="1", opaque="2"'),
    ],
    "nvr": [("onvif.model", "DHI-NVR4108HS-8P-4KS2")],
}


@pytest.mark.parametrize(
    ("maker", "pairs"),
    [("Hikvision", p) for p in HIKVISION_MADE.values()] + [("Dahua", p) for p in DAHUA_MADE.values()],
    ids=[f"hikvision-{k}" for k in HIKVISION_MADE] + [f"dahua-{k}" for k in DAHUA_MADE],
)
def test_covered_devices_carry_each_regime_with_citation(assess, maker: str, pairs) -> None:  # type: ignore[no-untyped-def]
    device = assess(*pairs)
    assert device.manufacturer == maker
    assert device.flagged
    by_pack = {f.policy: f for f in device.findings if f.kind == "regime"}
    assert set(by_pack) >= set(REGIMES), sorted(by_pack)
    for f in by_pack.values():
        assert f.citation and "http" in f.citation
        assert f.remediation and f.title
        assert f.evidence, "a finding names the evidence it rests on"


@pytest.mark.parametrize(
    ("name", "pairs"),
    [
        (
            "axis",
            [("onvif.manufacturer", "AXIS"), ("mac", "ac:cc:8e:12:34:56"), ("mdns.service", "_axis-video._tcp.local.")],
        ),
        ("hanwha", [("onvif.manufacturer", "Hanwha Vision"), ("onvif.model", "XNV-6080")]),
        ("amcrest-label-only", [("onvif.manufacturer", "Amcrest"), ("onvif.model", "IP8M-2496EB")]),
        ("lorex-label-only", [("onvif.manufacturer", "Lorex")]),
        ("hp-printer", [("http.server", "HP HTTP Server; HP OfficeJet Pro 9010 series - 1KR53A; Serial Number: X")]),
        ("unknown", [("http.server", "Boa/0.94.14rc21")]),
    ],
)
def test_others_are_not_flagged(assess, name: str, pairs) -> None:  # type: ignore[no-untyped-def]
    device = assess(*pairs)
    assert not device.flagged, [f.rule for f in device.findings]


def test_label_only_relabel_gets_a_note_not_a_finding(assess) -> None:  # type: ignore[no-untyped-def]
    device = assess(("onvif.manufacturer", "Amcrest"))
    assert not device.flagged
    assert any("Dahua" in n and "verify" in n for n in device.notes)
