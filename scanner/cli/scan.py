"""`camscan scan`: find and identify the cameras in a set of targets, and write the compliance report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from scanner.backends import METHODS, methods_help
from scanner.cli.common import ReportOptions, console, report_options
from scanner.cli.render import print_summary
from scanner.errors import InputError, UsageError
from scanner.netctx import Credentials


def register(app: typer.Typer) -> None:
    app.command()(scan)


def read_credentials(path: Path) -> Credentials:
    """`username:password` on the first line, or JSON/YAML {username, password}. Never echoed."""
    import yaml

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
    raise InputError(f"{path}: expected 'username:password' or {{username, password}}")


@report_options
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
    methods: Annotated[str | None, typer.Option(help=methods_help())] = None,
    credentials: Annotated[
        Path | None,
        typer.Option(
            help="File with ONVIF credentials (username:password) for GetDeviceInformation. Never logged or reported.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    snmp_community: Annotated[
        str,
        typer.Option(
            help="SNMP community for the read of sysDescr.0 (method snmp). Never logged or reported.",
            envvar="CAMSCAN_SNMP_COMMUNITY",
            show_default=True,
        ),
    ] = "public",
    use_nmap: Annotated[
        bool, typer.Option("--nmap", help="Also run nmap -sV on the open ports found (needs nmap).")
    ] = False,
    rate: Annotated[float, typer.Option(help="Packets per second, at most (all backends together).")] = 500.0,
    timeout: Annotated[float, typer.Option(help="Seconds per connection or request.")] = 2.0,
    listen: Annotated[float, typer.Option(help="Seconds multicast discovery listens for answers.")] = 1.5,
    allow_public: Annotated[
        bool, typer.Option("--allow-public", help="Allow public (internet) addresses in the targets.")
    ] = False,
    *,
    report: ReportOptions,
) -> None:
    """Find and identify every camera and recorder in the targets, and write the compliance report.

    camscan scan 192.168.10.0/24 --site "Town Hall" --json report.json --html report.html

    Nothing is sent outside the targets: multicast discovery runs only on the scan interface and only when the
    targets cover its whole subnet; public addresses need --allow-public; --rate caps the packet rate.
    """
    import asyncio

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from scanner.report.build import Run, build_report
    from scanner.scan import run_scan
    from scanner.scope import RateLimiter, Scope

    chosen = [m.strip() for m in methods.split(",")] if methods else list(METHODS)
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown:
        raise UsageError(f"unknown method(s) {unknown}; choose from {','.join(METHODS)}")
    scope = Scope.build(targets, interface=interface, allow_public=allow_public)
    knowledge = report.knowledge()
    from scanner.netctx import ScanContext

    ctx = ScanContext(
        scope=scope,
        rate=RateLimiter(rate),
        timeout=timeout,
        listen=listen,
        credentials=read_credentials(credentials) if credentials else None,
        snmp_community=snmp_community,
    )
    run = Run(methods=[], scope=scope.describe())
    out = console()
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
    run.methods = result.methods
    run.errors = ctx.errors
    run.limitations = scope.limitations + ctx.limitations
    rep = build_report(result.hosts, knowledge, report.audit(), run)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.phases.items())
    out.print(Text(f"scan of {scope.size} addresses: {timing}; {result.packets} packets sent", style="dim"))
    print_summary(rep, out)
    report.write(rep)
