"""`camscan report|verify|diff|schema`: reports from any tool's Evidence, and the reports themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from scanner.cli.common import ReportOptions, note, report_options
from scanner.cli.render import print_diff, print_summary
from scanner.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command()(report)
    app.command()(verify)
    app.command()(diff)
    app.command()(schema)


@report_options
def report(
    source: Annotated[
        Path | None,
        typer.Argument(
            help="An existing report JSON to re-render (instead of --evidence).", exists=True, dir_okay=False
        ),
    ] = None,
    evidence: Annotated[
        Path | None,
        typer.Option(
            "--evidence",
            help="Evidence lines (JSON Lines: {id, ip?, mac?, evidence: [{key, value}]}), the format of "
            "`camscan identify`; a line it would refuse is skipped and named in the report's errors.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    *,
    report: ReportOptions,
) -> None:
    """Assess hosts from Evidence (from any tool) and write the compliance report; or re-render a report.

    camscan report --evidence hosts.jsonl --json report.json --html report.html --csv report.csv
    camscan report report.json --html report.html --csv report.csv
    """
    from scanner.evidence_lines import read_hosts
    from scanner.report.build import Run, build_report, file_ref
    from scanner.report.export import load_report

    if (source is None) == (evidence is None):
        raise UsageError("give either a report JSON to re-render or --evidence FILE")
    if source is not None:
        if report.json_out:
            raise UsageError("--json re-exports nothing new; copy the file (its digest covers its content)")
        report.write(load_report(source))
        return
    assert evidence is not None
    knowledge = report.knowledge()
    run = Run(
        methods=["evidence-file"],
        inputs=[file_ref(evidence, "evidence")],
        limitations=[
            "Built from an evidence file: camscan sent no packet; identification is only as complete "
            "as the evidence given."
        ],
    )
    with evidence.open(encoding="utf-8", errors="replace") as fh:
        rep = build_report(read_hosts(fh, evidence.name, run.errors), knowledge, report.audit(), run)
    for line in rep.errors:
        note(f"warning: {line}")
    report.write(rep)
    print_summary(rep)


def verify(
    report_file: Annotated[
        Path, typer.Argument(help="A camscan report JSON, or an audit pack (.zip).", exists=True, dir_okay=False)
    ],
) -> None:
    """Check a report's integrity digest, or an audit pack's manifest and every report in it: exit 0 if
    nothing changed, 1 if something did (each changed file is named)."""
    from scanner.report.export import load_document, verify_document
    from scanner.report.pack import is_pack, verify_pack

    if is_pack(report_file):
        check = verify_pack(report_file)
        for problem in check.problems:
            print(f"FAILED: {report_file}: {problem}")
        if not check.ok:
            print(f"FAILED: {report_file}: {len(check.problems)} problem(s): changed after camscan made the pack.")
            raise typer.Exit(1)
        print(f"OK: {report_file}: {check.files} files match the manifest; {check.reports} report(s) verified")
        return
    ok, message = verify_document(load_document(report_file))
    if not ok:
        print(f"FAILED: {report_file}: {message}. The report was changed after camscan wrote it.")
        raise typer.Exit(1)
    print(f"OK: {report_file}: {message}")


def diff(
    old: Annotated[Path, typer.Argument(help="The earlier report JSON.", exists=True, dir_okay=False)],
    new: Annotated[Path, typer.Argument(help="The later report JSON.", exists=True, dir_okay=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the differences as JSON.")] = False,
) -> None:
    """List devices new, gone and changed between two reports, and findings new and resolved."""
    from scanner.report.diff import diff_reports
    from scanner.report.export import load_report

    d = diff_reports(load_report(old), load_report(new))
    if as_json:
        print(json.dumps(d.as_dict(), indent=2, ensure_ascii=False))
        return
    print_diff(d, Console(highlight=False))


def schema() -> None:
    """Print the JSON Schema of the report export (committed at reports/schema/scan-report.schema.json)."""
    from scanner.model import ScanReport

    print(json.dumps(ScanReport.model_json_schema(), indent=2, sort_keys=True))
