"""`camscan diff OLD.json NEW.json`: what changed between two reports of the same site.

Devices are matched by MAC, then by IP, then by id (a device that changed address but kept its MAC is
the same device). For matched devices, changes of identity fields and findings new and resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scanner.model import Device, ScanReport

FIELDS = ("manufacturer", "brand", "model", "firmware", "device_type", "ip", "mac")


@dataclass(slots=True)
class DeviceChange:
    device: Device
    changes: dict[str, tuple[object, object]]
    findings_new: list[str]
    findings_resolved: list[str]


@dataclass(slots=True)
class ReportDiff:
    new: list[Device] = field(default_factory=list)
    gone: list[Device] = field(default_factory=list)
    changed: list[DeviceChange] = field(default_factory=list)
    findings_new: int = 0
    findings_resolved: int = 0

    @property
    def empty(self) -> bool:
        return not (self.new or self.gone or self.changed)

    def as_dict(self) -> dict[str, object]:
        def ident(d: Device) -> dict[str, object]:
            return {
                "id": d.id,
                "ip": d.ip,
                "mac": d.mac,
                "manufacturer": d.manufacturer,
                "brand": d.brand,
                "model": d.model,
                "flagged": d.flagged,
            }

        return {
            "new": [ident(d) for d in self.new],
            "gone": [ident(d) for d in self.gone],
            "changed": [
                {
                    **ident(c.device),
                    "changes": {k: {"old": o, "new": n} for k, (o, n) in c.changes.items()},
                    "findings_new": c.findings_new,
                    "findings_resolved": c.findings_resolved,
                }
                for c in self.changed
            ],
            "findings_new": self.findings_new,
            "findings_resolved": self.findings_resolved,
        }


def _value(d: Device, f: str) -> object:
    v = getattr(d, f)
    return v.value if hasattr(v, "value") else v


def _finding_keys(d: Device) -> set[str]:
    return {f"{f.policy}/{f.rule}" for f in d.findings}


def diff_reports(old: ScanReport, new: ScanReport) -> ReportDiff:
    result = ReportDiff()
    unmatched_old = list(old.devices)

    def take(pred: object) -> Device | None:
        for i, d in enumerate(unmatched_old):
            if pred(d):  # type: ignore[operator]
                return unmatched_old.pop(i)
        return None

    pairs: list[tuple[Device, Device]] = []
    pending: list[Device] = []
    for d in new.devices:  # pass 1: by MAC
        match = take(lambda o, d=d: d.mac and o.mac == d.mac) if d.mac else None
        (pairs.append((match, d)) if match else pending.append(d))
    still: list[Device] = []
    for d in pending:  # pass 2: by IP, only devices without a MAC on either side or matching none
        match = take(lambda o, d=d: d.ip and o.ip == d.ip and not (o.mac and d.mac)) if d.ip else None
        (pairs.append((match, d)) if match else still.append(d))
    for d in still:  # pass 3: by id
        match = take(lambda o, d=d: o.id == d.id and not (o.mac and d.mac))
        (pairs.append((match, d)) if match else result.new.append(d))
    result.gone = unmatched_old
    for o, n in pairs:
        changes = {f: (_value(o, f), _value(n, f)) for f in FIELDS if _value(o, f) != _value(n, f)}
        fo, fn = _finding_keys(o), _finding_keys(n)
        if changes or fo != fn:
            result.changed.append(DeviceChange(n, changes, sorted(fn - fo), sorted(fo - fn)))
    result.findings_new = sum(len(c.findings_new) for c in result.changed) + sum(len(d.findings) for d in result.new)
    result.findings_resolved = sum(len(c.findings_resolved) for c in result.changed) + sum(
        len(d.findings) for d in result.gone
    )
    return result
