#!/usr/bin/env python3
"""Scale of the scan service's store and API: seed a year of scans, then time what people look at.

Seeds S sites x D devices x N daily scans through the real ingest path (scanner.service.ingest, the one
the scheduler uses: report validated, stored verbatim, inventory derived), then times, through the real
FastAPI app in process (httpx TestClient, token auth included), the device list of one site, of all
sites and of flagged devices only, a device page with its year of history, and a diff of two scans.
Prints the database size, the ingest rate (reports/s; one at a time, with where a report's time goes, or
with --workers N threads ingesting different sites at once) and p50/p95 per query. Figures only, no asserts.

Each site's devices are real camscan Device records (build_report over Evidence drawn from the rules'
examples, so makers, findings and flags are what the engine says); every day a few devices leave, come
back, change address or firmware, so history and findings move like a real network.

    python benchmarks/bench_service.py                      # 50 sites x 200 devices x 365 days, both DBs
    python benchmarks/bench_service.py --sites 5 --days 30  # a quick run
    python benchmarks/bench_service.py --db sqlite --keep   # leave the seeded database for a look
    python benchmarks/bench_service.py --workers 2          # ingest two sites' reports at once

PostgreSQL: a throwaway database is created on --pg-url's server (default: $CAMSCAN_BENCH_PG_URL, else
postgresql://postgres@127.0.0.1:5432/postgres) and dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import marshal
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scanner.fingerprint.engine import Engine  # noqa: E402
from scanner.fingerprint.rules import load_ruleset  # noqa: E402
from scanner.knowledge import Knowledge  # noqa: E402
from scanner.model import Host  # noqa: E402
from scanner.policy.packs import load_packs  # noqa: E402
from scanner.report.build import Audit, Run, build_report  # noqa: E402
from scanner.report.export import digest_of, report_document  # noqa: E402
from scanner.service.api.app import settle_heap  # noqa: E402
from scanner.service.auth import create_token  # noqa: E402
from scanner.service.ingest import ingest_report  # noqa: E402
from scanner.service.store.db import Database, migrate, normalise_url  # noqa: E402
from scanner.service.store.models import Device, Observation, Scan, Site  # noqa: E402

CAMERA_EVIDENCE = [
    [("http.server", "App-webs/"), ("sadp.device_type", "DS-2CD2143G0-I")],  # Hikvision
    [("http.www_authenticate", 'Digest realm="Login to 4K0123PAZ"'), ("dhip.device_type", "IPC-HDW2431T-AS")],
    [("http.server", "Boa/0.94.14rc21")],
    [("onvif.manufacturer", "AXIS"), ("onvif.model", "M1065-L")],
    [("onvif.manufacturer", "Hanwha Techwin"), ("onvif.model", "XNV-6080R")],
    [("ssdp.server", "Linux/3.10 UPnP/1.0 Bosch/1.0")],
    [("http.title", "Reolink")],
    [("onvif.manufacturer", "Uniview"), ("onvif.model", "IPC322LB-SF28-A")],
]
OUIS = ["44:19:b6", "4c:11:bf", "00:40:8c", "00:09:18", "ec:71:db", "48:ea:63", "00:1b:a9", "00:04:13"]


def site_base(engine: Engine, packs: list[Any], site_no: int, devices: int, rng: random.Random) -> dict[str, Any]:
    hosts = []
    for i in range(devices):
        kind = rng.randrange(len(CAMERA_EVIDENCE))
        ev = [{"key": k, "value": v} for k, v in CAMERA_EVIDENCE[kind]]
        mac = f"{OUIS[kind]}:{site_no % 256:02x}:{i // 256:02x}:{i % 256:02x}"
        ev += [{"key": "mac", "value": mac}, {"key": "onvif.serial", "value": f"SN{site_no:03d}{i:05d}{kind}"}]
        ip = f"10.{site_no // 256}.{site_no % 256}.{i + 1}" if i < 250 else f"10.200.{site_no}.{i - 249}"
        hosts.append(Host(id=ip, ip=ip, mac=mac, evidence=[_ev(e) for e in ev]))
    report = build_report(hosts, Knowledge(engine, packs), Audit(site=f"Site {site_no}"), Run(["arp", "onvif"]))
    return report_document(report)


def _ev(e: dict[str, str]) -> Any:
    from scanner.model import Evidence

    return Evidence(key=e["key"], value=e["value"], source="bench")


def day_report(base: dict[str, Any] | bytes, day: datetime, rng: random.Random, absent: set[int]) -> bytes:
    """The site's report of one day: most devices as before, a few away, a few changed. `base` may be kept
    marshalled (bytes): a bench holding 50 sites' reports as live objects would make every full collection of
    Python's garbage collector, in the ingest it measures, walk them."""
    if isinstance(base, bytes):
        base = marshal.loads(base)
    doc = copy.copy(base)
    devices = []
    for i, dev in enumerate(base["devices"]):
        if rng.random() < 0.01:  # away today, back another day
            absent.symmetric_difference_update({i})
        if i in absent:
            continue
        if rng.random() < 0.02:
            dev = {**dev, "firmware": f"V5.{rng.randrange(9)}.{rng.randrange(20)}"}
        devices.append(dev)
    doc["devices"] = devices
    doc["scan"] = {
        **base["scan"],
        "report_id": str(uuid.uuid4()),
        "started_at": day.isoformat(),
        "finished_at": (day + timedelta(seconds=40)).isoformat(),
        "generated_at": (day + timedelta(seconds=40)).isoformat(),
    }
    doc["summary"] = {**base["summary"], "devices": len(devices)}
    doc.pop("integrity", None)
    doc["integrity"] = {"algorithm": "sha256", "digest": digest_of(doc)}
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


