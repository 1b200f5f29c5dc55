"""The rule self-test: one test per example and counter-example of every shipped rule (see verify.py)."""

from __future__ import annotations

import pytest

from scanner.fingerprint.rules import RuleError, load_ruleset
from scanner.fingerprint.verify import Check, check_all, makers_covered


def _checks() -> list[Check]:
    try:
        return check_all(load_ruleset())
    except RuleError as exc:  # a broken file is one visible failure, not a collection error
        return [Check(exc.file, exc.rule or "", "<load>", False, str(exc))]


CHECKS = _checks()


@pytest.mark.parametrize("check", CHECKS, ids=[c.test_id for c in CHECKS])
def test_example_holds(check: Check) -> None:
    assert check.ok, f"{check.file}: rule {check.rule!r}: example {check.example!r}: {check.message}"


def test_every_rule_has_examples_and_a_source() -> None:
    rs = load_ruleset()
    for rule in rs.rules:
        assert rule.examples and rule.source


def test_coverage_of_camera_makers() -> None:
    rs = load_ruleset()
    covered = makers_covered(rs)
    assert len(covered) >= 35, sorted(covered)
    # every covered entity and its own brands, and the major makers the issue names
    for name in (
        "Hikvision",
        "Dahua",
        "Hytera",
        "Huawei",
        "ZTE",
        "EZVIZ",
        "HiLook",
        "HiWatch",
        "Imou",
        "Lorex",
        "Axis",
        "Hanwha",
        "Bosch",
        "i-PRO",
        "Sony",
        "Avigilon",
        "Mobotix",
        "Vivotek",
        "Uniview",
        "Milesight",
        "Reolink",
        "Ubiquiti",
        "TP-Link",
        "Amcrest",
        "Annke",
        "Swann",
        "Foscam",
        "Xiongmai",
        "Tiandy",
        "TVT",
        "GeoVision",
        "IDIS",
        "Pelco",
        "Honeywell",
        "Verkada",
        "Wyze",
        "D-Link",
    ):
        assert name in covered, f"no rule names {name}"
