#!/usr/bin/env python3
"""Speed of the dashboard's pages: seed S sites x D devices x N daily scans, then time the pages people open.

Seeds through the real ingest path with bench_service.py's reports (real camscan Device records from the
rules' examples; every day a few devices leave, come back or change firmware), logs in once through the
real login form, then times, through the real app in process (session cookie, CSRF-free GETs, the same
middleware uvicorn serves), the overview (every site's counts and the SVG chart of flagged devices over
time from every stored scan), a site page (sorted, filtered), the device page with the longest history,
and a scan page with its diff, and the audit pack download. Prints p50/p95 per page. Figures only, no asserts.

    python benchmarks/bench_pages.py                       # 20 sites x 200 devices x 90 days, SQLite and PostgreSQL
    python benchmarks/bench_pages.py --sites 5 --days 30   # a quick run
    python benchmarks/bench_pages.py --reuse sqlite:///PATH  # time a database seeded before (e.g. bench_service --keep)
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_service import add_sites, day_report, percentiles, timed_targets  # noqa: E402

from scanner.fingerprint.engine import Engine  # noqa: E402
from scanner.fingerprint.rules import load_ruleset  # noqa: E402
from scanner.policy.packs import load_packs  # noqa: E402
from scanner.service.auth import add_user  # noqa: E402
from scanner.service.ingest import ingest_report  # noqa: E402
from scanner.service.store.db import Database, migrate, normalise_url  # noqa: E402
from scanner.service.store.models import Device, Scan, Site, User  # noqa: E402

PASSWORD = "benchmark passphrase, not secret"


def seed(url: str, args: argparse.Namespace) -> None:
    rng = random.Random(12)
    engine = Engine(load_ruleset())
    packs = load_packs(engine.ruleset.makers)
    migrate(url)
    db = Database.open(url)
    bases, site_ids = add_sites(db, engine, packs, args.sites, args.devices, rng)
    absent: list[set[int]] = [set() for _ in range(args.sites)]
    start = datetime.now(UTC).replace(hour=2, minute=0, second=0, microsecond=0) - timedelta(days=args.days)
    t0 = time.perf_counter()
    for day in range(args.days):
        for n in range(args.sites):
            raw = day_report(bases[n], start + timedelta(days=day, minutes=n), rng, absent[n])
            with db.session() as s:
                site = s.get(Site, site_ids[n])
                assert site is not None
                ingest_report(s, site, raw, trigger="import")
    print(f"seeded {args.sites * args.days} reports in {time.perf_counter() - t0:.0f} s", flush=True)
    db.close()


def measure(label: str, url: str, args: argparse.Namespace) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from scanner.service.api import Service
    from scanner.service.api.app import asgi, settle_heap

    db = Database.open(url)
    email = f"bench-{time.time_ns()}@council.example"
    with db.session() as s:
        add_user(s, email, "admin", PASSWORD, created_by="bench")
        slug, device, latest = timed_targets(s)
        sites = s.scalar(select(func.count()).select_from(Site))
        scans = s.scalar(select(func.count()).select_from(Scan))
        devices = s.scalar(select(func.count()).select_from(Device))
    print(f"\n== {label}: {sites} sites, {devices} devices, {scans} scans")
    app = asgi(Service(db))
    settle_heap()  # as camscan serve does before it serves
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:  # type: ignore[arg-type]
        form = client.get("/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token is not None
        r = client.post("/login", data={"email": email, "password": PASSWORD, "csrf": token.group(1)})
        assert r.status_code == 303, r.text[:300]
        if args.no_panels:  # the site page as it was before its panels (to see what they cost)
            from scanner.service.web import SITE_PANELS

            SITE_PANELS.clear()
        pages = [
            ("overview (counts + chart of every scan)", "/"),
            ("site page (devices sorted by flag, 50)", f"/sites/{slug}"),
            ("site page, filtered and sorted by maker", f"/sites/{slug}?flagged=no&status=present&sort=maker"),
            ("device page (longest history)", f"/devices/{device}"),
            ("scan page with its diff", f"/scans/{latest}"),
            ("audit pack download (every scan, zip)", f"/sites/{slug}/export"),
        ]
        print(f"{'page':42s} {'p50 ms':>8s} {'p95 ms':>8s} {'kB':>6s}")
        for name, path in pages:
            size = 0
            for _ in range(3):
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)
                size = len(response.content)
            samples = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                response = client.get(path)
                samples.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200
            p50, p95 = percentiles(samples)
            print(f"{name:42s} {p50:8.1f} {p95:8.1f} {size / 1000:6.0f}")
    with db.session() as s:  # the bench user is left in a kept database; say so rather than delete (audit log)
        assert s.scalar(select(User.id).where(User.email == email)) is not None
    db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=20)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--repeat", type=int, default=50, help="timed requests per page")
    ap.add_argument("--no-panels", action="store_true", help="time the site page without its panels")
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument(
        "--pg-url", default=os.environ.get("CAMSCAN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--reuse", metavar="URL", help="time the pages of a database seeded before")
    args = ap.parse_args()
    if args.reuse:
        measure("reused", normalise_url(args.reuse), args)
        return
    print(f"{args.sites} sites x {args.devices} devices x {args.days} daily scans")
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="camscan-bench-pages-") as out:
            url = f"sqlite:///{Path(out) / 'bench.db'}"
            seed(url, args)
            measure("SQLite", url, args)
    if args.db in ("postgresql", "both"):
        admin_url = normalise_url(args.pg_url)
        name = f"camscan_bench_pages_{os.getpid()}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        try:
            seed(url, args)
            measure("PostgreSQL 15", url, args)
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
