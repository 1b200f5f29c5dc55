#!/usr/bin/env python3
"""A fingerprint rule file as a council supplies it (`--rules-dir`): read with scanner/fingerprint/schema.py
read_doc and compiled by rules.py exactly as load_ruleset does for a file of an extra directory (the shipped
maker list is loaded once, not per input), then its examples self-tested (verify.check_rules). A refused file
raises RuleError, nothing else; an accepted one compiles to rules whose patterns only use the allowed groups.

The whole load_ruleset(extra_dirs=[...]) is run on the seeds and on every crash fixture by the tests; per input
it would spend its time re-reading the shipped files."""

from __future__ import annotations

import atexit
import shutil
from pathlib import Path

from tests.fuzz.contract import fuzz, instrumented, scratch_dir

with instrumented(__name__):
    from scanner.fingerprint import rules, schema, verify

_SHIPPED = rules.load_ruleset()
MAKERS = _SHIPPED.makers
SHIPPED_FAMILIES = {f.family for f in _SHIPPED.files}
_DIR = scratch_dir("rules_yaml")
atexit.register(shutil.rmtree, _DIR, True)
PATH = _DIR / "council.yaml"


def load_extra(path: Path) -> rules.RuleFile:
    """What load_ruleset does with one file of an extra directory."""
    doc, _data = schema.read_doc(path, schema.RuleFileDoc)
    compiled = rules.compile_rule_file(doc, path.name, MAKERS)
    if compiled.family in SHIPPED_FAMILIES:
        raise rules.RuleError(path.name, None, f"family {compiled.family!r} is also used by a shipped file")
    return compiled


def check(data: bytes) -> None:
    PATH.write_bytes(data)
    try:
        compiled = load_extra(PATH)
    except rules.RuleError as exc:
        assert str(exc).startswith(PATH.name) and exc.reason
        return
    assert compiled.rules and compiled.keys
    for rule in compiled.rules:
        assert set(rule.pattern.groupindex) <= {"model", "firmware"}
        assert 0.5 <= rule.confidence <= 0.99
    ruleset = rules.RuleSet(files=[compiled], makers=MAKERS, oem=[])
    for result in verify.check_rules(ruleset):
        assert isinstance(result.ok, bool)


fuzz(__name__, check)
