"""`camscan lab up|status|down|exec`: the simulated camera lab."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from scanner.cli.render import print_lab
from scanner.errors import UsageError

lab_app = typer.Typer(
    help=(
        "The simulated camera lab: simulated cameras, recorders and ordinary hosts answering real protocols on a "
        "private virtual LAN (network namespaces, root) or on 127.77.0.x (loopback). Nothing touches the real network."
    ),
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")


def default_mode() -> str:
    """netns when root with iproute2, else loopback."""
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
        state = control.up(mode or default_mode(), personas)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print_lab(state, {p.pid: control.alive(p.pid) for p in state.processes})


@lab_app.command("status")
def lab_status() -> None:
    """Show the running lab: mode, devices, whether each process is alive (exit 1 when no lab is up)."""
    from scanner.lab import control

    state = control.status()
    if state is None:
        print("no lab is up (start one with `camscan lab up`)")
        raise typer.Exit(1)
    print_lab(state, {p.pid: control.alive(p.pid) for p in state.processes})


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
        raise control.LabError("no lab is up")
    if not ctx.args:
        raise UsageError("give a command after --")
    raise typer.Exit(control.exec_in_scanner(state, list(ctx.args)))
