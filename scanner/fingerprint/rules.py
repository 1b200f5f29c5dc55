"""Load, validate and compile the knowledge files in fingerprints/ into a RuleSet.

The file formats are pydantic models in schema.py (structure, field types, unknown fields refused); this
module checks meaning (canonical maker names, patterns that compile, named groups, keys the file declares)
and compiles. A broken file is refused at load with its file, rule id and reason (RuleError); nothing in a
rule file is evaluated, patterns are only compiled. Every file loaded is recorded as a KnowledgeRef (kind,
name, origin, SHA-256 of the bytes parsed) for the report's `scan.knowledge`. See fingerprints/README.md.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scanner._data import data_dir
from scanner.fingerprint.oui import OuiTable, load_oui
from scanner.fingerprint.registry import load_registry
from scanner.fingerprint.schema import (
    ExampleDoc,
    MakersDoc,
    NamesDoc,
    OemDoc,
    RuleDoc,
    RuleError,
    RuleFileDoc,
    read_doc,
    sha256_file,
)
from scanner.model import KnowledgeRef
from scanner.userdata import user_data_dir

__all__ = ["RuleError", "RuleSet", "load_ruleset"]

SPECIAL_FILES = frozenset({"makers.yaml", "oem.yaml", "oui.yaml", "names.yaml"})
_GROUPS = frozenset({"model", "firmware", "mac"})  # mac: looked up in the OUI table (engine.py)
SHIPPED = "shipped"


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


@dataclass(frozen=True, slots=True)
class Names:
    """fingerprints/names.yaml compiled: how an unknown stated manufacturer name is cleaned."""

    company_suffix: re.Pattern[str]
    place_prefix: re.Pattern[str] | None
    placeholders: frozenset[str]
    places: tuple[str, ...] = ()
    generic_words: tuple[str, ...] = ()


@dataclass(slots=True)
class RuleSet:
    """Every rule file, compiled once, plus the maker list, the OEM table, the OUI table and the name words;
    `knowledge` lists each file loaded, in load order."""

    files: list[RuleFile]
    makers: dict[str, Maker]
    oem: list[OemLink]
    oui: OuiTable | None = None
    names: Names | None = None
    knowledge: list[KnowledgeRef] = field(default_factory=list)
    _by_key: dict[str, list[list[Rule]]] = field(default_factory=dict)

    @property
    def rules(self) -> list[Rule]:
        return [r for f in self.files for r in f.rules]

    def rules_for(self, key: str) -> list[list[Rule]]:
        """Per file, in file order, the rules that read `key` (first match wins within each list)."""
        cached = self._by_key.get(key)
        if cached is None:
            cached = []
            reads: dict[tuple[str, ...], bool] = {}  # most rules read their file's keys: decide once per tuple
            for f in self.files:
                applicable = []
                for r in f.rules:
                    ok = reads.get(r.keys)
                    if ok is None:
                        ok = reads[r.keys] = any(key_matches(k, key) for k in r.keys)
                    if ok:
                        applicable.append(r)
                if applicable:
                    cached.append(applicable)
            self._by_key[key] = cached
        return cached

    def camera_makers(self) -> list[str]:
        return sorted(m.name for m in self.makers.values() if m.kind in ("camera", "mixed"))

    def digest(self) -> str:
        """SHA-256 over what was loaded: one line per knowledge file (kind, origin, name, sha256; tab
        separated), in load order. Anyone can recompute it from the report's `scan.knowledge`."""
        return knowledge_digest(self.knowledge)


def knowledge_digest(refs: Iterable[KnowledgeRef]) -> str:
    lines = "\n".join(f"{k.kind}\t{k.origin}\t{k.name}\t{k.sha256}" for k in refs)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def load_makers(doc: MakersDoc, file: str) -> dict[str, Maker]:
    makers: dict[str, Maker] = {}
    folded: dict[str, str] = {}
    for entry in doc.makers:
        name = entry.name
        if name in makers:
            raise RuleError(file, name, "maker listed twice")
        if name.casefold() in folded:
            raise RuleError(file, name, f"same maker as {folded[name.casefold()]!r} with another spelling")
        folded[name.casefold()] = name
        makers[name] = Maker(name=name, kind=entry.kind, covered=entry.covered)
    return makers


