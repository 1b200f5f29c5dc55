"""Scan agents across a small WAN of network namespaces (root), through the machine's real RabbitMQ.

    cag<id>-hq        `camscan serve` on 10.W.0.1 (SQLite), routes to both buildings; a veth to the root
                      namespace, where a TCP relay on 10.W.9.1:5672 (this test's link) reaches RabbitMQ
                      (W: a /16 that no route of the machine uses, so two runs at once do not clash)
    cag<id>-a-agent   `camscan agent --site a --allow 10.77.0.0/24`: lab0 10.77.0.2 on building A's bridge,
                      wan0 10.W.1.2 towards HQ
    cag<id>-b-agent   the same for building B, on ITS OWN bridge, with the SAME addresses (10.77.0.0/24)
    cag<id>-X-sw, cag<id>-X-<persona>   each building's lab switch and devices: the same two addresses in
                      both buildings (10.77.0.11, 10.77.0.31), different devices behind them

Nothing here touches eth0: the relay listens on this test's veth address only, and all else lives in the
namespaces. Checked: scheduled scans of both buildings at once land in the central store with the right
site and the devices stay apart; an agent killed (SIGKILL) in the middle of a scan leaves its job to the
restarted agent, which finishes it, stored once; RabbitMQ restarted in the middle of a run (stop_app,
start_app) loses and duplicates nothing; a job naming targets outside the agent's --allow list is refused
and not one packet leaves the agent into its lab (the lab switch's counter of the agent's port).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scanner.lab import control
from scanner.lab.persona import PERSONA_DIR
from tests.lab.conftest import needs_netns
from tests.service.agentkit import (
    ROOT,
    Vhost,
    ensure_rabbit_running,
    rabbitmqctl,
    start_agent,
    stop,
    vhost,
    wait_for,
)

pytestmark = needs_netns
__all__ = ["vhost"]

PERSONAS = {"a": ["hik-bullet", "axis-m1065"], "b": ["dahua-dome", "uniview-ipc"]}
ADDRESSES = ["10.77.0.11", "10.77.0.31"]  # the same two addresses in both buildings
AGENT_IP, LAB = "10.77.0.2", "10.77.0.0/24"
PORT = 8800
METHODS = "arp,ports,http,sadp,dhip,wsd"


def sh(*argv: str, ns: str | None = None, check: bool = True) -> str:
    cmd = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


class Relay:
    """A TCP relay from this test's veth address to RabbitMQ on the root namespace's loopback."""

    def __init__(self, listen: str, port: int, target: tuple[str, int]) -> None:
        self.listen, self.port, self.target = listen, port, target
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.base_events.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def start(self) -> None:
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._client, self.listen, self.port), self.loop)
        self.server = fut.result(10)

    def close(self) -> None:
        async def shut() -> None:
            if self.server is not None:
                self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class Wan:
    tag: str
    tmp: Path
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    broker: dict[str, str] = field(default_factory=dict)
    macs: dict[str, list[str]] = field(default_factory=dict)
    relay: Relay | None = None
    service: subprocess.Popen[bytes] | None = None
    w: int = 251  # the WAN's /16 is 10.w.0.0/16

    @property
    def hq_ip(self) -> str:
        return f"10.{self.w}.0.1"

    @property
    def relay_ip(self) -> str:
        return f"10.{self.w}.9.1"

    @property
    def hq(self) -> str:
        return f"cag{self.tag}-hq"

    def ns(self, site: str, role: str) -> str:
        return f"cag{self.tag}-{site}-{role}"

    @property
    def root_link(self) -> str:
        return f"cag{self.tag}r"

    @property
    def db(self) -> Path:
        return self.tmp / "data" / "camscan.db"

    def camscan(self, *args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "scanner", *args, "--db", f"sqlite:///{self.db}"],
                              capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def call(self, method: str, path: str, body: Any = None, *, raw: Path | None = None, who: str = "admin",
             ns: str | None = None) -> tuple[int, Any]:  # fmt: skip
        """The API as `who` (a token), from the HQ namespace unless `ns` says another: a JSON `body`, or the
        bytes of the file `raw` sent as they are (an agent's report)."""
        from scanner.service.agents import SCHEMA_HEADER, VERSION_HEADER

        script = (
            "import json, sys, httpx, scanner, scanner.model as m\n"
            "method, url, tok, kind, arg = sys.argv[1:6]\n"
            f"h = {{'Authorization': 'Bearer ' + tok, {VERSION_HEADER!r}: scanner.__version__, "
            f"{SCHEMA_HEADER!r}: m.SCHEMA_VERSION}}\n"
            "kw = {'json': json.loads(arg)} if kind == 'json' else {'content': open(arg, 'rb').read()} "
            "if kind == 'raw' else {}\n"
            "r = httpx.request(method, url, headers=h, timeout=20, **kw)\n"
            "print(json.dumps([r.status_code, r.text]))\n"
        )
        kind, arg = ("raw", str(raw)) if raw else ("json", json.dumps(body)) if body is not None else ("none", "")
        out = sh(sys.executable, "-c", script, method, f"http://{self.hq_ip}:{PORT}{path}", self.tokens[who], kind, arg,
                 ns=ns or self.hq)  # fmt: skip
        code, text = json.loads(out)
        with contextlib.suppress(json.JSONDecodeError):
            return int(code), json.loads(text)
        return int(code), text

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db, timeout=30)) as c:
            return list(c.execute(query, params))

    def scan(self, scan_id: str) -> dict[str, Any]:
        code, body = self.call("GET", f"/api/v1/scans/{scan_id}")
        assert code == 200, body
        return dict(body)

    def finished(self, scan_id: str) -> dict[str, Any] | None:
        scan = self.scan(scan_id)
        return scan if scan["status"] not in ("queued", "running") else None

    def scanning(self, site: str) -> bool:
        """Whether `camscan scan` runs in the site's agent namespace right now."""
        for pid in sh("ip", "netns", "pids", self.ns(site, "agent"), check=False).split():
            with contextlib.suppress(OSError):
                if b"scanner\x00scan\x00" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return True
        return False

    def start_agent(self, site: str) -> None:
        service = f"http://{self.hq_ip}:{PORT}"
        self.agents[site] = start_agent(self.tmp, site, self.broker[site], service, self.tokens[site], LAB,
                                        netns=self.ns(site, "agent"))  # fmt: skip

    def agent_port_packets(self, site: str) -> int:
        """Frames the site's agent sent into its lab: the lab switch's receive counter of the agent's port."""
        doc = json.loads(sh("ip", "-s", "-j", "link", "show", "s0", ns=self.ns(site, "sw")))
        return int(doc[0]["stats64"]["rx"]["packets"])

    def logs(self) -> tuple[Path, ...]:
        return tuple(sorted(self.tmp.glob("*.log")))


