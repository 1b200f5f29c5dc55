"""Load policy packs (policies/*.yaml), verify their examples, and turn a Device into Findings.

A broken pack is refused at load with its file, rule and reason (PackError). A pack's SHA-256 (of its file
bytes) goes into every report, so an auditor can tell exactly which facts were applied.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scanner._data import data_dir
from scanner.errors import CamscanError
from scanner.model import Device, Evidence, Finding, KnowledgeRef, PackRef, Severity
from scanner.policy.conditions import Condition, ConditionError, compile_condition

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
KINDS = ("regime", "risk")
TIERS = ("direct", "affiliate_historic", "commonly_interpreted")
SEVERITIES = tuple(s.value for s in Severity)
_PACK_FIELDS = {
    "id",
    "kind",
    "version",
    "as_of",
    "title",
    "jurisdiction",
    "instrument",
    "legal_force",
    "applies_to",
    "disclaimer",
    "citations",
    "scope_qualifier",
    "effective_dates",
    "criterion",
    "note",
}
_RULE_FIELDS = {"id", "title", "severity", "tier", "citations", "remediation", "note", "when", "outcome"}
OUTCOMES = ("finding", "note")


class PackError(CamscanError, ValueError):
    def __init__(self, file: str, rule: str | None, reason: str) -> None:
        self.file, self.rule, self.reason = file, rule, reason
        super().__init__(f"{file}: rule {rule!r}: {reason}" if rule else f"{file}: {reason}")


@dataclass(frozen=True, slots=True)
class Citation:
    id: str
    title: str
    url: str | None
    tag: str | None

    def text(self) -> str:
        return f"{self.title} <{self.url}>" if self.url else self.title


@dataclass(frozen=True, slots=True)
class PolicyRule:
    id: str
    title: str
    severity: str
    tier: str | None
    citations: tuple[Citation, ...]
    remediation: str
    note: str | None
    when: Condition
    outcome: str = "finding"  # finding | note (an advisory for a person, never a flag)


@dataclass(frozen=True, slots=True)
class PackExample:
    name: str
    device: Device
    expect: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pack:
    id: str
    kind: str
    version: str
    as_of: str
    title: str
    disclaimer: str
    file: str
    sha256: str
    header: Mapping[str, Any]
    rules: tuple[PolicyRule, ...]
    examples: tuple[PackExample, ...]
    origin: str = "shipped"  # or the directory a council's pack was loaded from

    @property
    def ref(self) -> PackRef:
        return PackRef(id=self.id, version=self.version, sha256=self.sha256)

    @property
    def knowledge(self) -> KnowledgeRef:
        return KnowledgeRef(kind="policy", name=self.file, origin=self.origin, version=self.version, sha256=self.sha256)

    def notes(self, device: Device) -> list[str]:
        """Advisories of `outcome: note` rules: things a person should check that are not findings."""
        return [
            f"{self.id}/{rule.id}: {rule.title}. {rule.note or ''} "
            f"Source: {'; '.join(c.text() for c in rule.citations)}"
            for rule in self.rules
            if rule.outcome == "note" and rule.when.holds(device)
        ]

    def findings(self, device: Device) -> list[Finding]:
        out = []
        for rule in self.rules:
            if rule.outcome == "finding" and rule.when.holds(device):
                out.append(
                    Finding(
                        policy=self.id,
                        policy_version=self.version,
                        kind=self.kind,  # type: ignore[arg-type]
                        rule=rule.id,
                        severity=Severity(rule.severity),
                        tier=rule.tier,
                        title=rule.title,
                        citation="; ".join(c.text() for c in rule.citations),
                        remediation=rule.remediation,
                        note=rule.note,
                        evidence=_evidence_for(rule, device),
                    )
                )
        return out


def _evidence_for(rule: PolicyRule, device: Device) -> list[str]:
    """What the finding rests on: the identity rules that named the maker, and the Evidence the
    condition itself matched."""
    cited: list[str] = []
    maker = device.manufacturer
    rules_cited: set[str] = set()
    for hit in device.reasons if rule.when.uses_identity else ():
        names = {hit.manufacturer, hit.brand}
        supports = (maker and maker in names) or (device.brand and device.brand in names)
        if supports and hit.rule not in rules_cited:
            rules_cited.add(hit.rule)  # each rule once, with the first value it fired on
            cited.append(f"{hit.rule} ({hit.key}: {hit.value[:200]})")
    cited.extend(rule.when.cited_evidence(device))
    return list(dict.fromkeys(cited))


def _str(raw: Mapping[str, Any], key: str, file: str, rule: str | None = None, required: bool = True) -> str:
    v = raw.get(key)
    if v is None and not required:
        return ""
    if not isinstance(v, (str, int, float)) or isinstance(v, bool) or not str(v).strip():
        raise PackError(file, rule, f"'{key}' must be a non-empty string")
    return str(v).strip()


def _device(raw: Any, file: str, name: str) -> Device:
    if not isinstance(raw, dict):
        raise PackError(file, None, f"example {name!r}: device must be a mapping")
    data = dict(raw)
    data.setdefault("id", name)
    try:  # the Evidence items too: a YAML value that is not a {key, value} mapping is a bad device, not a crash
        data["evidence"] = [Evidence(**e) for e in data.get("evidence") or []]
        return Device(**data)
    except (TypeError, ValueError) as exc:
        raise PackError(file, None, f"example {name!r}: bad device: {exc}") from None


def load_pack(path: Path, makers: Mapping[str, object], origin: str = "shipped") -> Pack:
    name = path.name
    data = path.read_bytes()
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise PackError(name, None, f"not valid YAML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # PyYAML's own: 2001-13-45, a 4300+ digit integer, deep nesting
        raise PackError(name, None, f"not valid YAML: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("pack"), dict) or not isinstance(doc.get("rules"), list):
        raise PackError(name, None, "expected 'pack' (a mapping) and 'rules' (a list)")
    head = doc["pack"]
    unknown = set(head) - _PACK_FIELDS
    if unknown:
        raise PackError(name, None, f"unknown pack field(s) {sorted(unknown)}")
    pid = _str(head, "id", name)
    if not _ID.match(pid):
        raise PackError(name, None, f"pack id {pid!r} must be lower-case [a-z0-9-]")
    kind = _str(head, "kind", name)
    if kind not in KINDS:
        raise PackError(name, None, f"kind must be one of {KINDS}")
    citations: dict[str, Citation] = {}
    if not isinstance(head.get("citations") or [], list):
        raise PackError(name, None, "'citations' must be a list")
    for c in head.get("citations") or []:
        if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not c.get("title"):
            raise PackError(name, None, f"citation needs id and title: {c!r}")
        url = c.get("url")
        if url is not None and (
            not isinstance(url, str) or not url.startswith(("https://", "http://")) or "..." in url
        ):
            raise PackError(name, None, f"citation {c['id']!r}: url must be a complete http(s) address")
        citations[c["id"]] = Citation(c["id"], str(c["title"]), url, c.get("tag"))
    if not citations:
        raise PackError(name, None, "a pack needs citations")
    rules: list[PolicyRule] = []
    for raw in doc["rules"]:
        if not isinstance(raw, dict):
            raise PackError(name, None, f"a rule must be a mapping: {raw!r}")
        rid = _str(raw, "id", name)
        if not _ID.match(rid) or any(r.id == rid for r in rules):
            raise PackError(name, rid, "rule id must be lower-case [a-z0-9-] and unique in the pack")
        extra = set(raw) - _RULE_FIELDS
        if extra:
            raise PackError(name, rid, f"unknown field(s) {sorted(extra)}")
        severity = _str(raw, "severity", name, rid)
        if severity not in SEVERITIES:
            raise PackError(name, rid, f"severity must be one of {SEVERITIES}")
        tier = raw.get("tier")
        if kind == "regime" and tier not in TIERS:
            raise PackError(name, rid, f"a regime rule needs a tier, one of {TIERS}")
        cites = raw.get("citations")
        if not isinstance(cites, list) or not cites or not all(isinstance(c, str) for c in cites):
            raise PackError(name, rid, "a rule needs a non-empty list of citation ids")
        missing = [c for c in cites if c not in citations]
        if missing:
            raise PackError(name, rid, f"citation(s) {missing} not in pack.citations")
        outcome = raw.get("outcome", "finding")
        if outcome not in OUTCOMES:
            raise PackError(name, rid, f"outcome must be one of {OUTCOMES}")
        try:
            when = compile_condition(raw.get("when"), makers)
        except ConditionError as exc:
            raise PackError(name, rid, str(exc)) from None
        rules.append(
            PolicyRule(
                id=rid,
                title=_str(raw, "title", name, rid),
                severity=severity,
                tier=tier,
                citations=tuple(citations[c] for c in cites),
                remediation=_str(raw, "remediation", name, rid),
                note=_str(raw, "note", name, rid, required=False) or None,
                when=when,
            )
        )
    examples: list[PackExample] = []
    if not isinstance(doc.get("examples") or [], list):
        raise PackError(name, None, "'examples' must be a list")
    for i, ex in enumerate(doc.get("examples") or []):
        if not isinstance(ex, dict) or "device" not in ex or not isinstance(ex.get("expect"), list):
            raise PackError(name, None, f"example {i}: needs 'device' and an 'expect' list")
        ename = str(ex.get("name") or f"example {i}")
        unknown_ids = [e for e in ex["expect"] if not any(r.id == e for r in rules)]
        if unknown_ids:
            raise PackError(name, None, f"example {ename!r}: expects unknown rule(s) {unknown_ids}")
        examples.append(PackExample(ename, _device(ex["device"], name, ename), tuple(ex["expect"])))
    if not examples:
        raise PackError(name, None, "a pack needs examples")
    return Pack(
        id=pid,
        kind=kind,
        version=_str(head, "version", name),
        as_of=_str(head, "as_of", name),
        title=_str(head, "title", name),
        disclaimer=_str(head, "disclaimer", name),
        file=name,
        sha256=hashlib.sha256(data).hexdigest(),
        header=head,
        rules=tuple(rules),
        examples=tuple(examples),
        origin=origin,
    )


def load_packs(
    makers: Mapping[str, object],
    extra_dirs: Iterable[Path] = (),
    only: Sequence[str] = (),
    directory: Path | None = None,
) -> list[Pack]:
    """The shipped packs plus any council's own; `only` narrows to those ids (unknown ids are an error)."""
    base = directory or data_dir("policies")
    origin = "shipped" if directory is None else str(directory)
    paths = [(p, origin) for p in sorted(base.glob("*.yaml"))]
    for d in extra_dirs:
        paths.extend((p, str(d)) for p in sorted(Path(d).glob("*.yaml")))
    packs: list[Pack] = []
    for p, where in paths:
        pack = load_pack(p, makers, where)
        if any(q.id == pack.id for q in packs):
            raise PackError(p.name, None, f"pack id {pack.id!r} is already used by another pack")
        packs.append(pack)
    if only:
        unknown = sorted(set(only) - {p.id for p in packs})
        if unknown:
            raise PackError("--policy", None, f"no such pack {unknown}; known: {sorted(p.id for p in packs)}")
        packs = [p for p in packs if p.id in only]
    return packs


@dataclass(frozen=True, slots=True)
class ExampleCheck:
    pack: str
    example: str
    ok: bool
    message: str


def check_examples(packs: Iterable[Pack]) -> list[ExampleCheck]:
    out = []
    for pack in packs:
        for ex in pack.examples:
            fired = [f.rule for f in pack.findings(ex.device)]
            fired += [r.id for r in pack.rules if r.outcome == "note" and r.when.holds(ex.device)]
            got = sorted(fired)
            want = sorted(ex.expect)
            ok = got == want
            out.append(ExampleCheck(pack.id, ex.name, ok, "" if ok else f"expected {want}, got {got}"))
    return out
