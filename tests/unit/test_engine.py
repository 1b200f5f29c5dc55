"""How the engine combines evidence, on small rule files written by each test (independent of the data)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from scanner.fingerprint.engine import MIN_CONFIDENCE, Engine
from scanner.fingerprint.rules import load_ruleset

RULES = """
family: test.fw
keys: [http.server, onvif.model]
rules:
  - id: hik-webs
    match: '^App-webs/'
    manufacturer: Hikvision
    device_type: camera
    confidence: 0.95
    source: test
    examples: ['App-webs/']
  - id: dahua-model
    match: '^(?:DH-)?(?P<model>IPC-H[A-Z]{2,4}\\d[\\w-]*)$'
    manufacturer: Dahua
    device_type: camera
    confidence: 0.95
    source: test
    examples: [{value: 'IPC-HDW2431T-AS', model: 'IPC-HDW2431T-AS'}]
  - id: dahua-nvr
    match: '^(?P<model>NVR\\d{4}[\\w-]*)$'
    manufacturer: Dahua
    device_type: recorder
    confidence: 0.9
    source: test
    examples: [{value: 'NVR4108HS-8P-4KS2', model: 'NVR4108HS-8P-4KS2'}]
  - id: shared-boa
    match: '^Boa/'
    candidates: [Hikvision, Dahua, Axis]
    source: test
    examples: ['Boa/0.94.14rc21']
  - id: weak-hint
    match: '^weak$'
    manufacturer: Hikvision
    confidence: 0.6
    source: test
    examples: ['weak']
---
"""

LABELS = """
family: test.label
keys: [onvif.manufacturer]
rules:
  - id: amcrest
    match: '(?i)^amcrest$'
    brand: Amcrest
    confidence: 0.9
    source: test
    examples: ['Amcrest']
  - id: ezviz
    match: '(?i)^ezviz$'
    brand: EZVIZ
    confidence: 0.9
    source: test
    examples: ['EZVIZ']
  - id: axis
    match: '(?i)^axis$'
    brand: Axis
    confidence: 0.9
    source: test
    examples: ['AXIS']
  - id: lorex
    match: '(?i)^lorex$'
    brand: Lorex
    confidence: 0.9
    source: test
    examples: ['Lorex']