def _build(wan: Wan) -> None:
    hq = wan.hq
    wan.namespaces.append(hq)
    control.ip_batch([f"netns add {hq}"])
    sysctls = ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
    sh("sysctl", "-qw", *sysctls, ns=hq)
    control.ip_batch([f"link add {wan.root_link} type veth peer name root0 netns {hq}",
                      f"addr add {wan.relay_ip}/30 dev {wan.root_link}", f"link set {wan.root_link} up",
                      f"route add 10.{wan.w}.0.0/16 via 10.{wan.w}.9.2 dev {wan.root_link}"])  # fmt: skip
    control.ip_batch(["link set lo up", f"addr add {wan.hq_ip}/32 dev lo", f"addr add 10.{wan.w}.9.2/30 dev root0",
                      "link set root0 up"], hq)  # fmt: skip
    for n, site in enumerate(("a", "b"), start=1):
        sw, agent = wan.ns(site, "sw"), wan.ns(site, "agent")
        hosts = [wan.ns(site, p) for p in PERSONAS[site]]
        control.ip_batch([f"netns add {x}" for x in (sw, agent, *hosts)])
        wan.namespaces += [sw, agent, *hosts]
        for x in (sw, agent, *hosts):
            sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1", ns=x)
        # the WAN link: HQ <-> the building's agent, its default route
        control.ip_batch([f"link add s{site} type veth peer name wan0 netns {agent}",
                          f"addr add 10.{wan.w}.{n}.1/30 dev s{site}", f"link set s{site} up"], hq)  # fmt: skip
        control.ip_batch(["link set lo up", f"addr add 10.{wan.w}.{n}.2/30 dev wan0", "link set wan0 up",
                          f"route add default via 10.{wan.w}.{n}.1"], agent)  # fmt: skip
        # the building's lab: a dumb switch, the agent on s0, a device on each other port
        switch = ["link set lo up", "link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
                  "link set br0 up"]  # fmt: skip
        ports = [(agent, "s0"), *((h, f"p{i}") for i, h in enumerate(hosts))]
        for host, port in ports:
            switch += [f"link add {port} type veth peer name lab0 netns {host}", f"link set {port} master br0",
                       f"link set {port} up"]  # fmt: skip
        control.ip_batch(switch, sw)
        control.ip_batch([f"link set lab0 address {control.SCANNER_MAC}", f"addr add {AGENT_IP}/24 dev lab0",
                          "link set lab0 up"], agent)  # fmt: skip
        wan.macs[site] = []
        for host, pid, addr in zip(hosts, PERSONAS[site], ADDRESSES, strict=True):
            mac = _persona_mac(pid)
            wan.macs[site].append(mac)
            control.ip_batch(["link set lo up", f"link set lab0 address {mac}", f"addr add {addr}/24 dev lab0",
                              "link set lab0 up"], host)  # fmt: skip
            ready = wan.tmp / f"{site}-{pid}.ready"
            wan.procs.append(subprocess.Popen(
                ["ip", "netns", "exec", host, sys.executable, "-m", "scanner.lab.serve", "--persona",
                 str(PERSONA_DIR / f"{pid}.yaml"), "--ip", addr, "--iface", "lab0", "--ready", str(ready)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            ))  # fmt: skip
    for site in ("a", "b"):
        for pid in PERSONAS[site]:
            wait_for(lambda s=site, p=pid: (wan.tmp / f"{s}-{p}.ready").exists(), 30, f"persona {pid}")


def _free_net() -> int:
    """A second octet w such that no route of the root namespace touches 10.w.0.0/16 (another run's WAN)."""
    import ipaddress
    import random

    routes = [ipaddress.ip_network(r.split()[0], strict=False) for r in sh("ip", "-4", "route", "show").splitlines()
              if r.split() and r.split()[0] != "default"]  # fmt: skip
    choices = [w for w in range(200, 250)
               if not any(n.overlaps(ipaddress.ip_network(f"10.{w}.0.0/16")) for n in routes)]  # fmt: skip
    return random.choice(choices)


def _persona_mac(pid: str) -> str:
    import yaml

    return str(yaml.safe_load((PERSONA_DIR / f"{pid}.yaml").read_text())["mac"]).lower()


def _teardown(wan: Wan) -> None:
    for proc in [*wan.agents.values(), *([wan.service] if wan.service else []), *wan.procs]:
        stop(proc, grace=10)
    if wan.relay is not None:
        wan.relay.close()
    for ns in wan.namespaces:
        for pid in sh("ip", "netns", "pids", ns, check=False).split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        sh("ip", "netns", "del", ns, check=False)
    sh("ip", "link", "del", wan.root_link, check=False)


@pytest.fixture(scope="module")
def wan(vhost: Vhost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wan]:
    w = Wan(os.urandom(2).hex(), tmp_path_factory.mktemp("wan"), w=_free_net())
    try:
        _build(w)
        w.relay = Relay(w.relay_ip, 5672, ("127.0.0.1", 5672))
        w.relay.start()
        w.tokens["admin"] = w.camscan("tokens", "create", "hq", "--role", "admin").strip().splitlines()[-1]
        for site in ("a", "b"):
            w.camscan("sites", "add", site, "--name", f"Building {site.upper()}", "--targets", LAB, "--interface",
                      "lab0", "--schedule", "0 3 * * *", "--methods", METHODS, "--agent", site)  # fmt: skip
            out = w.camscan("tokens", "create", f"agent {site}", "--role", "operator", "--site", site)
            w.tokens[site] = out.strip().splitlines()[-1]
            w.broker[site] = vhost.site_url(site, host=w.relay_ip)
        log = open(w.tmp / "serve.log", "ab")  # noqa: SIM115 - the child keeps it
        w.service = subprocess.Popen(
            ["ip", "netns", "exec", w.hq, sys.executable, "-m", "scanner", "serve", "--db", f"sqlite:///{w.db}",
             "--host", w.hq_ip, "--port", str(PORT), "--broker", vhost.service_url(host=w.relay_ip),
             "--scan-timeout", "120"],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "CAMSCAN_DATA_DIR": str(w.tmp / "data")},
        )  # fmt: skip
        log.close()
        wait_for(lambda: _healthy(w), 60, "the service at HQ", w.logs())
        for site in ("a", "b"):
            w.start_agent(site)
        wait_for(lambda: _online(w) == {"a", "b"}, 60, "both agents' heartbeats", w.logs())
        yield w
    finally:
        _teardown(w)
        ensure_rabbit_running()


