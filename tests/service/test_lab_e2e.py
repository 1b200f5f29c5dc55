"""The service end to end in the netns lab (root): `camscan serve` runs inside the lab's scanner namespace,
a site covering the lab (10.77.0.0/24 on lab0, nothing else) is scanned on a schedule (a cron a minute
apart) and then by API; a persona that joins the lab between the two scans shows as new in the diff, one
that leaves shows as gone, and the hostile persona's strings come back as plain JSON data.

The test talks to the service from inside the scanner namespace (the service listens on that namespace's
loopback), through a small Python client run with `ip netns exec`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.lab import control
from scanner.lab.persona import PERSONA_DIR
from scanner.report.export import verify_document
from tests.lab.conftest import needs_netns, stop_process

pytestmark = needs_netns
ROOT = Path(__file__).resolve().parents[2]
PERSONAS = ["hik-bullet", "axis-m1065", "dahua-dome", "hostile"]
JOINS = "dahua-dome"  # off the LAN for the first scan, on it for the second
LEAVES = "axis-m1065"  # on the LAN for the first scan, off it for the second
PORT = 8800

CLIENT = f"""
import json, sys, httpx
method, path, token = sys.argv[1:4]
body = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
r = httpx.request(method, "http://127.0.0.1:{PORT}" + path, json=body, headers={{"Authorization": "Bearer " + token}},
                  timeout=20)
