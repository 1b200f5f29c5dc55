"""The `camscan` command line (typer + rich). The only place that would call asyncio.run()."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from scanner import __version__

app = typer.Typer(
    name="camscan",
    help=(
        "Find the IP cameras and video recorders on a network, identify who made each one (OEM relabels "
        "included), and report which rules they break.\n\n"
        "Try it safely first: `camscan demo` starts a simulated lab of cameras (in private network namespaces), "
        "scans it and writes camscan-demo/report.{json,html,csv}.\n\n"
        "On a real network: `sudo camscan scan 192.168.10.0/24 --html report.html --json report.json` "
        "(only the targets you give are contacted). Without touching the network: `camscan pcap CAPTURE` for a "
        "packet capture, `camscan identify HOSTS.jsonl` or `camscan report --evidence HOSTS.jsonl` for evidence "
        "from any tool. `camscan verify report.json` checks an export's integrity."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="Inspect and verify the fingerprint rules (fingerprints/*.yaml).", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
policy_app = typer.Typer(help="Inspect and verify the policy packs (policies/*.yaml).", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
lab_app = typer.Typer(
    help=(
        "The simulated camera lab: simulated cameras, recorders and ordinary hosts answering real protocols on a "
        "private virtual LAN (network namespaces, root) or on 127.77.0.x (loopback). Nothing touches the real network."
    ),
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")

err = Console(stderr=True, highlight=False, soft_wrap=True)

RulesDir = Annotated[
    Optional[list[Path]],  # noqa: UP045 - typer needs Optional here
    typer.Option(
        "--rules-dir",
        help="Extra directory of rule files (a council's own), read after the shipped rules. Repeatable.",
        exists=True,
        file_okay=False,
    ),
]


PolicyIds = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--policy", help="Apply only this policy pack (repeatable). Default: every shipped pack."),
]
PolicyDir = Annotated[
    Optional[list[Path]],  # noqa: UP045
    typer.Option(
        "--policy-dir",
        help="Extra directory of policy packs (a council's own). Repeatable.",
        exists=True,
        file_okay=False,
    ),
]


JsonOut = Annotated[Optional[Path], typer.Option("--json", help="Write the JSON export (the auditor's copy) here.")]  # noqa: UP045
HtmlOut = Annotated[Optional[Path], typer.Option("--html", help="Write the HTML report here.")]  # noqa: UP045
CsvOut = Annotated[Optional[Path], typer.Option("--csv", help="Write the CSV (one row per device) here.")]  # noqa: UP045
Site = Annotated[Optional[str], typer.Option(help="Site name for the report header.")]  # noqa: UP045
Operator = Annotated[Optional[str], typer.Option(help="Who ran the audit.")]  # noqa: UP045
Authorisation = Annotated[Optional[str], typer.Option(help="Authorisation reference for the audit.")]  # noqa: UP045


def _engine(rules_dir: list[Path] | None):  # type: ignore[no-untyped-def]
    from scanner.fingerprint.engine import Engine
    from scanner.fingerprint.rules import RuleError, load_ruleset

    try:
        return Engine(load_ruleset(extra_dirs=rules_dir or ()))
    except RuleError as exc:
        err.print(f"[red]error:[/red] rule file refused: {exc}")
        raise typer.Exit(2) from None


def _console() -> Console:
    """stdout console; at least 120 columns when writing to a file or pipe (rich assumes 80 there)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=max(console.width, 120))
    return console


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


@app.command()
def version() -> None:
    """Print camscan's version."""
    print(f"camscan {__version__}")


