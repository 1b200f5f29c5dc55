"""`camscan oui status|update|audit`: the IEEE MAC registry camscan uses, and keeping it current."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from scanner.cli.common import console, note
from scanner.cli.render import cell

if TYPE_CHECKING:
    from scanner.fingerprint.registry import Registry
    from scanner.fingerprint.rules import RuleSet

oui_app = typer.Typer(
    help=(
        "The IEEE MAC address registry (MA-L, MA-M and MA-S blocks) behind the `mac` evidence: which one is in "
        "use, installing a newer one, and auditing it against the reviewed table of registrant names "
        "(fingerprints/oui.yaml)."
    ),
    no_args_is_help=True,
)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="camscan's data directory (default: $CAMSCAN_DATA_DIR, else $XDG_DATA_HOME/camscan, "
        "else ~/.local/share/camscan). A registry installed there takes precedence over the shipped one.",
        file_okay=False,
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(oui_app, name="oui")


def _covered(ruleset: RuleSet) -> set[str]:
    """The covered makers and the brands they own or owned (their blocks must never go unclassified)."""
    covered = {m.name for m in ruleset.makers.values() if m.covered}
    covered |= {link.brand for link in ruleset.oem if link.maker in covered and link.relationship != "oem_reported"}
    return covered


def _print_status(registry: Registry, out: Console) -> None:
    counts = registry.counts()
    out.print(cell(f"registry in use: {registry.source}"))
    out.print(cell(f"date: {registry.date}; origin: {registry.origin}"))
    out.print(
        cell(
            f"blocks: {counts[24]:,} MA-L (24-bit), {counts[28]:,} MA-M (28-bit), {counts[36]:,} MA-S/IAB (36-bit); "
            f"{len(registry.names()):,} registrant names"
        )
    )
    t = Table("file", "sha256", box=None)
    for f in registry.files:
        t.add_row(cell(f.name), cell(f.sha256))
    out.print(t)


@oui_app.command("status")
def oui_status(data_dir: DataDir = None) -> None:
    """Print the registry in use: its source, date, origin, block counts and file digests."""
    from scanner.fingerprint.registry import load_registry
    from scanner.userdata import user_data_dir

    _print_status(load_registry(user_data_dir(data_dir, create=False)), console())


@oui_app.command("update")
def oui_update(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="The IEEE's CSV exports (oui.csv, mam.csv, oui36.csv; iab.csv too) from "
            "https://standards-oui.ieee.org/, or a Wireshark-format manuf file, as downloaded.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Remove the installed registry: use the shipped snapshot again.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Validate registry files and install them in camscan's data directory, where they take precedence over the
    shipped snapshot; then audit them against the reviewed table (fingerprints/oui.yaml).

    camscan oui update oui.csv mam.csv oui36.csv

    Nothing is installed if a file is refused (not one of the formats, too few usable rows, too many unreadable
    ones). camscan never downloads anything itself.
    """
    from scanner.errors import UsageError
    from scanner.fingerprint.registry import install, remove_installed, shipped_registry
    from scanner.userdata import user_data_dir

    directory = user_data_dir(data_dir)
    out = console()
    if reset:
        if files:
            raise UsageError("give files to install, or --reset, not both")
        removed = remove_installed(directory)
        note("installed registry removed" if removed else "no installed registry; the shipped one is in use")
        _print_status(shipped_registry(), out)
        return
    if not files:
        raise UsageError("give the registry files to install (or --reset)")
    registry = install(files, directory)
    note(f"installed in {registry.origin}")
    _print_status(registry, out)
    _audit(directory, out, only_covered=True)


def _audit(directory: Path | None, out: Console, only_covered: bool) -> int:
    from scanner.fingerprint.oui import audit
    from scanner.fingerprint.rules import load_ruleset

    ruleset = load_ruleset(registry_dir=directory)
    assert ruleset.oui is not None
    found = audit(ruleset.oui, ruleset.makers, _covered(ruleset), ruleset.names.generic_words if ruleset.names else ())
    covered = [s for s in found if s.covered]
    shown = covered if only_covered else found
    if shown:
        t = Table("registrant", "looks like", "shared word", "covered", "blocks", box=None)
        for s in shown:
            covered_mark = "YES" if s.covered else ""
            t.add_row(cell(s.registrant), cell(s.looks_like), cell(s.word), cell(covered_mark), cell(s.blocks))
        out.print(t)
    out.print(
        cell(
            f"{len(found)} registrant names look like a known maker but are neither mapped nor a look-alike; "
            f"{len(covered)} of them look like a covered maker"
            + ("; review them: add each to fingerprints/oui.yaml as a maker's name or a look-alike" if covered else "")
        )
    )
    return len(covered)


@oui_app.command("audit")
def oui_audit(
    covered_only: Annotated[
        bool, typer.Option("--covered-only", help="List only names that look like a covered maker.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the names as JSON lines.")] = False,
    data_dir: DataDir = None,
) -> None:
    """List registrant names in the registry in use that look like a known maker or subsidiary (a shared
    distinctive word) but are neither mapped to a maker nor listed as a look-alike in fingerprints/oui.yaml.

    Exit 1 when one of them looks like a covered maker (Hikvision, Dahua, Huawei, ZTE, Hytera or a brand they
    own or owned): a new block of a covered maker must never be dropped silently.
    """
    from scanner.userdata import user_data_dir

    directory = user_data_dir(data_dir, create=False)
    if as_json:
        from scanner.fingerprint.oui import audit
        from scanner.fingerprint.rules import load_ruleset

        ruleset = load_ruleset(registry_dir=directory)
        assert ruleset.oui is not None
        generic = ruleset.names.generic_words if ruleset.names else ()
        found = audit(ruleset.oui, ruleset.makers, _covered(ruleset), generic)
        for s in found:
            if s.covered or not covered_only:
                doc = {"registrant": s.registrant, "looks_like": s.looks_like, "word": s.word, "covered": s.covered}
                print(json.dumps({**doc, "blocks": s.blocks}, ensure_ascii=False))
        if any(s.covered for s in found):
            raise typer.Exit(1)
        return
    if _audit(directory, console(), only_covered=covered_only):
        raise typer.Exit(1)
