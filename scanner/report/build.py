"""Build a ScanReport from hosts' Evidence: identify each host, apply the policy packs, summarise."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from scanner import __version__
from scanner.fingerprint.engine import Engine
from scanner.fingerprint.oui import normalise_mac
from scanner.identify import read_lines
from scanner.model import Device, Evidence, InputRef, ScanMetadata, ScanReport, Summary, cap_value
from scanner.policy.packs import Pack

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
CAMERA_TYPES = frozenset({"camera", "recorder", "encoder", "intercom", "access_control"})
MAX_EVIDENCE_PER_HOST = 2000


@dataclass(slots=True)
class Host:
    """One host's Evidence, as a backend, a capture or an evidence file gives it."""

    id: str
    ip: str | None = None
    mac: str | None = None
    evidence: list[Evidence] = field(default_factory=list)
    other_ips: list[str] = field(default_factory=list)  # the same device (same MAC) seen on more addresses


def read_hosts(stream: IO[str], name: str, errors: list[str]) -> Iterator[Host]:
    """Hosts from Evidence lines (`{"id", "ip"?, "mac"?, "evidence": [{key, value, source?}]}`); a bad line
    becomes an entry in `errors` (with its line number) and is skipped."""
    for lineno, line in enumerate(read_lines(stream), 1):
        if line is not None and not line.strip():
            continue
        where = f"{name}:{lineno}"
        if line is None:
            errors.append(f"{where}: line too long, skipped")
            continue
        try:
            doc = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            errors.append(f"{where}: not valid JSON ({exc.__class__.__name__}), skipped")
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("evidence"), list) or "id" not in doc:
            errors.append(f"{where}: a host line needs 'id' and an 'evidence' list, skipped")
            continue
        evidence: list[Evidence] = []
        skipped = 0
        for item in doc["evidence"][:MAX_EVIDENCE_PER_HOST]:
            if isinstance(item, dict) and isinstance(item.get("key"), str) and isinstance(item.get("value"), str):
                key = item["key"][:128]
                src = item.get("source")
                evidence.append(
                    Evidence(key=key, value=cap_value(key, item["value"]), source=src if isinstance(src, str) else None)
                )
            else:
                skipped += 1
        skipped += max(0, len(doc["evidence"]) - MAX_EVIDENCE_PER_HOST)
        if skipped:
            errors.append(f"{where}: {skipped} malformed or excess evidence item(s) skipped")
        ip, mac = doc.get("ip"), doc.get("mac")
        yield Host(
            id=str(doc["id"])[:256],
            ip=str(ip)[:64] if isinstance(ip, str) else None,
            mac=normalise_mac(mac) if isinstance(mac, str) else None,
            evidence=evidence,
        )


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


def fingerprints_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(directory.glob("*.yaml")):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def build_report(
    hosts: Iterable[Host],
    engine: Engine,
    packs: list[Pack],
    *,
    started_at: datetime | None = None,
    scope: list[str] | None = None,
    methods: list[str] | None = None,
    operator: str | None = None,
    site: str | None = None,
    authorisation: str | None = None,
    inputs: list[InputRef] | None = None,
    errors: list[str] | None = None,
    limitations: list[str] | None = None,
    fingerprints_sha256: str | None = None,
) -> ScanReport:
    started = started_at or datetime.now(UTC)
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
        started_at=started,
        finished_at=finished,
        scope=scope or [],
        methods=methods or [],
        operator=operator,
        site=site,
        authorisation=authorisation,
        packs=[p.ref for p in packs],
        inputs=inputs or [],
        fingerprints_sha256=fingerprints_sha256,
        disclaimer="\n".join(lines),
    )
    return ScanReport(
        scan=meta,
        devices=devices,
        summary=summarise(devices),
        errors=errors or [],
        limitations=limitations or [],
    )
