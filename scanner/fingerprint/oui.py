"""MAC address -> maker, through the IEEE MA-L registry that netaddr bundles and a reviewed table.

The registry says who registered an OUI ("Hangzhou Hikvision Digital Technology Co.,Ltd."); the table in
fingerprints/oui.yaml says which canonical maker that registrant is. Names are compared exactly (after
collapsing whitespace and case), never by substring: "Shanghai Dahua Scale Factory" is not Dahua.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from scanner.model import DEVICE_TYPES

if TYPE_CHECKING:
    from scanner.fingerprint.rules import Maker

_HEX = re.compile(r"[0-9a-f]{12}")
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


def normalise_mac(value: str) -> str | None:
    """`44-19-B6-12-34-56`, `4419.b612.3456`, `4419b6123456` -> `44:19:b6:12:34:56`; None if not a MAC."""
    digits = re.sub(r"[\s:.\-]", "", value.strip().lower())
    if len(digits) != 12 or not _HEX.fullmatch(digits):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


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


def _fail(file: str, rule: str | None, reason: str) -> Exception:
    from scanner.fingerprint.rules import RuleError

    return RuleError(file, rule, reason)


def load_oui(path: Path, makers: Mapping[str, Maker]) -> OuiTable:
    name = path.name
    with path.open(encoding="utf-8") as fh:
        try:
            doc: Any = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise _fail(name, None, f"not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("makers"), list):
        raise _fail(name, None, "expected a mapping with a 'makers' list")
    rules: list[OuiRule] = []
    by_name: dict[str, OuiRule] = {}
    for raw in doc["makers"]:
        if not isinstance(raw, dict):
            raise _fail(name, None, f"bad entry {raw!r}")
        rid = raw.get("id")
        if not isinstance(rid, str) or not _RULE_ID.match(rid):
            raise _fail(name, str(rid), "rule id must be lower-case [a-z0-9.-]")
        maker = raw.get("manufacturer")
        if maker not in makers:
            raise _fail(name, rid, f"{maker!r} is not a canonical maker (fingerprints/makers.yaml)")
        names = raw.get("registry_names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise _fail(name, rid, "registry_names must be a non-empty list of strings")
        brand = raw.get("brand")
        if brand is not None and brand not in makers:
            raise _fail(name, rid, f"brand {brand!r} is not a canonical maker (fingerprints/makers.yaml)")
        dtype = raw.get("device_type")
        if dtype is not None and dtype not in DEVICE_TYPES:
            raise _fail(name, rid, f"device_type {dtype!r} is not one of {sorted(DEVICE_TYPES)}")
        conf = raw.get("confidence", 0.85)
        if not isinstance(conf, (int, float)) or not 0.5 <= float(conf) <= 0.99:
            raise _fail(name, rid, f"confidence must be in 0.5..0.99, not {conf!r}")
        source = raw.get("source")
        if not isinstance(source, str) or not source.strip():
            raise _fail(name, rid, "every rule needs a 'source'")
        examples = raw.get("examples")
        if not isinstance(examples, list) or not examples:
            raise _fail(name, rid, "every rule needs at least one example MAC")
        rule = OuiRule(
            id=rid,
            manufacturer=str(maker),
            brand=brand,
            registry_names=tuple(names),
            device_type=dtype,
            confidence=float(conf),
            source=source.strip(),
            examples=tuple(str(e) for e in examples),
        )
        if any(r.id == rid for r in rules):
            raise _fail(name, rid, "rule id used twice in the file")
        for n in names:
            if fold(n) in by_name:
                raise _fail(name, rid, f"registry name {n!r} is also mapped by {by_name[fold(n)].id}")
            by_name[fold(n)] = rule
        rules.append(rule)
    lookalikes: list[Lookalike] = []
    for raw in doc.get("lookalikes") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("registry_name"), str):
            raise _fail(name, None, f"bad look-alike {raw!r}")
        if fold(raw["registry_name"]) in by_name:
            raise _fail(name, raw["registry_name"], "a look-alike cannot also be mapped to a maker")
        lookalikes.append(
            Lookalike(
                registry_name=raw["registry_name"],
                not_maker=str(raw.get("not", "")),
                note=str(raw.get("note", "")),
                examples=tuple(str(e) for e in raw.get("examples") or []),
            )
        )
    return OuiTable(
        rules=rules,
        lookalikes=lookalikes,
        by_name=by_name,
        lookalike_names={fold(lk.registry_name): lk for lk in lookalikes},
    )
