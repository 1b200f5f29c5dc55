"""Everything camscan prints to a terminal. Device-supplied text is hostile: every string that came from a
device goes through `safe()` (or `cell()` in a table), so it is never read as rich markup and never reaches
the terminal as a control or bidi character."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from scanner.cli.common import console as _console
from scanner.model import ScanReport

if TYPE_CHECKING:
    from scanner.fingerprint.engine import Result
    from scanner.lab.control import LabState
    from scanner.report.diff import ReportDiff

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def safe(value: object) -> str:
    """Device-supplied text made harmless for a terminal: control characters (an ESC could start a terminal
    escape sequence) and invisible format characters (bidi overrides) shown as escapes."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def cell(value: object) -> Text:
    """A table cell holding device-supplied text: never interpreted as rich markup, never a terminal escape."""
    return Text(safe(value))


def print_summary(report: ScanReport, console: Console | None = None) -> None:
    """Devices by maker, then every flagged device with the rules it breaks."""
    console = console or _console()
    s = report.summary
    console.print(
        Text(
            f"{s.devices} devices, {s.cameras} cameras/recorders, {s.flagged} flagged, {s.at_risk} with security risks",
            style="bold",
        )
    )
    makers = Table("manufacturer", "devices", "flagged", title="Devices by maker", box=None)
    flagged_by: dict[str, int] = {}
    for d in report.devices:
        if d.flagged:
            flagged_by[d.manufacturer or "unknown"] = flagged_by.get(d.manufacturer or "unknown", 0) + 1
    for maker, n in sorted(s.by_manufacturer.items(), key=lambda kv: (-kv[1], kv[0])):
        makers.add_row(cell(maker), cell(n), cell(flagged_by.get(maker, "")))
    console.print(makers)
    flagged = [d for d in report.devices if d.flagged]
    if flagged:
        t = Table("device", "maker / brand", "model", "breaks (regime: severity)", title="Flagged devices", box=None)
        for d in flagged:
            who = (d.manufacturer or "") + (f" / {d.brand}" if d.brand and d.brand != d.manufacturer else "")
            rules = Text()
            for i, f in enumerate(f for f in d.findings if f.kind == "regime"):
                if i:
                    rules.append(", ")
                rules.append(f"{f.policy}: ")
                rules.append(f.severity.value, style=SEVERITY_STYLE[f.severity.value])
                if f.status:
                    rules.append(f" ({f.status})")
            t.add_row(cell(d.ip or d.id), cell(who), cell(d.model), rules)
        console.print(t)
    packs = [
        f"{p.id} {p.version}" + (f" (as of {p.as_of})" if p.as_of else "")
        + (f" with KEV catalogVersion {p.kev_catalog_version}" if p.kev_catalog_version else "")
        for p in report.scan.packs
    ]
    if packs:
        console.print(cell("policy packs: " + "; ".join(packs)))


def print_diff(d: ReportDiff, console: Console | None = None) -> None:
    """Devices new, gone and changed, then the counts."""
    console = console or Console(highlight=False)
    for dev in d.new:
        line = f"+ new     {dev.ip or dev.id} {dev.mac or ''} {dev.manufacturer or 'unknown'} {dev.model or ''}"
        console.print(Text(safe(line) + (" FLAGGED" if dev.flagged else "")))
    for dev in d.gone:
        line = f"- gone    {dev.ip or dev.id} {dev.mac or ''} {dev.manufacturer or 'unknown'} {dev.model or ''}"
        console.print(Text(safe(line)))
    for c in d.changed:
        parts = [f"{k}: {o!s} -> {n!s}" for k, (o, n) in c.changes.items()]
        parts += [f"finding new {x}" for x in c.findings_new] + [f"finding resolved {x}" for x in c.findings_resolved]
        console.print(Text(safe(f"~ changed {c.device.ip or c.device.id}: " + "; ".join(parts))))
    console.print(
        Text(
            f"{len(d.new)} new, {len(d.gone)} gone, {len(d.changed)} changed; findings: "
            f"{d.findings_new} new, {d.findings_resolved} resolved"
        )
    )


def print_rule_hits(key: str, value: str, result: Result, registrant: str | None, console: Console) -> None:
    """What `camscan rules match` found: each rule that fired, what it says, its source, then the verdict."""
    if not result.hits:
        console.print(Text(safe(f"no rule fires on {key} = {value!r}")))
        if registrant is not None:
            console.print(Text(safe(f"IEEE registrant: {registrant}")))
        return
    for h in result.hits:
        asserts = [
            f"maker {h.manufacturer}" if h.manufacturer else "",
            f"brand {h.brand}" if h.brand else "",
            f"one of {', '.join(h.candidates)}" if h.candidates else "",
            f"type {h.device_type}" if h.device_type else "",
            f"model {h.model}" if h.model else "",
            f"firmware {h.firmware}" if h.firmware else "",
        ]
        console.print(Text(f"{h.rule}  ({h.key}, confidence {h.confidence:.2f})", style="bold"))
        console.print(Text(safe("  says:   " + ("; ".join(a for a in asserts if a) or "nothing"))))
        console.print(Text(f"  source: {h.source}"))
    line = result.identify_line(None)
    line.pop("id")
    console.print(Text(safe(f"=> {line}")))


def print_lab(state: LabState, alive: dict[int, bool], console: Console | None = None) -> None:
    """The lab's mode, how to reach it, and its devices with whether each process is alive."""
    console = console or _console()
    console.print(Text(f"lab {state.lab_id}: {state.mode} mode, {len(state.processes)} devices", style="bold"))
    if state.mode == "netns":
        console.print(
            Text(
                f"scanner namespace {state.scanner_namespace} ({state.scanner_ip}); run scans there with "
                "`camscan lab exec -- CMD`"
            )
        )
    else:
        console.print(
            Text(
                "loopback mode: unicast only: no MAC addresses, no ARP, no multicast discovery (WS-Discovery, "
                "SSDP, SADP and DHIP answer unicast probes), no mDNS"
                + (f"; ports below 1024 are shifted by +{state.port_offset}" if state.port_offset else "")
            )
        )
    t = Table("device", "address", "MAC", "running", "name", box=None)
    for p in state.processes:
        t.add_row(cell(p.id), cell(p.ip), cell(p.mac or ""), cell("yes" if alive.get(p.pid) else "NO"), cell(p.name))
    console.print(t)