class Phases:
    """Where the time of one-at-a-time ingest goes: the ingest module's steps, timed by wrapping them."""

    STEPS = (
        ("parse_report", "read JSON + verify digest + validate"),
        ("pack_body", "compress"),
        ("apply_report", "derive devices/observations/findings"),
        ("after_ingest", "events + lifecycle"),
    )

    def __init__(self) -> None:
        import scanner.service.ingest as module

        self.module = module
        self.spent = dict.fromkeys((name for name, _ in self.STEPS), 0.0)
        self.originals = {name: getattr(module, name) for name, _ in self.STEPS}
        for name, original in self.originals.items():
            setattr(module, name, self._timed(name, original))

    def _timed(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.spent[name] += time.perf_counter() - t0

        return timed

    def report(self, reports: int, total: float, commit: float) -> None:
        parts = [(label, self.spent[name]) for name, label in self.STEPS] + [("commit", commit)]
        parts.append(("the rest (scan row, SHA-256, duplicate and order checks)", total - sum(t for _, t in parts)))
        print("per report, ms: " + ", ".join(f"{label} {t / reports * 1000:.1f}" for label, t in parts))

    def remove(self) -> None:
        for name, original in self.originals.items():
            setattr(self.module, name, original)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def db_size(db: Database) -> int:
    if db.is_postgresql:
        with db.engine.connect() as c:
            return int(c.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0)
    path = Path(str(db.engine.url.database))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def add_sites(
    db: Database, engine: Engine, packs: list[Any], sites: int, devices: int, rng: random.Random
) -> tuple[list[bytes], list[int]]:
    """`sites` sites (site-000, ...) stored, with each one's base report: (base reports marshalled, site ids)."""
    bases, site_ids = [], []
    with db.session() as s:
        for n in range(sites):
            site = Site(slug=f"site-{n:03d}", name=f"Site {n}", targets=[f"10.{n // 256}.{n % 256}.0/24"])
            s.add(site)
            s.flush()
            site_ids.append(site.id)
            bases.append(marshal.dumps(site_base(engine, packs, n, devices, rng)))
    return bases, site_ids


def run(label: str, url: str, args: argparse.Namespace) -> None:
    rng = random.Random(11)
    engine = Engine(load_ruleset())
    packs = load_packs(engine.ruleset.makers)
    migrate(url)
    db = Database.open(url)
    print(f"\n== {label}: {args.sites} sites x {args.devices} devices x {args.days} daily scans", flush=True)
    bases, site_ids = add_sites(db, engine, packs, args.sites, args.devices, rng)
    settle_heap()  # the process now holds what a service holds when it starts ingesting: settle it as serve does
    absent: list[set[int]] = [set() for _ in range(args.sites)]
    start = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)
    ingest_time, reports, build_time, commit_time = 0.0, 0, 0.0, 0.0
    phases = Phases() if args.workers == 1 else None

    def ingest_one(n: int, raw: bytes) -> float:
        with db.session() as s:
            site = s.get(Site, site_ids[n])
            assert site is not None
            ingest_report(s, site, raw, trigger="import")
            t = time.perf_counter()
        return time.perf_counter() - t

    pool = ThreadPoolExecutor(args.workers) if args.workers > 1 else None
    for day in range(args.days):
        when = start + timedelta(days=day)
        t0 = time.perf_counter()
        raws = [day_report(bases[n], when + timedelta(minutes=n), rng, absent[n]) for n in range(args.sites)]
        t1 = time.perf_counter()
        if pool is None:
            commit_time += sum(ingest_one(n, raw) for n, raw in enumerate(raws))
        else:  # the day's reports of different sites at once, as agents' uploads are (a site's days stay in order)
            list(pool.map(ingest_one, range(args.sites), raws))
        ingest_time += time.perf_counter() - t1
        build_time += t1 - t0
        reports += len(raws)
        if (day + 1) % max(1, args.days // 10) == 0:
            print(f"  day {day + 1}: {reports} reports, {reports / ingest_time:.1f} reports/s so far", flush=True)
    how = "one at a time" if pool is None else f"{args.workers} threads, different sites at once"
    print(f"ingest: {reports} reports in {ingest_time:.0f} s = {reports / ingest_time:.1f} reports/s, {how} "
          f"(plus {build_time:.0f} s making them)")  # fmt: skip
    if phases is not None:
        phases.report(reports, ingest_time, commit_time)
        phases.remove()
    if pool is not None:
        pool.shutdown()
    db.close()


def run_and_measure(label: str, url: str, args: argparse.Namespace) -> None:
    """Seed, then time the queries once the seeding's own reports are gone: the process then holds what a
    service process holds, not a bench's sites (whose objects would be walked by every full collection of
    Python's garbage collector and show up as latency that a service does not have)."""
    run(label, url, args)
    gc.collect()
    measure(label, url, args)


def timed_targets(s: Any) -> tuple[str | None, int | None, str | None]:
    """What the latency benchmarks open: (the slug of a site with a flagged device, else of the first site;
    that site's device with the longest history; its latest scan)."""
    site_id = s.scalar(select(Device.site_id).where(Device.flagged.is_(True)).limit(1))
    site_id = site_id or s.scalar(select(Site.id).limit(1))
    slug = s.scalar(select(Site.slug).where(Site.id == site_id))
    device = s.scalar(
        select(Observation.device_id)
        .join(Device, Device.id == Observation.device_id)
        .where(Device.site_id == site_id)
        .group_by(Observation.device_id)
        .order_by(func.count().desc())
        .limit(1)
    )
    latest = s.scalar(select(Scan.id).where(Scan.site_id == site_id).order_by(Scan.report_started_at.desc()).limit(1))
    return slug, device, latest


def measure(label: str, url: str, args: argparse.Namespace) -> None:
    """Time the queries on a seeded database (also one kept by an earlier run: --reuse URL)."""
    from fastapi.testclient import TestClient

    from scanner.service.api import Service, create_app

    db = Database.open(url)
    print(f"database size: {db_size(db) / 1e6:.0f} MB ({label})")
    with db.session() as s:
        _, token = create_token(s, f"bench {time.time():.0f}", "admin")
        slug, device, latest = timed_targets(s)
    client = TestClient(create_app(Service(db)), headers={"Authorization": f"Bearer {token}"})
    settle_heap()  # as camscan serve does before it serves
    queries: list[tuple[str, Callable[[], Any]]] = [
        ("device list, one site (100)", lambda: client.get(f"/api/v1/devices?site={slug}&limit=100")),
        ("device list, all sites (100)", lambda: client.get("/api/v1/devices?limit=100")),
        ("device list, flagged only (100)", lambda: client.get("/api/v1/devices?flagged=true&limit=100")),
        ("device list, all sites, page 50", lambda: client.get(f"/api/v1/devices?limit=100&cursor={cursor50}")),
        ("device page, a year of history", lambda: client.get(f"/api/v1/devices/{device}?history=400")),
        ("diff, latest scan vs previous", lambda: client.get(f"/api/v1/scans/{latest}/diff")),
    ]
    cursor50, pages = "", 1
    page = client.get("/api/v1/devices?limit=100").json()
    while pages < 50 and page["next"] is not None:
        cursor50, pages = page["next"], pages + 1
        page = client.get(f"/api/v1/devices?limit=100&cursor={cursor50}").json()
    if not cursor50:
        queries = [q for q in queries if "page 50" not in q[0]]
    history = len(client.get(f"/api/v1/devices/{device}?history=400").json()["history"])
    print(f"{'query':40s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for name, call in queries:
        for _ in range(3):
            assert call().status_code == 200, name
        samples = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            response = call()
            samples.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200
        p50, p95 = percentiles(samples)
        print(f"{name:40s} {p50:8.1f} {p95:8.1f}")
    print(f"(device page carried {history} history entries)")
    db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=50)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=100, help="timed calls per query")
    ap.add_argument(
        "--workers", type=int, default=1,
        help="ingest each day's reports of different sites with N threads at once, as concurrent agent uploads "
        "are (default 1: one at a time, with the time of each step)",
    )  # fmt: skip
    ap.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument(
        "--pg-url", default=os.environ.get("CAMSCAN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--out", type=Path, default=None, help="directory for the SQLite file (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="leave the seeded databases in place and say where")
    ap.add_argument("--reuse", metavar="URL", help="time the queries on a database seeded (and kept) before")
    args = ap.parse_args()
    if args.reuse:
        measure("reused", normalise_url(args.reuse), args)
        return
    if args.db in ("sqlite", "both"):
        out = args.out or Path(tempfile.mkdtemp(prefix="camscan-bench-"))
        out.mkdir(parents=True, exist_ok=True)
        path = out / "bench.db"
        for p in out.glob("bench.db*"):
            p.unlink()
        try:
            run_and_measure("SQLite", f"sqlite:///{path}", args)
        finally:
            if args.keep:
                print(f"kept: camscan serve --db sqlite:///{path}")
            else:
                for p in out.glob("bench.db*"):
                    p.unlink()
                if args.out is None:
                    out.rmdir()  # the temporary directory made above
    if args.db in ("postgresql", "both"):
        admin_url = normalise_url(args.pg_url)
        name = f"camscan_bench_{os.getpid()}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        try:
            run_and_measure("PostgreSQL", url, args)
        finally:
            if args.keep:
                print(f"kept: camscan serve --db {url}")
            else:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
