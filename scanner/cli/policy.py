"""`camscan policy list|verify`: inspect and prove the policy packs."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from scanner.cli.common import PolicyDir
from scanner.cli.render import cell

policy_app = typer.Typer(help="Inspect and verify the policy packs (policies/*.yaml).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")


@policy_app.command("list")
def policy_list(policy_dir: PolicyDir = None) -> None:
    """List the policy packs: id, kind, version, as-of date, rules, title."""
    from scanner.knowledge import load_knowledge

    table = Table("id", "kind", "version", "as of", "rules", "title", box=None)
    for p in load_knowledge(policy_dirs=policy_dir or ()).packs:
        table.add_row(*(cell(v) for v in (p.id, p.kind, p.version, p.as_of, len(p.rules), p.title)))
    Console(highlight=False).print(table)


@policy_app.command("verify")
def policy_verify(policy_dir: PolicyDir = None) -> None:
    """Load every pack and check that each example device gets exactly the findings it expects."""
    from scanner.knowledge import load_knowledge
    from scanner.policy.packs import check_examples

    packs = load_knowledge(policy_dirs=policy_dir or ()).packs
    checks = check_examples(packs)
    failures = [c for c in checks if not c.ok]
    for c in failures:
        print(f"FAIL {c.pack}: example {c.example!r}: {c.message}")
    n_rules = sum(len(p.rules) for p in packs)
    if failures:
        print(f"{len(packs)} packs, {n_rules} rules, {len(failures)} of {len(checks)} examples fail")
        raise typer.Exit(1)
    print(f"{len(packs)} packs, {n_rules} rules, all {len(checks)} examples hold")
