"""`camscan data status|update`: the data behind the policy packs that changes faster than their rules (today:
CISA's Known Exploited Vulnerabilities catalogue, scanner/policy/kev.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from scanner.cli.common import console, note
from scanner.cli.oui import DataDir
from scanner.cli.render import cell

if TYPE_CHECKING:
    from scanner.policy.kev import KevData

data_app = typer.Typer(
    help=(
        "The data behind the policy packs that changes faster than their rules: the CISA Known Exploited "
        "Vulnerabilities (KEV) catalogue of the camera-risk pack. Which one is in use, and installing a newer one."
    ),
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


def _print_kev(pack_id: str, data: KevData, out: Console) -> None:
    released = f"catalogVersion {data.catalog_version}, released {data.date_released}"
    out.print(cell(f"{pack_id}: KEV data {data.file}: {released}"))
    out.print(cell(f"  origin: {data.origin}; {len(data.entries)} camera and recorder entries of {data.catalog_count}"))
    if data.source:
        out.print(cell(f"  source: {data.source}"))
    out.print(cell(f"  sha256: {data.sha256}"))


def _print_entries(data: KevData, out: Console) -> None:
    t = Table("cve", "maker", "vendor / product", "added", box=None)
    for e in data.entries:
        t.add_row(cell(e.cve), cell(e.maker or "-"), cell(f"{e.vendor} / {e.product}"), cell(e.date_added))
    out.print(t)


@data_app.command("status")
def data_status(
    entries: Annotated[bool, typer.Option("--entries", help="List the KEV entries kept, too.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Print the KEV data each pack uses: its catalogVersion and release date, where it comes from (shipped or
    installed), how many entries it keeps, and its SHA-256."""
    from scanner.knowledge import load_engine
    from scanner.policy.packs import load_packs
    from scanner.userdata import user_data_dir

    makers = load_engine().ruleset.makers
    out = console()
    for pack in load_packs(makers, kev_dir=user_data_dir(data_dir, create=False)):
        if pack.kev is not None:
            _print_kev(pack.id, pack.kev, out)
            if entries:
                _print_entries(pack.kev, out)


@data_app.command("update")
def data_update(
    kev: Annotated[
        Path | None,
        typer.Option(
            "--kev",
            help="CISA's KEV catalogue as downloaded: known_exploited_vulnerabilities.json from "
            "https://www.cisa.gov/known-exploited-vulnerabilities-catalog (or https://github.com/cisagov/kev-data).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    allow_older: Annotated[
        bool,
        typer.Option("--allow-older", help="Install a catalogue older than the one in use (going back on purpose)."),
    ] = False,
    reset: Annotated[
        bool, typer.Option("--reset", help="Remove the installed KEV data: use the shipped data again.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Rebuild the packs' KEV data from CISA's JSON feed and install it in camscan's data directory, where it takes
    precedence over the data shipped with camscan.

    camscan data update --kev known_exploited_vulnerabilities.json

    The feed is checked strictly (size, JSON shape, field types, the stated count against the entries); if
    anything is wrong, nothing is written and the data in use stays. camscan never downloads anything itself.
    """
    from scanner._data import data_dir as policies_dir
    from scanner.errors import InputError, UsageError
    from scanner.knowledge import load_engine
    from scanner.policy.kev import install, load_data, remove_installed
    from scanner.policy.packs import kev_selections
    from scanner.userdata import user_data_dir

    directory = user_data_dir(data_dir)
    out = console()
    makers = load_engine().ruleset.makers
    selections = kev_selections(makers)
    if reset:
        if kev is not None:
            raise UsageError("give a catalogue to install (--kev FILE), or --reset, not both")
        removed = remove_installed(directory)
        note("installed KEV data removed" if removed else "no installed KEV data; the shipped data is in use")
        for pack_id, sel in selections.items():
            _print_kev(pack_id, load_data(sel, policies_dir("policies"), makers, None), out)
        return
    if kev is None:
        raise UsageError("give the catalogue to install: --kev known_exploited_vulnerabilities.json (or --reset)")
    in_use: dict[str, KevData] = {}
    for sel in selections.values():
        try:
            in_use[sel.file] = load_data(sel, policies_dir("policies"), makers, directory)
        except InputError as exc:  # damaged installed data: the update replaces it
            note(f"the KEV data in use cannot be read ({exc}); it will be replaced")
    installed = install(kev, list(selections.values()), directory, makers, in_use, allow_older)
    note(f"installed in {directory / 'kev'}")
    for pack_id, data in zip(selections, installed, strict=True):
        before = in_use.get(data.file)
        _print_kev(pack_id, data, out)
        if before is not None:
            old = {e.cve for e in before.entries}
            new = {e.cve for e in data.entries}
            added, gone = sorted(new - old), sorted(old - new)
            out.print(cell(f"  since catalogVersion {before.catalog_version}: {len(added)} entries added"
                           + (f" ({', '.join(added[:20])})" if added else "")
                           + (f"; {len(gone)} no longer listed ({', '.join(gone[:20])})" if gone else "")))
