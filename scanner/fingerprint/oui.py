"""MAC address -> maker, through the IEEE registry (registry.py) and a reviewed table.

The registry says who registered an address block ("Hangzhou Hikvision Digital Technology Co.,Ltd."); the
table in fingerprints/oui.yaml says which canonical maker that registrant is. Names are compared exactly
(after collapsing whitespace and case), never by substring: "Shanghai Dahua Scale Factory" is not Dahua.
A registry update can bring names the table does not know yet: `audit` lists the ones that look like a
known maker, so a new block of a covered maker is never dropped silently.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scanner.fingerprint.registry import Registry
from scanner.fingerprint.schema import OuiDoc, RuleError, read_doc


def fold(name: str) -> str:
    """The form names are compared in: Unicode NFC (the registry spells `Wächter` both precomposed and with a
    combining diaeresis), whitespace collapsed, case folded."""
    return " ".join(unicodedata.normalize("NFC", name).split()).casefold()


@dataclass(frozen=True, slots=True)
class OuiRule:
    id: str
    manufacturer: str
    brand: str | None  # the label the registrant sells under (see asserts())
    registry_names: tuple[str, ...]
    device_type: str | None
    confidence: float
    source: str
    examples: tuple[str, ...]

    @property
    def full_id(self) -> str:
        return f"mac/{self.id}"

    def asserts(self) -> tuple[str | None, str | None]:
        """(manufacturer, brand) this OUI supports. A registrant whose brand is itself is a label owner
        (Amcrest, Lorex, LTS register their own blocks for units others may make): its OUI is a label and
        firmware evidence decides the maker. An owned brand (EZVIZ) supports both its owner and the label."""
        if self.brand and self.brand == self.manufacturer:
            return None, self.brand
        return self.manufacturer, self.brand


@dataclass(frozen=True, slots=True)
class Lookalike:
    registry_name: str
    not_maker: str
    note: str
    examples: tuple[str, ...]


@dataclass(slots=True)
class OuiTable:
    rules: list[OuiRule]
    lookalikes: list[Lookalike]
    by_name: dict[str, OuiRule]
    lookalike_names: dict[str, Lookalike]
    registry: Registry
    _by_registrant: dict[str, OuiRule | None] = field(default_factory=dict)

    def lookup(self, mac: str) -> tuple[str | None, OuiRule | None]:
        """(registrant, rule) for a normalised MAC: the longest registered block's registrant, and the entry
        of the table that names it (None when the name is not in the table)."""
        org, _bits = self.registry.lookup(mac)
        if org is None:
            return None, None
        cache = self._by_registrant
        if org in cache:
            return org, cache[org]
        rule = cache[org] = self.by_name.get(fold(org))
        return org, rule


def load_oui(path: Path, makers: Mapping[str, object], registry: Registry) -> tuple[OuiTable, bytes]:
    """(the OUI table, the bytes it was read from); RuleError for an entry that names no canonical maker, a
    registry name mapped twice, or a look-alike that is also mapped."""
    name = path.name
    doc, data = read_doc(path, OuiDoc)
    rules: list[OuiRule] = []
    by_name: dict[str, OuiRule] = {}
    for raw in doc.makers:
        rid = raw.id
        for maker, what in ((raw.manufacturer, ""), (raw.brand, "brand ")):
            if maker is not None and maker not in makers:
                raise RuleError(name, rid, f"{what}{maker!r} is not a canonical maker (fingerprints/makers.yaml)")
        if not raw.source.strip():
            raise RuleError(name, rid, "every rule needs a 'source'")
        if any(r.id == rid for r in rules):
            raise RuleError(name, rid, "rule id used twice in the file")
        rule = OuiRule(
            id=rid,
            manufacturer=raw.manufacturer,
            brand=raw.brand,
            registry_names=tuple(raw.registry_names),
            device_type=raw.device_type,
            confidence=float(raw.confidence),
            source=raw.source.strip(),
            examples=tuple(raw.examples),
        )
        for n in raw.registry_names:
            if fold(n) in by_name:
                raise RuleError(name, rid, f"registry name {n!r} is also mapped by {by_name[fold(n)].id}")
            by_name[fold(n)] = rule
        rules.append(rule)
    lookalikes: list[Lookalike] = []
    for lk in doc.lookalikes:
        if fold(lk.registry_name) in by_name:
            raise RuleError(name, lk.registry_name, "a look-alike cannot also be mapped to a maker")
        lookalikes.append(
            Lookalike(
                registry_name=lk.registry_name,
                not_maker=lk.not_maker,
                note=lk.note or "",
                examples=tuple(lk.examples),
            )
        )
    table = OuiTable(
        rules=rules,
        lookalikes=lookalikes,
        by_name=by_name,
        lookalike_names={fold(lk.registry_name): lk for lk in lookalikes},
        registry=registry,
    )
    return table, data


# -- the audit: registrant names that look like a known maker but that the table does not classify ----------------

_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script: `wächter` is one word
MAX_SPREAD = 12  # a word in more registrant names than this says little about who one of them is


@dataclass(frozen=True, slots=True)
class Suspect:
    """A registrant name the table neither maps nor lists as a look-alike, that shares a word with a maker."""

    registrant: str
    looks_like: str  # the canonical maker it shares a word with
    word: str
    covered: bool  # the maker is a covered entity (or a brand it owns or owned)
    blocks: int


def _words(name: str, generic: frozenset[str]) -> set[str]:
    """The distinctive words of a name: no legal form, trade or place (also when glued: `technologyco`)."""
    out = set()
    for w in _WORD.findall(unicodedata.normalize("NFC", name).casefold()):
        if w in generic or w.isdigit() or (w.endswith("co") and w[:-2] in generic):
            continue
        if w.endswith("ltd") and w[:-3] in generic:
            continue
        out.add(w)
    return out


def audit(
    table: OuiTable, makers: Mapping[str, object], covered: set[str], generic_words: Iterable[str] = ()
) -> list[Suspect]:
    """Registrant names in the registry in use that look like a known maker (they share a distinctive word with
    its canonical name, or with a registrant name the table already maps to it) but are neither mapped nor a
    look-alike. Words of `generic_words` (names.yaml: legal forms, trades, places) are never a sign. Blocks
    with the local or group bit set (IEEE Company IDs) are left out: no device's MAC is in one.
    A registry update must never drop a new block of a covered maker silently: the shipped
    registry is audited by a test, and `camscan oui audit` lists these for a person to review."""
    generic = frozenset(w.casefold() for w in generic_words)
    blocks: dict[str, int] = {}
    for bits, bits_table in table.registry.blocks.items():
        for prefix, name in bits_table.items():
            if (prefix >> (bits - 8)) & 0x03:
                continue  # a CID or a group block: never a device's own address, and lookup never resolves it
            blocks[name] = blocks.get(name, 0) + 1
    spread: dict[str, int] = {}  # in how many registrant names a word appears
    for name in blocks:
        for w in _words(name, generic):
            spread[w] = spread.get(w, 0) + 1
    keywords: dict[str, str] = {}
    for maker in makers:  # a maker's own name: a short one (ZTE, LTS) only when it is the whole name
        for w in _words(maker, generic):
            if (len(w) >= 4 and spread.get(w, 0) <= MAX_SPREAD) or maker.casefold() == w:
                keywords.setdefault(w, maker)
    # A word every mapped name of one (maker, label) shares is the company's own (`hikvision` in both Hikvision
    # names, `ezviz` in EZVIZ's), a sign when few registrants share it; a word of one name alone (`zhilian`,
    # "smart link", in Dahua Zhilian) is not.
    shared: dict[tuple[str, str | None], set[str]] = {}
    for rule in table.rules:
        group = (rule.manufacturer, rule.brand)
        for name in rule.registry_names:
            words = _words(name, generic)
            shared[group] = shared[group] & words if group in shared else words
    for (maker, _brand), words in shared.items():
        for w in words:
            if len(w) >= 4 and spread.get(w, 0) <= MAX_SPREAD:
                keywords.setdefault(w, maker)
    found: list[Suspect] = []
    for name, n in blocks.items():
        folded = fold(name)
        if folded in table.by_name or folded in table.lookalike_names:
            continue
        for w in sorted(_words(name, generic)):
            like = keywords.get(w)
            if like is not None:
                found.append(Suspect(name, like, w, like in covered, n))
                break
    return sorted(found, key=lambda s: (not s.covered, s.looks_like, s.registrant))
