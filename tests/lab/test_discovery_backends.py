"""WS-Discovery, SSDP and mDNS discovery backends against the lab's responders over real sockets.

- Loopback mode (in process, on 127.77.0.241-246, unicast only): the Hikvision, Axis and hostile personas'
  WS-Discovery and SSDP responders; a minimal mDNS responder of this file (the lab's mDNS responder runs in
  netns mode only); a fake SSDP device whose LOCATION points at another address (never fetched) or serves an
  entity bomb.
- Netns mode (root): a bridge namespace, the scanner's namespace (10.77.0.2) and one per persona (hik-bullet,
  axis-m1065, hostile from scanner/lab/personas, run by `python -m scanner.lab.serve`), plus a Dahua persona
  that starts only after the scanner's Probes went out, so that it is heard through its Hello alone. All
  names carry our PID; namespaces are deleted by name and processes killed by PID in teardown.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from zeroconf._dns import DNSAddress, DNSPointer, DNSService, DNSText
from zeroconf._protocol.incoming import DNSIncoming
from zeroconf._protocol.outgoing import DNSOutgoing

from scanner.discovery import mdns, ssdp, wsd
from scanner.lab.persona import PERSONA_DIR, Persona, load_persona
from scanner.lab.responders import ssdp as lab_ssdp
from scanner.lab.responders import wsd as lab_wsd
from scanner.lab.responders.base import Context
from scanner.lab.responders.http import serve
from scanner.model import Observation
from scanner.netctx import ScanContext
from scanner.scope import RateLimiter, Scope
from tests.lab.conftest import LoopThread, stop_process

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
HIK_IP, AXIS_IP, HOSTILE_IP, FAKE_IP, ELSEWHERE_IP = (f"127.77.0.{n}" for n in (241, 242, 243, 244, 245))
LOOPBACK_SCOPE = "127.77.0.240/29"  # .240-.247: ELSEWHERE_IP is in scope, and still never fetched
PORT_OFFSET = 10000


def ev(observations: list[Observation], ip: str) -> set[tuple[str, str]]:
    return {(e.key, e.value) for o in observations if o.ip == ip for e in o.evidence}


def loopback_ctx(listen: float = 1.2) -> ScanContext:
    return ScanContext(scope=Scope.build([LOOPBACK_SCOPE]), rate=RateLimiter(2000), timeout=1.5, listen=listen)


# ------------------------------------------------------------------------- minimal responders of our own


def axis_mdns_answer(query_id: int, ip: str) -> bytes:
    """What an Axis camera's Avahi answers to a legacy unicast DNS-SD query (RFC 6762 §6.7)."""
    stype = "_axis-video._tcp.local."
    name = f"AXIS M1065-LW - ACCC8E123431.{stype}"
    host = "axis-accc8e123431.local."
    out = DNSOutgoing(0x8400, multicast=False, id_=query_id)
    out.add_answer_at_time(DNSPointer(mdns.ENUMERATION, 12, 1, 4500, stype), 0)
    out.add_answer_at_time(DNSPointer(stype, 12, 1, 4500, name), 0)
    out.add_additional_answer(DNSService(name, 33, 1, 120, 0, 0, 80, host))
    out.add_additional_answer(DNSText(name, 16, 1, 4500, b"\x17macaddress=ACCC8E123431"))
    out.add_additional_answer(DNSAddress(host, 1, 1, 120, bytes(int(p) for p in ip.split("."))))
    return out.packets()[0]


class MiniMdns(asyncio.DatagramProtocol):
    """Answers any DNS-SD query on ip:5353 (unicast only) with the Axis answer; counts the queries."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.queries: list[DNSIncoming] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = DNSIncoming(data)
        if msg.valid and msg.is_query() and self.transport is not None:
            self.queries.append(msg)
            self.transport.sendto(axis_mdns_answer(msg.id, self.ip), addr)


class FakeSsdp(asyncio.DatagramProtocol):
    """A device that answers M-SEARCH with LOCATIONs on another host, an entity bomb, and a slow server."""

    def __init__(self, locations: list[str]) -> None:
        self.locations = locations
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.startswith(b"M-SEARCH") or self.transport is None:
            return
        for loc in self.locations:
            self.transport.sendto(
                (
                    "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n"
                    f"LOCATION: {loc}\r\nSERVER: Linux/3.0, UPnP/1.0, FakeSDK/1.0\r\nST: upnp:rootdevice\r\n"
                    "USN: uuid:fake::upnp:rootdevice\r\n\r\n"
                ).encode(),
                addr,
            )


BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaaaaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><root><device><manufacturer>&c;</manufacturer></device></root>'
)


class Http:
    """Tiny HTTP servers for the fake device: counts connections per path."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = writer.get_extra_info("sockname")[0]
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            path = head.split(b" ", 2)[1].decode()
            self.hits.append((host, path))
            if path == "/bomb.xml":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n" + BOMB)
            elif path == "/slow.xml":  # trickles for longer than the scan's timeout
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<root><device>")
                for _ in range(40):
                    await writer.drain()
                    await asyncio.sleep(0.1)
                    writer.write(b"<x/>")
            else:
                writer.write(
                    b"HTTP/1.1 200 OK\r\n\r\n<root><device><manufacturer>Elsewhere</manufacturer></device></root>"
                )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()