def _healthy(w: Wan) -> bool:
    with contextlib.suppress(RuntimeError, json.JSONDecodeError):
        return w.call("GET", "/api/v1/health")[0] == 200
    return False


def _online(w: Wan) -> set[str]:
    code, body = w.call("GET", "/api/v1/agents")
    return {a["site"] for a in body["items"] if a["online"]} if code == 200 else set()


def _devices(w: Wan, site: str) -> dict[str, str]:
    code, body = w.call("GET", f"/api/v1/devices?site={site}&limit=100")
    assert code == 200, body
    return {d["mac"]: d["ip"] for d in body["items"]}


def _stored(w: Wan, scan_id: str) -> int:
    """How many scans hold this scan's report (1 = stored once)."""
    rid = w.rows("SELECT report_id FROM scans WHERE id = ?", scan_id)[0][0]
    return len(w.rows("SELECT id FROM scans WHERE report_id = ?", rid)) if rid else 0


def test_scheduled_scans_at_both_buildings_land_apart(wan: Wan) -> None:
    sent = {site: wan.agent_port_packets(site) for site in ("a", "b")}
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    with contextlib.closing(sqlite3.connect(wan.db, timeout=30)) as c:  # both cron slots come due now
        c.execute("UPDATE sites SET next_run_at = ?", (now,))
        c.commit()
    ids = wait_for(lambda: dict(wan.rows("SELECT s.slug, c.id FROM scans c JOIN sites s ON s.id = c.site_id "
                                         "WHERE c.trigger = 'schedule'")) if len(wan.rows(
        "SELECT id FROM scans WHERE trigger = 'schedule'")) == 2 else None, 30, "two scheduled scans")  # fmt: skip
    for site in ("a", "b"):
        scan = wait_for(lambda s=site: wan.finished(ids[s]), 120, f"the scan of {site}", wan.logs())
        assert scan["status"] == "succeeded", scan
        assert scan["site"] == site and scan["trigger"] == "schedule"
        assert _stored(wan, ids[site]) == 1
        assert wan.agent_port_packets(site) > sent[site]  # the counter sees a scan (and so would see a refused one)
    a, b = _devices(wan, "a"), _devices(wan, "b")
    assert set(wan.macs["a"]) <= set(a) and set(wan.macs["b"]) <= set(b)
    assert not set(a) & set(b)  # same addresses, different buildings: no device crosses over
    assert {a[m] for m in wan.macs["a"]} == {b[m] for m in wan.macs["b"]} == set(ADDRESSES)
    code, report = wan.call("GET", f"/api/v1/scans/{ids['a']}/report.json")
    assert code == 200 and report["scan"]["site"] == "Building A"
    assert report["scan"]["scope"] == [LAB, f"interface lab0 ({AGENT_IP}/24)"]
    # from building A, with A's token, over the WAN: A's report cannot be filed as B's scan
    raw = wan.tmp / "report-a.json"
    raw.write_text(json.dumps(report))
    code, refused = wan.call("POST", f"/api/v1/scans/{ids['b']}/report", raw=raw, who="a", ns=wan.ns("a", "agent"))
    assert code == 403 and "another site" in refused["detail"]
    code, _ = wan.call("GET", f"/api/v1/scans/{ids['b']}", who="a", ns=wan.ns("a", "agent"))
    assert code == 403


