"""MAC address -> maker, through the IEEE MA-L registry that netaddr bundles and a reviewed table.

The registry says who registered an OUI ("Hangzhou Hikvision Digital Technology Co.,Ltd."); the table in
fingerprints/oui.yaml says which canonical maker that registrant is. Names are compared exactly (after
collapsing whitespace and case), never by substring: "Shanghai Dahua Scale Factory" is not Dahua.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scanner.fingerprint.schema import OuiDoc, RuleError, read_doc


def fold(name: str) -> str:
    return " ".join(name.split()).casefold()


def registry_org(mac: str) -> str | None:
    """The IEEE registrant of a MAC's OUI, or None (locally administered, multicast, MA-M/MA-S, unknown)."""
    from netaddr import OUI
    from netaddr.core import NotRegisteredError

    first = int(mac[0:2], 16)
    if first & 0x03:  # locally administered (randomised phones, VMs) or multicast: no registrant to look up
        return None
    try:
        org = OUI(int(mac[0:2] + mac[3:5] + mac[6:8], 16)).registration(0).org
    except (NotRegisteredError, IndexError, ValueError):
        return None
    return str(org).strip() or None


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
    _cache: dict[str, tuple[str | None, OuiRule | None]] = field(default_factory=dict)

    def lookup(self, mac: str) -> tuple[str | None, OuiRule | None]:
        """(registrant, rule) for a normalised MAC; cached per OUI (the registry lookup costs ~20 us)."""
        prefix = mac[:8]
        hit = self._cache.get(prefix)
        if hit is None:
            org = registry_org(mac)
            rule = self.by_name.get(fold(org)) if org else None
            hit = (org, rule)
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[prefix] = hit
        return hit


def load_oui(path: Path, makers: Mapping[str, object]) -> tuple[OuiTable, bytes]:
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
    )
    return table, data