# ------------------------------------------------------------------------- loopback lab


def persona(name: str) -> Persona:
    return load_persona(PERSONA_DIR / f"{name}.yaml")


@pytest.fixture(scope="module")
def loopback_lab() -> Iterator[dict[str, Any]]:
    lt = LoopThread()
    closers: list[Any] = []
    state: dict[str, Any] = {"http": Http(), "mdns": MiniMdns(AXIS_IP)}

    async def up() -> None:
        loop = asyncio.get_running_loop()
        for name, ip in (("hik-bullet", HIK_IP), ("axis-m1065", AXIS_IP), ("hostile", HOSTILE_IP)):
            ctx = Context(persona=persona(name), ip=ip, iface=None, port_offset=PORT_OFFSET)
            svc = ctx.persona.services
            closers.extend(await lab_wsd.start(ctx))
            if svc.ssdp is not None and svc.http is not None:
                lab_ssdp.register(ctx)
                closers.append(await serve(ctx, svc.http))
                closers.extend(await lab_ssdp.start(ctx))
        transport, _ = await loop.create_datagram_endpoint(lambda: state["mdns"], local_addr=(AXIS_IP, 5353))
        closers.append(transport)
        http: Http = state["http"]
        for ip in (FAKE_IP, ELSEWHERE_IP):
            server = await asyncio.start_server(http.handle, ip, 0)
            closers.append(server)
            state[ip] = server.sockets[0].getsockname()[1]
        locations = [
            f"http://{ELSEWHERE_IP}:{state[ELSEWHERE_IP]}/elsewhere.xml",  # in scope, but not the one answering
            f"http://{FAKE_IP}:{state[FAKE_IP]}/bomb.xml",
            f"http://{FAKE_IP}:{state[FAKE_IP]}/slow.xml",
        ]
        transport, _ = await loop.create_datagram_endpoint(lambda: FakeSsdp(locations), local_addr=(FAKE_IP, 1900))
        closers.append(transport)

    async def down() -> None:
        for obj in closers:
            obj.close()
        for obj in closers:
            if isinstance(obj, asyncio.Server):
                await obj.wait_closed()
        await asyncio.sleep(0.05)

    try:
        lt.run(up())
        yield state
    finally:
        lt.run(down())
        lt.stop()


def test_wsd_unicast_loopback(loopback_lab: dict[str, Any]) -> None:
    ctx = loopback_ctx()
    assert not ctx.scope.multicast_allowed
    found = asyncio.run(wsd.discover(ctx, [HIK_IP, AXIS_IP, "127.77.0.200", "10.0.0.1"]))  # last two: out of scope
    assert {o.ip for o in found} == {HIK_IP, AXIS_IP}
    hik = ev(found, HIK_IP)
    assert ("wsd.scope", "onvif://www.onvif.org/hardware/DS-2CD2085G1-I") in hik
    assert ("wsd.type", "dn:NetworkVideoTransmitter") in hik and ("wsd.type", "tds:Device") in hik
    assert ("wsd.xaddr", f"http://{HIK_IP}:{80 + PORT_OFFSET}/onvif/device_service") in hik
    axis = ev(found, AXIS_IP)
    assert ("wsd.scope", "onvif://www.onvif.org/name/AXIS%20M1065-LW") in axis
    assert ctx.errors == []
    # each target had both Probes, and answered each (dedupe leaves one Evidence per value)
    assert len([e for o in found for e in o.evidence if o.ip == HIK_IP and e.key == "wsd.scope"]) == 8


