"""The site page's extension point (see the package docstring): panels and header actions that other parts
of the service register."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from scanner.service.auth import Principal
from scanner.service.store.models import Site
from scanner.service.web.templating import render

log = logging.getLogger("camscan.service.web")


@dataclass(frozen=True)
class PanelContext:
    """What a panel may use: the open database session, the site, who is looking, their CSRF token."""

    session: Session
    site: Site
    who: Principal
    csrf: str
    query: dict[str, str] = field(default_factory=dict)  # the page's query parameters (hostile strings)

    def render(self, template: str, **values: Any) -> Markup:
        return render(template, site=self.site, who=self.who, csrf=self.csrf, **values)


@dataclass(frozen=True)
class SitePanel:
    title: str
    render: Callable[[PanelContext], Markup]
    order: int = 100
    min_role: str = "auditor"
    slug: str = ""  # the section's HTML id; from the title when empty


@dataclass(frozen=True)
class SiteAction:
    label: str
    path: str  # formatted with slug=...
    method: str = "GET"
    min_role: str = "auditor"


SITE_PANELS: list[SitePanel] = []
SITE_ACTIONS: list[SiteAction] = []


def site_panel(
    title: str, order: int = 100, min_role: str = "auditor"
) -> Callable[[Callable[[PanelContext], Markup]], Callable[[PanelContext], Markup]]:
    """Decorator: register a function as a panel of the site page."""

    def add(fn: Callable[[PanelContext], Markup]) -> Callable[[PanelContext], Markup]:
        register_site_panel(SitePanel(title, fn, order, min_role))
        return fn

    return add


def register_site_panel(panel: SitePanel) -> None:
    if any(p.title == panel.title for p in SITE_PANELS):  # a module imported twice registers once
        return
    SITE_PANELS.append(panel)
    SITE_PANELS.sort(key=lambda p: (p.order, p.title))


def register_site_action(action: SiteAction) -> None:
    if action.method not in ("GET", "POST"):
        raise ValueError("a site action is a GET link or a POST form")
    if action not in SITE_ACTIONS:
        SITE_ACTIONS.append(action)


def _anchor(title: str) -> str:
    return "panel-" + "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")


def render_panels(ctx: PanelContext) -> list[tuple[str, str, Markup]]:
    """(anchor, title, body) of each panel this person may see; a failing panel becomes a notice."""
    shown = []
    for panel in SITE_PANELS:
        if not ctx.who.has(panel.min_role):
            continue
        try:
            body = panel.render(ctx)
        except Exception as exc:
            log.error("site panel %r failed: %s", panel.title, type(exc).__name__, exc_info=exc)
            body = render("panels/failed.html.j2")
        shown.append((panel.slug or _anchor(panel.title), panel.title, body))
    return shown


def visible_actions(who: Principal, slug: str) -> list[tuple[SiteAction, str]]:
    return [(a, a.path.format(slug=slug)) for a in SITE_ACTIONS if who.has(a.min_role)]
