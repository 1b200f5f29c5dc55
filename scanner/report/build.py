"""Build a ScanReport from hosts' Evidence: identify each host, apply the policy packs, summarise."""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from scanner import __version__
from scanner.fingerprint.engine import Engine
from scanner.knowledge import Knowledge
from scanner.model import Device, Evidence, Host, InputRef, ScanMetadata, ScanReport, Summary, normalise_mac
from scanner.policy.packs import Pack

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
CAMERA_TYPES = frozenset({"camera", "recorder", "encoder", "intercom", "access_control"})


def build_device(host: Host, engine: Engine, packs: Iterable[Pack]) -> Device:
    evidence = list(host.evidence)
    mac = host.mac or next((normalise_mac(e.value) for e in evidence if e.key == "mac"), None)
    if mac and not any(e.key == "mac" for e in evidence):
        evidence.append(Evidence(key="mac", value=mac, source="input"))
    identity = engine.identify((e.key, e.value) for e in evidence).to_identity()
    device = Device(
        id=host.id,
        ip=host.ip,
        mac=mac,
        other_ips=list(host.other_ips),
        evidence=evidence,
        hostnames=list(dict.fromkeys(e.value for e in evidence if e.key == "hostname")),
        **identity.model_dump(),
    )
    for pack in packs:
        device.findings.extend(pack.findings(device))
        device.notes.extend(pack.notes(device))
    device.findings.sort(key=lambda f: (f.kind != "regime", SEVERITY_ORDER[f.severity.value], f.policy, f.rule))
    device.notes.extend(oem_notes(device, engine))
    return device


def oem_notes(device: Device, engine: Engine) -> list[str]:
    """Advisories for a label whose maker the evidence does not show: a reported OEM relabel or a
    historic affiliate is not proof, so it is a note for a person to verify, never a finding."""
    if not device.brand or device.manufacturer != device.brand:
        return []
    notes = []
    for link in engine.ruleset.oem:
        if link.brand != device.brand or link.relationship == "owned":
            continue
        when = ""
        if link.valid_from or link.valid_until:
            when = f" ({link.valid_from or '…'} to {link.valid_until or '…'})"
        what = (
            "was owned by"
            if link.relationship == "affiliate_historic"
            else "is reported to have relabelled products of"
        )
        notes.append(
            f"{link.brand} {what} {link.maker}{when}: the evidence here does not show the maker; verify by model "
            f"number or firmware. Source: {link.source}"
        )
    return notes


def summarise(devices: list[Device]) -> Summary:
    makers = Counter(d.manufacturer or "unknown" for d in devices)
    severities = Counter(f.severity.value for d in devices for f in d.findings)
    return Summary(
        devices=len(devices),
        cameras=sum(1 for d in devices if d.device_type and d.device_type.value in CAMERA_TYPES),
        flagged=sum(1 for d in devices if d.flagged),
        at_risk=sum(1 for d in devices if any(f.kind == "risk" for f in d.findings)),
        by_manufacturer=dict(sorted(makers.items())),
        by_severity=dict(sorted(severities.items())),
    )


def sort_devices(devices: list[Device]) -> list[Device]:
    """Flagged devices first (worst severity first), then by address."""

    def key(d: Device) -> tuple[int, int, str]:
        worst = min((SEVERITY_ORDER[f.severity.value] for f in d.findings), default=9)
        return (0 if d.flagged else 1, worst, d.ip or d.id)

    return sorted(devices, key=key)


def file_ref(path: Path, kind: str) -> InputRef:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return InputRef(name=path.name, kind=kind, sha256=h.hexdigest(), size=size)


@dataclass(frozen=True, slots=True)
class Audit:
    """Who ran the audit, of which site, under what authorisation: printed at the top of every report."""

    site: str | None = None
    operator: str | None = None
    authorisation: str | None = None


@dataclass(slots=True)
class Run:
    """What the run did: how it looked (methods, scope), what it read (inputs), what went wrong (errors) and
    what it could not see (limitations)."""

    methods: list[str]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    scope: list[str] = field(default_factory=list)
    inputs: list[InputRef] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    limitations: list[str] = field(default_factory=list)


def build_report(
    hosts: Iterable[Host], knowledge: Knowledge, audit: Audit | None = None, run: Run | None = None
) -> ScanReport:
    """The report of one run: every host identified and assessed against the packs, the devices sorted
    (flagged first), the summary, and the metadata an auditor needs to check each claim, including every
    knowledge file the run loaded. The one way every command (scan, pcap, report, demo, the service) builds one."""
    audit = audit or Audit()
    run = run or Run(methods=[])
    engine, packs = knowledge.engine, knowledge.packs
    devices = sort_devices([build_device(h, engine, packs) for h in hosts])
    finished = datetime.now(UTC)
    base = "Informational; not legal advice."
    lines = [base] + [
        f"{p.id}: {p.disclaimer.removeprefix(base).strip()}" for p in packs if p.disclaimer.removeprefix(base).strip()
    ]
    meta = ScanMetadata(
        version=__version__,
        report_id=str(uuid.uuid4()),
        generated_at=finished,
        started_at=run.started_at,
        finished_at=finished,
        scope=list(run.scope),
        methods=list(run.methods),
        operator=audit.operator,
        site=audit.site,
        authorisation=audit.authorisation,
        packs=[p.ref for p in packs],
        fingerprints_sha256=knowledge.fingerprints_sha256(),
        knowledge=knowledge.refs(),
        inputs=list(run.inputs),
        disclaimer="\n".join(lines),
    )
    return ScanReport(
        scan=meta,
        devices=devices,
        summary=summarise(devices),
        errors=list(run.errors),
        limitations=list(run.limitations),
    )
