"""The rule self-test, in the manner of Recog's: every example must hold.

For each rule: each example matches it, yields the expected named groups, and is not caught first by an
earlier rule of the same file that reads the same key (a broad pattern must not shadow a precise one);
each counter-example does not match. For the OUI table: each example MAC resolves, through the IEEE
registry in use (fingerprint/registry.py), to a registry name of its own entry; each look-alike example
resolves to the look-alike's name.
Runs from pytest (one test id per example) and from `camscan rules verify`.
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.fingerprint.oui import fold
from scanner.fingerprint.rules import Rule, RuleSet, key_matches
from scanner.model import normalise_mac


@dataclass(frozen=True, slots=True)
class Check:
    file: str
    rule: str
    example: str
    ok: bool
    message: str = ""

    @property
    def test_id(self) -> str:
        value = self.example if len(self.example) <= 60 else self.example[:57] + "..."
        return f"{self.file}:{self.rule}:{value}"


def _keys_overlap(a: Rule, b: Rule) -> bool:
    return any(key_matches(ka, kb) or key_matches(kb, ka) for ka in a.keys for kb in b.keys)


def check_rules(ruleset: RuleSet) -> list[Check]:
    checks: list[Check] = []
    for rf in ruleset.files:
        for i, rule in enumerate(rf.rules):
            earlier = [r for r in rf.rules[:i] if _keys_overlap(r, rule)]
            for ex in rule.examples:
                checks.append(_check_example(rf.name, rule, ex.value, dict(ex.expect), earlier))
            for ce in rule.counter_examples:
                hit = rule.pattern.search(ce) is not None
                checks.append(
                    Check(rf.name, rule.id, f"not:{ce}", not hit, "counter-example matches the rule" if hit else "")
                )
    return checks


def _check_example(file: str, rule: Rule, value: str, expect: dict[str, str | None], earlier: list[Rule]) -> Check:
    m = rule.pattern.search(value)
    if m is None:
        return Check(file, rule.id, value, False, "example does not match its rule")
    groups = m.groupdict()
    for name, want in expect.items():
        got = (groups.get(name) or "").strip() or None
        if name == "mac" and got is not None and want is not None:  # any spelling of the same address
            got, want = normalise_mac(got) or got, normalise_mac(want) or want
        if got != want:
            return Check(file, rule.id, value, False, f"{name}: expected {want!r}, got {got!r}")
    for prior in earlier:
        if prior.pattern.search(value):
            return Check(file, rule.id, value, False, f"caught first by earlier rule {prior.id!r}")
    return Check(file, rule.id, value, True)


def check_oui(ruleset: RuleSet) -> list[Check]:
    table = ruleset.oui
    if table is None:
        return []
    checks: list[Check] = []
    for rule in table.rules:
        names = {fold(n) for n in rule.registry_names}
        covered: set[str] = set()
        for ex in rule.examples:
            mac = normalise_mac(ex)
            if mac is None:
                checks.append(Check("oui.yaml", rule.id, ex, False, "not a MAC address"))
                continue
            org = table.registry.lookup(mac)[0]
            if org is None or fold(org) not in names:
                checks.append(Check("oui.yaml", rule.id, ex, False, f"registry says {org!r}, not one of this entry"))
                continue
            covered.add(fold(org))
            checks.append(Check("oui.yaml", rule.id, ex, True))
        for missing in sorted(names - covered):
            checks.append(Check("oui.yaml", rule.id, f"name:{missing}", False, "registry name without an example MAC"))
    for lk in table.lookalikes:
        if not lk.examples:
            checks.append(Check("oui.yaml", f"lookalike:{lk.registry_name}", "", False, "look-alike without example"))
        for ex in lk.examples:
            mac = normalise_mac(ex)
            org = table.registry.lookup(mac)[0] if mac else None
            ok = org is not None and fold(org) == fold(lk.registry_name) and table.lookup(mac or "")[1] is None
            checks.append(
                Check("oui.yaml", f"lookalike:{lk.registry_name}", ex, ok, "" if ok else f"registry says {org!r}")
            )
    return checks


def check_all(ruleset: RuleSet) -> list[Check]:
    return check_rules(ruleset) + check_oui(ruleset)


def makers_covered(ruleset: RuleSet) -> set[str]:
    """Camera makers (and brands) that at least one rule can name."""
    names: set[str] = set()
    for rule in ruleset.rules:
        names.update(n for n in (rule.manufacturer, rule.brand) if n)
    if ruleset.oui is not None:
        names.update(r.manufacturer for r in ruleset.oui.rules)
    return {n for n in names if ruleset.makers[n].kind in ("camera", "mixed")}


def rule_count(ruleset: RuleSet) -> int:
    return len(ruleset.rules) + (len(ruleset.oui.rules) if ruleset.oui is not None else 0)
