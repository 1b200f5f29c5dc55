"""`camscan rules verify|match|schema`: inspect and prove the fingerprint rules."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from scanner.cli.common import RulesDir
from scanner.cli.render import print_rule_hits

rules_app = typer.Typer(help="Inspect and verify the fingerprint rules (fingerprints/*.yaml).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")


@rules_app.command("verify")
def rules_verify(rules_dir: RulesDir = None, quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False) -> None:
    """Run every rule's examples and counter-examples; exit 1 naming each one that fails."""
    from scanner.fingerprint.verify import check_all, makers_covered, rule_count
    from scanner.knowledge import load_engine

    ruleset = load_engine(rules_dir or ()).ruleset
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
    """Show which rules one Evidence value fires, and what they conclude (exit 1 when none fires)."""
    from scanner.knowledge import load_engine
    from scanner.model import normalise_mac

    engine = load_engine(rules_dir or ())
    result = engine.identify([(key, value)])
    registrant = None
    if not result.hits and key == "mac" and engine.ruleset.oui is not None:
        mac = normalise_mac(value)
        registrant = (engine.ruleset.oui.registry.lookup(mac)[0] or "none") if mac else "not a MAC address"
    print_rule_hits(key, value, result, registrant, Console(highlight=False))
    if not result.hits:
        raise typer.Exit(1)


@rules_app.command("schema")
def rules_schema(
    kind: Annotated[
        str, typer.Argument(help="Which format: rules (a rule file), makers, oem, oui or names.")
    ] = "rules",
) -> None:
    """Print the JSON Schema of a knowledge file format, for an editor to check a council's own rule files.

    The schemas are committed in fingerprints/schema/; in VS Code with the YAML extension, start a rule file
    with `# yaml-language-server: $schema=<path to fingerprints/schema/rules.schema.json>`.
    """
    from scanner.errors import UsageError
    from scanner.fingerprint.schema import FORMATS, json_schema

    if kind not in FORMATS:
        raise UsageError(f"unknown format {kind!r}; choose from {', '.join(FORMATS)}")
    print(json.dumps(json_schema(kind), indent=2, sort_keys=True))
