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
        "Start with `camscan identify HOSTS.jsonl` to identify hosts from Evidence, or `camscan rules verify` "
        "to check the fingerprint rules."
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


def cell(value: object) -> Text:
    """A table cell holding device-supplied text: never interpreted as rich markup."""
    return Text("" if value is None else str(value))


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
    rules_dir: RulesDir = None,
) -> None:
    """Identify hosts from Evidence: one JSON line in, one JSON line out, in the same order.

    Each output line has id, manufacturer, brand, model, firmware, device_type, confidence and matched
    (the rules that fired). A bad input line gets {"id": ..., "error": ...} and the batch goes on.

    Example:  echo '{"id":"h1","evidence":[{"key":"http.server","value":"App-webs/"}]}' | camscan identify
    """
    from scanner.identify import Counts, identify_stream

    engine = _engine(rules_dir)
    counts = Counts()
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
        console.print(Text("  says:   " + ("; ".join(a for a in asserts if a) or "nothing")))
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
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the JSON export here.")] = None,  # noqa: UP045
    html_out: Annotated[Optional[Path], typer.Option("--html", help="Write the HTML report here.")] = None,  # noqa: UP045
    csv_out: Annotated[Optional[Path], typer.Option("--csv", help="Write the CSV (one row per device) here.")] = None,  # noqa: UP045
    policy: PolicyIds = None,
    policy_dir: PolicyDir = None,
    rules_dir: RulesDir = None,
    site: Annotated[Optional[str], typer.Option(help="Site name for the report header.")] = None,  # noqa: UP045
    operator: Annotated[Optional[str], typer.Option(help="Who ran the audit.")] = None,  # noqa: UP045
    authorisation: Annotated[Optional[str], typer.Option(help="Authorisation reference for the audit.")] = None,  # noqa: UP045
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
                f"+ new     {dev.ip or dev.id} {dev.mac or ''} {dev.manufacturer or 'unknown'} {dev.model or ''}"
                + (" FLAGGED" if dev.flagged else "")
            )
        )
    for dev in d.gone:
        console.print(
            Text(f"- gone    {dev.ip or dev.id} {dev.mac or ''} {dev.manufacturer or 'unknown'} {dev.model or ''}")
        )
    for c in d.changed:
        parts = [f"{k}: {o!s} -> {n!s}" for k, (o, n) in c.changes.items()]
        parts += [f"finding new {x}" for x in c.findings_new] + [f"finding resolved {x}" for x in c.findings_resolved]
        console.print(Text(f"~ changed {c.device.ip or c.device.id}: " + "; ".join(parts)))
    console.print(
        Text(
            f"{len(d.new)} new, {len(d.gone)} gone, {len(d.changed)} changed; findings: "
            f"{d.findings_new} new, {d.findings_resolved} resolved"
        )
    )


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Directory for report.json, report.html, report.csv.")] = Path(
        "camscan-demo"
    ),
    evidence: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Evidence file (JSON Lines); default: the bundled sample hosts.", exists=True),
    ] = None,
) -> None:
    """Assess the bundled sample hosts and write camscan-demo/report.{json,html,csv}.

    For now the demo feeds recorded sample Evidence (scanner/samples/hosts.jsonl) to the identification core
    and the policy packs, and says so in the report; the simulated lab and live scanning will replace it.
    """
    from datetime import UTC, datetime

    from scanner._data import data_dir
    from scanner.report.build import build_report, file_ref, fingerprints_digest, read_hosts

    path = evidence or Path(__file__).resolve().parent / "samples" / "hosts.jsonl"
    engine = _engine(None)
    packs = _packs(engine, None, None)
    errors: list[str] = []
    started = datetime.now(UTC)
    with path.open(encoding="utf-8") as fh:
        rep = build_report(
            read_hosts(fh, path.name, errors),
            engine,
            packs,
            started_at=started,
            methods=["sample-evidence"],
            site="camscan demo (sample evidence)",
            operator="camscan demo",
            authorisation="demo: no network scanned",
            inputs=[file_ref(path, "evidence")],
            errors=errors,
            fingerprints_sha256=fingerprints_digest(data_dir("fingerprints")),
            limitations=[
                "Demo: the Evidence is a recorded sample (scanner/samples/hosts.jsonl), not a live scan; "
                "no packet was sent."
            ],
        )
    console = _console()
    console.print(Text("camscan demo: sample Evidence of 13 hosts (no network is touched)", style="bold"))
    print_summary(rep, console)
    _write_outputs(rep, out / "report.json", out / "report.html", out / "report.csv")