def test_a_job_outside_the_allow_list_is_refused_without_a_packet(wan: Wan) -> None:
    # a compromised service widens building A's targets beyond what the building allows
    code, site = wan.call("PATCH", "/api/v1/sites/a", {"targets": [LAB, "10.99.0.0/24"]})
    assert code == 200, site
    before = wan.agent_port_packets("a")
    code, queued = wan.call("POST", "/api/v1/sites/a/scans")
    assert code == 202, queued
    scan = wait_for(lambda: wan.finished(queued["id"]), 60, "the refusal", wan.logs())
    assert scan["status"] == "failed" and scan["error"].startswith("refused by the agent: targets outside its --allow")
    assert "10.99.0.0/24" in scan["error"]
    time.sleep(1)  # anything the agent had sent would have crossed the switch by now
    assert wan.agent_port_packets("a") == before, "the agent sent frames into its lab for a refused job"
    code, _ = wan.call("PATCH", "/api/v1/sites/a", {"targets": [LAB]})
    assert code == 200


def test_an_agent_killed_mid_scan_leaves_the_job_to_its_restart(wan: Wan) -> None:
    code, queued = wan.call("POST", "/api/v1/sites/b/scans")
    assert code == 202, queued
    wait_for(lambda: wan.scanning("b"), 60, "the scan to start at agent b", wan.logs())
    wan.agents["b"].send_signal(signal.SIGKILL)  # the agent's own pid: no warning, no goodbye
    wan.agents["b"].wait(10)
    wait_for(lambda: not wan.scanning("b"), 10, "the scan to die with its agent")
    assert wan.scan(queued["id"])["status"] == "running"  # the service still waits for it
    wan.start_agent("b")
    scan = wait_for(lambda: wan.finished(queued["id"]), 120, "the redelivered scan", wan.logs())
    assert scan["status"] == "succeeded", scan
    assert _stored(wan, queued["id"]) == 1
    log = (wan.tmp / "agent-b.log").read_text()
    assert log.count(f"scan {queued['id']} of site b") == 2  # begun by the killed agent, run again by the new one
    assert len(wan.rows("SELECT id FROM scans WHERE site_id = (SELECT id FROM sites WHERE slug = 'b')")) == 2


