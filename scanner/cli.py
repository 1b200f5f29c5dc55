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
)
rules_app = typer.Typer(help="Inspect and verify the fingerprint rules (fingerprints/*.yaml).", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

err = Console(stderr=True, highlight=False, soft_wrap=True)

RulesDir = Annotated[
    Optional[list[Path]],  # noqa: UP045 - typer needs Optional here
    typer.Option(
        "--rules-dir",
        help="Extra directory of rule files (a council's own), read after the shipped rules. Repeatable.",
        exists=True, file_okay=False,
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
        typer.Argument(help="JSON Lines files of hosts ({\"id\", \"evidence\": [...]}); '-' is stdin."),
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
            f"maker {h.manufacturer}" if h.manufacturer else "", f"brand {h.brand}" if h.brand else "",
            f"one of {', '.join(h.candidates)}" if h.candidates else "", f"type {h.device_type}" if h.device_type else "",
            f"model {h.model}" if h.model else "", f"firmware {h.firmware}" if h.firmware else "",
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


@app.command()
def demo(
    evidence: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Evidence file (JSON Lines) to identify; default: the bundled sample hosts."),
    ] = None,
) -> None:
    """Identify the bundled sample hosts and print what camscan found.

    For now the demo feeds the identification core Evidence recorded in scanner/samples/hosts.jsonl; the
    simulated lab and live scanning will replace it.
    """
    from scanner.identify import parse_host

    path = evidence or Path(__file__).resolve().parent / "samples" / "hosts.jsonl"
    engine = _engine(None)
    console = Console(highlight=False)
    table = Table("host", "manufacturer", "brand", "model", "type", "conf", "why", title=f"camscan demo: {path.name}")
    makers: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            host_id, pairs = parse_host(line)
            r = engine.identify(pairs)
            makers[r.manufacturer or "unknown"] = makers.get(r.manufacturer or "unknown", 0) + 1
            why = ", ".join(r.matched[:3]) + (f" (+{len(r.matched) - 3})" if len(r.matched) > 3 else "")
            brand = r.brand if r.brand != r.manufacturer else ""
            table.add_row(*(cell(v) for v in (host_id, r.manufacturer, brand, r.model, r.device_type,
                                                f"{r.confidence:.2f}", why)))
    console.print(table)
    console.print(Text("devices by maker: " + ", ".join(f"{k} {v}" for k, v in sorted(makers.items()))))
