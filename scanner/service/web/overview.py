"""The numbers of the overview page and its chart of flagged devices over time, drawn as SVG on the server.

The chart reads only the stored scans' summary counts (scans.summary, written at ingest from the report's
own summary), never the reports, so it stays cheap however many scans there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, not_, select
from sqlalchemy.orm import Session

from scanner.service.auth import Principal
from scanner.service.store.models import Device, Scan, Site

CAMERA_TYPES = ("camera", "recorder", "encoder", "intercom", "access_control")  # as the report's summary counts
CHART_POINTS = 120  # per site, at most (a year of daily scans is thinned evenly)
CHART_SITES = 7  # lines at most: the sites with the most flagged devices now (one colour and dash each)
MARKS_UP_TO = 40  # points per line that get a marker with its figure (beyond, the line alone)
# Okabe-Ito colours (told apart with colour-blindness too), each with its own dash so print in grey works
PALETTE = [
    ("#0072B2", ""),
    ("#D55E00", "6 3"),
    ("#009E73", "2 3"),
    ("#CC79A7", "8 3 2 3"),
    ("#E69F00", "4 4"),
    ("#56B4E9", "1 2"),
    ("#000000", "10 4"),
]


@dataclass
class SiteRow:
    slug: str
    name: str
    enabled: bool
    devices: int = 0
    cameras: int = 0
    flagged: int = 0
    overdue: int = 0
    last_scan_id: str | None = None
    last_scan_status: str | None = None
    last_scan_at: datetime | None = None


def overdue_clause(today: date) -> Any:
    """Flagged and overdue as scanner/service/lifecycle.py's `is_overdue` (the `device.overdue` alert) says:
    a replacement due before today, not removed, and no exception in force (an expired one protects no
    more). tests/service/test_web.py checks that the two agree."""
    excepted = and_(
        Device.lifecycle == "exception",
        Device.exception_reason.is_not(None),
        Device.exception_reason != "",
        Device.exception_expires.is_not(None),
        Device.exception_expires >= today,
    )
    return and_(
        Device.flagged.is_(True),
        Device.replacement_due.is_not(None),
        Device.replacement_due < today,
        func.coalesce(Device.lifecycle, "flagged") != "removed",
        not_(excepted),
    )


def site_rows(s: Session, who: Principal, today: date | None = None) -> list[SiteRow]:
    """Every site this person may see, by name, with its present devices' counts, its overdue devices (as the
    alert counts them), and its last scan."""
    today = today or datetime.now(UTC).date()
    query = select(Site).order_by(Site.name, Site.slug)
    if who.site_id is not None:
        query = query.where(Site.id == who.site_id)
    rows = {site.id: SiteRow(site.slug, site.name, site.enabled) for site in s.scalars(query)}
    if not rows:
        return []
    present = Device.status == "present"
    counts = s.execute(
        select(
            Device.site_id,
            func.sum(case((present, 1), else_=0)),
            func.sum(case((and_(present, Device.device_type.in_(CAMERA_TYPES)), 1), else_=0)),
            func.sum(case((and_(present, Device.flagged.is_(True)), 1), else_=0)),
            func.sum(case((overdue_clause(today), 1), else_=0)),  # gone but not yet removed is still overdue
        )
        .where(Device.site_id.in_(rows))
        .group_by(Device.site_id)
    )
    for site_id, n, cameras, flagged, overdue in counts:
        row = rows[site_id]
        row.devices, row.cameras, row.flagged, row.overdue = (
            int(n or 0),
            int(cameras or 0),
            int(flagged or 0),
            int(overdue or 0),
        )
    newest = (
        select(Scan.site_id, func.max(Scan.queued_at).label("at"))
        .where(Scan.site_id.in_(rows))
        .group_by(Scan.site_id)
        .subquery()
    )
    for scan in s.scalars(
        select(Scan).join(newest, and_(Scan.site_id == newest.c.site_id, Scan.queued_at == newest.c.at))
    ):
        row = rows[scan.site_id]
        row.last_scan_id, row.last_scan_status = scan.id, scan.status
        row.last_scan_at = scan.report_started_at or scan.started_at or scan.queued_at  # when it ran, if it did
    return list(rows.values())


# ---- the chart -----------------------------------------------------------------------------------------


@dataclass
class Series:
    name: str
    slug: str
    colour: str
    dash: str
    points: list[tuple[datetime, int]]
    path: str = ""
    marks: list[tuple[float, float, str]] = field(default_factory=list)  # x, y, tooltip


@dataclass
class Chart:
    width: int
    height: int
    left: int
    top: int
    plot_w: int
    plot_h: int
    series: list[Series]
    hidden: int  # sites with scans that are not drawn (CHART_SITES)
    y_ticks: list[tuple[float, int]]
    x_ticks: list[tuple[float, str]]
    empty: bool


def flagged_history(s: Session, who: Principal) -> tuple[list[tuple[str, str, list[tuple[datetime, int]]]], int]:
    """The lines of the chart, [(site name, slug, [(when, flagged)...])...], and how many sites were left
    out. From each visible site's succeeded scans, oldest first, at most CHART_POINTS a site (evenly thinned,
    first and last kept); only the CHART_SITES sites with the most flagged devices at their latest scan, so
    that the chart stays readable."""
    flagged = Scan.summary["flagged"].as_integer()  # read in the database: the summary's other keys stay there
    query = (
        select(Site.name, Site.slug, func.coalesce(Scan.report_started_at, Scan.finished_at), flagged)
        .join(Site, Site.id == Scan.site_id)
        .where(Scan.status == "succeeded", Scan.summary.is_not(None))
        .order_by(Site.name, Site.slug, Scan.report_started_at)
    )
    if who.site_id is not None:
        query = query.where(Scan.site_id == who.site_id)
    by_site: dict[str, tuple[str, list[tuple[datetime, int]]]] = {}
    for name, slug, when, value in s.execute(query):
        if when is not None and isinstance(value, int):
            by_site.setdefault(slug, (name, []))[1].append((when, value))
    ranked = sorted(by_site.items(), key=lambda item: -item[1][1][-1][1])[:CHART_SITES]
    shown = {slug for slug, _ in ranked}
    lines = [(name, slug, _thin(points)) for slug, (name, points) in by_site.items() if slug in shown]
    return lines, len(by_site) - len(lines)


def _thin(points: list[tuple[datetime, int]]) -> list[tuple[datetime, int]]:
    if len(points) <= CHART_POINTS:
        return points
    step = (len(points) - 1) / (CHART_POINTS - 1)
    return [points[round(i * step)] for i in range(CHART_POINTS)]


def _nice_max(value: int) -> tuple[int, int]:
    """An axis top at or above value, and its step, so the ticks are round numbers (at most ~6)."""
    if value <= 5:
        return max(value, 1), 1
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value / step <= 6:
            return -(-value // step) * step, step
    step = 10 ** len(str(value))
    return -(-value // step) * step, step


def build_chart(
    history: list[tuple[str, str, list[tuple[datetime, int]]]], hidden: int = 0, width: int = 760, height: int = 260
) -> Chart:
    left, right, top, bottom = 48, 16, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [p for _, _, pts in history for p in pts]
    if not points:
        return Chart(width, height, left, top, plot_w, plot_h, [], hidden, [], [], True)
    t0 = min(t for t, _ in points)
    t1 = max(t for t, _ in points)
    if t1 - t0 < timedelta(days=1):
        t0, t1 = t0 - timedelta(hours=12), t1 + timedelta(hours=12)
    y_max, step = _nice_max(max(v for _, v in points))
    span = (t1 - t0).total_seconds()

    def x(t: datetime) -> float:
        return round(left + plot_w * (t - t0).total_seconds() / span, 1)

    def y(v: int) -> float:
        return round(top + plot_h - plot_h * v / y_max, 1)

    series = []
    for i, (name, slug, pts) in enumerate(history):
        colour, dash = PALETTE[i % len(PALETTE)]
        one = Series(name, slug, colour, dash, pts)
        coords = [(x(t), y(v)) for t, v in pts]
        one.path = "M" + " L".join(f"{cx},{cy}" for cx, cy in coords)
        if len(pts) <= MARKS_UP_TO:  # a marker (with its figure) per scan only where they can be told apart
            one.marks = [
                (cx, cy, f"{name}: {v} flagged, {t:%Y-%m-%d %H:%M} UTC")
                for (cx, cy), (t, v) in zip(coords, pts, strict=True)
            ]
        series.append(one)
    y_ticks = [(y(v), v) for v in range(0, y_max + 1, step)]
    n_x = 5
    x_ticks = []
    for k in range(n_x):
        t = t0 + (t1 - t0) * k / (n_x - 1)
        x_ticks.append((x(t), f"{t:%d %b %Y}"))
    return Chart(width, height, left, top, plot_w, plot_h, series, hidden, y_ticks, x_ticks, False)
