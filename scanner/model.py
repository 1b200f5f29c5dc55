"""The records every part of camscan passes around, and the JSON export contract: the bottom layer.

Evidence is what was observed (docs/evidence.md); an Observation is one backend's Evidence about one
address, and a Host one device's Evidence merged from every backend (`merge_observations`); Identity is
what the fingerprint engine concludes from it; a Device is one host with its Identity, Evidence and
Findings; a ScanReport is the auditor's export. This module imports nothing else of camscan: every other
part may import it. The JSON Schema of ScanReport is committed at reports/schema/scan-report.schema.json
and a test regenerates it, so any change to the contract is deliberate: bump SCHEMA_VERSION when you make one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Final = "1.1"  # 1.1 added scan.knowledge, Finding.status, PackRef.as_of/kev_*; 1.0 reports load

#: Values longer than this are cut before they are stored in a report or matched (http.body has its own cap).
VALUE_CAP = 4096
BODY_CAP = 65536


def cap_value(key: str, value: str) -> str:
    """Trim a device-supplied value and cut it to the size camscan is willing to store and match."""
    limit = BODY_CAP if key == "http.body" else VALUE_CAP
    value = value.strip()
    return value if len(value) <= limit else value[:limit]


class DeviceType(StrEnum):
    camera = "camera"
    recorder = "recorder"
    encoder = "encoder"
    intercom = "intercom"
    access_control = "access_control"
    other = "other"


DEVICE_TYPES: frozenset[str] = frozenset(t.value for t in DeviceType)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Evidence(_Strict):
    """One observed (key, value) about a host. Keys are the vocabulary of docs/evidence.md."""

    key: str = Field(min_length=1, max_length=128)
    value: str
    source: str | None = Field(default=None, description="the backend or file it came from")
    observed_at: datetime | None = None


class RuleHit(_Strict):
    """One fingerprint rule that fired, with the Evidence it fired on: the 'why' behind an Identity."""

    rule: str = Field(description="family/rule-id, e.g. http.server/hikvision-app-webs")
    key: str
    value: str
    manufacturer: str | None = None
    brand: str | None = None
    candidates: list[str] = Field(default_factory=list)
    device_type: str | None = None
    model: str | None = None
    firmware: str | None = None
    confidence: float = Field(ge=0, le=1)
    source: str = Field(description="where the fact behind the rule comes from")


class Conflict(_Strict):
    """A maker that some evidence pointed at but that lost: kept visible, never silently dropped."""

    manufacturer: str
    confidence: float = Field(ge=0, le=1)
    rules: list[str]


class Relabel(_Strict):
    """The label on the box differs from the maker: how the two are related, and who says so."""

    brand: str
    manufacturer: str
    relationship: Literal["owned", "affiliate_historic", "oem_reported", "unknown"]
    valid_from: str | None = None
    valid_until: str | None = None
    source: str | None = None


class Identity(_Strict):
    """Who made a host and what it is, with the reasons."""

    manufacturer: str | None = None
    brand: str | None = None
    model: str | None = None
    firmware: str | None = None
    device_type: DeviceType | None = None
    confidence: float = Field(default=0.0, ge=0, le=1)
    matched: list[str] = Field(default_factory=list, description="ids of the rules that fired")
    reasons: list[RuleHit] = Field(default_factory=list)
    conflicts: list[Conflict] = Field(default_factory=list)
    relabel: Relabel | None = None


class Severity(StrEnum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class Finding(_Strict):
    """A rule of a policy pack that a device breaks, with the evidence and the citation."""

    policy: str
    policy_version: str
    kind: Literal["regime", "risk"] = Field(
        description="regime: a law or government guidance (the device is flagged); risk: a security check"
    )
    rule: str
    severity: Severity
    tier: str | None = Field(default=None, description="direct | affiliate_historic | commonly_interpreted")
    status: Literal["law", "guidance", "proposal"] | None = Field(
        default=None,
        description="how the rule's fact stands: law (binding), guidance (government guidance or policy), proposal "
        "(not adopted); set for every regime rule, optional for risk checks (schema 1.1)",
    )
    title: str
    citation: str
    remediation: str
    note: str | None = None
    evidence: list[str] = Field(
        default_factory=list, description="the identity rules and Evidence items the finding rests on"
    )


class Device(Identity):
    """One host: where it is, what it is (the Identity fields), what was seen, what it breaks."""

    id: str
    ip: str | None = None
    mac: str | None = None
    other_ips: list[str] = Field(default_factory=list, description="further addresses of the same device (same MAC)")
    hostnames: list[str] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="advisories that are not findings (reported OEM labels)")

    @property
    def flagged(self) -> bool:
        """Breaks a rule of a regime pack (a law or government guidance)."""
        return any(f.kind == "regime" for f in self.findings)


class PackRef(_Strict):
    """A policy pack a report applied: which version, how current its facts are, and its bytes' digest."""

    id: str
    version: str
    as_of: str | None = Field(default=None, description="the date the pack's facts were last checked (schema 1.1)")
    sha256: str
    kev_catalog_version: str | None = Field(
        default=None, description="the CISA KEV catalogVersion of the pack's KEV data, where it has some (schema 1.1)"
    )
    kev_date_released: str | None = Field(default=None, description="that KEV catalogue's dateReleased (schema 1.1)")


class KnowledgeRef(_Strict):
    """One knowledge file a run loaded (a rule file, the maker list, a policy pack, ...), so an auditor can tell
    exactly which facts made each claim: taken from what was loaded, not from a directory listing."""

    kind: str = Field(description="rules | makers | oem | oui | names | policy | registry | kev")
    name: str = Field(description="file name")
    origin: str = Field(description="'shipped' (camscan's own) or the directory it was loaded from")
    version: str | None = Field(default=None, description="the file's own version or date, where it has one")
    sha256: str = Field(description="SHA-256 of the file's bytes, as loaded")


