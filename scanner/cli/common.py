"""What several commands share: the consoles, the option types, the report options (outputs, knowledge,
audit) and writing a report's outputs.

`@report_options` gives a command the nine options every report-writing command takes (--json, --html,
--csv; --rules-dir, --policy, --policy-dir; --site, --operator, --authorisation) as one `ReportOptions`
argument named `report`, so they are declared once and turned into knowledge and audit metadata once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.text import Text

from scanner.model import ScanReport

if TYPE_CHECKING:  # imported lazily where used: loading the engine is the slow part of a command's start
    from scanner.knowledge import Knowledge
    from scanner.report.build import Audit

err = Console(stderr=True, highlight=False, soft_wrap=True)


def console() -> Console:
    """The stdout console; at least 120 columns when writing to a file or pipe (rich assumes 80 there)."""
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=max(out.width, 120))
    return out


def note(message: str) -> None:
    """A line for the person on stderr (never parsed as rich markup: it may hold device text)."""
    err.print(Text(message))


RulesDir = Annotated[
    list[Path] | None,
    typer.Option(
        "--rules-dir",
        help="Extra directory of rule files (a council's own), read after the shipped rules. Repeatable.",
        exists=True,
        file_okay=False,
    ),
]
PolicyIds = Annotated[
    list[str] | None,
    typer.Option("--policy", help="Apply only this policy pack (repeatable). Default: every shipped pack."),
]
PolicyDir = Annotated[
    list[Path] | None,
    typer.Option(
        "--policy-dir",
        help="Extra directory of policy packs (a council's own). Repeatable.",
        exists=True,
        file_okay=False,
    ),
]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Write the JSON export (the auditor's copy) here.")]
HtmlOut = Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")]
CsvOut = Annotated[Path | None, typer.Option("--csv", help="Write the CSV (one row per device) here.")]
Site = Annotated[str | None, typer.Option("--site", help="Site name for the report header.")]
Operator = Annotated[str | None, typer.Option("--operator", help="Who ran the audit.")]
Authorisation = Annotated[str | None, typer.Option("--authorisation", help="Authorisation reference for the audit.")]


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """The options of every command that writes a report."""

    json_out: Path | None = None
    html_out: Path | None = None
    csv_out: Path | None = None
    rules_dir: list[Path] | None = None
    policy: list[str] | None = None
    policy_dir: list[Path] | None = None
    site: str | None = None
    operator: str | None = None
    authorisation: str | None = None

    def knowledge(self) -> Knowledge:
        """The engine and the packs these options name (RuleError/PackError, exit 2, if a file is refused)."""
        from scanner.knowledge import load_knowledge

        return load_knowledge(self.rules_dir or (), self.policy_dir or (), self.policy or ())

    def audit(self) -> Audit:
        from scanner.report.build import Audit

        return Audit(site=self.site, operator=self.operator, authorisation=self.authorisation)

    def write(self, report: ScanReport) -> None:
        write_outputs(report, self.json_out, self.html_out, self.csv_out)


_REPORT_PARAMS: list[tuple[str, Any]] = [
    ("json_out", JsonOut),
    ("html_out", HtmlOut),
    ("csv_out", CsvOut),
    ("policy", PolicyIds),
    ("policy_dir", PolicyDir),
    ("rules_dir", RulesDir),
    ("site", Site),
    ("operator", Operator),
    ("authorisation", Authorisation),
]

F = TypeVar("F", bound=Callable[..., Any])


def report_options(func: F) -> F:
    """Give a command the report options as one `report: ReportOptions` argument (see the module docstring).

    typer reads a command's parameters from its signature: the wrapper's signature is the command's own
    without `report`, plus the nine options; the wrapper folds them back into a ReportOptions."""
    sig = inspect.signature(func, eval_str=True)
    own = [p for p in sig.parameters.values() if p.name != "report"]
    keyword = inspect.Parameter.KEYWORD_ONLY
    extra = [inspect.Parameter(n, keyword, default=None, annotation=a) for n, a in _REPORT_PARAMS]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opts = ReportOptions(**{name: kwargs.pop(name, None) for name, _ in _REPORT_PARAMS})
        return func(*args, report=opts, **kwargs)

    wrapper.__dict__["__signature__"] = sig.replace(parameters=[*own, *extra])
    return cast(F, wrapper)


def write_outputs(report: ScanReport, json_out: Path | None, html_out: Path | None, csv_out: Path | None) -> None:
    """Write whichever of the JSON export, the HTML report and the CSV were asked for, saying where."""
    from scanner.report.csv_export import write_csv
    from scanner.report.export import write_json
    from scanner.report.html import write_html

    for path in (json_out, html_out, csv_out):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
    if json_out:
        digest = write_json(report, json_out)
        note(f"wrote {json_out} (sha256 {digest})")
    if html_out:
        write_html(report, html_out)
        note(f"wrote {html_out}")
    if csv_out:
        write_csv(report, csv_out)
        note(f"wrote {csv_out}")
