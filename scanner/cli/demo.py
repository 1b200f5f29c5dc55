"""`camscan demo`: the main job on the simulated lab, end to end (`make demo`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from scanner.cli.common import console, note, write_outputs
from scanner.cli.lab import default_mode
from scanner.cli.render import print_summary
from scanner.errors import CamscanError, UsageError
from scanner.model import ScanReport

if TYPE_CHECKING:
    from scanner.lab.control import LabState


def register(app: typer.Typer) -> None:
    app.command()(demo)


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
    from scanner.lab import control

    chosen = mode or default_mode()
    out_console = console()
    out.mkdir(parents=True, exist_ok=True)
    state_dir = Path(tempfile.mkdtemp(prefix="camscan-demo-lab-"))
    t0 = time.monotonic()
    try:
        try:
            state = control.up(chosen, state_dir=state_dir)
        except (CamscanError, ValueError) as exc:
            raise UsageError(f"cannot start the lab: {exc}") from None
        out_console.print(
            Text(
                f"camscan demo: lab up in {chosen} mode with {len(state.processes)} simulated devices "
                f"({time.monotonic() - t0:.1f} s); nothing outside the lab is touched",
                style="bold",
            )
        )
        json_path = out / "report.json"
        if chosen == "netns" or os.geteuid() == 0:
            target = "10.77.0.0/24" if chosen == "netns" else "127.77.0.0/24"
            rep = _scan_lab(state, target, json_path)
            write_outputs(rep, None, out / "report.html", out / "report.csv")
            note(f"wrote {json_path} (by the scan)")
        else:
            rep = _persona_report()
            write_outputs(rep, json_path, out / "report.html", out / "report.csv")
        print_summary(rep, out_console)
    finally:
        control.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
    out_console.print(Text(f"lab down; demo took {time.monotonic() - t0:.1f} s", style="dim"))


def _scan_lab(state: LabState, target: str, json_path: Path) -> ScanReport:
    """Run `camscan scan` on the lab as a user would (inside the scanner namespace in netns mode)."""
    from scanner.report.export import load_report

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
    if state.mode == "netns":
        argv = ["ip", "netns", "exec", str(state.scanner_namespace), *argv, "--interface", "lab0"]
    note("scanning: " + " ".join(argv[argv.index("scan") :]))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise CamscanError(f"the scan failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return load_report(json_path)


def _persona_report() -> ScanReport:
    """Without root in loopback mode: the report of the Evidence the personas would give, and it says so."""
    from scanner.knowledge import load_knowledge
    from scanner.lab.evidence import persona_evidence
    from scanner.lab.persona import load_personas
    from scanner.model import Host
    from scanner.report.build import Audit, Run, build_report

    hosts = [
        Host(id=p.loopback_ip(), ip=p.loopback_ip(), evidence=persona_evidence(p, with_mac=False))
        for p in load_personas()
    ]
    run = Run(
        methods=["lab-persona-evidence"],
        limitations=[
            "Loopback lab without root: the lab's ports below 1024 are moved, so this demo assessed "
            "the Evidence the personas would give to a scan, taken from their files, not from the wire."
        ],
    )
    audit = Audit(site="camscan demo lab", operator="camscan demo", authorisation="demo: simulated lab only")
    return build_report(hosts, load_knowledge(), audit, run)
