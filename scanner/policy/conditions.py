"""The `when:` condition language of policy packs (policies/README.md): matched, never evaluated.

A condition map is compiled once at load (patterns compiled, names checked) into a Condition, a small
tree of predicates over a Device's identity fields and Evidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from scanner.model import DEVICE_TYPES, Device

_INT = re.compile(r"\d+")
FIELDS = ("manufacturer", "brand", "device_type")
KEYS = frozenset(
    {*FIELDS, "model", "firmware", "firmware_below", "firmware_at_least", "evidence", "evidence_absent", "any", "not"}
)


class ConditionError(ValueError):
    pass


def version_key(text: str) -> tuple[int, ...]:
    """The integers of a firmware string, in order: 'V5.4.0 build 160530' -> (5, 4, 0, 160530)."""
    return tuple(int(x) for x in _INT.findall(text)[:12])


Predicate = Callable[[Device], bool]


@dataclass(frozen=True, slots=True)
class EvidencePattern:
    key: str
    value: re.Pattern[str] | None

    def matches(self, key: str, value: str) -> bool:
        if self.key.endswith(".*"):
            if not key.startswith(self.key[:-1]):
                return False
        elif key != self.key:
            return False
        return self.value is None or self.value.search(value) is not None

    def describe(self) -> str:
        return self.key if self.value is None else f"{self.key} ~ {self.value.pattern}"


@dataclass(frozen=True, slots=True)
class Condition:
    predicates: tuple[Predicate, ...]
    evidence: tuple[EvidencePattern, ...]  # the positive evidence patterns, to cite in a finding
    uses_identity: bool = False  # conditions on manufacturer/brand/model/firmware: cite the identity rules

    def holds(self, device: Device) -> bool:
        return all(p(device) for p in self.predicates)

    def cited_evidence(self, device: Device) -> list[str]:
        """'key: value' of the Evidence items this condition relied on (for the finding's evidence)."""
        out: list[str] = []
        for pat in self.evidence:
            for ev in device.evidence:
                if pat.matches(ev.key, ev.value):
                    out.append(f"{ev.key}: {ev.value[:200]}")
                    break
        return out


def _pattern(value: Any, where: str) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ConditionError(f"{where} must be a regular expression string")
    try:
        return re.compile(value)
    except (re.error, OverflowError, RecursionError) as exc:  # a{99999999999}; thousands of nested groups
        raise ConditionError(f"{where}: bad pattern: {exc}") from None


def _evidence_patterns(value: Any, where: str) -> tuple[EvidencePattern, ...]:
    if not isinstance(value, list) or not value:
        raise ConditionError(f"{where} must be a non-empty list of {{key, value}}")
    pats = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or set(item) - {"key", "value"}:
            raise ConditionError(f"{where}: each item needs 'key' (and optionally 'value'), got {item!r}")
        pats.append(EvidencePattern(item["key"], _pattern(item["value"], where) if "value" in item else None))
    return tuple(pats)


def compile_condition(spec: Any, names: Mapping[str, object], where: str = "when") -> Condition:
    """Compile a `when:` map; `names` is the canonical maker list (to catch misspelt makers at load)."""
    if not isinstance(spec, dict) or not spec:
        raise ConditionError(f"{where} must be a non-empty mapping")
    unknown = set(spec) - KEYS
    if unknown:
        raise ConditionError(f"{where}: unknown condition(s) {sorted(unknown)}")
    preds: list[Predicate] = []
    cited: list[EvidencePattern] = []
    for field in FIELDS:
        if field in spec:
            allowed = spec[field]
            if not isinstance(allowed, list) or not allowed:
                raise ConditionError(f"{where}.{field} must be a non-empty list")
            for name in allowed:
                if name is None:
                    continue
                if not isinstance(name, str):
                    raise ConditionError(f"{where}.{field}: {name!r} is not a name")
                if field == "device_type" and name not in DEVICE_TYPES:
                    raise ConditionError(f"{where}.device_type: {name!r} is not a device type")
                if field != "device_type" and name not in names:
                    raise ConditionError(f"{where}.{field}: {name!r} is not a canonical maker name")
            preds.append(_field_in(field, frozenset(allowed)))
    for field in ("model", "firmware"):
        if field in spec:
            preds.append(_field_search(field, _pattern(spec[field], f"{where}.{field}")))
    if "firmware_below" in spec:
        bound = version_key(str(spec["firmware_below"]))
        preds.append(lambda d: bool(d.firmware) and version_key(d.firmware or "") < bound)
    if "firmware_at_least" in spec:
        low = version_key(str(spec["firmware_at_least"]))
        preds.append(lambda d: bool(d.firmware) and version_key(d.firmware or "") >= low)
    if "evidence" in spec:
        pats = _evidence_patterns(spec["evidence"], f"{where}.evidence")
        cited.extend(pats)
        preds.append(lambda d: all(any(p.matches(e.key, e.value) for e in d.evidence) for p in pats))
    if "evidence_absent" in spec:
        absent = _evidence_patterns(spec["evidence_absent"], f"{where}.evidence_absent")
        preds.append(lambda d: not any(p.matches(e.key, e.value) for e in d.evidence for p in absent))
    subs: list[Condition] = []
    if "any" in spec:
        options = spec["any"]
        if not isinstance(options, list) or not options:
            raise ConditionError(f"{where}.any must be a non-empty list of condition maps")
        subs = [compile_condition(o, names, f"{where}.any[{i}]") for i, o in enumerate(options)]
        cited.extend(p for s in subs for p in s.evidence)
        preds.append(lambda d: any(s.holds(d) for s in subs))
    if "not" in spec:
        neg = compile_condition(spec["not"], names, f"{where}.not")
        preds.append(lambda d: not neg.holds(d))
    uses_identity = bool({"manufacturer", "brand", "model", "firmware"} & set(spec)) or any(
        s.uses_identity for s in (subs if "any" in spec else [])
    )
    return Condition(tuple(preds), tuple(cited), uses_identity)


def _field_in(field: str, allowed: frozenset[Any]) -> Predicate:
    def check(d: Device) -> bool:
        v = getattr(d, field)
        return (v.value if hasattr(v, "value") else v) in allowed

    return check


def _field_search(field: str, pattern: re.Pattern[str]) -> Predicate:
    def check(d: Device) -> bool:
        v = getattr(d, field)
        return bool(v) and pattern.search(v) is not None

    return check