def load_oem(doc: OemDoc, file: str, makers: Mapping[str, Maker]) -> list[OemLink]:
    links: list[OemLink] = []
    for entry in doc.relationships:
        for name in (entry.brand, entry.maker):
            if name not in makers:
                raise RuleError(file, f"{entry.brand}->{entry.maker}", f"{name!r} is not in makers.yaml")
        links.append(
            OemLink(
                brand=entry.brand,
                maker=entry.maker,
                relationship=entry.relationship,
                valid_from=_opt_str(entry.valid_from),
                valid_until=_opt_str(entry.valid_until),
                source=entry.source,
                note=entry.note,
            )
        )
    return links


def load_names(doc: NamesDoc, file: str) -> Names:
    def alternation(words: list[str], what: str) -> str:
        for w in words:
            try:
                re.compile(w)
            except re.error as exc:
                raise RuleError(file, w, f"bad {what} pattern: {exc}") from None
        return "|".join(f"(?:{w})" for w in words)

    places = [re.escape(w) for w in doc.place_prefixes]
    return Names(
        company_suffix=re.compile(r"(?i)[\s,.]+(?:" + alternation(doc.company_suffixes, "company suffix") + r")\.?$"),
        place_prefix=re.compile(r"(?i)^(?:" + "|".join(places) + r")\s+") if places else None,
        placeholders=frozenset(w.casefold() for w in doc.placeholders),
        places=tuple(doc.place_prefixes),
        generic_words=(*doc.generic_words, *doc.place_prefixes),
    )


def _opt_str(v: object) -> str | None:
    return None if v is None else str(v)


def _str_tuple(v: str | list[str] | None) -> tuple[str, ...]:
    if v is None:
        return ()
    return (v,) if isinstance(v, str) else tuple(v)


def _example(raw: str | int | float | ExampleDoc) -> Example:
    if isinstance(raw, ExampleDoc):
        expect = {k: getattr(raw, k) for k in sorted(raw.model_fields_set - {"value"})}
        return Example(str(raw.value), expect)
    return Example(str(raw), {})


def compile_rule(raw: RuleDoc, file: str, family: str, file_keys: tuple[str, ...], makers: Mapping[str, Maker]) -> Rule:
    rid = raw.id
    try:
        pattern = re.compile(raw.match)
    except (re.error, OverflowError, RecursionError) as exc:  # a{99999999999}; thousands of nested groups
        raise RuleError(file, rid, f"bad pattern: {exc}") from None
    bad_groups = set(pattern.groupindex) - _GROUPS
    if bad_groups:
        raise RuleError(file, rid, f"named groups must be model, firmware or mac, not {sorted(bad_groups)}")
    keys = _str_tuple(raw.keys) or file_keys
    for k in keys:
        if not any(key_matches(fk, k) or fk == k for fk in file_keys):
            raise RuleError(file, rid, f"key {k!r} is not among the file's keys {list(file_keys)}")
    candidates = _str_tuple(raw.candidates)
    for name in (raw.manufacturer, raw.brand, *candidates):
        if name is not None and name not in makers:
            raise RuleError(file, rid, f"{name!r} is not a canonical maker (fingerprints/makers.yaml)")
    if candidates and (raw.manufacturer or raw.brand):
        raise RuleError(file, rid, "candidates is for banners that name no single maker: drop manufacturer/brand")
    if not (raw.manufacturer or raw.brand or candidates or raw.device_type or pattern.groupindex):
        raise RuleError(file, rid, "the rule asserts nothing (no maker, brand, candidates, type or groups)")
    if not raw.source.strip():
        raise RuleError(file, rid, "every rule needs a 'source'")
    return Rule(
        file=file,
        family=family,
        id=rid,
        keys=keys,
        pattern=pattern,
        manufacturer=raw.manufacturer,
        brand=raw.brand,
        candidates=candidates,
        device_type=raw.device_type,
        confidence=float(raw.confidence),
        source=raw.source.strip(),
        examples=tuple(_example(e) for e in raw.examples),
        counter_examples=tuple(str(c) for c in raw.counter_examples),
    )


