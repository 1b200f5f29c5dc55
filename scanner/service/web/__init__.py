"""The dashboard: server-rendered pages on the same app as the API (docs/service.md, "Contract: pages").

Jinja2 templates (autoescaped, templates/), one stylesheet (static/camscan.css, screen and print), charts
drawn as SVG on the server, and no JavaScript at all: every page is sent under a Content-Security-Policy
that allows no script (`script-src 'none'`), so even a device string that escaped the escaping could not
run. Logins, sessions, CSRF and the login throttle are in sessions.py; the routes in pages.py; the queries
behind the overview and its chart in overview.py.

Pages reuse the API's own functions for what they show and change (scanner/service/api/*: `site_for`,
`device_for`, `scan_for`, the diff, the report downloads, `patch_device` for the lifecycle form), called
with the logged-in person's Principal, so a page and the API can never disagree about roles or sites.

## Extension point: site panels and site actions

Other parts of the service (register reconciliation, alert rules, the audit pack) add to the site page
without editing its template. Register at import time of your module, and import that module from
`install()` below (one line there), so the registration happens once the app is built:

    from markupsafe import Markup
    from scanner.service.web import PanelContext, SiteAction, register_site_action, site_panel

    @site_panel("Register reconciliation", order=20, min_role="auditor")
    def reconciliation(ctx: PanelContext) -> Markup:
        rows = ctx.session.execute(...)          # the open database session, read only please
        return ctx.render("panels/reconciliation.html.j2", rows=rows)   # autoescaped like every page

    register_site_action(SiteAction("Download audit pack", "/sites/{slug}/audit-pack", method="GET"))

- A panel is a function `(PanelContext) -> Markup`, shown as its own section (heading = the title) on
  `/sites/{slug}` in `order`, to people of at least `min_role`. `ctx.render(template, **values)` renders
  a template of templates/ (put yours under templates/panels/) with autoescaping; never build markup by
  string concatenation. A POST form in a panel carries the CSRF token as a hidden field (the template gets it
  as `csrf`): `<input type="hidden" name="csrf" value="{{ csrf }}">`; its route calls `check_csrf`.
- A panel that raises shows a one-line notice instead of breaking the page (and logs the error).
- A site action is a button in the site page's header: `path` is formatted with `slug`; GET actions are
  links, POST actions are forms with the CSRF field.
- Your own page routes: add an `APIRouter` of page routes with `Depends(viewer)` (or the `Page`
  annotation) for the logged-in person, `render_page(request, viewer, "template.html.j2", ...)` to answer,
  `read_form` + `check_csrf` for POSTs; include it from `install()`.
"""

from __future__ import annotations

from scanner.service.web.panels import (
    SITE_ACTIONS,
    SITE_PANELS,
    PanelContext,
    SiteAction,
    SitePanel,
    register_site_action,
    site_panel,
)

__all__ = [
    "SITE_ACTIONS",
    "SITE_PANELS",
    "PanelContext",
    "SiteAction",
    "SitePanel",
    "install",
    "register_site_action",
    "site_panel",
]


def install(app: object) -> None:
    """Add the pages, their error pages and their security headers to the API's FastAPI app."""
    from scanner.service.web.pages import install as install_pages

    install_pages(app)
    # part 2's panels (register reconciliation, alert rules, audit pack) and their page routes
    from fastapi import FastAPI

    from scanner.service.web import site_panels

    assert isinstance(app, FastAPI)
    app.include_router(site_panels.router)