def test_wsd_hostile_oversize_and_truncated(loopback_lab: dict[str, Any]) -> None:
    ctx = loopback_ctx()
    found = asyncio.run(wsd.discover(ctx, [HOSTILE_IP]))
    items = ev(found, HOSTILE_IP)
    scopes = [v for k, v in items if k == "wsd.scope"]
    assert "onvif://www.onvif.org/type/video_encoder" in scopes  # the normal answer is kept
    assert len(scopes) <= wsd.MAX_SCOPES  # the 65 kB one is capped (its first scopes are the real ones)
    # the persona's scope holds spaces, so on the wire it is three whitespace-separated items (WS-Discovery §5.1)
    assert ("wsd.scope", "onvif://www.onvif.org/hardware/=cmd|'") in items
    assert ctx.errors == []


def test_ssdp_unicast_and_description(loopback_lab: dict[str, Any]) -> None:
    ctx = loopback_ctx()
    found = asyncio.run(ssdp.discover(ctx, [AXIS_IP, HIK_IP]))
    assert {o.ip for o in found} == {AXIS_IP}  # the Hikvision persona runs no SSDP
    axis = ev(found, AXIS_IP)
    assert ("ssdp.server", "Linux/4.14.173-axis8, UPnP/1.0, Portable SDK for UPnP devices/1.8.7") in axis
    assert ("ssdp.st", "upnp:rootdevice") in axis  # the upnp:rootdevice search
    assert ("ssdp.st", "urn:axis-com:service:BasicService:1") in axis  # ssdp:all
    for pair in [
        ("upnp.manufacturer", "AXIS"),
        ("upnp.manufacturer_url", "http://www.axis.com/"),
        ("upnp.model_name", "AXIS M1065-LW"),
        ("upnp.model_number", "M1065-LW"),
        ("upnp.model_description", "AXIS M1065-LW Network Camera"),
        ("upnp.friendly_name", "AXIS M1065-LW - ACCC8E123431"),
    ]:
        assert pair in axis
    assert not any(k == "location" for k, _ in axis)


def test_ssdp_never_fetches_elsewhere_and_survives_hostile_descriptions(loopback_lab: dict[str, Any]) -> None:
    http: Http = loopback_lab["http"]
    http.hits.clear()
    ctx = loopback_ctx(listen=0.8)
    started = time.monotonic()
    found = asyncio.run(ssdp.discover(ctx, [FAKE_IP, HOSTILE_IP]))
    elapsed = time.monotonic() - started
    fake = ev(found, FAKE_IP)
    assert ("ssdp.server", "Linux/3.0, UPnP/1.0, FakeSDK/1.0") in fake
    assert not any(k.startswith("upnp.") for k, _ in fake)  # bomb refused, slow one cut off, elsewhere not read
    assert all(host == FAKE_IP for host, _ in http.hits), http.hits
    assert {p for _, p in http.hits} == {"/bomb.xml", "/slow.xml"}
    assert ("ssdp.server", "Linux/3.10, UPnP/1.0, <script>alert(1)</script>") in ev(found, HOSTILE_IP)
    assert elapsed < 2 * 0.8 + ctx.timeout + 1.5  # listening, then one bounded round of fetches


def test_mdns_unicast_loopback(loopback_lab: dict[str, Any]) -> None:
    responder: MiniMdns = loopback_lab["mdns"]
    responder.queries.clear()
    ctx = loopback_ctx(listen=0.5)
    found = asyncio.run(mdns.discover(ctx, [AXIS_IP]))
    assert ev(found, AXIS_IP) == {
        ("mdns.service", "_axis-video._tcp.local."),
        ("mdns.instance", "AXIS M1065-LW - ACCC8E123431._axis-video._tcp.local."),
        ("mdns.txt", "macaddress=ACCC8E123431"),
        ("hostname", "axis-accc8e123431"),
    }
    assert len(responder.queries) == 1
    query = responder.queries[0]
    assert query.id != 0 and all(q.unicast for q in query.questions)
    assert query.questions[0].name == mdns.ENUMERATION


def test_nothing_is_sent_outside_the_scope(loopback_lab: dict[str, Any]) -> None:
    responder: MiniMdns = loopback_lab["mdns"]
    responder.queries.clear()
    ctx = ScanContext(scope=Scope.build(["127.77.0.241"]), rate=RateLimiter(2000), timeout=1, listen=0.3)
    found = asyncio.run(mdns.discover(ctx, [AXIS_IP]))
    assert found == [] and responder.queries == []


# ------------------------------------------------------------------------- netns lab (multicast)