@app.command()
def identify(
    inputs: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(help='JSON Lines files of hosts ({"id", "evidence": [...]}); \'-\' is stdin.'),
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write the JSON Lines; '-' is stdout.")] = "-",
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Worker processes (default: the CPU count, at most 4; 1 = no workers).")
    ] = 0,
    rules_dir: RulesDir = None,
) -> None:
    """Identify hosts from Evidence: one JSON line in, one JSON line out, in the same order.

    Each output line has id, manufacturer, brand, model, firmware, device_type, confidence and matched
    (the rules that fired). A bad input line gets {"id": ..., "error": ...} and the batch goes on.

    Example:  echo '{"id":"h1","evidence":[{"key":"http.server","value":"App-webs/"}]}' | camscan identify
    """
    import os

    from scanner.identify import Counts, identify_stream, identify_stream_parallel

    engine = _engine(rules_dir)
    counts = Counts()
    workers = jobs if jobs > 0 else min(4, os.cpu_count() or 1)
    with ExitStack() as stack:
        dst = sys.stdout if output == "-" else stack.enter_context(open(output, "w", encoding="utf-8"))
        for name in inputs or ["-"]:
            if name == "-":
                src = sys.stdin
            else:
                try:
                    src = stack.enter_context(open(name, encoding="utf-8", errors="replace"))
                except OSError as exc:
                    err.print(f"[red]error:[/red] cannot read {name}: {exc.strerror}")
                    raise typer.Exit(2) from None
            if workers > 1:
                identify_stream_parallel(engine, src, dst, workers, counts)
            else:
                identify_stream(engine, src, dst, counts)
    if counts.errors:
        err.print(f"{counts.hosts} hosts, {counts.errors} lines with errors (see their 'error' field)")


@rules_app.command("verify")
def rules_verify(rules_dir: RulesDir = None, quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False) -> None:
    """Run every rule's examples and counter-examples; exit 1 naming each one that fails."""
    from scanner.fingerprint.verify import check_all, makers_covered, rule_count

    engine = _engine(rules_dir)
    ruleset = engine.ruleset
    checks = check_all(ruleset)
    failures = [c for c in checks if not c.ok]
    for c in failures:
        print(f"FAIL {c.file}: rule {c.rule!r}: example {c.example!r}: {c.message}")
    n_rules, n_makers = rule_count(ruleset), len(makers_covered(ruleset))
    if failures:
        print(f"{n_rules} rules, {n_makers} makers, {len(failures)} of {len(checks)} examples fail")
        raise typer.Exit(1)
    if not quiet:
        per_file = Table("file", "family", "rules", box=None)
        for f in ruleset.files:
            per_file.add_row(f.name, f.family, str(len(f.rules)))
        if ruleset.oui is not None:
            per_file.add_row("oui.yaml", "mac", str(len(ruleset.oui.rules)))
        Console(highlight=False).print(per_file)
    print(f"{n_rules} rules, {n_makers} makers, all examples hold ({len(checks)} checks)")


