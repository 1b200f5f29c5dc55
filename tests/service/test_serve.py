"""`camscan serve` as a real process on loopback, and the management commands, on both databases:
the README's path (token, site, scan, report), SIGTERM, SIGKILL in the middle of a scan and the restart,
two service processes sharing one database. Scans here target loopback addresses only."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from scanner.report.export import verify_document
from scanner.service.ingest import ingest_report, report_bytes
from scanner.service.store.db import Database
from scanner.service.store.models import Scan, Site
from tests.lab.conftest import stop_process
from tests.service.conftest import HIK, Dev, day, make_report

ROOT = Path(__file__).resolve().parents[2]


def camscan(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """One `camscan serve` process, its port and its log."""

    def __init__(self, db_url: str, data_dir: Path, env: dict[str, str], name: str = "serve") -> None:
        self.port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / f"{name}-{self.port}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc: subprocess.Popen[str] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scanner",
                "serve",
                "--db",
                db_url,
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up: " + self.log_path.read_text()
            time.sleep(0.1)

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/api/v1/health", timeout=5).json())

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CAMSCAN_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}


@pytest.fixture
def services() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for s in started:
        s.stop()


def wait_for(check: Any, timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def token(env: dict[str, str], db_url: str, role: str = "admin", *extra: str) -> str:
    proc = camscan("tokens", "create", f"{role} token", "--role", role, "--db", db_url, *extra, env=env)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("cst_") and " " not in last  # the token alone on the last line
    return last


def test_management_commands(db_url: str, env: dict[str, str]) -> None:
    added = camscan(
        "sites",
        "add",
        "lo",
        "--name",
        "Loopback",
        "--targets",
        "127.0.0.1,127.0.0.2",
        "--schedule",
        "0 2 * * *",
        "--tz",
        "Europe/London",
        "--db",
        db_url,
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert (
        "lo\tLoopback\t127.0.0.1,127.0.0.2\t-\t0 2 * * *\tEurope/London"
        in camscan("sites", "list", "--db", db_url, env=env).stdout
    )
    bad = camscan(
        "sites", "add", "x", "--name", "X", "--targets", "10.0.0.1", "--schedule", "0 25 * * *", "--db", db_url, env=env
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: schedule:")
    public = camscan("sites", "add", "x", "--name", "X", "--targets", "8.8.8.8", "--db", db_url, env=env)
    assert public.returncode == 2 and "targets" in public.stderr
    site_token = token(env, db_url, "operator", "--site", "lo")
    assert camscan("tokens", "create", "t", "--role", "boss", "--db", db_url, env=env).returncode == 2
    listed = camscan("tokens", "list", "--db", db_url, env=env).stdout
    assert "operator token\toperator\tlo\t" + site_token[:8] + "..." in listed and site_token not in listed
    assert camscan("tokens", "revoke", "1", "--db", db_url, env=env).returncode == 0
    assert camscan("tokens", "list", "--db", db_url, env=env).stdout.splitlines()[1].split("\t")[-1] != "-"
    user = camscan(
        "users",
        "add",
        "Auditor@Council.example",
        "--role",
        "auditor",
        "--db",
        db_url,
        env=env,
        stdin="correct horse battery staple\n",
    )
    assert user.returncode == 0 and "correct horse" not in user.stdout + user.stderr
    from scanner.service.store.models import AuditEntry, User

    db = Database.open(db_url)
    with db.session() as s:
        stored = s.scalars(select(User)).one()
        assert stored.email == "auditor@council.example" and stored.password_hash.startswith("$argon2id$")
        actions = s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    db.close()
    assert actions == ["site.create", "token.create", "token.revoke", "user.create"]
    again = camscan(
        "users", "add", "auditor@council.example", "--role", "auditor", "--db", db_url, env=env, stdin="x" * 20
    )
    assert again.returncode == 2 and "exists" in again.stderr


def test_serve_scans_on_request_and_stops_on_sigterm(
    db_url: str, env: dict[str, str], tmp_path: Path, services: list[Served]
) -> None:
    tok = token(env, db_url)
    served = Served(db_url, tmp_path, env)
    services.append(served)
    h = {"Authorization": f"Bearer {tok}"}
    assert served.health() == {**served.health(), "status": "ok", "database": "ok", "scheduler": "ok"}
    r = httpx.post(
        served.url + "/api/v1/sites",
        headers=h,
        json={"slug": "lo", "name": "Loopback <i>", "targets": ["127.0.0.1"], "methods": ["ports"]},
    )
    assert r.status_code == 201, r.text
    scan = httpx.post(served.url + "/api/v1/sites/lo/scans", headers=h).json()
    done = wait_for(
        lambda: (
            (x := httpx.get(f"{served.url}/api/v1/scans/{scan['id']}", headers=h).json())["status"]
            in ("succeeded", "failed")
            and x
        ),
        what="the scan",
    )
    assert done["status"] == "succeeded", done
    raw = httpx.get(f"{served.url}/api/v1/scans/{scan['id']}/report.json", headers=h).content
    assert verify_document(json.loads(raw))[0] and json.loads(raw)["scan"]["site"] == "Loopback <i>"
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(10) == 0  # a clean exit, in seconds (its stop takes one or two; bench-free bound)
    log = served.log_path.read_text()
    assert "camscan serve stopped" in log
    request_lines = [line for line in log.splitlines() if "camscan.service.http" in line]
    assert any(
        f"GET /api/v1/scans/{scan['id']}/report.json 200" in line and "token:admin token" in line
        for line in request_lines
    )


SLOW = ("127.88.0.0/24",)  # 256 loopback addresses x the camera ports at the default rate: many seconds


def test_sigkill_mid_scan_then_restart(
    db_url: str, env: dict[str, str], tmp_path: Path, services: list[Served]
) -> None:
    tok = token(env, db_url)
    h = {"Authorization": f"Bearer {tok}"}
    db = Database.open(db_url)
    earlier = make_report([Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK))], day(0))
    with db.session() as s:
        site = Site(slug="slow", name="Slow", targets=list(SLOW), methods=["ports"])
        s.add(site)
        s.flush()
        kept = ingest_report(s, site, earlier).scan_id
    first = Served(db_url, tmp_path, env, "first")
    services.append(first)
    scan = httpx.post(first.url + "/api/v1/sites/slow/scans", headers=h).json()
    wait_for(
        lambda: httpx.get(f"{first.url}/api/v1/scans/{scan['id']}", headers=h).json()["status"] == "running",
        what="the scan to run",
    )
    with db.session() as s:
        runner = s.get(Scan, scan["id"]).runner  # type: ignore[union-attr]
    child = int(str(runner).rsplit(" ", 1)[1])
    os.kill(first.proc.pid, signal.SIGKILL)  # the service dies; its scan child does not (own session)
    first.proc.wait(10)
    assert Path(f"/proc/{child}").exists()

    second = Served(db_url, tmp_path, env, "second")
    services.append(second)
    old = wait_for(
        lambda: (
            (x := httpx.get(f"{second.url}/api/v1/scans/{scan['id']}", headers=h).json())["status"] == "interrupted"
            and x
        ),
        what="the interrupted mark",
    )
    assert old["error"] and "queued again" in old["error"]
    wait_for(lambda: not Path(f"/proc/{child}").exists() or _zombie(child), what="the orphan to be stopped")
    items = httpx.get(second.url + "/api/v1/scans?site=slow", headers=h).json()["items"]
    retry = next(x for x in items if x["trigger"] == "retry")
    assert retry["status"] in ("queued", "running")
    with db.session() as s:
        assert s.get(Scan, retry["id"]).retry_of == scan["id"]  # type: ignore[union-attr]
        stored = s.get(Scan, kept)
        assert stored is not None and stored.status == "succeeded" and report_bytes(stored) == earlier
    assert httpx.get(f"{second.url}/api/v1/scans/{kept}/report.json", headers=h).content == earlier
    wait_for(
        lambda: httpx.get(f"{second.url}/api/v1/scans/{retry['id']}", headers=h).json()["status"] == "running",
        what="the retry to run",
    )
    second.proc.send_signal(signal.SIGTERM)  # a clean stop in the middle of the retry
    assert second.proc.wait(15) == 0
    with db.session() as s:
        stopped = s.get(Scan, retry["id"])
        assert stopped is not None and (stopped.status, stopped.requeued) == ("interrupted", False)
    db.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def test_two_services_on_one_database_run_one_scheduler(
    db_url: str, env: dict[str, str], tmp_path: Path, services: list[Served]
) -> None:
    a = Served(db_url, tmp_path / "a", env, "a")
    services.append(a)
    wait_for(lambda: a.health()["scheduler"] == "ok", what="a to lead")
    b = Served(db_url, tmp_path / "b", env, "b")
    services.append(b)
    time.sleep(1.5)  # a few scheduler passes
    assert (a.health()["scheduler"], b.health()["scheduler"]) == ("ok", "standby")
    assert b.health()["status"] == "ok"
    a.proc.send_signal(signal.SIGTERM)
    a.proc.wait(10)
    wait_for(lambda: b.health()["scheduler"] == "ok", timeout=20, what="b to take over")


def test_no_migrate_refuses_a_database_without_the_schema(env: dict[str, str], tmp_path: Path) -> None:
    proc = camscan("serve", "--no-migrate", "--db", f"sqlite:///{tmp_path / 'empty.db'}", "--port", str(free_port()),
                   env=env)  # fmt: skip
    assert proc.returncode == 2 and "camscan db upgrade" in proc.stderr


def test_db_rebuild_from_the_command_line(db_url: str, env: dict[str, str]) -> None:
    db = Database.open(db_url)
    raw = make_report([Dev("10.77.0.11", "44:19:b6:00:00:11", tuple(HIK))], day(0))
    with db.session() as s:
        site = Site(slug="hq", name="HQ", targets=["10.77.0.0/24"])
        s.add(site)
        s.flush()
        ingest_report(s, site, raw)
    db.close()
    proc = camscan("db", "rebuild", "--db", db_url, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "hq: rebuilt from 1 report(s)" in proc.stdout