SCANNER = r"""
import asyncio, json, sys
from pathlib import Path
from scanner.discovery import mdns, ssdp, wsd
from scanner.netctx import ScanContext
from scanner.scope import RateLimiter, Scope

go, axis_ip = Path(sys.argv[1]), sys.argv[2]

def ctx(targets, listen):
    return ScanContext(scope=Scope.build(targets, interface="lab0"), rate=RateLimiter(500), timeout=2.0,
                       listen=listen)

def dump(found):
    return {o.ip: sorted([e.key, e.value] for e in o.evidence) for o in found}

async def main():
    out = {}
    c = ctx(["10.77.0.0/24"], 2.5)
    out["multicast_allowed"] = c.scope.multicast_allowed
    task = asyncio.create_task(wsd.discover(c, []))
    await asyncio.sleep(0.3)  # the Probes are out: now let the late device start (it says Hello)
    go.write_text("go")
    out["wsd"] = dump(await task)
    c.listen = 1.5
    out["ssdp"] = dump(await ssdp.discover(c, []))
    out["mdns"] = dump(await mdns.discover(c, []))
    u = ctx([axis_ip], 1.0)  # one address: no multicast, a direct query to its port 5353
    out["unicast_multicast_allowed"] = u.scope.multicast_allowed
    out["mdns_unicast"] = dump(await mdns.discover(u, [axis_ip]))
    out["errors"] = c.errors + u.errors
    out["limitations"] = c.limitations + u.limitations
    print(json.dumps(out), flush=True)

asyncio.run(main())
"""

