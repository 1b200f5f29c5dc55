"""Load policy packs (policies/*.yaml), verify their examples, and turn a Device into Findings.

A broken pack is refused at load with its file, rule and reason (PackError). A pack's SHA-256 (of its file
bytes) goes into every report, so an auditor can tell exactly which facts were applied, and so do its as-of
date and, for a pack with KEV data (scanner/policy/kev.py), the KEV catalogue's version and file.

Each rule of a regime pack says how its fact stands (`status`: law, guidance or proposal); every finding
carries it, so a report never presents a proposal as law.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scanner._data import data_dir, load_yaml
from scanner.errors import CamscanError, InputError
from scanner.model import Device, Evidence, Finding, KnowledgeRef, PackRef, Severity
from scanner.policy.conditions import Condition, ConditionError, compile_condition
from scanner.policy.kev import KevData, KevEntry, KevSelection, load_data, parse_selection
from scanner.userdata import user_data_dir

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
KINDS = ("regime", "risk")
TIERS = ("direct", "affiliate_historic", "commonly_interpreted")
STATUSES = ("law", "guidance", "proposal")  # how a rule's fact stands: binding law, government guidance, a proposal
_CVE = re.compile(r"^CVE-\d{4}-\d{4,7}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
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
    "kev",
}
_RULE_FIELDS = {
    "id",
    "title",
    "severity",
    "tier",
    "status",
    "citations",
    "remediation",
    "note",
    "when",
    "outcome",
    "cves",
    "kev_by_maker",
}
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
    status: str | None = None  # law | guidance | proposal (required in regime packs)
    cves: tuple[str, ...] = ()  # the CVEs the rule is about; their KEV facts are added to title and note
    kev_by_maker: bool = False  # fires for KEV entries of the device's maker that no rule names by CVE


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
    kev: KevData | None = None  # the pack's KEV data, where its header has a `kev:` section
    kev_selection: KevSelection | None = None

    @property
    def ref(self) -> PackRef:
        return PackRef(
            id=self.id,
            version=self.version,
            as_of=self.as_of,
            sha256=self.sha256,
            kev_catalog_version=self.kev.catalog_version if self.kev else None,
            kev_date_released=self.kev.date_released if self.kev else None,
        )

    @property
    def knowledge(self) -> KnowledgeRef:
        return KnowledgeRef(kind="policy", name=self.file, origin=self.origin, version=self.version, sha256=self.sha256)

    def knowledge_refs(self) -> list[KnowledgeRef]:
        """The pack file, then its KEV data file (kind `kev`, version = the catalogue's version and date)."""
        return [self.knowledge, *((self.kev.knowledge,) if self.kev else ())]

    def named_cves(self) -> set[str]:
        return {c for r in self.rules for c in r.cves}

    def _unnamed_kev(self, device: Device) -> list[KevEntry]:
        """KEV entries of the device's maker that no rule of the pack names: for `kev_by_maker` rules."""
        if self.kev is None or not device.manufacturer:
            return []
        named = self.named_cves()
        return [e for e in self.kev.by_maker(device.manufacturer) if e.cve not in named]

    def fires(self, rule: PolicyRule, device: Device) -> bool:
        if not rule.when.holds(device):
            return False
        return not rule.kev_by_maker or bool(self._unnamed_kev(device))

    def notes(self, device: Device) -> list[str]:
        """Advisories of `outcome: note` rules: things a person should check that are not findings. A note says
        how its rule stands ('[proposal]') when the rule has a status."""
        return [
            f"{self.id}/{rule.id}{f' [{rule.status}]' if rule.status else ''}: {rule.title}. {rule.note or ''} "
            f"Source: {'; '.join(c.text() for c in rule.citations)}"
            for rule in self.rules
            if rule.outcome == "note" and self.fires(rule, device)
        ]

    def findings(self, device: Device) -> list[Finding]:
        out = []
        for rule in self.rules:
            if rule.outcome == "finding" and self.fires(rule, device):
                note = rule.note
                if rule.kev_by_maker:
                    listed = "; ".join(e.summary() for e in self._unnamed_kev(device)[:12])
                    note = f"{note or ''} {device.manufacturer} entries: {listed}".strip()
                out.append(
                    Finding(
                        policy=self.id,
                        policy_version=self.version,
                        kind=self.kind,  # type: ignore[arg-type]
                        rule=rule.id,
                        severity=Severity(rule.severity),
                        tier=rule.tier,
                        status=rule.status,  # type: ignore[arg-type]
                        title=rule.title,
                        citation="; ".join(c.text() for c in rule.citations),
                        remediation=rule.remediation,
                        note=note,
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


def _kev_texts(cves: Sequence[str], kev: KevData | None) -> tuple[str, str]:
    """(title suffix, note sentence) saying which of a rule's CVEs are in the KEV data, as of which catalogue."""
    if kev is None or not cves:
        return "", ""
    found = [e for c in cves if (e := kev.get(c)) is not None]
    absent = [c for c in cves if kev.get(c) is None]
    catalogue = f"CISA KEV catalogVersion {kev.catalog_version}"
    if not found:
        return f" [not in CISA KEV as of catalogVersion {kev.catalog_version}]", f"Not in {catalogue}."
    suffix = " [CISA KEV]" if not absent else f" [CISA KEV: {', '.join(e.cve for e in found)}]"
    note = f"{catalogue}: " + "; ".join(e.summary() for e in found) + "."
    if absent:
        note += f" Not in KEV: {', '.join(absent)}."
    return suffix, note


def load_pack(
    path: Path, makers: Mapping[str, object], origin: str = "shipped", kev_dir: Path | None = None
) -> Pack:
    """Load and check one pack. `kev_dir` is camscan's data directory, where `camscan data update --kev` installs
    newer KEV data that takes precedence over the file shipped beside the pack (shipped packs only)."""
    name = path.name
    data = path.read_bytes()
    try:
        doc = load_yaml(data)
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
    as_of = _str(head, "as_of", name)
    if not _DATE.match(as_of):
        raise PackError(name, None, f"as_of must be a date YYYY-MM-DD, not {as_of!r}")
    kev_selection: KevSelection | None = None
    kev: KevData | None = None
    if "kev" in head:
        try:
            kev_selection = parse_selection(head["kev"], makers)
            kev = load_data(kev_selection, path.parent, makers, kev_dir if origin == "shipped" else None)
        except ValueError as exc:
            raise PackError(name, None, str(exc)) from None
        except InputError as exc:
            raise PackError(name, None, f"KEV data: {exc}") from None
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
        status = raw.get("status")
        if status is None and kind == "regime":
            raise PackError(name, rid, f"a regime rule needs a status (how its fact stands), one of {STATUSES}")
        if status is not None and status not in STATUSES:
            raise PackError(name, rid, f"status {status!r} is not one of {STATUSES}")
        cves = raw.get("cves") or []
        if not isinstance(cves, list) or not all(isinstance(c, str) and _CVE.match(c) for c in cves):
            raise PackError(name, rid, "cves must be a list of CVE ids like CVE-2021-36260")
        kev_by_maker = raw.get("kev_by_maker", False)
        if not isinstance(kev_by_maker, bool) or (kev_by_maker and kev is None):
            raise PackError(name, rid, "kev_by_maker: true needs a pack with a `kev:` section")
        suffix, kev_note = _kev_texts(cves, kev)
        note = _str(raw, "note", name, rid, required=False)
        try:
            when = compile_condition(raw.get("when"), makers)
        except ConditionError as exc:
            raise PackError(name, rid, str(exc)) from None
        rules.append(
            PolicyRule(
                id=rid,
                title=_str(raw, "title", name, rid) + suffix,
                severity=severity,
                tier=tier,
                citations=tuple(citations[c] for c in cites),
                remediation=_str(raw, "remediation", name, rid),
                note=" ".join(t for t in (note, kev_note) if t) or None,
                when=when,
                outcome=outcome,
                status=status,
                cves=tuple(cves),
                kev_by_maker=kev_by_maker,
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
        as_of=as_of,
        title=_str(head, "title", name),
        disclaimer=_str(head, "disclaimer", name),
        file=name,
        sha256=hashlib.sha256(data).hexdigest(),
        header=head,
        rules=tuple(rules),
        examples=tuple(examples),
        origin=origin,
        kev=kev,
        kev_selection=kev_selection,
    )


def load_packs(
    makers: Mapping[str, object],
    extra_dirs: Iterable[Path] = (),
    only: Sequence[str] = (),
    directory: Path | None = None,
    kev_dir: Path | None = None,
) -> list[Pack]:
    """The shipped packs plus any council's own; `only` narrows to those ids (unknown ids are an error).
    `kev_dir` (default: camscan's data directory) is where installed KEV data is looked for."""
    if kev_dir is None:
        kev_dir = user_data_dir(create=False)
    base = directory or data_dir("policies")
    origin = "shipped" if directory is None else str(directory)
    paths = [(p, origin) for p in sorted(base.glob("*.yaml"))]
    for d in extra_dirs:
        paths.extend((p, str(d)) for p in sorted(Path(d).glob("*.yaml")))
    packs: list[Pack] = []
    for p, where in paths:
        pack = load_pack(p, makers, where, kev_dir)
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
            fired += [r.id for r in pack.rules if r.outcome == "note" and pack.fires(r, ex.device)]
            got = sorted(fired)
            want = sorted(ex.expect)
            ok = got == want
            out.append(ExampleCheck(pack.id, ex.name, ok, "" if ok else f"expected {want}, got {got}"))
    return out


def kev_selections(makers: Mapping[str, object], directory: Path | None = None) -> dict[str, KevSelection]:
    """The `kev:` sections of the shipped packs (pack id -> selection), read from their headers alone: what
    `camscan data update --kev` rebuilds, even when the KEV data in use is missing or damaged."""
    base = directory or data_dir("policies")
    out: dict[str, KevSelection] = {}
    for path in sorted(base.glob("*.yaml")):
        try:
            doc = load_yaml(path.read_bytes())
        except yaml.YAMLError as exc:
            raise PackError(path.name, None, f"not valid YAML: {exc}") from None
        head = doc.get("pack") if isinstance(doc, dict) else None
        if isinstance(head, dict) and "kev" in head:
            try:
                out[str(head.get("id"))] = parse_selection(head["kev"], makers)
            except ValueError as exc:
                raise PackError(path.name, None, str(exc)) from None
    return out
