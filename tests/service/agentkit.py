"""What the scan-agent tests share: the machine's RabbitMQ with a throwaway vhost and per-site users
confined to their queue (the README's set-up, done with rabbitmqctl), the service served for real by
uvicorn in a thread (with its scheduler and the Celery executor), and `camscan agent` as a process.

RabbitMQ runs on 127.0.0.1:5672 on this kind of machine (.ci/run starts it when it is not running). When it
cannot be reached the tests are skipped, except under CI, where they fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from scanner.service.api.app import Service, asgi
from scanner.service.local import LocalExecutor
from scanner.service.remote import CeleryExecutor
from scanner.service.scheduler import Scheduler
from scanner.service.store.db import Database

ROOT = Path(__file__).resolve().parents[2]
RABBIT_HOST, RABBIT_PORT = "127.0.0.1", 5672


def rabbit_reachable(host: str = RABBIT_HOST, port: int = RABBIT_PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def rabbitmqctl(*args: str) -> str:
    proc = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def site_permission(slug: str) -> str:
    """The one regular expression a site's agent gets for configure, write and read: its own queue and
    the exchange of the same name (README, "Many buildings: scan agents")."""
    return "^camscan\\.site\\." + slug.replace("-", "\\-") + "$"


@dataclass
class Vhost:
    """A throwaway vhost on the machine's RabbitMQ, with a service user and a user per site."""

    name: str
    host: str = RABBIT_HOST
    port: int = RABBIT_PORT
    users: list[str] = field(default_factory=list)

    def url(self, user: str, password: str, host: str | None = None, port: int | None = None) -> str:
        return f"amqp://{user}:{password}@{host or self.host}:{port or self.port}/{self.name}"

    passwords: dict[str, str] = field(default_factory=dict)
    lock: BrokerLock | None = None

    def add_user(self, user: str, pattern: str) -> str:
        if user not in self.passwords:
            password = secrets.token_hex(12)
            rabbitmqctl("add_user", user, password)
            self.users.append(user)
            rabbitmqctl("set_permissions", "-p", self.name, user, pattern, pattern, pattern)
            self.passwords[user] = password
        return self.passwords[user]

    def service_url(self, host: str | None = None, port: int | None = None) -> str:
        user = f"{self.name}-svc"
        return self.url(user, self.add_user(user, "^camscan\\.site\\..*"), host, port)

    def site_url(self, slug: str, host: str | None = None, port: int | None = None) -> str:
        user = f"{self.name}-{slug}"
        return self.url(user, self.add_user(user, site_permission(slug)), host, port)

    def queue_depth(self, queue: str) -> int | None:
        """Messages in `queue` (None: no such queue; -1: the broker cannot say right now)."""
        try:
            listing = rabbitmqctl("list_queues", "-p", self.name, "name", "messages")
        except RuntimeError:
            return -1
        for line in listing.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return int(parts[1])
        return None


class BrokerLock:
    """Test runs on one machine share its RabbitMQ: a module that uses it holds this lock shared, and a test
    that restarts the broker holds it alone (so it never cuts the broker from under another run's test)."""

    PATH = Path("/tmp/camscan-tests-rabbitmq.lock")

    def __init__(self) -> None:
        self.fd = os.open(self.PATH, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(self.fd, fcntl.LOCK_SH)

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        fcntl.flock(self.fd, fcntl.LOCK_UN)  # let go first: two runs waiting to upgrade would deadlock
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_SH)

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture(scope="module")
def vhost() -> Iterator[Vhost]:
    if not rabbit_reachable():
        if os.environ.get("CI") or os.environ.get("CAMSCAN_CI"):
            pytest.fail("RabbitMQ is not running on 127.0.0.1:5672 (.ci/run starts it with rabbitmq-server -detached)")
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672")
    lock = BrokerLock()
    v = Vhost(f"cag-{secrets.token_hex(4)}", lock=lock)
    rabbitmqctl("add_vhost", v.name)
    try:
        yield v
    finally:
        for user in v.users:
            with contextlib.suppress(RuntimeError):
                rabbitmqctl("delete_user", user)
        with contextlib.suppress(RuntimeError):
            rabbitmqctl("delete_vhost", v.name)
        lock.close()


def ensure_rabbit_running(timeout: float = 90) -> None:
    """After a broker restart: start the app again if it is stopped, and wait until it takes connections."""
    with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
        rabbitmqctl("start_app")
    deadline = time.monotonic() + timeout
    while not rabbit_reachable():
        if time.monotonic() > deadline:
            raise AssertionError("RabbitMQ did not come back")
        time.sleep(0.5)


class AlwaysLeader:
    """The scheduler's leader lock in a test that runs one scheduler."""

    def acquire(self) -> bool:
        return True

    def held(self) -> bool:
        return True

    def release(self) -> None:
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LiveService:
    """The app on uvicorn in a thread, with a running scheduler whose remote executor is Celery."""

    def __init__(self, db: Database, broker_url: str, work: Path, host: str = "127.0.0.1",
                 offline_after: float = 6.0, time_limit: float = 120.0) -> None:  # fmt: skip
        self.db = db
        self.host, self.port = host, free_port(host)
        self.scheduler = Scheduler(
            db,
            LocalExecutor(work),
            AlwaysLeader(),
            interval=0.3,
            time_limit=time_limit,
            remote=CeleryExecutor(broker_url),
            agent_offline_after=offline_after,
        )
        config = uvicorn.Config(asgi(Service(db, self.scheduler)), host=host, port=self.port, log_config=None,
                                access_log=False, lifespan="off")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> LiveService:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        self.scheduler.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.scheduler.stop()
        self.server.should_exit = True
        self.thread.join(10)


def start_agent(tmp: Path, site: str, broker_url: str, service_url: str, token: str, allow: str,
                netns: str | None = None, name: str | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
    """`camscan agent` in its own process group (in `netns` when given), logging to tmp/agent-SITE.log."""
    token_file = tmp / f"token-{site}"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    argv = [sys.executable, "-m", "scanner", "agent", "--site", site, "--broker", broker_url, "--service",
            service_url, "--token-file", str(token_file), "--allow", allow, "--spool", str(tmp / f"spool-{site}"),
            "--heartbeat", "1", "--name", name or site]  # fmt: skip
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    log = open(tmp / f"agent-{site}.log", "ab")  # noqa: SIM115 - the child keeps it
    try:
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "CAMSCAN_DATA_DIR": str(tmp / f"data-{site}")},
        )  # fmt: skip
    finally:
        log.close()


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 15) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_for(predicate: Any, timeout: float, what: str, logs: tuple[Path, ...] = ()) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p}:\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.3)


def api(service_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=service_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
