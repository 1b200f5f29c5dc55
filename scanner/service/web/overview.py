"""The numbers of the overview page and its chart of flagged devices over time, drawn as SVG on the server.

The chart reads only the stored scans' summary counts (scans.summary, written at ingest from the report's
own summary), never the reports, so it stays cheap however many scans there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from scanner.service.auth import Principal
from scanner.service.store.models import Device, Scan, Site

CAMERA_TYPES = ("camera", "recorder", "encoder", "intercom", "access_control")  # as the report's summary counts
CLOSED_STATES = ("removed", "exception")
CHART_POINTS = 200  # per site: the newest scans
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
    """Flagged, still present, a replacement due date in the past, and neither removed nor excepted."""
    return and_(
        Device.flagged.is_(True),
        Device.status == "present",
        Device.replacement_due.is_not(None),
        Device.replacement_due < today,
        func.coalesce(Device.lifecycle, "flagged").not_in(CLOSED_STATES),
    )


def site_rows(s: Session, who: Principal, today: date | None = None) -> list[SiteRow]:
    """Every site this person may see, by name, with its present devices' counts and its last scan."""
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
            func.count(),
            func.sum(case((Device.device_type.in_(CAMERA_TYPES), 1), else_=0)),
            func.sum(case((Device.flagged.is_(True), 1), else_=0)),
            func.sum(case((overdue_clause(today), 1), else_=0)),
        )
        .where(present, Device.site_id.in_(rows))
        .group_by(Device.site_id)
    )
    for site_id, n, cameras, flagged, overdue in counts:
        row = rows[site_id]
        row.devices, row.cameras, row.flagged, row.overdue = (
            int(n),
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
        row.last_scan_at = scan.finished_at or scan.started_at or scan.queued_at
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
    y_ticks: list[tuple[float, int]]
    x_ticks: list[tuple[float, str]]
    empty: bool


def flagged_history(s: Session, who: Principal) -> list[tuple[str, str, list[tuple[datetime, int]]]]:
    """(site name, slug, [(when, flagged)...]) from each visible site's succeeded scans, oldest first."""
    query = (
        select(Site.name, Site.slug, Scan.report_started_at, Scan.finished_at, Scan.summary)
        .join(Site, Site.id == Scan.site_id)
        .where(Scan.status == "succeeded", Scan.summary.is_not(None))
        .order_by(Site.name, Site.slug, Scan.report_started_at)
    )
    if who.site_id is not None:
        query = query.where(Scan.site_id == who.site_id)
    by_site: dict[str, tuple[str, list[tuple[datetime, int]]]] = {}
    for name, slug, started, finished, summary in s.execute(query):
        when = started or finished
        if when is None or not isinstance(summary, dict):
            continue
        flagged = summary.get("flagged")
        if isinstance(flagged, int) and not isinstance(flagged, bool):
            by_site.setdefault(slug, (name, []))[1].append((when, flagged))
    return [(name, slug, points[-CHART_POINTS:]) for slug, (name, points) in by_site.items()]


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
    history: list[tuple[str, str, list[tuple[datetime, int]]]], width: int = 760, height: int = 260
) -> Chart:
    left, right, top, bottom = 48, 16, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    points = [p for _, _, pts in history for p in pts]
    if not points:
        return Chart(width, height, left, top, plot_w, plot_h, [], [], [], True)
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
    return Chart(width, height, left, top, plot_w, plot_h, series, y_ticks, x_ticks, False)
