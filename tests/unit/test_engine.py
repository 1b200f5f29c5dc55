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
