#!/usr/bin/env python3
"""A policy pack as a council supplies it (`--policy-dir`): scanner/policy/packs.py load_pack, then its examples
checked (check_examples) and its rules applied to each example device. A refused pack raises PackError, nothing
else; an accepted one evaluates without raising."""

from __future__ import annotations

import atexit
import shutil

from tests.fuzz.contract import fuzz, instrumented, scratch_dir

with instrumented(__name__):
    from scanner.fingerprint.rules import load_ruleset
    from scanner.policy import packs

MAKERS = load_ruleset().makers
_DIR = scratch_dir("policy_yaml")
atexit.register(shutil.rmtree, _DIR, True)
PATH = _DIR / "council.yaml"


def check(data: bytes) -> None:
    PATH.write_bytes(data)
    try:
        pack = packs.load_pack(PATH, MAKERS, origin=str(_DIR))
    except packs.PackError as exc:
        assert str(exc).startswith(PATH.name)
        return
    assert pack.rules and pack.examples and pack.sha256
    for result in packs.check_examples([pack]):
        assert isinstance(result.ok, bool)
    for example in pack.examples:
        for finding in pack.findings(example.device):
            assert finding.policy == pack.id
        pack.notes(example.device)


fuzz(__name__, check)
