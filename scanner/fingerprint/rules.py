"""Load, validate and compile the fingerprint rule files in fingerprints/.

A broken file is refused at load with its file, rule id and reason (RuleError); nothing in a rule file
is evaluated, patterns are only compiled. See fingerprints/README.md for the format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scanner._data import data_dir
from scanner.model import DEVICE_TYPES

SPECIAL_FILES = frozenset({"makers.yaml", "oem.yaml", "oui.yaml"})
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_GROUPS = frozenset({"model", "firmware"})
_RULE_FIELDS = frozenset(
    {
        "id",
        "match",
        "keys",
        "manufacturer",
        "brand",
        "candidates",
        "device_type",
        "confidence",
        "source",
        "examples",
        "counter_examples",
        "note",
    }
)
DEFAULT_CONFIDENCE = 0.8


class RuleError(ValueError):
    """A rule file that cannot be used, with where and why."""

    def __init__(self, file: str, rule: str | None, reason: str) -> None:
        self.file, self.rule, self.reason = file, rule, reason
        where = f"{file}: rule {rule!r}" if rule else file
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True, slots=True)
class Example:
    value: str
    expect: Mapping[str, str | None]


@dataclass(frozen=True, slots=True, eq=False)
class Rule:
    file: str
    family: str
    id: str
    keys: tuple[str, ...]
    pattern: re.Pattern[str]
    manufacturer: str | None
    brand: str | None
    candidates: tuple[str, ...]
    device_type: str | None
    confidence: float
    source: str
    examples: tuple[Example, ...]
    counter_examples: tuple[str, ...]

    @property
    def full_id(self) -> str:
        return f"{self.family}/{self.id}"


@dataclass(frozen=True, slots=True)
class Maker:
    name: str
    kind: str  # camera | mixed | other (fingerprints/makers.yaml)
    covered: bool = False


@dataclass(frozen=True, slots=True)
class OemLink:
    """A brand sold by, or reported to relabel for, a maker (fingerprints/oem.yaml)."""

    brand: str
    maker: str
    relationship: str  # owned | affiliate_historic | oem_reported
    valid_from: str | None
    valid_until: str | None
    source: str
    note: str | None = None


@dataclass(slots=True)
class RuleFile:
    name: str
    family: str
    keys: tuple[str, ...]
    rules: list[Rule]


def key_matches(pattern: str, key: str) -> bool:
    """`sadp.*` covers every sadp.<field>; other keys match exactly."""
    if pattern.endswith(".*"):
        return key.startswith(pattern[:-1])
    return pattern == key


@dataclass(slots=True)
class RuleSet:
    """Every rule file, compiled once, plus the maker list and the OEM table."""

    files: list[RuleFile]
    makers: dict[str, Maker]
    oem: list[OemLink]
    oui: Any = None  # scanner.fingerprint.oui.OuiTable, set by load_ruleset
    _by_key: dict[str, list[list[Rule]]] = field(default_factory=dict)

    @property
    def rules(self) -> list[Rule]:
        return [r for f in self.files for r in f.rules]

    def rules_for(self, key: str) -> list[list[Rule]]:
        """Per file, in file order, the rules that read `key` (first match wins within each list)."""
        cached = self._by_key.get(key)
        if cached is None:
            cached = []
            for f in self.files:
                applicable = [r for r in f.rules if any(key_matches(k, key) for k in r.keys)]
                if applicable:
                    cached.append(applicable)
            self._by_key[key] = cached
        return cached

    def camera_makers(self) -> list[str]:
        return sorted(m.name for m in self.makers.values() if m.kind in ("camera", "mixed"))


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise RuleError(path.name, None, f"not valid YAML: {exc}") from exc


def load_makers(path: Path) -> dict[str, Maker]:
    doc = _read_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("makers"), list):
        raise RuleError(path.name, None, "expected a mapping with a 'makers' list")
    makers: dict[str, Maker] = {}
    for entry in doc["makers"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise RuleError(path.name, None, f"bad maker entry {entry!r}")
        name = entry["name"]
        kind = entry.get("kind", "camera")
        if kind not in ("camera", "mixed", "other"):
            raise RuleError(path.name, name, f"kind must be camera, mixed or other, not {kind!r}")
        if name in makers:
            raise RuleError(path.name, name, "maker listed twice")
        folded = {m.casefold(): m for m in makers}
        if name.casefold() in folded:
            raise RuleError(path.name, name, f"same maker as {folded[name.casefold()]!r} with another spelling")
        makers[name] = Maker(name=name, kind=kind, covered=bool(entry.get("covered", False)))
    return makers


def load_oem(path: Path, makers: Mapping[str, Maker]) -> list[OemLink]:
    if not path.exists():
        return []
    doc = _read_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("relationships"), list):
        raise RuleError(path.name, None, "expected a mapping with a 'relationships' list")
    links: list[OemLink] = []
    for entry in doc["relationships"]:
        if not isinstance(entry, dict):
            raise RuleError(path.name, None, f"bad entry {entry!r}")
        brand, maker = entry.get("brand"), entry.get("maker")
        rel = entry.get("relationship")
        for name in (brand, maker):
            if name not in makers:
                raise RuleError(path.name, f"{brand}->{maker}", f"{name!r} is not in makers.yaml")
        if rel not in ("owned", "affiliate_historic", "oem_reported"):
            raise RuleError(path.name, f"{brand}->{maker}", f"unknown relationship {rel!r}")
        if not entry.get("source"):
            raise RuleError(path.name, f"{brand}->{maker}", "a relationship needs a source")
        links.append(
            OemLink(
                brand=str(brand),
                maker=str(maker),
                relationship=str(rel),
                valid_from=_opt_str(entry.get("valid_from")),
                valid_until=_opt_str(entry.get("valid_until")),
                source=str(entry["source"]),
                note=_opt_str(entry.get("note")),
            )
        )
    return links


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def _str_list(v: Any, file: str, rule: str, what: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return tuple(v)
    raise RuleError(file, rule, f"{what} must be a string or a list of strings")


def _parse_example(raw: Any, file: str, rule: str) -> Example:
    if isinstance(raw, str):
        return Example(raw, {})
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return Example(str(raw), {})
    if isinstance(raw, dict) and "value" in raw:
        expect: dict[str, str | None] = {}
        for k, v in raw.items():
            if k == "value":
                continue
            if k not in _GROUPS:
                raise RuleError(file, rule, f"example field {k!r} is not one of {sorted(_GROUPS)}")
            expect[k] = None if v is None else str(v)
        return Example(str(raw["value"]), expect)
    raise RuleError(file, rule, f"bad example {raw!r}: a string or a mapping with 'value'")


def parse_rule(raw: Any, file: str, family: str, file_keys: tuple[str, ...], makers: Mapping[str, Maker]) -> Rule:
    if not isinstance(raw, dict):
        raise RuleError(file, None, f"a rule must be a mapping, got {raw!r}")
    rid = raw.get("id")
    if not isinstance(rid, str) or not _RULE_ID.match(rid):
        raise RuleError(file, str(rid), "rule id must be lower-case [a-z0-9.-]")
    unknown = set(raw) - _RULE_FIELDS
    if unknown:
        raise RuleError(file, rid, f"unknown field(s) {sorted(unknown)}")
    pat = raw.get("match")
    if not isinstance(pat, str) or not pat:
        raise RuleError(file, rid, "missing 'match' pattern")
    try:
        pattern = re.compile(pat)
    except re.error as exc:
        raise RuleError(file, rid, f"bad pattern: {exc}") from exc
    bad_groups = set(pattern.groupindex) - _GROUPS
    if bad_groups:
        raise RuleError(file, rid, f"named groups must be model or firmware, not {sorted(bad_groups)}")
    keys = _str_list(raw.get("keys"), file, rid, "keys") or file_keys
    for k in keys:
        if not any(key_matches(fk, k) or fk == k for fk in file_keys):
            raise RuleError(file, rid, f"key {k!r} is not among the file's keys {list(file_keys)}")
    manufacturer = raw.get("manufacturer")
    brand = raw.get("brand")
    candidates = _str_list(raw.get("candidates"), file, rid, "candidates")
    for name in (manufacturer, brand, *candidates):
        if name is not None and name not in makers:
            raise RuleError(file, rid, f"{name!r} is not a canonical maker (fingerprints/makers.yaml)")
    if candidates and (manufacturer or brand):
        raise RuleError(file, rid, "candidates is for banners that name no single maker: drop manufacturer/brand")
    device_type = raw.get("device_type")
    if device_type is not None and device_type not in DEVICE_TYPES:
        raise RuleError(file, rid, f"device_type {device_type!r} is not one of {sorted(DEVICE_TYPES)}")
    if not (manufacturer or brand or candidates or device_type or pattern.groupindex):
        raise RuleError(file, rid, "the rule asserts nothing (no maker, brand, candidates, type or groups)")
    confidence = raw.get("confidence", DEFAULT_CONFIDENCE)
    if not isinstance(confidence, (int, float)) or not 0.5 <= float(confidence) <= 0.99:
        raise RuleError(file, rid, f"confidence must be a number in 0.5..0.99, not {confidence!r}")
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise RuleError(file, rid, "every rule needs a 'source'")
    examples_raw = raw.get("examples")
    if not isinstance(examples_raw, list) or not examples_raw:
        raise RuleError(file, rid, "every rule needs at least one example")
    examples = tuple(_parse_example(e, file, rid) for e in examples_raw)
    counters = tuple(str(c) for c in (raw.get("counter_examples") or []))
    return Rule(
        file=file,
        family=family,
        id=rid,
        keys=keys,
        pattern=pattern,
        manufacturer=manufacturer,
        brand=brand,
        candidates=candidates,
        device_type=device_type,
        confidence=float(confidence),
        source=source.strip(),
        examples=examples,
        counter_examples=counters,
    )


def load_rule_file(path: Path, makers: Mapping[str, Maker]) -> RuleFile:
    doc = _read_yaml(path)
    name = path.name
    if not isinstance(doc, dict):
        raise RuleError(name, None, "expected a mapping with family, keys and rules")
    keys = _str_list(doc.get("keys"), name, "", "keys")
    if not keys:
        raise RuleError(name, None, "the file must declare the evidence keys it reads ('keys')")
    family = doc.get("family") or keys[0]
    if not isinstance(family, str):
        raise RuleError(name, None, "family must be a string")
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleError(name, None, "expected a non-empty 'rules' list")
    rules: list[Rule] = []
    seen: set[str] = set()
    for raw in raw_rules:
        rule = parse_rule(raw, name, family, keys, makers)
        if rule.id in seen:
            raise RuleError(name, rule.id, "rule id used twice in the file")
        seen.add(rule.id)
        rules.append(rule)
    return RuleFile(name=name, family=family, keys=keys, rules=rules)


def rule_paths(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.name not in SPECIAL_FILES)


def load_ruleset(directory: Path | None = None, extra_dirs: Iterable[Path] = ()) -> RuleSet:
    """Load and compile fingerprints/ (and any council's own directories, read after it)."""
    from scanner.fingerprint.oui import load_oui  # local: oui pulls in netaddr

    base = directory or data_dir("fingerprints")
    makers = load_makers(base / "makers.yaml")
    oem = load_oem(base / "oem.yaml", makers)
    files = [load_rule_file(p, makers) for p in rule_paths(base)]
    for extra in extra_dirs:
        files.extend(load_rule_file(p, makers) for p in rule_paths(extra))
    families: dict[str, str] = {}
    for f in files:
        if f.family in families:
            raise RuleError(f.name, None, f"family {f.family!r} is also used by {families[f.family]}")
        families[f.family] = f.name
    ruleset = RuleSet(files=files, makers=makers, oem=oem)
    oui_path = base / "oui.yaml"
    if oui_path.exists():
        ruleset.oui = load_oui(oui_path, makers)
    return ruleset
