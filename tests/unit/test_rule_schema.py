"""The knowledge file formats as JSON Schema (what a council's editor checks) agree with what camscan loads:
the committed schemas are the generated ones, every shipped file validates against its schema, and an
unknown field is refused in every format, the OUI table included."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from scanner._data import data_dir
from scanner.fingerprint.rules import RuleError, load_ruleset
from scanner.fingerprint.schema import FORMATS, json_schema

SCHEMAS = data_dir("fingerprints") / "schema"
SPECIAL = {"makers.yaml": "makers", "oem.yaml": "oem", "oui.yaml": "oui", "names.yaml": "names"}


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_committed_schema_is_the_generated_one(kind: str) -> None:
    committed = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    assert committed == json_schema(kind), (
        f"fingerprints/schema/{kind}.schema.json is stale: "
        f"`python -m scanner rules schema {kind} > fingerprints/schema/{kind}.schema.json`"
    )


@pytest.mark.parametrize("path", sorted(data_dir("fingerprints").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_file_validates_against_its_json_schema(path: Path) -> None:
    kind = SPECIAL.get(path.name, "rules")
    jsonschema.validate(yaml.safe_load(path.read_text()), json_schema(kind))


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("oui.yaml", lambda d: d["makers"][0].update({"registry_prefix": "44:19:b6"})),
        ("oui.yaml", lambda d: d["lookalikes"][0].update({"maker": "Dahua"})),
        ("oui.yaml", lambda d: d.update({"version": 2})),
        ("makers.yaml", lambda d: d["makers"][0].update({"country": "CN"})),
        ("oem.yaml", lambda d: d["relationships"][0].update({"since": 2016})),
        ("names.yaml", lambda d: d.update({"suffixes": ["ltd"]})),
    ],
)
def test_unknown_fields_are_refused_in_every_format(rules_dir: Path, name: str, edit: object) -> None:
    for special in SPECIAL:
        shutil.copy(data_dir("fingerprints") / special, rules_dir / special)
    doc = yaml.safe_load((rules_dir / name).read_text())
    assert callable(edit)
    edit(doc)
    (rules_dir / name).write_text(yaml.safe_dump(doc, allow_unicode=True))
    with pytest.raises(RuleError, match=r"unknown field") as info:
        load_ruleset(rules_dir)
    assert info.value.file == name


def test_cli_prints_a_schema_and_refuses_an_unknown_kind() -> None:
    from typer.testing import CliRunner

    from scanner.cli import app

    ok = CliRunner().invoke(app, ["rules", "schema", "oui"])
    assert ok.exit_code == 0 and json.loads(ok.output)["title"] == "camscan oui file"
    bad = CliRunner().invoke(app, ["rules", "schema", "nope"])
    assert bad.exit_code == 2 and "unknown format 'nope'" in bad.output
