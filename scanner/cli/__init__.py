"""The `camscan` command line: one typer app, one module per command group.

    identify.py   identify                  Evidence in, identities out (docs/evidence.md)
    scan.py       scan                      active scan of targets -> report
    pcap.py       pcap                      passive audit of captures -> report
    report.py     report, verify, diff, schema
    rules.py      rules verify|match|schema
    oui.py        oui status|update|audit   the IEEE MAC registry in use
    data.py       data status|update        the packs' KEV data (CISA catalogue) in use
    policy.py     policy list|verify
    lab.py        lab up|status|down|exec
    demo.py       demo                      lab up, scan, reports, lab down
    (service)     serve, db, users, tokens, sites: scanner/service/commands.py (the service's own commands)
    common.py     the shared options (`@report_options`) and writing a report's outputs
    render.py     everything printed to a terminal (device text escaped)

Errors meant for a person are CamscanError (scanner.errors): `_Group.invoke` below is the one place that
turns them into `error: <message>` on stderr and the error's exit code. This package is the only place that
calls asyncio.run().
"""

from __future__ import annotations

from typing import Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from scanner import __version__
from scanner.cli import data, demo, identify, lab, oui, pcap, policy, report, rules, scan
from scanner.cli.common import err
from scanner.cli.render import safe
from scanner.errors import CamscanError
from scanner.service import commands as service_commands

__all__ = ["app"]


class _Group(TyperGroup):
    """camscan's command group: a CamscanError from any command, at any depth, ends it here."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer bundles its own click)
        try:
            return super().invoke(ctx)
        except CamscanError as exc:
            err.print(Text(safe(f"error: {exc}")))
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="camscan",
    cls=_Group,
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


@app.command()
def version() -> None:
    """Print camscan's version."""
    print(f"camscan {__version__}")


for _module in (scan, pcap, report, identify, rules, oui, data, policy, lab, demo, service_commands):
    _module.register(app)
