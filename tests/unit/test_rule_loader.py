"""A broken rule file is refused at load with its file, rule id and reason; the verifier names failures."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from scanner.fingerprint.rules import RuleError, load_ruleset
from scanner.fingerprint.verify import check_rules

GOOD = """
    - id: good
      match: '^Good/(?P<firmware>[\\d.]+)'
      manufacturer: Axis
      source: test
      examples: [{value: 'Good/1.2', firmware: '1.2'}]
"""


def write(d: Path, body: str, name: str = "t.yaml") -> None:
    (d / name).write_text("family: t\nkeys: [http.server]\nrules:\n" + textwrap.indent(textwrap.dedent(body), "  "))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("- id: x\n  match: '(unclosed'\n  manufacturer: Axis\n  source: s\n  examples: [a]\n", "bad pattern"),
        ("- id: x\n  match: 'a'\n  manufacturer: AXIS\n  source: s\n  examples: [a]\n", "not a canonical maker"),
        ("- id: x\n  match: 'a'\n  manufacturer: Axis\n  source: s\n", "at least one example"),
        ("- id: x\n  match: 'a'\n  manufacturer: Axis\n  examples: [a]\n", "needs a 'source'"),
        ("- id: x\n  match: 'a'\n  source: s\n  examples: [a]\n", "asserts nothing"),
        ("- id: x\n  match: '(?P<serial>a)'\n  manufacturer: Axis\n  source: s\n  examples: [a]\n", "named groups"),
        (
            "- id: x\n  match: 'a'\n  manufacturer: Axis\n  confidence: 1.5\n  source: s\n  examples: [a]\n",
            "confidence",
        ),
        ("- id: x\n  match: 'a'\n  device_type: toaster\n  source: s\n  examples: [a]\n", "device_type"),
        ("- id: X Y\n  match: 'a'\n  manufacturer: Axis\n  source: s\n  examples: [a]\n", "rule id"),
        (
            "- id: x\n  match: 'a'\n  manufacturer: Axis\n  evaluate: 'os.system(1)'\n  source: s\n  examples: [a]\n",
            "unknown field",
        ),
        (
            "- id: x\n  match: 'a'\n  manufacturer: Axis\n  candidates: [Dahua]\n  source: s\n  examples: [a]\n",
            "candidates",
        ),
        (
            "- id: x\n  match: 'a'\n  keys: [rtsp.server]\n  manufacturer: Axis\n  source: s\n  examples: [a]\n",
            "not among the file's keys",
        ),
    ],
)
def test_broken_rule_is_refused_with_file_rule_and_reason(rules_dir: Path, body: str, reason: str) -> None:
    write(rules_dir, body)
    with pytest.raises(RuleError) as info:
        load_ruleset(rules_dir)
    assert info.value.file == "t.yaml"
    assert info.value.rule == ("X Y" if "X Y" in body else "x")
    assert reason in str(info.value)


def test_invalid_yaml_is_refused(rules_dir: Path) -> None:
    (rules_dir / "t.yaml").write_text("family: t\nkeys: [http.server\nrules: [")
    with pytest.raises(RuleError, match=r"t\.yaml: not valid YAML"):
        load_ruleset(rules_dir)


def test_duplicate_rule_id_is_refused(rules_dir: Path) -> None:
    write(rules_dir, GOOD + GOOD)
    with pytest.raises(RuleError, match="used twice"):
        load_ruleset(rules_dir)


def test_yaml_tags_are_not_evaluated(rules_dir: Path) -> None:
    (rules_dir / "t.yaml").write_text(
        "family: t\nkeys: [http.server]\nrules: !!python/object/apply:os.system ['true']\n"
    )
    with pytest.raises(RuleError):
        load_ruleset(rules_dir)


def _failures(rules_dir: Path) -> list[str]:
    return [f"{c.rule}:{c.example}:{c.message}" for c in check_rules(load_ruleset(rules_dir)) if not c.ok]


def test_verifier_passes_good_rules(rules_dir: Path) -> None:
    write(rules_dir, GOOD)
    assert _failures(rules_dir) == []


def test_verifier_names_an_example_that_does_not_match(rules_dir: Path) -> None:
    write(rules_dir, GOOD.replace("examples: [{value: 'Good/1.2', firmware: '1.2'}]", "examples: ['Bad/1']"))
    assert _failures(rules_dir) == ["good:Bad/1:example does not match its rule"]


def test_verifier_checks_extracted_fields(rules_dir: Path) -> None:
    write(rules_dir, GOOD.replace("firmware: '1.2'", "firmware: '9.9'"))
    assert _failures(rules_dir) == ["good:Good/1.2:firmware: expected '9.9', got '1.2'"]


MAC_RULE = """
- id: realm
  match: 'realm="(?P<mac>[0-9a-f]{12})"'
  source: s
  examples: [{value: 'realm="b4a38201a73f"', mac: 'B4-A3-82-01-A7-3F'}]
"""


def test_verifier_checks_an_extracted_mac_in_any_spelling(rules_dir: Path) -> None:
    write(rules_dir, MAC_RULE)
    assert _failures(rules_dir) == []  # the expectation is compared as a normalised MAC
    write(rules_dir, MAC_RULE.replace("B4-A3-82-01-A7-3F", "b4:a3:82:01:a7:40"))
    expected = "mac: expected 'b4:a3:82:01:a7:40', got 'b4:a3:82:01:a7:3f'"
    assert _failures(rules_dir) == [f'realm:realm="b4a38201a73f":{expected}']


def test_verifier_catches_a_broad_rule_shadowing_a_precise_one(rules_dir: Path) -> None:
    broad = "- id: broad\n  match: '^Good'\n  candidates: [Axis, Dahua]\n  source: s\n  examples: ['Good']\n"
    write(rules_dir, broad + textwrap.dedent(GOOD))
    assert _failures(rules_dir) == ["good:Good/1.2:caught first by earlier rule 'broad'"]


def test_verifier_checks_counter_examples(rules_dir: Path) -> None:
    write(rules_dir, GOOD + "      counter_examples: ['Good/3']\n")
    assert _failures(rules_dir) == ["good:not:Good/3:counter-example matches the rule"]


def test_cli_verify_exits_1_naming_file_rule_and_example(rules_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from scanner.cli import app

    extra = tmp_path / "council"
    extra.mkdir()
    (extra / "council.yaml").write_text(
        "family: council\nkeys: [http.title]\nrules:\n"
        "  - {id: ours, match: '^Ours$', manufacturer: Axis, source: s, examples: ['Theirs']}\n"
    )
    result = CliRunner().invoke(app, ["rules", "verify", "--rules-dir", str(extra)])
    assert result.exit_code == 1
    assert "FAIL council.yaml: rule 'ours': example 'Theirs': example does not match its rule" in result.output