@rules_app.command("match")
def rules_match(
    key: Annotated[str, typer.Argument(help="Evidence key, e.g. http.server, mac, wsd.scope")],
    value: Annotated[str, typer.Argument(help="The value as the device sent it")],
    rules_dir: RulesDir = None,
) -> None:
    """Show which rules one Evidence value fires, and what they conclude."""
    engine = _engine(rules_dir)
    result = engine.identify([(key, value)])
    console = Console(highlight=False)
    if not result.hits:
        console.print(f"no rule fires on {key} = {value!r}", markup=False)
        if key == "mac" and engine.ruleset.oui is not None:
            from scanner.fingerprint.oui import normalise_mac, registry_org

            mac = normalise_mac(value)
            console.print(f"IEEE registrant: {registry_org(mac) if mac else 'not a MAC address'}", markup=False)
        raise typer.Exit(1)
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
    console.print(f"=> {line}", markup=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the report export (committed at reports/schema/scan-report.schema.json)."""
    import json

    from scanner.model import ScanReport

    print(json.dumps(ScanReport.model_json_schema(), indent=2, sort_keys=True))


def _packs(engine, policy: list[str] | None, policy_dir: list[Path] | None):  # type: ignore[no-untyped-def]
    from scanner.policy.packs import PackError, load_packs

    try:
        return load_packs(engine.ruleset.makers, extra_dirs=policy_dir or (), only=policy or ())
    except PackError as exc:
        err.print(Text(f"error: policy pack refused: {exc}"))
        raise typer.Exit(2) from None


@policy_app.command("list")
def policy_list(policy_dir: PolicyDir = None) -> None:
    """List the policy packs: id, kind, version, as-of date, rules, title."""
    engine = _engine(None)
    table = Table("id", "kind", "version", "as of", "rules", "title", box=None)
    for p in _packs(engine, None, policy_dir):
        table.add_row(*(cell(v) for v in (p.id, p.kind, p.version, p.as_of, len(p.rules), p.title)))
    Console(highlight=False).print(table)


@policy_app.command("verify")
def policy_verify(policy_dir: PolicyDir = None) -> None:
    """Load every pack and check that each example device gets exactly the findings it expects."""
    from scanner.policy.packs import check_examples

    engine = _engine(None)
    packs = _packs(engine, None, policy_dir)
    checks = check_examples(packs)
    failures = [c for c in checks if not c.ok]
    for c in failures:
        print(f"FAIL {c.pack}: example {c.example!r}: {c.message}")
    n_rules = sum(len(p.rules) for p in packs)
    if failures:
        print(f"{len(packs)} packs, {n_rules} rules, {len(failures)} of {len(checks)} examples fail")
        raise typer.Exit(1)
    print(f"{len(packs)} packs, {n_rules} rules, all {len(checks)} examples hold")


def _write_outputs(report, json_out: Path | None, html_out: Path | None, csv_out: Path | None) -> None:  # type: ignore[no-untyped-def]
    from scanner.report.csv_export import write_csv
    from scanner.report.export import write_json
    from scanner.report.html import write_html

    for path in (json_out, html_out, csv_out):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    if json_out:
        digest = write_json(report, json_out)
        err.print(Text(f"wrote {json_out} (sha256 {digest})"))
    if html_out:
        write_html(report, html_out)
        err.print(Text(f"wrote {html_out}"))
    if csv_out:
        write_csv(report, csv_out)
        err.print(Text(f"wrote {csv_out}"))


SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


def print_summary(report, console: Console | None = None) -> None:  # type: ignore[no-untyped-def]
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
            who = d.manufacturer + (f" / {d.brand}" if d.brand and d.brand != d.manufacturer else "")
            rules = Text()
            for i, f in enumerate(f for f in d.findings if f.kind == "regime"):
                if i:
                    rules.append(", ")
                rules.append(f"{f.policy}: ")
                rules.append(f.severity.value, style=SEVERITY_STYLE[f.severity.value])
            t.add_row(cell(d.ip or d.id), cell(who), cell(d.model), rules)
        console.print(t)


@app.command()
def report(
    source: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Argument(
            help="An existing report JSON to re-render (instead of --evidence).", exists=True, dir_okay=False
        ),
    ] = None,
    evidence: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--evidence",
            help="Evidence lines (JSON Lines: {id, ip?, mac?, evidence: [{key, value}]}).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    json_out: JsonOut = None,
    html_out: HtmlOut = None,
    csv_out: CsvOut = None,
    policy: PolicyIds = None,
    policy_dir: PolicyDir = None,
    rules_dir: RulesDir = None,
    site: Site = None,
    operator: Operator = None,
    authorisation: Authorisation = None,
) -> None:
    """Assess hosts from Evidence (from any tool) and write the compliance report; or re-render a report.

    camscan report --evidence hosts.jsonl --json report.json --html report.html --csv report.csv
    camscan report report.json --html report.html --csv report.csv
    """
    from datetime import UTC, datetime

    from scanner._data import data_dir
    from scanner.report.build import build_report, file_ref, fingerprints_digest, read_hosts
    from scanner.report.export import ReportError, load_report

    if (source is None) == (evidence is None):
        err.print("error: give either a report JSON to re-render or --evidence FILE")
        raise typer.Exit(2)
    if source is not None:
        try:
            rep = load_report(source)
        except ReportError as exc:
            err.print(Text(f"error: {exc}"))
            raise typer.Exit(2) from None
        if json_out:
            err.print("error: --json re-exports nothing new; copy the file (its digest covers its content)")
            raise typer.Exit(2)
    else:
        assert evidence is not None
        engine = _engine(rules_dir)
        packs = _packs(engine, policy, policy_dir)
        errors: list[str] = []
        started = datetime.now(UTC)
        with evidence.open(encoding="utf-8", errors="replace") as fh:
            rep = build_report(
                read_hosts(fh, evidence.name, errors),
                engine,
                packs,
                started_at=started,
                methods=["evidence-file"],
                operator=operator,
                site=site,
                authorisation=authorisation,
                inputs=[file_ref(evidence, "evidence")],
                errors=errors,
                fingerprints_sha256=fingerprints_digest(data_dir("fingerprints")),
                limitations=[
                    "Built from an evidence file: camscan sent no packet; identification is only as complete "
                    "as the evidence given."
                ],
            )
    _write_outputs(rep, json_out, html_out, csv_out)
    if source is None:
        print_summary(rep)


@app.command()
def pcap(
    captures: Annotated[
        list[Path],
        typer.Argument(help="Capture files (pcap or pcapng, from tcpdump, Wireshark, a mirror port).", dir_okay=False),
    ],
    json_out: JsonOut = None,
    html_out: HtmlOut = None,
    csv_out: CsvOut = None,
    policy: PolicyIds = None,
    policy_dir: PolicyDir = None,
    rules_dir: RulesDir = None,
    site: Site = None,
    operator: Operator = None,
    authorisation: Authorisation = None,
) -> None:
    """Passive audit: find and identify the cameras in packet captures, sending nothing, and write the report.

    camscan pcap mirror-port.pcapng --site "Town Hall" --json report.json --html report.html

    Reads ARP, DHCP, mDNS, WS-Discovery, SSDP, SADP and DHIP messages, HTTP and RTSP answers, TLS certificates
    sent in clear and service banners. The report lists each capture with its SHA-256 and time span, and what
    could not be decoded. A capture that cannot be read at all is an error (exit 2) naming the byte offset.
    """
    from datetime import UTC, datetime

    from scanner._data import data_dir
    from scanner.passive.pcap import CaptureError, analyse_captures
    from scanner.report.build import build_report, file_ref, fingerprints_digest

    for path in captures:
        if not path.is_file():
            err.print(Text(f"error: {path}: no such file"))
            raise typer.Exit(2)
    engine = _engine(rules_dir)
    packs = _packs(engine, policy, policy_dir)
    started = datetime.now(UTC)
    try:
        result = analyse_captures(captures)
    except CaptureError as exc:
        err.print(Text(f"error: {exc}"))
        raise typer.Exit(2) from None
    except OSError as exc:
        err.print(Text(f"error: cannot read a capture: {exc}"))
        raise typer.Exit(2) from None
    rep = build_report(
        result.hosts,
        engine,
        packs,
        started_at=started,
        methods=["passive-pcap"],
        operator=operator,
        site=site,
        authorisation=authorisation,
        inputs=[file_ref(path, "pcap") for path in captures],
        errors=result.errors,
        limitations=[
            "Passive audit of packet captures: camscan sent no packet; a device that said nothing while the capture "
            "ran is not in this report.",
            *result.limitations,
        ],
        fingerprints_sha256=fingerprints_digest(data_dir("fingerprints")),
    )
    packets = sum(f.packets for f in result.files)
    err.print(Text(f"{packets} packets read from {len(result.files)} capture(s)"))
    for line in result.errors:
        err.print(Text(safe(f"warning: {line}")))
    print_summary(rep)
    _write_outputs(rep, json_out, html_out, csv_out)


@app.command()
def verify(
    report_file: Annotated[Path, typer.Argument(help="A camscan report JSON.", exists=True, dir_okay=False)],
) -> None:
    """Check a report's integrity digest: exit 0 if it matches its content, 1 if the report was changed."""
    from scanner.report.export import ReportError, load_document, verify_document

    try:
        ok, message = verify_document(load_document(report_file))
    except ReportError as exc:
        err.print(Text(f"error: {exc}"))
        raise typer.Exit(2) from None
    if not ok:
        print(f"FAILED: {report_file}: {message}. The report was changed after camscan wrote it.")
        raise typer.Exit(1)
    print(f"OK: {report_file}: {message}")


@app.command()
def diff(
    old: Annotated[Path, typer.Argument(help="The earlier report JSON.", exists=True, dir_okay=False)],
    new: Annotated[Path, typer.Argument(help="The later report JSON.", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the differences as JSON.")] = False,
) -> None:
    """List devices new, gone and changed between two reports, and findings new and resolved."""
    import json

    from scanner.report.diff import diff_reports
    from scanner.report.export import ReportError, load_report

    try:
        d = diff_reports(load_report(old), load_report(new))
    except ReportError as exc:
        err.print(Text(f"error: {exc}"))
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(d.as_dict(), indent=2, ensure_ascii=False))
        return
    console = Console(highlight=False)
    for dev in d.new:
        console.print(
            Text(
                safe(f"+ new     {dev.ip or dev.id} {dev.mac or ''} {dev.manufacturer or 'unknown'} {dev.model or ''}")
                + (" FLAGGED" if dev.flagged else "")
            )
        )
    for dev in d.gone:
        console.print(
            Text(
                safe(f"- gone    {dev.ip or dev.id} {dev.mac or ''} {dev.manufacturer or 'unknown'} {dev.model or ''}")
            )
        )
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


def _read_credentials(path: Path):  # type: ignore[no-untyped-def]
    """`username:password` on the first line, or JSON/YAML {username, password}. Never echoed."""
    import yaml

    from scanner.netctx import Credentials

    text = path.read_text(encoding="utf-8").strip()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("username"), str) and isinstance(doc.get("password"), str):
        return Credentials(doc["username"], doc["password"])
    first = text.splitlines()[0] if text else ""
    if ":" in first:
        user, password = first.split(":", 1)
        return Credentials(user, password)
    err.print(Text(f"error: {path}: expected 'username:password' or {{username, password}}"))
    raise typer.Exit(2)


@app.command()
def scan(
    targets: Annotated[
        list[str], typer.Argument(help="Addresses, networks (10.0.0.0/24) or ranges (10.0.0.10-40) to scan.")
    ],
    interface: Annotated[
        str | None,
        typer.Option(
            "--interface",
            "-i",
            help="Interface to scan from (default: the route to the first target). Multicast discovery runs only here.",
        ),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated subset of: arp,wsd,mdns,ssdp,sadp,dhip,ports,http,tls,rtsp,onvif,banners "
            "(default: all)."
        ),
    ] = None,
    credentials: Annotated[
        Path | None,
        typer.Option(
            help="File with ONVIF credentials (username:password) for GetDeviceInformation. Never logged or reported.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    use_nmap: Annotated[
        bool, typer.Option("--nmap", help="Also run nmap -sV on the open ports found (needs nmap).")
    ] = False,
    policy: PolicyIds = None,
    policy_dir: PolicyDir = None,
    rules_dir: RulesDir = None,
    site: Site = None,
    operator: Operator = None,
    authorisation: Authorisation = None,
    json_out: JsonOut = None,
    html_out: HtmlOut = None,
    csv_out: CsvOut = None,
    rate: Annotated[float, typer.Option(help="Packets per second, at most (all backends together).")] = 500.0,
    timeout: Annotated[float, typer.Option(help="Seconds per connection or request.")] = 2.0,
    listen: Annotated[float, typer.Option(help="Seconds multicast discovery listens for answers.")] = 1.5,
    allow_public: Annotated[
        bool, typer.Option("--allow-public", help="Allow public (internet) addresses in the targets.")
    ] = False,
) -> None:
    """Find and identify every camera and recorder in the targets, and write the compliance report.

    camscan scan 192.168.10.0/24 --site "Town Hall" --json report.json --html report.html

    Nothing is sent outside the targets: multicast discovery runs only on the scan interface and only when the
    targets cover its whole subnet; public addresses need --allow-public; --rate caps the packet rate.
    """
    import asyncio
    from datetime import UTC, datetime

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from scanner._data import data_dir
    from scanner.netctx import ScanContext
    from scanner.report.build import build_report, fingerprints_digest
    from scanner.scan import ALL_METHODS, run_scan
    from scanner.scope import RateLimiter, Scope, ScopeError

    chosen = [m.strip() for m in methods.split(",")] if methods else list(ALL_METHODS)
    unknown = sorted(set(chosen) - set(ALL_METHODS))
    if unknown:
        err.print(Text(f"error: unknown method(s) {unknown}; choose from {','.join(ALL_METHODS)}"))
        raise typer.Exit(2)
    try:
        scope = Scope.build(targets, interface=interface, allow_public=allow_public)
    except ScopeError as exc:
        err.print(Text(f"error: {exc}"))
        raise typer.Exit(2) from None
    engine = _engine(rules_dir)
    packs = _packs(engine, policy, policy_dir)
    ctx = ScanContext(
        scope=scope,
        rate=RateLimiter(rate),
        timeout=timeout,
        listen=listen,
        credentials=_read_credentials(credentials) if credentials else None,
    )
    started = datetime.now(UTC)
    console = _console()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(f"scanning {', '.join(scope.describe())}")

        def progress(phase: str, found: int, done: int) -> None:
            detail = f"{done}/{found} hosts probed" if phase == "probes" else f"{found} hosts found"
            bar.update(task, description=f"{phase}: {detail}")

        result = asyncio.run(run_scan(ctx, chosen, use_nmap=use_nmap, progress=progress))
    rep = build_report(
        result.hosts,
        engine,
        packs,
        started_at=started,
        scope=scope.describe(),
        methods=result.methods,
        operator=operator,
        site=site,
        authorisation=authorisation,
        errors=ctx.errors,
        limitations=scope.limitations + ctx.limitations,
        fingerprints_sha256=fingerprints_digest(data_dir("fingerprints")),
    )
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.phases.items())
    console.print(Text(f"scan of {scope.size} addresses: {timing}; {result.packets} packets sent", style="dim"))
    print_summary(rep, console)
    _write_outputs(rep, json_out, html_out, csv_out)


