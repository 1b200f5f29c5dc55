"""The first-character prefilter: a pure speed-up, so it must never hide a rule that matches a value."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scanner.fingerprint.prefilter import FirstCharIndex, first_chars
from scanner.fingerprint.rules import load_ruleset


class _R:
    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("^App-webs/", {"a"}),
        ("(?i)^hikvision", {"h"}),
        (r"\AWebs", {"w"}),
        ("^(?:DH-|IPC-)", {"d", "i"}),
        ("^[A-C]x", {"a", "b", "c"}),
        (r"^\d{3}", set("0123456789")),
        ("^(?:^a|^B)", {"a", "b"}),
        ("(?:^NVR)[0-9]+", {"n"}),
        ("^a+b", {"a"}),
        # an item that can be empty adds its characters to those of what follows it
        ("^a?b", {"a", "b"}),
        ("^(?:a|b?)c", {"a", "b", "c"}),
        ("(?i)^(?:Dahua[ _])?NVR", {"d", "n"}),
        (r"(?i)^\s*mobotix", {" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f", "m"}),
        (r"^\bab", {"a"}),
        ("^(?=a)a", {"a"}),
        # cannot say: not anchored, negated class, any character, multiline, non-ASCII, can match nothing
        ("App-webs", None),
        ("^a|b", None),
        ("^[^a]", None),
        ("^.x", None),
        ("(?m)^abc", None),
        ("(?i)^\u212a", None),
        ("^$", None),
        ("^a?", None),
        ("^(?=.*CN=x)", None),
        (r"^\S", None),
    ],
)
def test_first_characters_of_a_pattern(pattern: str, expected: set[str] | None) -> None:
    got = first_chars(re.compile(pattern))
    assert (None if got is None else set(got)) == expected


def test_a_case_insensitive_pattern_keeps_values_of_either_case() -> None:
    index = FirstCharIndex([_R("(?i)^hik"), _R("^Dahua"), _R("webs")])
    names = lambda v: [r.pattern.pattern for r in index.candidates(v)]  # noqa: E731
    assert names("HIKVISION") == ["(?i)^hik", "webs"]
    assert names("hikvision") == ["(?i)^hik", "webs"]
    assert names("dahua") == ["^Dahua", "webs"]  # a superset: the regex itself still decides the case
    assert names("") == ["(?i)^hik", "^Dahua", "webs"]
    assert names("\u212aelvin") == ["(?i)^hik", "^Dahua", "webs"]  # non-ASCII first character: every rule


_RULES = load_ruleset().rules
_EXAMPLES = [ex.value for r in _RULES for ex in r.examples] + [c for r in _RULES for c in r.counter_examples]


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.sampled_from(_EXAMPLES),
        st.builds(lambda v, cut: v[cut:], st.sampled_from(_EXAMPLES), st.integers(0, 3)),
        st.builds(lambda v: v.swapcase(), st.sampled_from(_EXAMPLES)),
        st.text(max_size=40),
    )
)
@example("\u212aELVIN")
@example("ſerver")
def test_the_index_never_hides_a_shipped_rule_that_matches(value: str) -> None:
    """Every shipped rule that matches a value is among the index's candidates for it, in file order."""
    index = _INDEX
    candidates = index.candidates(value)
    matching = [r for r in _RULES if r.pattern.search(value)]
    assert all(r in candidates for r in matching)
    positions = [_RULES.index(r) for r in candidates]
    assert positions == sorted(positions)


_INDEX = FirstCharIndex(_RULES)


def test_most_shipped_rules_are_indexed() -> None:
    """The prefilter only pays when patterns are anchored; a drop here means the index stopped reading them."""
    known = sum(first_chars(r.pattern) is not None for r in _RULES)
    assert known / len(_RULES) > 0.8
