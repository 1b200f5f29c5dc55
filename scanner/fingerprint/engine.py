"""Match a host's Evidence against the rules and combine what fired into one Identity.

How evidence combines (the "sum of log-odds" of docs/architecture.md):
- Each rule says how sure it alone makes us of a maker (`confidence`, p). Rules in the same family read
  the same kind of evidence and are not independent, so per maker only the strongest rule of each family
  counts; families add up as log-odds: score(maker) = sum over families of max logit(p).
- Firmware-level rules (`manufacturer:`) decide the maker; labels (`brand:`) decide the brand, and give a
  maker only through fingerprints/oem.yaml (owned brands, historic affiliates) when no firmware evidence
  names one. A relabel is therefore "maker from firmware, brand from label", and a label alone never turns
  an Amcrest into a Dahua.
- A banner several makers share (`candidates:`) names no maker. Another maker that evidence pointed at is
  kept as a Conflict and lowers the confidence: confidence = sigmoid(score(winner) - score(best rival)).
- A maker is only stated when that confidence reaches MIN_CONFIDENCE.

Derived lookups: a rule's named group `model` is also matched against the model-number schemes of
fingerprints/model.yaml, and a named group `mac` (a device's own MAC inside a realm, a host name, a TXT
record) is looked up in the MAC registry and the OUI table exactly as `mac` Evidence is. So a realm such
as `b4a38201a73f` names whoever the registry in use says holds that block, and stays current after
`camscan oui update`; the derived hit keeps family `mac`, so the same MAC seen twice (ARP and a realm)
counts once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import NamedTuple
from urllib.parse import unquote

from scanner.fingerprint import vendor_token
from scanner.fingerprint.oui import OuiRule
from scanner.fingerprint.prefilter import FirstCharIndex
from scanner.fingerprint.rules import Names, OemLink, Rule, RuleSet
from scanner.model import Conflict, DeviceType, Identity, Relabel, RuleHit, cap_value, normalise_mac

MIN_CONFIDENCE = 0.65
UNLISTED_CONFIDENCE = 0.66
VENDOR_TOKEN_CONFIDENCE = 0.7  # a maker's name where its protocol puts the vendor (vendor_token.py)
VENDOR_TOKEN_RULE = "/vendor-token"
LABEL_KEYS = frozenset({"onvif.manufacturer", "upnp.manufacturer", "wsd.scope"})
_MFR_SCOPE = re.compile(r"(?i)^onvif://www\.onvif\.org/(?:mfr|manufacturer)/([^/]{2,80})/?$")


def _stated_manufacturer(key: str, value: str) -> str | None:
    """The manufacturer a device states in a field made for it (a WS-Discovery mfr scope is URL-escaped)."""
    if key != "wsd.scope":
        return value
    m = _MFR_SCOPE.match(value)
    return unquote(m.group(1)) if m else None


def clean_company_name(value: str, names: Names | None) -> str | None:
    """`Acme Vision Technology Co., Ltd.` -> `Acme Vision` with the words of fingerprints/names.yaml; None for
    something that is not a plausible maker name (a placeholder, markup, too short or too long)."""
    name = " ".join(value.split())[:64]
    if names is not None:
        if names.place_prefix is not None:
            name = names.place_prefix.sub("", name)
        for _ in range(4):  # `Acme Technology Co., Ltd.` needs two cuts
            shorter = names.company_suffix.sub("", name).strip(" ,.-")
            if shorter == name or not shorter:
                break
            name = shorter
    if not (2 <= len(name) <= 40) or not any(ch.isalpha() for ch in name) or not name.isprintable():
        return None
    if names is not None and name.casefold() in names.placeholders:
        return None
    if any(ch in name for ch in "<>{}[]=|;\\\"'`$"):
        return None
    return name


_CACHE_LIMIT = 32_768  # (key, value) results per cache generation; bounded so memory stays flat

# Where a model or firmware string is most trustworthy: the device's own management answers first.
_KEY_PRIORITY = {
    "onvif.model": 0,
    "onvif.firmware": 0,
    "sadp.device_description": 1,
    "sadp.software_version": 1,
    "dhip.device_type": 1,
    "dhip.version": 1,
    "upnp.model_number": 2,
    "upnp.model_name": 2,
    "wsd.scope": 3,
}


def _decode(text: str | None) -> str | None:
    """An extracted model or firmware, trimmed; URL-escaped values (WS-Discovery scopes) decoded."""
    if not text:
        return None
    if "%" in text:
        text = unquote(text)
    return text.strip() or None


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


_LOGIT: dict[float, float] = {}


def _weight(p: float) -> float:
    """A rule's log-odds, cached per confidence (a rule file uses a handful of values)."""
    lg = _LOGIT.get(p)
    if lg is None:
        lg = _LOGIT[p] = logit(p)
    return lg


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class Hit:
    """One rule that fired on one Evidence value."""

    rule: str
    family: str
    key: str
    value: str
    manufacturer: str | None
    brand: str | None
    candidates: tuple[str, ...]
    device_type: str | None
    model: str | None
    firmware: str | None
    confidence: float
    source: str

    def to_rule_hit(self, value_cap: int = 512) -> RuleHit:
        value = self.value if len(self.value) <= value_cap else self.value[:value_cap] + "…"
        return RuleHit(
            rule=self.rule,
            key=self.key,
            value=value,
            manufacturer=self.manufacturer,
            brand=self.brand,
            candidates=list(self.candidates),
            device_type=self.device_type,
            model=self.model,
            firmware=self.firmware,
            confidence=self.confidence,
            source=self.source,
        )