def _default_mode() -> str:
    import os
    import shutil

    return "netns" if os.geteuid() == 0 and shutil.which("ip") else "loopback"


@lab_app.command("up")
def lab_up(
    mode: Annotated[
        str | None,
        typer.Option(
            help="netns (root: a virtual LAN) or loopback (127.77.0.x, unicast only). Default: netns when root."
        ),
    ] = None,
    personas: Annotated[
        Path | None,
        typer.Option(help="Directory of persona files (default: the bundled ones).", exists=True, file_okay=False),
    ] = None,
) -> None:
    """Start the lab (an earlier or crashed lab is removed first) and print its devices."""
    from scanner.lab import control

    try:
        state = control.up(mode or _default_mode(), personas)
    except (control.LabError, ValueError) as exc:
        err.print(Text(f"error: {exc}"))
        raise typer.Exit(2) from None
    _print_lab(state)


def _print_lab(state) -> None:  # type: ignore[no-untyped-def]
    from scanner.lab import control

    console = _console()
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
        t.add_row(
            cell(p.id), cell(p.ip), cell(p.mac or ""), cell("yes" if control.alive(p.pid) else "NO"), cell(p.name)
        )
    console.print(t)


@lab_app.command("status")
def lab_status() -> None:
    """Show the running lab: mode, devices, whether each process is alive."""
    from scanner.lab import control

    state = control.status()
    if state is None:
        print("no lab is up (start one with `camscan lab up`)")
        raise typer.Exit(1)
    _print_lab(state)