sys.stdout.write(json.dumps({{"status": r.status_code, "body": r.content.decode("utf-8")}}))
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class LabService:
    def __init__(self, state: control.LabState, tmp: Path) -> None:
        self.state = state
        self.tmp = tmp
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "CAMSCAN_DATA_DIR": str(tmp / "data")}
        self.db = f"sqlite:///{tmp / 'data' / 'camscan.db'}"
        self.procs: list[subprocess.Popen[str]] = []
        self.token = ""

    def camscan(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "scanner", *args, "--db", self.db], capture_output=True,
                              text=True, env=self.env, cwd=ROOT, timeout=60, check=False)  # fmt: skip

    def add_admin_and_site(self, name: str) -> None:
        """An admin token (kept in `token`) and the site `lab` over the lab's subnet, scanned every minute."""
        created = self.camscan("tokens", "create", "e2e", "--role", "admin")
        assert created.returncode == 0, created.stderr
        self.token = created.stdout.strip().splitlines()[-1]
        added = self.camscan("sites", "add", "lab", "--name", name, "--targets", control.SUBNET,
                             "--interface", "lab0", "--schedule", "* * * * *")  # fmt: skip
        assert added.returncode == 0, added.stderr

    def serve(self) -> None:
        log = open(self.tmp / "serve.log", "w")  # noqa: SIM115 - the child keeps it; closed with the process
        self.service = subprocess.Popen(
            ["ip", "netns", "exec", str(self.state.scanner_namespace), sys.executable, "-m", "scanner", "serve",
             "--db", self.db, "--port", str(PORT)],
            stdout=log, stderr=subprocess.STDOUT, text=True, env=self.env, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
        log.close()
        self.procs.append(self.service)
        deadline = time.monotonic() + 60
        while self.call("GET", "/api/v1/health")[0] != 200:
            assert self.service.poll() is None, (self.tmp / "serve.log").read_text()
            assert time.monotonic() < deadline, "the service did not come up"
            time.sleep(0.5)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        extra = [] if body is None else [json.dumps(body)]
        proc = subprocess.run(
            ["ip", "netns", "exec", str(self.state.scanner_namespace), sys.executable, "-c", CLIENT, method, path,
             self.token or "-", *extra],
            capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=60, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            return 0, proc.stderr[-500:]
        out = json.loads(proc.stdout)
        body = out["body"]
        with contextlib.suppress(json.JSONDecodeError):
            body = json.loads(body)
        return int(out["status"]), body

    def wait_scan(self, predicate: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, page = self.call("GET", "/api/v1/scans?site=lab")
            assert status == 200, page
            done = [s for s in page["items"] if predicate(s)]
            if done:
                return dict(done[0])
            assert self.service.poll() is None, (self.tmp / "serve.log").read_text()
            time.sleep(2)
        raise AssertionError("no such scan in time: " + (self.tmp / "serve.log").read_text()[-3000:])


def persona(state: control.LabState, pid: str) -> control.PersonaProcess:
    return next(p for p in state.processes if p.id == pid)


def take_offline(state: control.LabState, pid: str) -> None:
    """The device leaves the LAN: its process stops and its link goes down (nothing answers, not even ARP)."""
    p = persona(state, pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGTERM)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(p.pid, 0)
    _ip("-n", str(p.namespace), "link", "set", "lab0", "down")


def bring_online(state: control.LabState, pid: str, tmp: Path) -> subprocess.Popen[str]:
    p = persona(state, pid)
    _ip("-n", str(p.namespace), "link", "set", "lab0", "up")
    ready = tmp / f"{pid}.ready"
    proc = subprocess.Popen(
        ["ip", "netns", "exec", str(p.namespace), sys.executable, "-m", "scanner.lab.serve", "--persona",
         str(PERSONA_DIR / f"{pid}.yaml"), "--ip", p.ip, "--iface", "lab0", "--ready", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, f"{pid} did not start"
        time.sleep(0.05)
    return proc


@pytest.fixture(scope="module")
def lab_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabService]:
    tmp = tmp_path_factory.mktemp("lab-service")
    state = control.up("netns", state_dir=tmp / "lab", only=PERSONAS)
    svc = LabService(state, tmp)
    try:
        take_offline(state, JOINS)
        svc.add_admin_and_site("Lab <script>")
        svc.serve()
        yield svc
    finally:
        for proc in svc.procs:
            stop_process(proc)
        control.down(tmp / "lab")


def macs(items: list[dict[str, Any]]) -> set[str]:
    return {str(d["mac"]) for d in items}


def test_scheduled_then_requested_scans_track_the_lab(lab_service: LabService, tmp_path: Path) -> None:
    svc = lab_service
    # 1. the cron (every minute) starts the first scan by itself
    first = svc.wait_scan(lambda s: s["trigger"] == "schedule" and s["status"] in ("succeeded", "failed"), 200)
    assert first["status"] == "succeeded", first
    status, devices = svc.call("GET", "/api/v1/devices?site=lab")
    assert status == 200
    present = {d["mac"]: d for d in devices["items"]}
    assert persona(svc.state, "hik-bullet").mac in present and persona(svc.state, LEAVES).mac in present
    assert persona(svc.state, JOINS).mac not in present
    assert present[persona(svc.state, "hik-bullet").mac]["flagged"] is True

    # 2. stop the schedule, change the LAN, ask for a scan by API
    assert svc.call("PATCH", "/api/v1/sites/lab", {"schedule": "every minute"})[0] == 422
    status, site = svc.call("PATCH", "/api/v1/sites/lab", {"schedule": None})
    assert status == 200 and site["schedule"] is None and site["next_run_at"] is None
    svc.wait_scan(lambda s: s["status"] not in ("queued", "running"), 120)  # a scheduled one may have started
    take_offline(svc.state, LEAVES)
    svc.procs.append(bring_online(svc.state, JOINS, tmp_path))
    status, queued = svc.call("POST", "/api/v1/sites/lab/scans")
    assert status == 202 and queued["status"] == "queued", queued
    second = svc.wait_scan(lambda s: s["id"] == queued["id"] and s["status"] in ("succeeded", "failed"), 200)
    assert second["status"] == "succeeded", second

    # 3. the diff against the previous scan: one new, one gone
    status, diff = svc.call("GET", f"/api/v1/scans/{second['id']}/diff")
    assert status == 200, diff
    assert persona(svc.state, JOINS).mac in macs(diff["new"])
    assert persona(svc.state, LEAVES).mac in macs(diff["gone"])
    assert persona(svc.state, "hik-bullet").mac not in macs(diff["new"]) | macs(diff["gone"])
    status, gone = svc.call("GET", "/api/v1/devices?site=lab&status=gone")
    assert persona(svc.state, LEAVES).mac in macs(gone["items"])

    # 4. the stored report is the scan's own, byte for byte; the hostile device is plain data
    status, raw = svc.call("GET", f"/api/v1/scans/{second['id']}/report.json")
    assert status == 200 and verify_document(raw)[0]
    assert raw["scan"]["scope"] == [control.SUBNET, "interface lab0 (10.77.0.2/24)"]  # the lab, nothing else
    assert raw["scan"]["site"] == "Lab <script>"
    status, flagged = svc.call("GET", "/api/v1/devices?site=lab&flagged=true")
    assert {persona(svc.state, "hik-bullet").mac, persona(svc.state, JOINS).mac} <= macs(flagged["items"])
    hostile = next(d for d in devices["items"] if d["mac"] == persona(svc.state, "hostile").mac)
    status, page = svc.call("GET", f"/api/v1/devices/{hostile['id']}")
    assert status == 200  # the page is JSON that parses, whatever the device said
    in_report = next(d for d in raw["devices"] if d["mac"] == hostile["mac"])
    assert (page["model"], page["firmware"]) == (in_report["model"], in_report["firmware"])
    assert any("<script>alert(1)</script>" in e["value"] for e in page["evidence"])  # kept verbatim, as data