class Rival(NamedTuple):
    """A maker some evidence pointed at but that lost (becomes a model.Conflict in a report)."""

    manufacturer: str
    confidence: float
    rules: list[str]


@dataclass(slots=True)
class Result:
    """The engine's conclusion for one host (turned into an Identity, or a `camscan identify` line)."""

    manufacturer: str | None
    brand: str | None
    model: str | None
    firmware: str | None
    device_type: str | None
    confidence: float
    hits: list[Hit]
    rivals: dict[str, float]  # makers the evidence also pointed at, not consistent with the winner: their score
    relabel: OemLink | None  # the link between brand and maker, when the label is not the maker
    label_maker: Callable[[str], str]  # the engine's: the maker behind a label (for the rules of each rival)

    @property
    def matched(self) -> list[str]:
        return list(dict.fromkeys(h.rule for h in self.hits))

    @property
    def conflicts(self) -> list[Rival]:
        """Each rival, strongest first, with the rules behind it: those naming it as maker or label, or naming a
        label it owns. Made when a report asks (`camscan identify` prints no conflicts)."""
        if not self.rivals:
            return []
        rules_of: dict[str, set[str]] = {}
        for h in self.hits:
            for name in (h.manufacturer, h.brand, self.label_maker(h.brand) if h.brand else None):
                if name:
                    rules_of.setdefault(name, set()).add(h.rule)
        ranked = sorted(self.rivals.items(), key=lambda kv: -kv[1])
        return [Rival(m, round(sigmoid(score), 3), sorted(rules_of.get(m, ()))) for m, score in ranked]

    def identify_line(self, host_id: object) -> dict[str, object]:
        """Exactly the `camscan identify` output contract of docs/evidence.md."""
        return {
            "id": host_id,
            "manufacturer": self.manufacturer,
            "brand": self.brand,
            "model": self.model,
            "firmware": self.firmware,
            "device_type": self.device_type,
            "confidence": round(self.confidence, 3),
            "matched": self.matched,
        }

    def to_identity(self) -> Identity:
        return Identity(
            manufacturer=self.manufacturer,
            brand=self.brand,
            model=self.model,
            firmware=self.firmware,
            device_type=DeviceType(self.device_type) if self.device_type else None,
            confidence=round(self.confidence, 3),
            matched=self.matched,
            reasons=[h.to_rule_hit() for h in self.hits],
            conflicts=[Conflict(manufacturer=m, confidence=c, rules=r) for m, c, r in self.conflicts],
            relabel=self._relabel(),
        )

    def _relabel(self) -> Relabel | None:
        if not (self.manufacturer and self.brand and self.brand != self.manufacturer):
            return None
        link = self.relabel
        return Relabel(
            brand=self.brand,
            manufacturer=self.manufacturer,
            relationship=link.relationship if link else "unknown",  # type: ignore[arg-type]
            valid_from=link.valid_from if link else None,
            valid_until=link.valid_until if link else None,
            source=link.source if link else None,
        )