@lab_app.command("down")
def lab_down(
    all_labs: Annotated[
        bool, typer.Option("--all", help="Also remove every other camscan lab on this machine.")
    ] = False,
) -> None:
    """Stop the lab: every persona process, namespace and link it made."""
    from scanner.lab import control

    removed = control.down(everything=all_labs)
    print(f"lab down ({len(removed)} namespaces removed)")


@lab_app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def lab_exec(ctx: typer.Context) -> None:
    """Run a command inside the lab's scanner namespace: camscan lab exec -- nmap -sn 10.77.0.0/24"""
    from scanner.lab import control

    state = control.status()
    if state is None:
        err.print("error: no lab is up")
        raise typer.Exit(2)
    if not ctx.args:
        err.print("error: give a command after --")
        raise typer.Exit(2)
    try:
        raise typer.Exit(control.exec_in_scanner(state, list(ctx.args)))
    except control.LabError as exc:
        err.print(Text(f"error: {exc}"))
        raise typer.Exit(2) from None


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Directory for report.json, report.html, report.csv.")] = Path(
        "camscan-demo"
    ),
    mode: Annotated[
        str | None, typer.Option(help="Lab mode: netns (root) or loopback. Default: netns when root.")
    ] = None,
) -> None:
    """Start the simulated lab, scan it, write camscan-demo/report.{json,html,csv}, tear the lab down.

    In netns mode (root) the scan runs for real inside the lab's scanner namespace, exactly as
    `camscan lab exec -- camscan scan 10.77.0.0/24 --interface lab0` would. In loopback mode without root the
    lab's ports below 1024 are moved, so the demo assesses the Evidence the personas would give, and says so.
    """
    import os
    import subprocess
    import sys
    import tempfile
    import time
    from datetime import UTC, datetime

    from scanner._data import data_dir
    from scanner.lab import control
    from scanner.lab.evidence import persona_evidence
    from scanner.lab.persona import load_personas
    from scanner.report.build import Host, build_report, fingerprints_digest
    from scanner.report.export import load_report

    chosen = mode or _default_mode()
    console = _console()
    out.mkdir(parents=True, exist_ok=True)
    state_dir = Path(tempfile.mkdtemp(prefix="camscan-demo-lab-"))
    t0 = time.monotonic()
    try:
        try:
            state = control.up(chosen, state_dir=state_dir)
        except (control.LabError, ValueError) as exc:
            err.print(Text(f"error: cannot start the lab: {exc}"))
            raise typer.Exit(2) from None
        console.print(
            Text(
                f"camscan demo: lab up in {chosen} mode with {len(state.processes)} simulated devices "
                f"({time.monotonic() - t0:.1f} s); nothing outside the lab is touched",
                style="bold",
            )
        )
        json_path = out / "report.json"
        scanned = chosen == "netns" or os.geteuid() == 0
        if scanned:
            target = "10.77.0.0/24" if chosen == "netns" else "127.77.0.0/24"
            argv = [
                sys.executable,
                "-m",
                "scanner",
                "scan",
                target,
                "--json",
                str(json_path.resolve()),
                "--site",
                "camscan demo lab",
                "--operator",
                "camscan demo",
                "--authorisation",
                "demo: simulated lab only",
            ]
            if chosen == "netns":
                argv = ["ip", "netns", "exec", str(state.scanner_namespace), *argv, "--interface", "lab0"]
            console.print(Text("scanning: " + " ".join(argv[argv.index("scan") :]), style="dim"))
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
            if proc.returncode != 0:
                err.print(Text(f"error: the scan failed ({proc.returncode}):\n{proc.stderr[-2000:]}"))
                raise typer.Exit(1)
            rep = load_report(json_path)
        else:
            engine = _engine(None)
            hosts = [
                Host(id=p.loopback_ip(), ip=p.loopback_ip(), evidence=persona_evidence(p, with_mac=False))
                for p in load_personas()
            ]
            rep = build_report(
                hosts,
                engine,
                _packs(engine, None, None),
                started_at=datetime.now(UTC),
                methods=["lab-persona-evidence"],
                site="camscan demo lab",
                operator="camscan demo",
                authorisation="demo: simulated lab only",
                fingerprints_sha256=fingerprints_digest(data_dir("fingerprints")),
                limitations=[
                    "Loopback lab without root: the lab's ports below 1024 are moved, so this demo assessed "
                    "the Evidence the personas would give to a scan, taken from their files, not from the wire."
                ],
            )
        print_summary(rep, console)
        _write_outputs(rep, None if scanned else json_path, out / "report.html", out / "report.csv")
        if scanned:
            err.print(Text(f"wrote {json_path} (by the scan)"))
    finally:
        control.down(state_dir)
        import shutil

        shutil.rmtree(state_dir, ignore_errors=True)
    console.print(Text(f"lab down; demo took {time.monotonic() - t0:.1f} s", style="dim"))


from scanner.service.commands import register as _register_service  # noqa: E402

_register_service(app)
