#!/usr/bin/env python3
"""Scale of scan agents: S sites x D devices a night through the real broker and the real ingest.

`camscan serve --broker` runs as in production (one process: API, scheduler, Celery executor) on a
throwaway RabbitMQ vhost of the machine's broker and a fresh database; every site is assigned to an agent.
The agents are real `Agent` objects (scanner/service/agent_worker.py: allow-list check, status check,
spool, delivery with retries, late acknowledgement) in Celery workers, except that instead of scanning
they replay recorded reports of their site (made before the first night, one per night, each with its
own report_id and a few devices away or changed, as in bench_service.py). Each night every site's cron
comes due at once (the worst case: one council-wide 02:00 schedule); the benchmark waits until every scan
of the night is stored.

Prints: jobs per second end to end (first schedule to last report stored), p50/p95 from schedule to
stored, and what a night adds to the broker (messages, bytes, what is left queued) and the database.
Figures only, no asserts.

    python benchmarks/bench_agents.py                        # 50 sites x 200 devices, 3 nights, SQLite
    python benchmarks/bench_agents.py --db postgresql        # on PostgreSQL (127.0.0.1, a throwaway database)
    python benchmarks/bench_agents.py --sites 5 --nights 1   # a quick run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, select, text, update  # noqa: E402

from scanner.service.store.db import Database, migrate, normalise_url  # noqa: E402
from scanner.service.store.models import Scan, Site  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_service import db_size  # noqa: E402

RABBIT = "127.0.0.1:5672"


def rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=True, timeout=60).stdout


def site_slug(n: int) -> str:
    return f"site-{n:04d}"


def site_targets(n: int) -> list[str]:
    return [f"10.{n // 256}.{n % 256}.0/24", f"10.200.{n % 256}.0/24"]  # where bench_service puts its devices


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- the replaying agents (a worker process serves many sites) -----------------------------------------


def worker_main(args: argparse.Namespace) -> None:
    """A Celery worker on the queues of `--serve` sites, each handled by its own Agent that replays."""
    import logging

    from bench_service import day_report, site_base

    from scanner.fingerprint.engine import Engine
    from scanner.fingerprint.rules import load_ruleset
    from scanner.policy.packs import load_packs
    from scanner.service.agent_worker import Agent, ServiceClient, allowed
    from scanner.service.broker import TASK_NAME, make_app, site_queue

    logging.basicConfig(level=logging.WARNING)
    numbers = [int(x) for x in args.serve.split(",")]
    engine = Engine(load_ruleset())
    packs = load_packs(engine.ruleset.makers)
    rng = random.Random(numbers[0])
    bases = {site_slug(n): site_base(engine, packs, n, args.devices, rng) for n in numbers}
    # the recorded reports, one per site and night, made before the first night (replay costs no CPU)
    recorded: dict[str, list[bytes]] = {}
    for slug, base in bases.items():
        absent: set[int] = set()
        recorded[slug] = [day_report(base, datetime.now(UTC), rng, absent) for _ in range(args.nights + 1)]
    lock = threading.Lock()

    def replay(job: Any, _limit: float) -> bytes:
        with lock:
            return recorded[job.site].pop(0)

    token = Path(args.token_file).read_text().strip()
    agents = {}
    for n in numbers:
        slug = site_slug(n)
        agents[slug] = Agent(
            site=slug,
            name=slug,
            client=ServiceClient(args.service, token, slug),
            allow=allowed(site_targets(n)),
            allow_text=site_targets(n),
            spool=Path(args.spool) / slug,
            runner=replay,
        )
    stop = threading.Event()

    def beats() -> None:
        while True:
            for agent in agents.values():
                with contextlib.suppress(Exception):
                    agent.heartbeat()
            if stop.wait(20):
                return

    threading.Thread(target=beats, daemon=True).start()
    Path(args.ready).touch()
    app = make_app(args.broker, name="bench-agents")
    app.conf.task_queues = [site_queue(s) for s in agents]
    app.conf.task_default_queue = app.conf.task_queues[0].name

    def scan(self: Any, doc: Any) -> str:
        return agents[doc["site"]].handle(doc)

    app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)(scan)
    app.worker_main(["worker", "--pool=threads", f"--concurrency={args.threads}", "--loglevel=WARNING",
                     f"--queues={','.join(q.name for q in app.conf.task_queues)}", "--without-gossip",
                     "--without-mingle", "--without-heartbeat", f"--hostname=bench{numbers[0]}@%h"])  # fmt: skip


# ---- the run -------------------------------------------------------------------------------------------


def broker_disk() -> int:
    base = Path("/var/lib/rabbitmq/mnesia")
    return sum(p.stat().st_size for p in base.rglob("*") if p.is_file()) if base.exists() else 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cag-bench-"))
    vhost = f"cag-bench-{secrets.token_hex(3)}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    broker = f"amqp://guest:guest@{RABBIT}/{vhost}"
    pg_admin = None
    if args.db == "postgresql":
        pg_admin = create_engine(normalise_url(args.pg_url), isolation_level="AUTOCOMMIT")
        name = f"cag_bench_{secrets.token_hex(3)}"
        with pg_admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = pg_admin.url.set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp / 'camscan.db'}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        migrate(url)
        db = Database.open(url)
        from scanner.service.auth import create_token

        with db.session() as s:
            for n in range(args.sites):
                s.add(Site(slug=site_slug(n), name=f"Site {n}", targets=site_targets(n), agent=site_slug(n),
                           schedule="0 2 * * *", timezone="UTC"))  # fmt: skip
            token = create_token(s, "bench agents", "operator")[1]
        (tmp / "token").write_text(token)
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CAMSCAN_DATA_DIR": str(tmp / "data")}
        serve_log = open(tmp / "serve.log", "wb")  # noqa: SIM115
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "scanner", "serve", "--db", url, "--port", str(port), "--broker", broker],
            stdout=serve_log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        ))  # fmt: skip
        service = f"http://127.0.0.1:{port}"
        groups = [list(range(args.sites))[i :: args.workers] for i in range(args.workers)]
        for i, group in enumerate(groups):
            ready = tmp / f"worker{i}.ready"
            log = open(tmp / f"worker{i}.log", "wb")  # noqa: SIM115
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--worker", "--serve", ",".join(map(str, group)), "--broker", broker,
                 "--service", service, "--token-file", str(tmp / "token"), "--spool", str(tmp / "spool"),
                 "--devices", str(args.devices), "--threads", str(args.threads), "--ready", str(ready),
                 "--nights", str(args.nights)],
                stdout=log, stderr=subprocess.STDOUT, env={**env, "PYTHONPATH": f"{ROOT}:{ROOT / 'benchmarks'}"},
                cwd=ROOT,
            ))  # fmt: skip
        deadline = time.monotonic() + 300
        while not all((tmp / f"worker{i}.ready").exists() for i in range(len(groups))):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit("the workers did not start: see " + str(tmp))
            time.sleep(0.5)
        time.sleep(3)  # the first heartbeats
        print(f"bench_agents: {args.sites} sites x {args.devices} devices, {args.nights} night(s), {args.db}, "
              f"{args.workers} agent worker process(es) x {args.threads} threads, RabbitMQ {RABBIT}")  # fmt: skip
        all_latency: list[float] = []
        rates: list[float] = []
        growth_db: list[int] = []
        growth_broker: list[int] = []
        for night in range(args.nights):
            db_before, broker_before = db_size(db), broker_disk()
            now = datetime.now(UTC)
            with db.session() as s:  # every site's 02:00 comes due at once
                s.execute(update(Site).values(next_run_at=now))
            t0 = time.monotonic()
            while True:
                with db.session() as s:
                    rows = s.execute(select(Scan.status, Scan.queued_at, Scan.finished_at)
                                     .where(Scan.queued_at >= now)).all()  # fmt: skip
                done = [r for r in rows if r.status not in ("queued", "running")]
                if len(done) >= args.sites:
                    break
                if time.monotonic() - t0 > 1800:
                    raise SystemExit(f"night {night}: only {len(done)} of {args.sites} scans done; see {tmp}")
                time.sleep(0.5)
            failed = [r for r in done if r.status != "succeeded"]
            latency = [(r.finished_at - r.queued_at).total_seconds() for r in done]
            span = (max(r.finished_at for r in done) - min(r.queued_at for r in done)).total_seconds()
            rates.append(len(done) / span)
            all_latency += latency
            time.sleep(2)
            left = rabbitmqctl("list_queues", "-p", vhost, "name", "messages", "message_bytes")
            queued_left = sum(int(x.split()[1]) for x in left.splitlines() if x.split()[1:2] and x.split()[1].isdigit())
            growth_db.append(db_size(db) - db_before)
            growth_broker.append(broker_disk() - broker_before)
            print(f"  night {night + 1}: {len(done)} scans ({len(failed)} failed) in {span:.1f} s = "
                  f"{len(done) / span:.2f} jobs/s; schedule->stored p50 {statistics.median(latency):.1f} s, "
                  f"p95 {percentile(latency, 0.95):.1f} s; database +{growth_db[-1] / 1e6:.1f} MB; "
                  f"broker disk {growth_broker[-1] / 1e3:+.0f} kB, {queued_left} message(s) left queued")  # fmt: skip
        job_bytes = len(json.dumps({"scan_id": "x" * 36, "site": site_slug(0), "site_name": "Site 0",
                                    "targets": site_targets(0), "interface": None, "methods": [], "packs": [],
                                    "allow_public": False, "operator": "camscan service (schedule, scheduler)",
                                    "time_limit": 900.0}))  # fmt: skip
        print(f"summary: {statistics.mean(rates):.2f} jobs/s end to end; schedule->stored p50 "
              f"{statistics.median(all_latency):.1f} s, p95 {percentile(all_latency, 0.95):.1f} s, max "
              f"{max(all_latency):.1f} s; per night: database +{statistics.mean(growth_db) / 1e6:.1f} MB, broker "
              f"{args.sites} messages of ~{job_bytes} B body, message store "
              f"{statistics.mean(growth_broker) / 1e3:+.0f} kB after the night (all acknowledged)")  # fmt: skip
        db.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        with contextlib.suppress(subprocess.CalledProcessError):
            rabbitmqctl("delete_vhost", vhost)
        if pg_admin is not None:
            with pg_admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            pg_admin.dispose()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=50)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--nights", type=int, default=3)
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument(
        "--pg-url", default=os.environ.get("CAMSCAN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--workers", type=int, default=2, help="agent worker processes (sites are split among them)")
    ap.add_argument("--threads", type=int, default=4, help="jobs at once per worker process")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, SQLite database)")
    # the worker process's own options
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for opt in ("--serve", "--broker", "--service", "--token-file", "--spool", "--ready"):
        ap.add_argument(opt, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
