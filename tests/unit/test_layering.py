"""Layers point one way. The protocol modules (discovery/, probes/, passive/) and the identification core
sit below the report, the scan orchestration and the command line; the model sits below everything. An
import against the grain fails here, naming the file, the line and the import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "scanner"

# (package or module, imports it must never make): prefixes of dotted module names
FORBIDDEN: list[tuple[str, tuple[str, ...]]] = [
    ("model.py", ("scanner.",)),  # the bottom layer imports nothing of camscan but errors
    ("errors.py", ("scanner.",)),
    ("discovery", ("scanner.report", "scanner.cli", "scanner.scan", "scanner.service", "scanner.passive")),
    ("probes", ("scanner.report", "scanner.cli", "scanner.scan", "scanner.service", "scanner.discovery")),
    ("passive", ("scanner.report", "scanner.cli", "scanner.scan", "scanner.service")),
    ("fingerprint", ("scanner.report", "scanner.cli", "scanner.scan", "scanner.policy", "scanner.service")),
    ("policy", ("scanner.report", "scanner.cli", "scanner.scan", "scanner.service")),
    ("report", ("scanner.cli", "scanner.scan", "scanner.service")),
    ("evidence_lines.py", ("scanner.report", "scanner.cli", "scanner.fingerprint")),
    ("scan.py", ("scanner.report", "scanner.cli")),
    ("service", ("scanner.cli",)),  # the service runs scans as child processes and reads their reports
]
ALLOWED = {("model.py", "scanner.errors")}


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def files(where: str) -> list[Path]:
    target = PACKAGE / where
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


@pytest.mark.parametrize(("where", "forbidden"), FORBIDDEN, ids=[w for w, _ in FORBIDDEN])
def test_imports_point_down(where: str, forbidden: tuple[str, ...]) -> None:
    bad = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: imports {name}"
        for path in files(where)
        for line, name in imports(path)
        if name.startswith(forbidden) and (where, name) not in ALLOWED
    ]
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself: a lazy import inside a function is found."""
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from scanner.report.build import Host\n")
    assert (2, "scanner.report.build.Host") in imports(path)


def test_no_type_ignore_in_the_cli() -> None:
    offenders = [
        f"{p.name}:{i}"
        for p in files("cli")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "type: ignore" in line
    ]
    assert not offenders, offenders