def test_a_broker_restart_mid_run_loses_and_duplicates_nothing(wan: Wan, vhost: Vhost) -> None:
    assert vhost.lock is not None
    with vhost.lock.alone():  # no other test run on this machine uses the broker meanwhile
        code, first = wan.call("POST", "/api/v1/sites/a/scans")
        assert code == 202, first
        wait_for(lambda: wan.scanning("a"), 60, "the scan to start at agent a", wan.logs())
        rabbitmqctl("stop_app")
        try:
            code, second = wan.call("POST", "/api/v1/sites/b/scans")  # queued while the broker is away
            assert code == 202, second
            time.sleep(3)
            assert wan.scan(second["id"])["status"] == "queued"  # kept by the service until the broker is back
        finally:
            ensure_rabbit_running()
    for scan_id in (first["id"], second["id"]):
        scan = wait_for(lambda i=scan_id: wan.finished(i), 180, "the scans after the restart", wan.logs())
        assert scan["status"] == "succeeded", scan
        assert _stored(wan, scan_id) == 1
    # every job acknowledged once done; a job redelivered after its report was stored is dropped, not rerun
    wait_for(lambda: vhost.queue_depth("camscan.site.a") == 0 and vhost.queue_depth("camscan.site.b") == 0, 60,
             "the queues to drain")  # fmt: skip
    log = (wan.tmp / "agent-a.log").read_text()
    assert log.count(f"scan {first['id']} of site a") == 1
    total = wan.rows("SELECT count(*), count(DISTINCT report_id) FROM scans WHERE report_id IS NOT NULL")[0]
    assert total[0] == total[1]