def compile_rule_file(doc: RuleFileDoc, name: str, makers: Mapping[str, Maker]) -> RuleFile:
    keys = _str_tuple(doc.keys)
    if not keys:
        raise RuleError(name, None, "the file must declare the evidence keys it reads ('keys')")
    family = doc.family or keys[0]
    rules: list[Rule] = []
    seen: set[str] = set()
    for raw in doc.rules:
        rule = compile_rule(raw, name, family, keys, makers)
        if rule.id in seen:
            raise RuleError(name, rule.id, "rule id used twice in the file")
        seen.add(rule.id)
        rules.append(rule)
    return RuleFile(name=name, family=family, keys=keys, rules=rules)


def rule_paths(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.name not in SPECIAL_FILES)


def load_ruleset(
    directory: Path | None = None, extra_dirs: Iterable[Path] = (), registry_dir: Path | None = None
) -> RuleSet:
    """Load and compile fingerprints/ (or `directory`), then any council's own directories, read after it.

    Extra directories hold rule files only; the maker list, OEM, OUI and name tables are camscan's. The MAC
    registry is the one installed in `registry_dir` (default: camscan's data directory) by `camscan oui
    update`, else the shipped snapshot."""
    if registry_dir is None:
        registry_dir = user_data_dir(create=False)
    base = directory or data_dir("fingerprints")
    base_origin = SHIPPED if directory is None or base.resolve() == data_dir("fingerprints").resolve() else str(base)
    knowledge: list[KnowledgeRef] = []

    def record(kind: str, path: Path, data: bytes, origin: str) -> None:
        knowledge.append(KnowledgeRef(kind=kind, name=path.name, origin=origin, sha256=sha256_file(data)))

    makers_doc, data = read_doc(base / "makers.yaml", MakersDoc)
    record("makers", base / "makers.yaml", data, base_origin)
    makers = load_makers(makers_doc, "makers.yaml")
    oem: list[OemLink] = []
    if (base / "oem.yaml").exists():
        oem_doc, data = read_doc(base / "oem.yaml", OemDoc)
        record("oem", base / "oem.yaml", data, base_origin)
        oem = load_oem(oem_doc, "oem.yaml", makers)
    names = None
    if (base / "names.yaml").exists():
        names_doc, data = read_doc(base / "names.yaml", NamesDoc)
        record("names", base / "names.yaml", data, base_origin)
        names = load_names(names_doc, "names.yaml")
    files: list[RuleFile] = []
    for origin, directory_ in [(base_origin, base), *((str(d), Path(d)) for d in extra_dirs)]:
        for path in rule_paths(directory_):
            doc, data = read_doc(path, RuleFileDoc)
            files.append(compile_rule_file(doc, path.name, makers))
            record("rules", path, data, origin)
    families: dict[str, str] = {}
    for f in files:
        if f.family in families:
            raise RuleError(f.name, None, f"family {f.family!r} is also used by {families[f.family]}")
        families[f.family] = f.name
    ruleset = RuleSet(files=files, makers=makers, oem=oem, names=names, knowledge=knowledge)
    oui_path = base / "oui.yaml"
    if oui_path.exists():
        registry = load_registry(registry_dir)
        ruleset.oui, data = load_oui(oui_path, makers, registry)
        record("oui", oui_path, data, base_origin)
        knowledge.extend(registry.knowledge())
    return ruleset