class Engine:
    """Matches Evidence against a RuleSet. Results per (key, value) are cached: real networks repeat."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        # Two generations: a full young cache becomes the old one, and an old entry used again moves back to
        # the young. Values seen once (serials, MACs) age out; a network's common banners stay.
        self._cache: dict[tuple[str, str], tuple[Hit, ...]] = {}
        self._old: dict[tuple[str, str], tuple[Hit, ...]] = {}
        self._indexes: dict[str, list[FirstCharIndex]] = {}  # per key, per rule file
        self._owner: dict[str, OemLink] = {}
        self._links: dict[tuple[str, str], OemLink] = {}
        self._pairs: set[tuple[str, str]] = set()  # (brand, maker) named together by a rule, per host
        self._agree: dict[tuple[str, str], bool] = {}  # (name, maker) -> agree by the data alone
        self._names_by_first: dict[str, list[str]] | None = None
        for link in ruleset.oem:
            self._links.setdefault((link.brand, link.maker), link)
            if link.relationship == "owned":
                self._owner.setdefault(link.brand, link)

    def warm(self) -> None:
        """Load what is loaded lazily (the MAC registry) now: before forking workers, so they share it."""
        if self.ruleset.oui is not None:
            _ = self.ruleset.oui.registry.blocks

    # -- matching ---------------------------------------------------------------------------------
    def match(self, key: str, value: str) -> tuple[Hit, ...]:
        """Every rule that fires on one Evidence value: the first match of each rule file, plus the
        model-number scheme of any model a rule extracted. A hit naming an owned brand as its manufacturer
        (EZVIZ) names the owner, with the brand (Hikvision, brand EZVIZ)."""
        cache_key = (key, value)
        hits = self._cache.get(cache_key)
        if hits is None:
            hits = self._old.pop(cache_key, None)
            if hits is None:
                hits = tuple(self._match_uncached(key, cap_value(key, value)))
            if len(self._cache) >= _CACHE_LIMIT:
                self._old = self._cache
                self._cache = {}
            self._cache[cache_key] = hits
        return hits

    def _match_uncached(self, key: str, value: str) -> list[Hit]:
        hits: list[Hit] = []
        if key == "mac":
            hit = self._match_mac(value)
            if hit:
                hits.append(hit)
            return hits
        macs: list[str] = []
        for index in self._indexes_for(key):
            rule: Rule
            for rule in index.candidates(value):
                m = rule.pattern.search(value)
                if m is None:
                    continue
                groups = m.groupdict()
                model = _decode(groups.get("model"))
                firmware = _decode(groups.get("firmware"))
                mac = groups.get("mac")
                if mac:
                    macs.append(mac)
                maker, brand, candidates = rule.manufacturer, rule.brand, rule.candidates
                hits.append(self._hit(rule, rule.family, key, value, maker, brand, candidates, model, firmware))
                break
        if key != "model":  # a model a rule extracted is also matched against the model-number schemes
            for model in {h.model for h in hits if h.model}:
                derived = self.match("model", model)
                hits.extend(replace(h, key=key, value=value, model=h.model or model) for h in derived)
        # a MAC a rule extracted is looked up as `mac` Evidence is (cached per normalised MAC, like models)
        for mac in dict.fromkeys(filter(None, map(normalise_mac, macs))):
            hits.extend(replace(h, key=key, value=value) for h in self.match("mac", mac))
        if key in vendor_token.KEYS and not any(h.manufacturer or h.brand or h.candidates for h in hits):
            token = self._vendor_token(key, value, hits)
            if token is not None:
                hits.append(token)
        return hits

    def _indexes_for(self, key: str) -> list[FirstCharIndex]:
        """Per rule file reading `key`, its rules indexed by first character (built once per key)."""
        indexes = self._indexes.get(key)
        if indexes is None:
            indexes = self._indexes[key] = [FirstCharIndex(rules) for rules in self.ruleset.rules_for(key)]
        return indexes

    def _vendor_token(self, key: str, value: str, hits: list[Hit]) -> Hit | None:
        """No rule knows this product header or banner, but a maker's name stands where its protocol puts
        the vendor's (vendor_token.py): that name, read through the reviewed manufacturer-name rules (ONVIF,
        then UPnP; the first rule of a file that matches, and only up to the end of a word or a camel-case
        join: `AvigilonServer`, not `Arubaito`), else an exact maker name of makers.yaml, as a label. A name
        those rules call shared (`IPCAM`) names nobody."""
        for place in vendor_token.places(key, value):
            text = vendor_token.text_at(key, value, place)
            if vendor_token.names_nobody(text):
                return None
            for name_key in ("onvif.manufacturer", "upnp.manufacturer"):
                for index in self._indexes_for(name_key):
                    rule, m = next(
                        ((r, m) for r in index.candidates(text) if (m := r.pattern.search(text))), (None, None)
                    )
                    if rule is None or m is None:
                        continue
                    if rule.candidates:
                        return None
                    brand = rule.brand or rule.manufacturer
                    if brand and vendor_token.ends_word(text, m.end(), camel=True):
                        return self._token_hit(key, value, brand, f"name rule {rule.full_id}", hits)
            for name in self._maker_names().get(text[:2].casefold(), ()):
                if vendor_token.starts_with_name(text, name):
                    return self._token_hit(key, value, name, f"the maker name {name!r} of makers.yaml", hits)
        return None

    def _maker_names(self) -> dict[str, list[str]]:
        """The maker names of makers.yaml by their first two characters (case-folded), longest first."""
        names = self._names_by_first
        if names is None:
            names = self._names_by_first = {}
            for name in sorted(self.ruleset.makers, key=lambda n: (-len(n), n)):
                names.setdefault(name[:2].casefold(), []).append(name)
        return names

    def _token_hit(self, key: str, value: str, brand: str | None, why: str, hits: list[Hit]) -> Hit | None:
        """The vendor-token hit, unless a rule on the same value says it is not a camera while the name is
        a camera maker's: two companies can share a name (AVTECH Software's environment monitors are not
        AVTECH Corporation's DVRs), and a wrong maker is worse than none."""
        if not brand:
            return None
        maker = self.ruleset.makers.get(self.label_maker(brand))
        if maker is not None and maker.kind == "camera" and any(h.device_type == "other" for h in hits):
            return None
        files = self.ruleset.rules_for(key)
        family = files[0][0].family if files and files[0] else key
        source = f"a maker's name where this protocol puts the vendor's product token ({why})"
        return self._normalise(
            _name_hit(f"{family}{VENDOR_TOKEN_RULE}", family, key, value, brand, VENDOR_TOKEN_CONFIDENCE, source)
        )

    def _hit(
        self,
        rule: Rule | OuiRule,
        family: str,
        key: str,
        value: str,
        manufacturer: str | None,
        brand: str | None,
        candidates: tuple[str, ...] = (),
        model: str | None = None,
        firmware: str | None = None,
    ) -> Hit:
        """A rule's hit on a value, normalised (a manufacturer that is an owned brand names its owner)."""
        return self._normalise(
            Hit(
                rule=rule.full_id,
                family=family,
                key=key,
                value=value,
                manufacturer=manufacturer,
                brand=brand,
                candidates=candidates,
                device_type=rule.device_type,
                model=model,
                firmware=firmware,
                confidence=rule.confidence,
                source=rule.source,
            )
        )

    def _match_mac(self, value: str) -> Hit | None:
        table = self.ruleset.oui
        mac = normalise_mac(value)
        if table is None or mac is None:
            return None
        _org, rule = table.lookup(mac)
        if rule is None:
            return None
        manufacturer, brand = rule.asserts()
        return self._hit(rule, "mac", "mac", mac, manufacturer, brand)

    # -- combining --------------------------------------------------------------------------------
    def label_maker(self, brand: str) -> str:
        """The maker behind a label when no firmware evidence says: the owner of an owned brand (EZVIZ ->
        Hikvision), else the brand itself. Historic affiliates and reported OEM relabels need firmware
        evidence: a Lorex or Amcrest label alone stays Lorex or Amcrest."""
        link = self._owner.get(brand)
        return link.maker if link else brand

    def related(self, brand: str, maker: str) -> OemLink | None:
        return self._links.get((brand, maker))

    def identify(self, evidence: Iterable[tuple[str, str]]) -> Result:
        hits: list[Hit] = []
        seen: set[tuple[str, str]] = set()
        unlisted: list[tuple[str, str]] = []
        for key, value in evidence:
            if (key, value) in seen:
                continue
            seen.add((key, value))
            found = self.match(key, value)
            hits.extend(found)
            if key in LABEL_KEYS and not any(h.manufacturer or h.brand or h.candidates for h in found):
                label = _stated_manufacturer(key, value)
                if label:
                    unlisted.append((key, label))
        result = self.combine(hits)
        if result.manufacturer is None and unlisted:
            return self._unlisted_label(result, unlisted)
        return result

    def _unlisted_label(self, result: Result, unlisted: list[tuple[str, str]]) -> Result:
        """No rule names a maker, but the device states its manufacturer in a field made for it (ONVIF
        GetDeviceInformation, the UPnP description) with a name no rule knows: report that name, cleaned of
        company suffixes, at the lowest confidence that still states a maker. Generic placeholders (IPCAM,
        General) have rules and never get here; a covered maker's names all have rules, so an unknown name
        is never flagged."""
        for key, value in unlisted:
            name = clean_company_name(value, self.ruleset.names)
            if name is None:
                continue
            source = "the device's own manufacturer field; no camscan rule knows this name"
            rule = f"{key}/unlisted-manufacturer"
            hit = _name_hit(rule, key, key, cap_value(key, value), None, UNLISTED_CONFIDENCE, source)
            result.manufacturer = result.brand = name
            result.confidence = UNLISTED_CONFIDENCE
            result.hits = [*result.hits, hit]
            return result
        return result

    def combine(self, hits: list[Hit]) -> Result:
        # Firmware-level rules support the maker they name. A label supports every firmware maker it is
        # consistent with (same, owned brand, OEM relationship, or named together by one rule); with no
        # such maker it supports the maker behind the label (itself, or the owner of an owned brand) and
        # so becomes a rival. Hits come normalised from match(): a firmware rule naming an owned brand
        # (EZVIZ) names its owner, with the brand. This runs once per host: the votes are inlined.
        self._pairs = {(h.brand, h.manufacturer) for h in hits if h.brand and h.manufacturer}
        firmware_makers = {h.manufacturer for h in hits if h.manufacturer}
        support: dict[str, dict[str, float]] = {}
        labels: dict[str, dict[str, float]] = {}
        types: dict[str, dict[str, float]] = {}
        agrees = self._consistent

        for h in hits:
            lg = _weight(h.confidence)
            family = h.family
            # per (table, name), the strongest rule of each family: fam[family] = max(old, lg)
            if h.manufacturer:
                _vote(support, h.manufacturer, family, lg)
            brand = h.brand
            if brand:
                _vote(labels, brand, family, lg)
                targets = [m for m in firmware_makers if agrees(brand, m)]
                for target in targets or [self.label_maker(brand)]:
                    _vote(support, target, family, lg)
            if h.device_type:
                _vote(types, h.device_type, family, lg)

        maker_score = {m: sum(f.values()) for m, f in support.items()}
        label_score = {b: sum(f.values()) for b, f in labels.items()}
        winner = max(maker_score, key=lambda m: (maker_score[m], m in firmware_makers, m)) if maker_score else None

        manufacturer: str | None = None
        confidence = 0.0
        rivals: dict[str, float] = {}
        if winner is not None:
            rivals = {m: s for m, s in maker_score.items() if m != winner and not self._consistent(m, winner)}
            best_rival = max(rivals.values(), default=0.0)
            confidence = sigmoid(maker_score[winner] - max(best_rival, 0.0))
            if confidence >= MIN_CONFIDENCE:
                manufacturer = winner
            else:
                confidence = 0.0

        # The label on the box: the strongest label consistent with the maker, else the strongest label.
        if manufacturer is None:
            brand_out = None
        else:
            consistent = [b for b in label_score if self._consistent(b, manufacturer)]
            pool = consistent or list(label_score)
            brand_out = max(pool, key=lambda b: (label_score[b], b)) if pool else manufacturer
        relabel = None
        if manufacturer and brand_out and brand_out != manufacturer:
            relabel = self.related(brand_out, manufacturer)

        device_type = None
        if types:
            # A type needs positive support: a hint of confidence 0.5 (RTSP port open) alone says nothing.
            type_score = {t: sum(f.values()) for t, f in types.items()}
            best = max(type_score, key=lambda t: (type_score[t], -_TYPE_ORDER.get(t, 9)))
            device_type = best if type_score[best] > 0 else None
        if device_type is None and manufacturer:
            # No evidence of the type: a maker that sells mainly cameras -> camera; a non-camera maker ->
            # other; a maker of many kinds of product (TP-Link, Huawei) -> unknown. A camera maker's name in
            # a product header alone does not say which of its products this is (Axis print servers, 2N GSM
            # gateways): no type then.
            kind = self.ruleset.makers[manufacturer].kind
            if kind == "other" or (kind == "camera" and self._says_more_than_name(hits, manufacturer)):
                device_type = kind

        model, firmware = self._pick(hits, manufacturer)
        return Result(
            manufacturer=manufacturer,
            brand=brand_out,
            model=model,
            firmware=firmware,
            device_type=device_type,
            confidence=confidence,
            hits=hits,
            rivals=rivals,
            relabel=relabel,
            label_maker=self.label_maker,
        )

    def _says_more_than_name(self, hits: list[Hit], maker: str) -> bool:
        """Whether some evidence other than a vendor token supports `maker`."""
        for h in hits:
            if h.rule.endswith(VENDOR_TOKEN_RULE):
                continue
            if h.manufacturer == maker or (h.brand and self._consistent(h.brand, maker)):
                return True
        return False

    def _consistent(self, name: str, maker: str) -> bool:
        """Whether a maker or brand name agrees with `maker`: the same, owned by it, an OEM relationship, or
        named together with it by one rule on this host (a rule that knows the brand's firmware family)."""
        known = self._agree.get((name, maker))
        if known is None:
            known = name == maker or self.label_maker(name) == maker or self.related(name, maker) is not None
            self._agree[(name, maker)] = known
        return known or (name, maker) in self._pairs

    def _normalise(self, h: Hit) -> Hit:
        link = self._owner.get(h.manufacturer) if h.manufacturer else None
        if link is None:
            return h
        return replace(h, manufacturer=link.maker, brand=h.brand or h.manufacturer)

    def _pick(self, hits: list[Hit], maker: str | None) -> tuple[str | None, str | None]:
        """(model, firmware): each from the hit that agrees with the maker, from the most trustworthy key,
        with the highest confidence; the first such hit on a tie."""
        best_model: tuple[int, int, float] | None = None
        best_firmware: tuple[int, int, float] | None = None
        model: str | None = None
        firmware: str | None = None
        for h in hits:
            mv, fv = h.model, h.firmware
            if not (mv or fv):
                continue
            names = [n for n in (h.manufacturer, h.brand) if n]
            agrees = 0 if (not names or maker is None or any(self._consistent(n, maker) for n in names)) else 1
            rank = (agrees, _KEY_PRIORITY.get(h.key, 5), -h.confidence)
            if mv and (best_model is None or rank < best_model):
                best_model, model = rank, mv
            if fv and (best_firmware is None or rank < best_firmware):
                best_firmware, firmware = rank, fv
        return model, firmware


def _name_hit(rule: str, family: str, key: str, value: str, brand: str | None, confidence: float, source: str) -> Hit:
    """A hit of the engine's own, not of a rule file: a name read from a value (a label, or none)."""
    return Hit(rule, family, key, value, None, brand, (), None, None, None, confidence, source)


def _vote(table: dict[str, dict[str, float]], name: str, family: str, lg: float) -> None:
    """Per name, the strongest log-odds of each family (families add up; rules within one do not)."""
    fam = table.get(name)
    if fam is None:
        table[name] = {family: lg}
        return
    old = fam.get(family)
    if old is None or lg > old:
        fam[family] = lg


# On equal support the more specific type wins, and "other" before "camera" (never call a host a camera
# on a tie).
_TYPE_ORDER = {"recorder": 0, "intercom": 1, "access_control": 2, "encoder": 3, "other": 4, "camera": 5}
