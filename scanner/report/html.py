"""The self-contained HTML report (reports/templates/*.html.j2): readable on screen and on paper.

Autoescaping is on for everything, so a device that calls itself `<script>...` is shown, not run; the page
also carries a Content-Security-Policy that allows no script at all. Long values are cut for display.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from scanner._data import data_dir
from scanner.model import ScanReport
from scanner.report.export import report_document


def cap(value: object, limit: int = 300) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(data_dir("reports") / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cap"] = cap
    return env


def render_html(report: ScanReport, exceptions: Mapping[str, str] | None = None) -> str:
    """The page; `exceptions` (report device id -> text) are the exceptions in force that the service adds
    to a stored report when it renders it (the report itself is not changed)."""
    digest = report_document(report)["integrity"]["digest"]
    flagged_by_maker = Counter(d.manufacturer or "unknown" for d in report.devices if d.flagged)
    return (
        environment()
        .get_template("report.html.j2")
        .render(r=report, digest=digest, flagged_by_maker=flagged_by_maker, exceptions=dict(exceptions or {}))
    )


def write_html(report: ScanReport, path: Path) -> None:
    path.write_text(render_html(report), encoding="utf-8")
