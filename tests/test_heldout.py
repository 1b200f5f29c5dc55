"""Behaviour on the held-out evaluation sets (tests/fixtures/eval/, see its README): rows of public real-world
Evidence that no rule was written from. Figures are in benchmarks/eval_identify.py; these tests only keep
what must never get worse: no non-camera given a camera maker it is not made by, no Hikvision/Dahua-made
device missed that is recognised today, and no held-out value used as a rule's example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanner.fingerprint.engine import Engine
from scanner.fingerprint.rules import RuleSet, load_ruleset

EVAL = Path(__file__).parent / "fixtures" / "eval"
FILES = (
    "heldout.jsonl",
    "longtail-heldout.jsonl",
    "hikdahua-heldout.jsonl",
    "relabel-longtail-heldout.jsonl",
    "nuclei-heldout.jsonl",
    "nmap-heldout.jsonl",
    "oem-heldout.jsonl",
    "sip-heldout.jsonl",
    "snmp-heldout.jsonl",
    "product-lines-heldout.jsonl",
    "whatweb-heldout.jsonl",
    "sysobjectid-heldout.jsonl",
    "onvif-threads-heldout.jsonl",
    "fingerprinthub-heldout.jsonl",
    "ehole-heldout.jsonl",
)
HIKDAHUA = {"Hikvision", "Dahua"}
# Hikvision/Dahua-made rows of heldout.jsonl and longtail-heldout.jsonl recognised when this floor was set (30 of 32);
# raise it, never lower it.
HIKDAHUA_FLOOR = 30
# Hikvision/Dahua-made rows of hikdahua-heldout.jsonl recognised when this floor was set (61 of 63; 51 before the rules
# written after it was gathered); raise it, never lower it.
HIKDAHUA_SET_FLOOR = 61
# Hikvision/Dahua-made rows of relabel-longtail-heldout.jsonl recognised when this floor was set (44 of 44; 41 before
# the rules written after it was gathered); raise it, never lower it.
RELABEL_SET_FLOOR = 44
# Rows of relabel-longtail-heldout.jsonl right (the maker as expected, or no maker for a non-camera) when this floor was
# set (82 of 82; 75 before); raise it, never lower it.
RELABEL_RIGHT_FLOOR = 82
# Rows of nuclei-heldout.jsonl with the maker as expected, and right (the maker as expected, or no maker for a
# non-camera), when these floors were set (23 and 31 of 40, the same before and after the rules written from the
# other 70 % of the gathered rows); raise them, never lower them.
NUCLEI_MAKER_FLOOR = 25  # 24 after the WhatWeb pass, 25 with the vendor token reading of titles
NUCLEI_RIGHT_FLOOR = 31
# Rows of nmap-heldout.jsonl with the maker exactly as expected when this floor was set (149 of 213; 131 before the
# rules written from the other 70 % of the rows gathered with it), and rows right (the same, or no maker for a
# non-camera: 197 of 213; 185 before); raise them, never lower them. Raised to 161 and 202 with the engine's vendor
# token reading (scanner/fingerprint/vendor_token.py; 162 and 203 measured).
NMAP_MAKER_FLOOR = 163  # 163 and 204 after the product-line rules (Intellex) and titles
NMAP_RIGHT_FLOOR = 204
# Rows of oem-heldout.jsonl with the maker exactly as expected, and its Hikvision/Dahua-made rows recognised, when these
# floors were set (17 of 19 and 7 of 9, both rounds together; 3 of 19 and 0 of 9 before the rules written from the other
# 70 % of the rows gathered with each round); raise them, never lower them.
OEM_MAKER_FLOOR = 17
OEM_RECALL_FLOOR = 7
# Rows of sip-heldout.jsonl (SIP user agents of phones, PBXs, gateways, softphones and their neighbours) with the maker
# exactly as expected, and right (the same, or no maker for a non-camera), when these floors were set (88 and 88 of 88;
# 84 and 87 before the rules written from the other 70 % of the rows gathered with it); raise them, never lower them.
SIP_MAKER_FLOOR = 88
SIP_RIGHT_FLOOR = 88
# Rows of snmp-heldout.jsonl with the maker exactly as expected, and right (the same, or no maker for a
# non-camera), when these floors were set (163 and 178 of 179; 137+1 and 177+1 before the rules written from the
# other 70 % of the rows gathered with it); raise them, never lower them. Raised to 170 and 179 with the engine's
# vendor token reading.
SNMP_MAKER_FLOOR = 170
SNMP_RIGHT_FLOOR = 179
# Rows of product-lines-heldout.jsonl (product-line names such as Sarix, AutoVu, Wisenet, and look-alike words) with
# the maker exactly as expected, and right, when these floors were set (5 and 5 of 6; 3 and 3 before the rules of
# fingerprints/product_lines.yaml written from the other 70 % of the rows gathered with it); raise them, never lower
# them.
PRODUCT_LINES_MAKER_FLOOR = 5
PRODUCT_LINES_RIGHT_FLOOR = 5
# Rows of whatweb-heldout.jsonl (device strings of WhatWeb's camera, recorder, access-control and look-alike plugins)
# with the maker exactly as expected, and right (the same, or no maker for a non-camera), when these floors were set
# (36 and 38 of 49; 29 and 33 at the first measurement, before the rules written from the other 70 % of the rows
# gathered with it); raise them, never lower them.
# Raised to 37 and 39 when HTML titles joined the vendor token reading.
WHATWEB_MAKER_FLOOR = 37
WHATWEB_RIGHT_FLOOR = 39
# Rows of sysobjectid-heldout.jsonl (SNMP sysObjectID of recorded LibreNMS agents) with the maker exactly as expected,
# and right, when these floors were set (4 and 4 of 4; 0 and 1 before fingerprints/snmp_oid.yaml); raise them, never
# lower them.
OID_MAKER_FLOOR = 4
OID_RIGHT_FLOOR = 4
# Rows of onvif-threads-heldout.jsonl (ONVIF GetDeviceInformation values users posted in public GitHub threads) with
# the maker exactly as expected, and right, when these floors were set (4 and 4 of 4; 2 and 2 at the first measurement,
# before the rules written from the other 70 % of the rows gathered with it); raise them, never lower them.
ONVIF_THREADS_MAKER_FLOOR = 4
ONVIF_THREADS_RIGHT_FLOOR = 4
# Rows of fingerprinthub-heldout.jsonl (web-panel titles, bodies, Server headers and favicon hashes of
# 0x727/FingerprintHub) with the maker exactly as expected, and right, when these floors were set (15 and 29 of 41 at
# the first measurement, before the rules written from the other 70 % of the rows gathered with it); raise them, never
# lower them.
# Raised to 19 and 31 with the rules written from the work rows.
FPHUB_MAKER_FLOOR = 19
FPHUB_RIGHT_FLOOR = 31
# Rows of ehole-heldout.jsonl (web titles, bodies, headers and favicon hashes of EdgeSecurityTeam/EHole finger.json)
# with the maker exactly as expected, and right, when these floors were set (12 and 13 of 16 at the first
# measurement, before the rules written from the other 70 % of the rows gathered with it); raise them, never lower.
EHOLE_MAKER_FLOOR = 12
EHOLE_RIGHT_FLOOR = 13


def _rows(name: str) -> list[dict[str, Any]]:
    with (EVAL / name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


ROWS = [(name, row) for name in FILES for row in _rows(name)]
NON_CAMERAS = [(name, row) for name, row in ROWS if row["category"] == "non_camera"]


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_ruleset()


@pytest.fixture(scope="module")
def engine(ruleset: RuleSet) -> Engine:
    return Engine(ruleset)


def _identify(engine: Engine, row: dict[str, Any]) -> str | None:
    return engine.identify([(e["key"], e["value"]) for e in row["evidence"]]).manufacturer


def test_files_are_well_formed(ruleset: RuleSet) -> None:
    ids = [row["id"] for _, row in ROWS]
    assert len(ids) == len(set(ids)), "row ids must be unique across the held-out files"
    for _, row in ROWS:
        assert row["category"] in ("camera", "non_camera") and row["evidence"] and row["source"]
        expected = row["expect"]["manufacturer"]
        assert expected is None or expected in ruleset.makers, f"{row['id']}: {expected!r} is not in makers.yaml"


@pytest.mark.parametrize(("name", "row"), NON_CAMERAS, ids=[f"{n}:{r['id']}" for n, r in NON_CAMERAS])
def test_non_camera_is_never_given_a_camera_maker(engine: Engine, ruleset: RuleSet, name: str, row: dict) -> None:  # type: ignore[type-arg]
    got = _identify(engine, row)
    if got is None or got == row["expect"]["manufacturer"]:
        return
    maker = ruleset.makers[got]
    assert maker.kind != "camera" and not maker.covered, (
        f"{name}: non-camera {row['id']} given {got} ({maker.kind}{', covered' if maker.covered else ''})"
    )


def test_hikvision_dahua_recall_does_not_regress(engine: Engine) -> None:
    rows = [
        row
        for name, row in ROWS
        if name in ("heldout.jsonl", "longtail-heldout.jsonl") and row["expect"]["manufacturer"] in HIKDAHUA
    ]
    missed = [row["id"] for row in rows if _identify(engine, row) != row["expect"]["manufacturer"]]
    assert len(rows) - len(missed) >= HIKDAHUA_FLOOR, f"Hikvision/Dahua rows missed: {missed}"


def test_hikdahua_set_recall_does_not_regress(engine: Engine) -> None:
    rows = [row for _, row in _named("hikdahua-heldout.jsonl") if row["expect"]["manufacturer"] in HIKDAHUA]
    missed = [row["id"] for row in rows if _identify(engine, row) != row["expect"]["manufacturer"]]
    assert len(rows) - len(missed) >= HIKDAHUA_SET_FLOOR, f"Hikvision/Dahua rows missed: {missed}"


def test_hikdahua_set_names_no_wrong_maker(engine: Engine) -> None:
    """A wrong maker is worse than none: on the Hikvision/Dahua set, every maker named is the expected one."""
    wrong = [
        (row["id"], got)
        for _, row in _named("hikdahua-heldout.jsonl")
        if (got := _identify(engine, row)) is not None and got != row["expect"]["manufacturer"]
    ]
    assert not wrong, f"wrong makers: {wrong}"


def test_relabel_set_recall_does_not_regress(engine: Engine) -> None:
    rows = [row for _, row in _named("relabel-longtail-heldout.jsonl") if row["expect"]["manufacturer"] in HIKDAHUA]
    missed = [row["id"] for row in rows if _identify(engine, row) != row["expect"]["manufacturer"]]
    assert len(rows) - len(missed) >= RELABEL_SET_FLOOR, f"Hikvision/Dahua rows missed: {missed}"


def test_relabel_set_right_and_no_wrong_maker(engine: Engine) -> None:
    """On the relabel/long-tail set every maker named is the expected one (a Swann unit of Reolink make is not
    Hikvision's, an LTS label alone is not proof), and the share right does not fall."""
    rows = [row for _, row in _named("relabel-longtail-heldout.jsonl")]
    got = {row["id"]: _identify(engine, row) for row in rows}
    wrong = [(row["id"], got[row["id"]]) for row in rows if got[row["id"]] not in (None, row["expect"]["manufacturer"])]
    assert not wrong, f"wrong makers: {wrong}"
    right = [
        row
        for row in rows
        if got[row["id"]] in (row["expect"]["manufacturer"], None if row["category"] == "non_camera" else "")
    ]
    assert len(right) >= RELABEL_RIGHT_FLOOR, f"right {len(right)} of {len(rows)}"


def _named(name: str) -> list[tuple[str, dict[str, Any]]]:
    return [(n, row) for n, row in ROWS if n == name]


def test_hikdahua_rows_keep_a_value_no_rule_quotes(ruleset: RuleSet) -> None:
    """Each row of the Hikvision/Dahua set stays held out while at least one of its values is quoted by no rule
    (generic values such as an open port or a placeholder manufacturer may also be a rule's example)."""
    quoted = {v for rule in ruleset.rules for v in [ex.value for ex in rule.examples] + list(rule.counter_examples)}
    rows = [
        row
        for name in ("hikdahua-heldout.jsonl", "relabel-longtail-heldout.jsonl", "nuclei-heldout.jsonl")
        for _, row in _named(name)
    ]
    spent = [row["id"] for row in rows if all(e["value"] in quoted for e in row["evidence"])]
    assert not spent, f"rows whose every value a rule quotes: {spent}"


def test_nmap_values_are_no_rule_examples(ruleset: RuleSet) -> None:
    """nmap-heldout.jsonl stays held out while no rule quotes its values (generic nmap.devicetype words such as
    `webcam` or `media device` excepted: they are the fixed vocabulary of nmap, not a value of one device)."""
    held = {
        e["value"] for _, row in _named("nmap-heldout.jsonl") for e in row["evidence"] if e["key"] != "nmap.devicetype"
    }
    assert not _quoted(ruleset, held), f"held-out values quoted by rules: {_quoted(ruleset, held)}"


def test_oem_set_floors_and_no_wrong_maker(engine: Engine, ruleset: RuleSet) -> None:
    """oem-heldout.jsonl (OEM relabel lines and their look-alikes: Dahua-made Bosch DIVAR recorders beside Bosch's own
    cameras and DIVAR IP, Montavue Classic beside Nexus, FLIR DNR200, Q-See, Alibi's Uniview-made line, Swann DVRs,
    Lorex recorders whose firmware carries a Dahua hardware family beside those whose firmware shows none):
    no maker named is a wrong one, no look-alike gets a covered maker, and the shares do not fall."""
    rows = [row for _, row in _named("oem-heldout.jsonl")]
    got = {row["id"]: _identify(engine, row) for row in rows}
    wrong = [(row["id"], got[row["id"]]) for row in rows if got[row["id"]] not in (None, row["expect"]["manufacturer"])]
    assert not wrong, f"wrong makers: {wrong}"
    flagged = [
        (row["id"], got[row["id"]])
        for row in rows
        if row["expect"]["manufacturer"] not in HIKDAHUA
        and got[row["id"]] is not None
        and ruleset.makers[got[row["id"]]].covered
    ]
    assert not flagged, f"look-alikes given a covered maker: {flagged}"
    exact = [row for row in rows if got[row["id"]] == row["expect"]["manufacturer"]]
    recalled = [
        row
        for row in rows
        if row["expect"]["manufacturer"] in HIKDAHUA and got[row["id"]] == row["expect"]["manufacturer"]
    ]
    assert len(exact) >= OEM_MAKER_FLOOR, f"maker exactly right {len(exact)} of {len(rows)}"
    assert len(recalled) >= OEM_RECALL_FLOOR, f"Hikvision/Dahua rows recognised {len(recalled)}"


def _quoted(ruleset: RuleSet, held: set[str]) -> list[tuple[str, str]]:
    """(rule, value) for each held-out value a rule quotes as an example or a counter-example."""
    return [
        (rule.full_id, value)
        for rule in ruleset.rules
        for value in [ex.value for ex in rule.examples] + list(rule.counter_examples)
        if value in held
    ]


@pytest.mark.parametrize(
    "name",
    [
        "longtail-heldout.jsonl",
        "oem-heldout.jsonl",
        "sip-heldout.jsonl",
        "snmp-heldout.jsonl",
        "product-lines-heldout.jsonl",
        "whatweb-heldout.jsonl",
        "onvif-threads-heldout.jsonl",
        "fingerprinthub-heldout.jsonl",
        "ehole-heldout.jsonl",
    ],
)
def test_held_out_values_are_no_rule_examples(ruleset: RuleSet, name: str) -> None:
    """A split is only held out while no rule quotes its values (heldout.jsonl predates the rule; its values were
    never used either, but older rules were not checked against it)."""
    held = {e["value"] for row in _rows(name) for e in row["evidence"]}
    assert not _quoted(ruleset, held), f"held-out values quoted by rules: {_quoted(ruleset, held)}"


# (set, floor of rows with the maker exactly as expected, floor of rows right, whether a wrong maker may stand: the
# nmap set keeps one label-convention case, Hanwha for a Samsung Techwin label)
FLOORS = [
    ("nuclei-heldout.jsonl", NUCLEI_MAKER_FLOOR, NUCLEI_RIGHT_FLOOR, False),
    ("nmap-heldout.jsonl", NMAP_MAKER_FLOOR, NMAP_RIGHT_FLOOR, True),
    ("sip-heldout.jsonl", SIP_MAKER_FLOOR, SIP_RIGHT_FLOOR, False),
    ("snmp-heldout.jsonl", SNMP_MAKER_FLOOR, SNMP_RIGHT_FLOOR, False),
    ("product-lines-heldout.jsonl", PRODUCT_LINES_MAKER_FLOOR, PRODUCT_LINES_RIGHT_FLOOR, False),
    ("whatweb-heldout.jsonl", WHATWEB_MAKER_FLOOR, WHATWEB_RIGHT_FLOOR, False),
    ("onvif-threads-heldout.jsonl", ONVIF_THREADS_MAKER_FLOOR, ONVIF_THREADS_RIGHT_FLOOR, False),
    ("fingerprinthub-heldout.jsonl", FPHUB_MAKER_FLOOR, FPHUB_RIGHT_FLOOR, False),
    ("ehole-heldout.jsonl", EHOLE_MAKER_FLOOR, EHOLE_RIGHT_FLOOR, False),
    ("sysobjectid-heldout.jsonl", OID_MAKER_FLOOR, OID_RIGHT_FLOOR, False),
]


@pytest.mark.parametrize(("name", "maker_floor", "right_floor", "wrong_may_stand"), FLOORS)
def test_set_floors_and_no_false_flag(
    engine: Engine, ruleset: RuleSet, name: str, maker_floor: int, right_floor: int, wrong_may_stand: bool
) -> None:
    """Each set of FLOORS (nuclei, nmap, SIP, SNMP, product lines, WhatWeb, ONVIF threads, FingerprintHub, EHole,
    sysObjectID; tests/fixtures/eval/README.md says what each holds): the maker share and the share right do not
    fall, no non-camera is given a covered maker it is not made by, and (but for the nmap set's label case) no maker
    named is a wrong one."""
    rows = _rows(name)
    got = {row["id"]: _identify(engine, row) for row in rows}
    wrong = [(row["id"], got[row["id"]]) for row in rows if got[row["id"]] not in (None, row["expect"]["manufacturer"])]
    assert wrong_may_stand or not wrong, f"wrong makers: {wrong}"
    flagged = [
        (i, m) for i, m in wrong if m is not None and ruleset.makers[m].covered and _category(rows, i) == "non_camera"
    ]
    assert not flagged, f"non-cameras given a covered maker: {flagged}"
    exact = [row for row in rows if got[row["id"]] == row["expect"]["manufacturer"]]
    right = [
        row
        for row in rows
        if got[row["id"]] in (row["expect"]["manufacturer"], None if row["category"] == "non_camera" else "")
    ]
    assert len(exact) >= maker_floor, f"maker exactly right {len(exact)} of {len(rows)}"
    assert len(right) >= right_floor, f"right {len(right)} of {len(rows)}"


def _category(rows: list[dict[str, Any]], row_id: str) -> str:
    return next(row["category"] for row in rows if row["id"] == row_id)


def test_sip_set_gives_no_camera_type(engine: Engine) -> None:
    """No phone, PBX, ATA, gateway or softphone of sip-heldout.jsonl is typed as a camera, recorder or intercom."""
    typed = [
        (row["id"], result.device_type)
        for row in _rows("sip-heldout.jsonl")
        if row["category"] == "non_camera"
        and (result := engine.identify([(e["key"], e["value"]) for e in row["evidence"]])).device_type
        in ("camera", "recorder", "encoder", "intercom", "access_control")
    ]
    assert not typed, f"non-cameras given a camera device type: {typed}"


def test_no_snmp_rule_quotes_a_sysobjectid_row(ruleset: RuleSet) -> None:
    """No SNMP rule quotes a sysObjectID or sysDescr of the sysObjectID set (its floors are in FLOORS; a one-word
    sysDescr such as `router` may be another family's example)."""
    rows = [row for _, row in _named("sysobjectid-heldout.jsonl")]
    quoted = {
        v
        for rule in ruleset.rules
        if rule.family in ("snmp.sysobjectid", "snmp.sysdescr")
        for v in [ex.value for ex in rule.examples] + list(rule.counter_examples)
    }
    spent = [(row["id"], e["value"]) for row in rows for e in row["evidence"] if e["value"] in quoted]
    assert not spent, f"held-out values quoted by an SNMP rule: {spent}"
