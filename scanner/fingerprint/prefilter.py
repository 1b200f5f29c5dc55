"""Which rules need trying on a value, by the value's first character.

Nearly every rule pattern is anchored at the start of the value (`^App-webs/`, `(?i)^hikvision`), so a
value starting with `D` cannot match a pattern that must start with `A` or `h`. A pure speed-up: for any
value, the rules returned are a superset of the rules whose pattern matches it, in file order, so the
engine's "first match in the file wins" gives the same answer with or without the index. It matters for
values no rule knows (a camera's own name in a title or a WS-Discovery scope), which would otherwise be
tried against every rule of their key.

The first characters are read from the parsed pattern (the standard library's own regular expression
parser), conservatively: anything this module does not understand (a negated class, a lookahead, an optional
first item, a non-ASCII character, a pattern that is not anchored) means "try this rule on every value".
Characters are compared lower-cased, so case-insensitive patterns need no special case.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Any, Protocol

_sre: Any
_c: Any
try:  # the parser behind re.compile; private, so a Python that moves it only loses the speed-up
    _sre = importlib.import_module("re._parser")
    _c = importlib.import_module("re._constants")
except ImportError:  # pragma: no cover - every supported Python has both
    _sre = _c = None

_ASCII = frozenset(chr(i) for i in range(128))


def _ascii_class(escape: str) -> frozenset[str]:
    """The lower-cased ASCII characters a class escape matches (asked of re itself, so nothing is assumed)."""
    return frozenset(chr(i).lower() for i in range(128) if re.match(escape, chr(i)))


_CATEGORIES: dict[Any, frozenset[str]] = {}
if _sre is not None:
    _CATEGORIES = {
        _c.CATEGORY_DIGIT: _ascii_class(r"\d"),
        _c.CATEGORY_WORD: _ascii_class(r"\w"),
        _c.CATEGORY_SPACE: _ascii_class(r"\s"),
    }


class _HasPattern(Protocol):
    @property
    def pattern(self) -> re.Pattern[str]: ...


def first_chars(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """The lower-cased ASCII characters one of which every match of an anchored pattern starts with; None
    when the pattern could start anywhere or with anything this module cannot be sure of."""
    if _sre is None or pattern.flags & re.MULTILINE:  # with (?m), ^ also matches after a newline
        return None
    try:
        parsed = _sre.parse(pattern.pattern, pattern.flags)
    except Exception:  # it compiled once; any surprise here just means "no prefilter"
        return None
    return _anchored(list(parsed))


# (first characters or None for "could be anything", whether the item can match the empty string)
_First = tuple[frozenset[str] | None, bool]
_ZERO_WIDTH: _First = (frozenset(), True)


def _anchored(items: Sequence[Any]) -> frozenset[str] | None:
    """First characters of a sequence that must begin at the start of the value."""
    if not items:
        return None
    op, av = items[0]
    if op is _c.AT and av in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING):
        chars, nullable = _sequence(items[1:])
        return None if nullable else chars  # a pattern that can match nothing at the start matches anything
    if op is _c.BRANCH:  # (?:^a|^b): every alternative must be anchored
        return _union(_anchored(list(branch)) for branch in av[1])
    if op is _c.SUBPATTERN:  # (?:^abc)...: the group's own first item decides
        return _anchored(list(av[-1]))
    return None


def _sequence(items: Sequence[Any]) -> _First:
    r"""First characters of a sequence: of its first items up to and including the first that cannot match
    the empty string (`\s*mobotix` starts with white space or m)."""
    out: set[str] = set()
    for op, av in items:
        chars, nullable = _first(op, av)
        if chars is None:
            return None, nullable
        out |= chars
        if not nullable:
            return frozenset(out), False
    return frozenset(out), True


def _first(op: Any, av: Any) -> _First:
    if op is _c.LITERAL:
        return _char(av), False
    if op is _c.IN:
        return _charset(av), False
    if op is _c.SUBPATTERN:
        return _sequence(list(av[-1]))
    if op is _c.ATOMIC_GROUP:
        return _sequence(list(av))
    if op is _c.BRANCH:
        parts = [_sequence(list(branch)) for branch in av[1]]
        return _union(chars for chars, _ in parts), any(nullable for _, nullable in parts)
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        low, _high, item = av
        chars, nullable = _sequence(list(item))
        return chars, nullable or low == 0
    if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):  # anchors, \b and lookarounds consume nothing
        return _ZERO_WIDTH
    return None, False  # ANY, NOT_LITERAL, group references, ...: could be anything


def _char(code: int) -> frozenset[str] | None:
    ch = chr(code)
    # a non-ASCII pattern character can match an ASCII one case-insensitively (U+212A KELVIN SIGN and k)
    return frozenset({ch.lower()}) if ch in _ASCII else None


def _charset(members: Sequence[Any]) -> frozenset[str] | None:
    out: set[str] = set()
    for op, av in members:
        if op is _c.LITERAL:
            ch = _char(av)
            if ch is None:
                return None
            out |= ch
        elif op is _c.RANGE:
            low, high = av
            if high > 127:
                return None
            out.update(chr(i).lower() for i in range(low, high + 1))
        elif op is _c.CATEGORY and av in _CATEGORIES:  # \d, \w, \s on an ASCII character
            out |= _CATEGORIES[av]
        else:  # NEGATE, \D, \W, \S, ...
            return None
    return frozenset(out)


def _union(parts: Any) -> frozenset[str] | None:
    out: set[str] = set()
    for part in parts:
        if part is None:
            return None
        out |= part
    return frozenset(out)


class FirstCharIndex:
    """The rules of one file for one key, and per first character of a value the ones worth trying."""

    __slots__ = ("_by_char", "_sets", "rules")

    def __init__(self, rules: Sequence[_HasPattern]) -> None:
        self.rules = list(rules)
        self._sets = [first_chars(r.pattern) for r in self.rules]
        self._by_char: dict[str, list[Any]] = {}

    def candidates(self, value: str) -> list[Any]:
        """In file order, every rule that could match `value` (a superset of those that do)."""
        if not value or not value[0].isascii():
            return self.rules
        ch = value[0].lower()
        found = self._by_char.get(ch)
        if found is None:
            found = self._by_char[ch] = [r for r, s in zip(self.rules, self._sets, strict=True) if s is None or ch in s]
        return found