"""


@pytest.fixture
def engine(rules_dir: Path) -> Engine:
    (rules_dir / "fw.yaml").write_text(textwrap.dedent(RULES).split("---")[0])
    (rules_dir / "labels.yaml").write_text(textwrap.dedent(LABELS))
    return Engine(load_ruleset(rules_dir))


def test_firmware_evidence_names_the_maker(engine: Engine) -> None:
    r = engine.identify([("http.server", "App-webs/")])
    assert (r.manufacturer, r.brand, r.device_type) == ("Hikvision", "Hikvision", "camera")
    assert r.confidence == pytest.approx(0.95)
    assert r.matched == ["test.fw/hik-webs"]


def test_relabel_maker_from_firmware_brand_from_label(engine: Engine) -> None:
    r = engine.identify([("onvif.manufacturer", "Amcrest"), ("onvif.model", "IPC-HDW2431T-AS")])
    assert (r.manufacturer, r.brand, r.model) == ("Dahua", "Amcrest", "IPC-HDW2431T-AS")
    assert r.relabel is not None and r.relabel.relationship == "oem_reported"
    assert not r.conflicts  # a reported OEM label agrees with its maker
    assert r.confidence > 0.95  # the label supports the firmware maker


def test_label_alone_is_not_enough_for_an_oem_maker(engine: Engine) -> None:
    r = engine.identify([("onvif.manufacturer", "Amcrest")])
    assert (r.manufacturer, r.brand) == ("Amcrest", "Amcrest")
    r = engine.identify([("onvif.manufacturer", "Lorex")])  # historic affiliate: the label dates nothing
    assert (r.manufacturer, r.brand) == ("Lorex", "Lorex")


def test_owned_brand_label_names_its_owner(engine: Engine) -> None:
    r = engine.identify([("onvif.manufacturer", "EZVIZ")])
    assert (r.manufacturer, r.brand) == ("Hikvision", "EZVIZ")
    assert r.relabel is not None and r.relabel.relationship == "owned"


def test_shared_banner_names_no_maker(engine: Engine) -> None:
    r = engine.identify([("http.server", "Boa/0.94.14rc21")])
    assert r.manufacturer is None and r.brand is None and r.confidence == 0.0
    assert r.matched == ["test.fw/shared-boa"]  # but the reason is still shown


def test_weak_hint_alone_is_below_the_bar(engine: Engine) -> None:
    assert MIN_CONFIDENCE > 0.6
    assert engine.identify([("http.server", "weak")]).manufacturer is None


def test_conflict_is_kept_and_lowers_confidence(engine: Engine) -> None:
    alone = engine.identify([("http.server", "App-webs/")])
    r = engine.identify([("http.server", "App-webs/"), ("onvif.manufacturer", "AXIS")])
    assert r.manufacturer == "Hikvision"
    assert [c.manufacturer for c in r.conflicts] == ["Axis"]
    assert r.conflicts[0].rules == ["test.label/axis"]
    assert r.confidence < alone.confidence


def test_independent_evidence_adds_up(engine: Engine) -> None:
    one = engine.identify([("onvif.model", "IPC-HDW2431T-AS")])
    two = engine.identify([("onvif.model", "IPC-HDW2431T-AS"), ("onvif.manufacturer", "Amcrest")])
    assert two.confidence > one.confidence


def test_recorder_model_sets_device_type(engine: Engine) -> None:
    r = engine.identify([("onvif.model", "NVR4108HS-8P-4KS2")])
    assert (r.manufacturer, r.device_type, r.model) == ("Dahua", "recorder", "NVR4108HS-8P-4KS2")


def test_huge_values_are_capped_before_matching(engine: Engine) -> None:
    hits = engine.match("http.server", "App-webs/" + "A" * 5_000_000)
    assert hits and len(hits[0].value) == 4096


def test_unknown_evidence_gives_an_empty_identity(engine: Engine) -> None:
    r = engine.identify([("http.server", "nothing known"), ("no.such.key", "x")])
    assert r.identify_line("h") == {
        "id": "h",
        "manufacturer": None,
        "brand": None,
        "model": None,
        "firmware": None,
        "device_type": None,
        "confidence": 0.0,
        "matched": [],
    }


# -- a MAC a rule extracts (named group `mac`) is looked up like `mac` Evidence -----------------------------------

MAC_REALM = """
family: test.realm
keys: [rtsp.www_authenticate]
rules:
  - id: mac-realm
    match: 'realm="(?P<mac>[0-9a-fA-F]{12})"'
    source: test
    examples: [{value: 'realm="b4a38201a73f"', mac: 'b4:a3:82:01:a7:3f'}]
"""


@pytest.fixture
def mac_engine(rules_dir: Path) -> Engine:
    """The test realm rule with camscan's OUI table over the shipped registry (the IEEE listing of 2026-10-01)."""
    from scanner._data import data_dir

    (rules_dir / "oui.yaml").write_bytes((data_dir("fingerprints") / "oui.yaml").read_bytes())
    (rules_dir / "realm.yaml").write_text(textwrap.dedent(MAC_REALM))
    return Engine(load_ruleset(rules_dir, registry_dir=rules_dir / "no-installed-registry"))


@pytest.mark.parametrize(
    ("realm", "maker", "rule"),
    [
        ("b4a38201a73f", "Hikvision", "mac/hikvision-oui"),  # B4:A3:82, a Hikvision MA-L block
        ("38AF29123ABC", "Dahua", "mac/dahua-oui"),  # 38:AF:29, a Dahua MA-L block
        ("E4E66C123456", "Tiandy", "mac/tiandy-oui"),  # another maker's block names that maker
    ],
)
def test_a_mac_in_a_realm_names_the_registrant_of_its_block(
    mac_engine: Engine, realm: str, maker: str, rule: str
) -> None:
    r = mac_engine.identify([("rtsp.www_authenticate", f'Digest realm="{realm}", nonce="abc"')])
    assert r.manufacturer == maker
    assert r.matched == ["test.realm/mac-realm", rule]
    derived = next(h for h in r.hits if h.rule == rule)
    assert derived.key == "rtsp.www_authenticate" and derived.family == "mac"  # cited on the realm it came from


def test_a_mac_in_an_unmapped_or_local_block_names_no_maker(mac_engine: Engine) -> None:
    # 00:1B:C5:00:10:00/36 is an MA-S block of OpenRB.com (not a maker camscan maps); 02:... is locally administered
    for realm in ("001bc5001abc", "02aabbccddee"):
        r = mac_engine.identify([("rtsp.www_authenticate", f'Basic realm="{realm}"')])
        assert (r.manufacturer, r.matched) == (None, ["test.realm/mac-realm"]), realm


