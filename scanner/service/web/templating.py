"""The one Jinja2 environment of the pages: autoescaped everywhere, undefined names an error."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


def _when(value: datetime | date | str | None, empty: str = "—") -> str:
    """A time as people read it: `2026-03-01 02:00 UTC` (times are stored in UTC)."""
    if value is None or value == "":
        return empty
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{round(value * 100)} %"


def _cut(value: object, limit: int = 200) -> str:
    """A long device string shortened for a table cell (the full value is in the report's JSON)."""
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def _or_dash(value: Any) -> Any:
    return "—" if value is None or value == "" else value


ENV = Environment(
    loader=PackageLoader("scanner.service.web", "templates"),
    autoescape=True,  # every template, whatever its name: device strings are hostile
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["when"] = _when
ENV.filters["percent"] = _percent
ENV.filters["dash"] = _or_dash
ENV.filters["cut"] = _cut


def render(name: str, **values: Any) -> Markup:
    """A template rendered to safe markup (its own values escaped by the template)."""
    return Markup(ENV.get_template(name).render(**values))