LATE_DEVICE = r"""
import asyncio, signal, sys, time
from pathlib import Path
from scanner.lab.persona import load_persona
from scanner.lab.responders import wsd
from scanner.lab.responders.base import Context

async def main():
    ctx = Context(persona=load_persona(Path(sys.argv[1])), ip=sys.argv[2], iface="lab0")
    go = Path(sys.argv[3])
    print("WAITING", flush=True)
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    closers = await wsd.start(ctx)  # announces itself with a Hello to the group
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for c in closers:
        c.close()

asyncio.run(main())
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


NETNS_DEVICES = {"hik-bullet": "10.77.0.11", "axis-m1065": "10.77.0.31", "hostile": "10.77.0.66"}
LATE = ("dahua-dome", "10.77.0.21")


@pytest.fixture(scope="module")
def netns_scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("netns mode needs root and iproute2")
    pid = os.getpid()
    tmp = tmp_path_factory.mktemp("netns")
    sw, scan = f"csd-{pid}-sw", f"csd-{pid}-scan"
    hosts = {name: (f"csd-{pid}-{i}", ip) for i, (name, ip) in enumerate([*NETNS_DEVICES.items(), LATE])}
    created: list[str] = []
    procs: list[subprocess.Popen[str]] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        for ns in (sw, scan, *(n for n, _ in hosts.values())):
            _ip("netns", "add", ns)
            created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip(
            "-n",
            sw,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        )
        _ip("-n", sw, "link", "set", "br0", "up")
        members = [(scan, "10.77.0.2", "02:00:00:00:00:02"), *((n, ip, None) for n, ip in hosts.values())]
        for i, (ns, ip, mac) in enumerate(members):
            _ip("-n", sw, "link", "add", f"p{i}", "type", "veth", "peer", "name", "lab0", "netns", ns)
            _ip("-n", sw, "link", "set", f"p{i}", "master", "br0", "up")
            if mac:
                _ip("-n", ns, "link", "set", "lab0", "address", mac)
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", "lab0")
            _ip("-n", ns, "link", "set", "lab0", "up")
        for name, (ns, ip) in hosts.items():
            if (name, ip) == LATE:
                continue
            ready = tmp / f"{name}.ready"
            cmd = ["ip", "netns", "exec", ns, PYTHON, "-m", "scanner.lab.serve", "--persona",
                   str(PERSONA_DIR / f"{name}.yaml"), "--ip", ip, "--iface", "lab0", "--ready", str(ready)]  # fmt: skip
            with open(tmp / f"{name}.log", "w") as log:  # a file, not a pipe nobody reads: it never fills
                procs.append(
                    subprocess.Popen(
                        cmd, stdout=subprocess.DEVNULL, stderr=log, text=True, start_new_session=True, env=env, cwd=ROOT
                    )
                )
        go = tmp / "go"
        late_ns, late_ip = hosts[LATE[0]]
        late = subprocess.Popen(
            ["ip", "netns", "exec", late_ns, PYTHON, "-c", LATE_DEVICE, str(PERSONA_DIR / f"{LATE[0]}.yaml"), late_ip,
             str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True, env=env, cwd=ROOT,
        )  # fmt: skip
        procs.append(late)
        assert late.stdout is not None
        assert late.stdout.readline().strip() == "WAITING"
        deadline = time.monotonic() + 20
        while not all((tmp / f"{n}.ready").exists() for n in NETNS_DEVICES):
            dead = [p for p in procs if p.poll() is not None]
            assert not dead, [(tmp / f"{n}.log").read_text() for n in NETNS_DEVICES]
            assert time.monotonic() < deadline, "lab personas did not become ready"
            time.sleep(0.05)
        scanner = subprocess.run(
            ["ip", "netns", "exec", scan, PYTHON, "-c", SCANNER, str(go), NETNS_DEVICES["axis-m1065"]],
            capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
        )  # fmt: skip
        assert scanner.returncode == 0, scanner.stderr
        yield json.loads(scanner.stdout.strip().splitlines()[-1])
    finally:
        for proc in procs:
            stop_process(proc)
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def pairs_of(result: dict[str, Any], backend: str, ip: str) -> set[tuple[str, str]]:
    return {(k, v) for k, v in result[backend].get(ip, [])}


def test_netns_wsd_multicast_and_hello(netns_scan: dict[str, Any]) -> None:
    assert netns_scan["multicast_allowed"] is True
    hik = pairs_of(netns_scan, "wsd", "10.77.0.11")
    assert ("wsd.scope", "onvif://www.onvif.org/hardware/DS-2CD2085G1-I") in hik
    assert ("wsd.xaddr", "http://10.77.0.11/onvif/device_service") in hik
    assert ("wsd.scope", "onvif://www.onvif.org/name/AXIS%20M1065-LW") in pairs_of(netns_scan, "wsd", "10.77.0.31")
    hostile = [v for k, v in netns_scan["wsd"]["10.77.0.66"] if k == "wsd.scope"]
    assert 0 < len(hostile) <= wsd.MAX_SCOPES
    # the Dahua persona started after the Probes: only its Hello can have told us about it
    late = pairs_of(netns_scan, "wsd", LATE[1])
    assert ("wsd.type", "dn:NetworkVideoTransmitter") in late, netns_scan["wsd"].keys()
    assert "10.77.0.2" not in netns_scan["wsd"]  # our own Probes are not answers


def test_netns_ssdp_multicast(netns_scan: dict[str, Any]) -> None:
    axis = pairs_of(netns_scan, "ssdp", "10.77.0.31")
    assert ("ssdp.st", "urn:axis-com:service:BasicService:1") in axis
    assert ("upnp.manufacturer", "AXIS") in axis
    assert ("upnp.model_number", "M1065-LW") in axis
    assert ("ssdp.server", "Linux/3.10, UPnP/1.0, <script>alert(1)</script>") in pairs_of(
        netns_scan, "ssdp", "10.77.0.66"
    )
    assert "10.77.0.11" not in netns_scan["ssdp"]


def test_netns_mdns_browse(netns_scan: dict[str, Any]) -> None:
    axis = pairs_of(netns_scan, "mdns", "10.77.0.31")
    assert ("mdns.service", "_axis-video._tcp.local.") in axis
    assert ("mdns.instance", "AXIS M1065-LW - ACCC8E123431._axis-video._tcp.local.") in axis
    assert ("mdns.instance", "AXIS M1065-LW - ACCC8E123431._http._tcp.local.") in axis
    assert ("mdns.txt", "macaddress=ACCC8E123431") in axis
    assert ("hostname", "axis-accc8e123431") in axis


def test_netns_mdns_unicast_query(netns_scan: dict[str, Any]) -> None:
    assert netns_scan["unicast_multicast_allowed"] is False
    axis = pairs_of(netns_scan, "mdns_unicast", "10.77.0.31")
    assert ("mdns.service", "_axis-video._tcp.local.") in axis
    assert ("mdns.instance", "AXIS M1065-LW - ACCC8E123431._axis-video._tcp.local.") in axis
    assert ("mdns.txt", "macaddress=ACCC8E123431") in axis
    assert ("hostname", "axis-accc8e123431") in axis
    assert set(netns_scan["mdns_unicast"]) == {"10.77.0.31"}
    assert netns_scan["errors"] == []