def test_the_same_mac_from_arp_and_a_realm_counts_once(mac_engine: Engine) -> None:
    arp = mac_engine.identify([("mac", "b4:a3:82:01:a7:3f")])
    both = mac_engine.identify([("mac", "b4:a3:82:01:a7:3f"), ("rtsp.www_authenticate", 'Basic realm="b4a38201a73f"')])
    assert both.manufacturer == "Hikvision" and both.confidence == pytest.approx(arp.confidence)


def test_the_derived_mac_lookup_is_cached_once_per_address(mac_engine: Engine) -> None:
    mac_engine.identify([("rtsp.www_authenticate", 'Basic realm="B4A38201A73F"')])
    mac_engine.identify([("rtsp.www_authenticate", 'Digest realm="b4a38201a73f", nonce="other"')])
    assert [k for k in mac_engine._cache if k[0] == "mac"] == [("mac", "b4:a3:82:01:a7:3f")]


def test_a_realm_mac_follows_an_installed_registry(rules_dir: Path, tmp_path: Path) -> None:
    """A block the shipped snapshot does not know names its maker once `camscan oui update` installs a listing
    that has it: the rule holds no prefix list to go stale."""
    import csv
    import io

    from scanner._data import data_dir
    from scanner.fingerprint.registry import install

    (rules_dir / "oui.yaml").write_bytes((data_dir("fingerprints") / "oui.yaml").read_bytes())
    (rules_dir / "realm.yaml").write_text(textwrap.dedent(MAC_REALM))
    realm = [("rtsp.www_authenticate", 'Basic realm="0c0000123456"')]  # 0C:00:00 is unregistered in the snapshot
    shipped = Engine(load_ruleset(rules_dir, registry_dir=tmp_path / "none"))
    assert shipped.identify(realm).manufacturer is None
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["Registry", "Assignment", "Organization Name", "Organization Address"])
    w.writerow(["MA-L", "0C0000", "Hangzhou Hikvision Digital Technology Co.,Ltd.", "Hangzhou CN"])
    for i in range(150):
        w.writerow(["MA-L", f"{0x0C1000 + i:06X}", f"Filler {i}", "Somewhere"])
    (tmp_path / "oui.csv").write_text(out.getvalue())
    install([tmp_path / "oui.csv"], tmp_path / "data")
    updated = Engine(load_ruleset(rules_dir, registry_dir=tmp_path / "data"))
    assert updated.identify(realm).manufacturer == "Hikvision"


def test_the_shipped_realm_rules_take_the_maker_from_the_registry() -> None:
    engine = Engine(load_ruleset())
    hik = engine.identify([("rtsp.www_authenticate", 'Digest realm="b4a38201a73f", nonce="1", stale="FALSE"')])
    assert (hik.manufacturer, hik.matched) == ("Hikvision", ["www_authenticate/mac-address-realm", "mac/hikvision-oui"])
    dahua = engine.identify([("http.www_authenticate", 'Basic realm="38af29123abc"')])
    assert dahua.manufacturer == "Dahua"
    axis = engine.identify([("mdns.txt", "macaddress=E82725123456")])  # an Axis block no rule lists by prefix
    assert (axis.manufacturer, axis.matched) == ("Axis", ["mdns/txt-macaddress", "mac/axis-oui"])


def test_the_match_cache_is_bounded_and_keeps_values_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unique values (serials, MACs) age out in two generations; a banner seen all along stays cached."""
    import scanner.fingerprint.engine as engine_module

    monkeypatch.setattr(engine_module, "_CACHE_LIMIT", 100)
    engine = Engine(load_ruleset())
    hot = engine.match("http.server", "App-webs/")
    for i in range(1_000):
        engine.match("onvif.serial", f"SN{i:08d}")
        if i % 50 == 0:
            assert engine.match("http.server", "App-webs/") is hot  # the same cached tuple: not matched again
        assert len(engine._cache) + len(engine._old) <= 200
    assert engine.match("http.server", "App-webs/") is hot
    assert ("onvif.serial", "SN00000000") not in engine._cache and ("onvif.serial", "SN00000000") not in engine._old