class InputRef(_Strict):
    """A file the report was built from (evidence lines, a capture), with its SHA-256."""

    name: str
    kind: str = Field(description="evidence | pcap | report")
    sha256: str
    size: int


class ScanMetadata(_Strict):
    tool: str = "camscan"
    version: str
    report_id: str | None = None
    generated_at: datetime | None = None
    started_at: datetime
    finished_at: datetime
    scope: list[str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)
    operator: str | None = None
    site: str | None = None
    authorisation: str | None = None
    packs: list[PackRef] = Field(default_factory=list)
    fingerprints_sha256: str | None = Field(
        default=None,
        description="SHA-256 over the identification knowledge loaded (every `knowledge` entry but the policy "
        "packs): of the lines kind, TAB, origin, TAB, name, TAB, sha256, joined by newlines, in load order",
    )
    knowledge: list[KnowledgeRef] = Field(
        default_factory=list, description="every knowledge file the run loaded, shipped or extra (schema 1.1)"
    )
    inputs: list[InputRef] = Field(default_factory=list)
    disclaimer: str = "Informational; not legal advice. Findings rest on the evidence listed with each device."


class Summary(_Strict):
    devices: int
    cameras: int = Field(description="devices of type camera, recorder, encoder, intercom or access_control")
    flagged: int = Field(description="devices with at least one finding of a regime pack")
    at_risk: int = Field(default=0, description="devices with at least one finding of a risk pack")
    by_manufacturer: dict[str, int]
    by_severity: dict[str, int]


class Integrity(_Strict):
    algorithm: Literal["sha256"] = "sha256"
    digest: str


class ScanReport(_Strict):
    """The auditor's export: a versioned contract (reports/schema/scan-report.schema.json)."""

    schema_version: Literal["1.0", "1.1"] = SCHEMA_VERSION
    scan: ScanMetadata
    devices: list[Device]
    summary: Summary
    errors: list[str] = Field(default_factory=list)
    limitations: list[str] = Field(default_factory=list)
    integrity: Integrity | None = None


# ----------------------------------------------------------------------------------- before identification

_MAC_SEPARATORS = re.compile(r"[\s:.\-]")
_HEX12 = re.compile(r"[0-9a-f]{12}")


def normalise_mac(value: str) -> str | None:
    """`44-19-B6-12-34-56`, `4419.b612.3456`, `4419b6123456` -> `44:19:b6:12:34:56`; None if not a MAC."""
    digits = _MAC_SEPARATORS.sub("", value.strip().lower())
    if len(digits) != 12 or not _HEX12.fullmatch(digits):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def evidence(key: str, value: str, source: str) -> Evidence:
    """One Evidence item as a parser makes it: the value trimmed and capped (cap_value)."""
    return Evidence(key=key, value=cap_value(key, value), source=source)


def unique_evidence(items: list[Evidence]) -> list[Evidence]:
    """The items in order, each (key, value) once."""
    seen: set[tuple[str, str]] = set()
    out = []
    for e in items:
        if (e.key, e.value) not in seen:
            seen.add((e.key, e.value))
            out.append(e)
    return out


@dataclass(slots=True)
class Observation:
    """What one backend (or one capture) saw of one address: its Evidence, and its MAC when seen."""

    ip: str
    evidence: list[Evidence] = field(default_factory=list)
    mac: str | None = None


@dataclass(slots=True)
class Host:
    """One host's Evidence, as a scan, a capture or an evidence file gives it: the input of identification."""

    id: str
    ip: str | None = None
    mac: str | None = None
    evidence: list[Evidence] = field(default_factory=list)
    other_ips: list[str] = field(default_factory=list)  # the same device (same MAC) seen on more addresses


def _address_order(ip: str) -> tuple[int, int, str]:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return (9, 0, ip)
    return (addr.version, int(addr), ip)


def merge_observations(observations: Iterable[Observation]) -> list[Host]:
    """One Host per device: observations joined by address, then addresses joined by MAC (the same device
    on a second address becomes one of its `other_ips`). Hosts come out in address order."""
    by_ip: dict[str, Host] = {}
    for obs in observations:
        host = by_ip.setdefault(obs.ip, Host(id=obs.ip, ip=obs.ip))
        host.evidence.extend(obs.evidence)
        if obs.mac and not host.mac:
            host.mac = obs.mac
    by_mac: dict[str, Host] = {}
    merged: list[Host] = []
    for ip in sorted(by_ip, key=_address_order):
        host = by_ip[ip]
        host.evidence = unique_evidence(host.evidence)
        if host.mac and host.mac in by_mac:  # the same device on a second address
            first = by_mac[host.mac]
            first.evidence = unique_evidence(first.evidence + host.evidence)
            first.other_ips.append(ip)
            continue
        if host.mac:
            by_mac[host.mac] = host
        merged.append(host)
    return merged


_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def field_key(prefix: str, name: str) -> str:
    """The Evidence key of a SADP or DHIP field (docs/evidence.md): the element or JSON name in lower snake case.

    `DeviceDescription` -> `sadp.device_description`, `DeviceSN` -> `sadp.device_sn`, `IPv4Address` ->
    `sadp.ipv4_address`, `MAC` -> `sadp.mac`, `SerialNo` -> `dhip.serial_no`.
    """
    name = name.replace("IPv4", "Ipv4").replace("IPv6", "Ipv6")
    return f"{prefix}.{_SNAKE.sub('_', name).lower()}"
