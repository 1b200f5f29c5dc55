"""The lab's mDNS and SSDP responders, spoken to by real clients over real sockets.

- Loopback mode (in process, on an unusual 127.77.0.x address): unicast M-SEARCH with a plain socket, the
  description fetched with urllib from LOCATION and parsed with defusedxml; garbage does not kill it.
- Netns mode (root): two namespaces joined by a veth (10.77.251.0/24, names carry our PID); the responder
  runs in one, and from the other python-zeroconf (pinned to that namespace's address) browses for the
  service, a legacy unicast DNS query goes to port 5353, and a multicast M-SEARCH is sent. Everything made
  here is removed by name (namespaces) or PID (processes) in teardown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree

from scanner.lab.persona import Persona
from scanner.lab.responders import mdns, ssdp
from scanner.lab.responders.base import Context
from scanner.lab.responders.http import serve
from tests.lab.conftest import LoopThread, stop_process

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
UPNP_NS = "{urn:schemas-upnp-org:device-1-0}"
LOOPBACK_IP = "127.77.0.219"  # unusual, so parallel lab tests do not share 127.77.0.219:1900
NS_RESPONDER_IP, NS_CLIENT_IP = "10.77.251.10", "10.77.251.20"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

FRIENDLY = "Cam <\"front\"> & 'door'"  # every XML metacharacter: the description must escape them all


def make_persona(http_port: int, ip_last: int = 219) -> Persona:
    return Persona.model_validate(
        {
            "id": "test-mdns-ssdp",
            "name": "Test camera for mDNS and SSDP",
            "sources": ["tests/lab/test_mdns_ssdp.py"],
            "mac": "00:40:8c:00:02:19",
            "ip": f"10.77.0.{ip_last}",
            "hostname": "axis-00408c000219",
            "expect": {"manufacturer": "Axis"},
            "services": {
                "http": {"port": http_port, "server": "Boa/0.94.14rc21"},
                "mdns": [
                    {
                        "type": "_axis-video._tcp.local.",
                        "name": "AXIS M1065-LW - 00408C000219",
                        "port": http_port,
                        "txt": {"macaddress": "00408C000219", "model": "M1065-LW"},
                    }
                ],
                "ssdp": {
                    "server": "Linux/2.6.35, UPnP/1.0, Portable SDK for UPnP devices/1.6.18",
                    "st": ["upnp:rootdevice", "urn:axis-com:service:BasicService:1"],
                    "location": "/rootdesc1.xml",
                    "device_type": "urn:schemas-upnp-org:device:Basic:1",
                    "description": {
                        "friendlyName": FRIENDLY,
                        "manufacturer": "AXIS",
                        "manufacturerURL": "http://www.axis.com/?a=1&b=2",
                        "modelName": "AXIS M1065-LW",
                        "modelNumber": "M1065-LW",
                        "modelDescription": "AXIS M1065-LW Network Camera",
                        "serialNumber": "00408C000219",
                    },
                },
            },
        }
    )


def msearch(
    st: str, mx: int | None = None, man: str | None = '"ssdp:discover"', host: str = "239.255.255.250"
) -> bytes:
    lines = ["M-SEARCH * HTTP/1.1", f"HOST: {host}:1900"]
    if man is not None:
        lines.append(f"MAN: {man}")
    if mx is not None:
        lines.append(f"MX: {mx}")
    lines.append(f"ST: {st}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_response(data: bytes) -> tuple[str, list[tuple[str, str]]]:
    head = data.decode("utf-8").split("\r\n\r\n", 1)[0].split("\r\n")
    headers = [(k.strip().upper(), v.strip()) for k, _, v in (line.partition(":") for line in head[1:])]
    return head[0], headers


def collect(sock: socket.socket, seconds: float, until: int | None = None) -> list[tuple[bytes, float]]:
    """Every datagram that arrives within `seconds`, with its arrival time; once `until` have come, only
    0.3 s more are given to any extra (unexpected) ones."""
    out: list[tuple[bytes, float]] = []
    deadline = time.monotonic() + seconds
    while True:
        if until is not None and len(out) >= until:
            deadline = min(deadline, out[until - 1][1] + 0.3)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            break
        out.append((data, time.monotonic()))
    return out


def description_fields(url: str) -> dict[str, str]:
    with NO_PROXY.open(url, timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/xml")
        body = resp.read(1 << 20)
    root = ElementTree.fromstring(body)
    device = root.find(f"{UPNP_NS}device")
    assert device is not None
    return {child.tag.removeprefix(UPNP_NS): child.text or "" for child in device}


# --------------------------------------------------------------------------------------------- loopback


def free_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def loopback_lab() -> Iterator[Context]:
    persona = make_persona(free_port(LOOPBACK_IP))
    ctx = Context(persona=persona, ip=LOOPBACK_IP, iface=None)
    assert persona.services.http is not None
    lt = LoopThread()
    objects: list[Any] = []
    try:

        async def up() -> None:
            ssdp.register(ctx)
            assert persona.services.http is not None
            objects.append(await serve(ctx, persona.services.http))
            objects.extend(await ssdp.start(ctx))

        lt.run(up())
        yield ctx
    finally:

        async def down() -> None:
            for obj in objects:
                obj.close()
            for obj in objects:
                if isinstance(obj, asyncio.Server):
                    await obj.wait_closed()
            await asyncio.sleep(0.05)  # let the transports' connection_lost close their sockets

        lt.run(down())
        lt.stop()


@pytest.fixture
def client() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def test_unicast_msearch_answer_and_description(loopback_lab: Context, client: socket.socket) -> None:
    ctx = loopback_lab
    client.sendto(msearch("upnp:rootdevice", host=ctx.ip), (ctx.ip, 1900))
    answers = collect(client, 0.5, until=1)
    assert len(answers) == 1
    status, headers = parse_response(answers[0][0])
    assert status == "HTTP/1.1 200 OK"
    names = [k for k, _ in headers]
    # UDA 1.1 §1.3.3 / libupnp order
    assert names == ["CACHE-CONTROL", "DATE", "EXT", "LOCATION", "SERVER", "ST", "USN"]
    h = dict(headers)
    assert h["CACHE-CONTROL"].startswith("max-age=")
    assert h["EXT"] == ""
    assert h["SERVER"] == "Linux/2.6.35, UPnP/1.0, Portable SDK for UPnP devices/1.6.18"
    assert h["ST"] == "upnp:rootdevice"
    uuid = ssdp.device_uuid(ctx)
    assert h["USN"] == f"uuid:{uuid}::upnp:rootdevice"
    http = ctx.persona.services.http
    assert http is not None
    assert h["LOCATION"] == f"http://{ctx.ip}:{http.port}/rootdesc1.xml"

    fields = description_fields(h["LOCATION"])
    assert fields["friendlyName"] == FRIENDLY
    assert fields["manufacturer"] == "AXIS"
    assert fields["manufacturerURL"] == "http://www.axis.com/?a=1&b=2"
    assert fields["modelName"] == "AXIS M1065-LW"
    assert fields["modelNumber"] == "M1065-LW"
    assert fields["modelDescription"] == "AXIS M1065-LW Network Camera"
    assert fields["serialNumber"] == "00408C000219"
    assert fields["UDN"] == f"uuid:{uuid}"
    assert fields["deviceType"] == "urn:schemas-upnp-org:device:Basic:1"
    assert list(fields)[:2] == ["deviceType", "friendlyName"]  # UDA element order


def test_uuid_is_stable_per_persona() -> None:
    a = Context(persona=make_persona(8080), ip=LOOPBACK_IP, iface=None)
    b = Context(persona=make_persona(9090, ip_last=220), ip="127.77.0.220", iface=None)
    assert ssdp.device_uuid(a) == ssdp.device_uuid(b)  # same persona id
    c = Context(persona=make_persona(8080).model_copy(update={"id": "other"}), ip=LOOPBACK_IP, iface=None)
    assert ssdp.device_uuid(c) != ssdp.device_uuid(a)


def test_ssdp_all_answers_every_target(loopback_lab: Context, client: socket.socket) -> None:
    ctx = loopback_lab
    client.sendto(msearch("ssdp:all", mx=1), (ctx.ip, 1900))
    answers = collect(client, 1.5, until=4)
    sts = [dict(parse_response(d)[1])["ST"] for d, _ in answers]
    uuid = ssdp.device_uuid(ctx)
    expected = [f"uuid:{uuid}", "upnp:rootdevice", "urn:axis-com:service:BasicService:1"]
    assert sorted(sts) == sorted([*expected, "urn:schemas-upnp-org:device:Basic:1"])
    usns = {dict(parse_response(d)[1])["ST"]: dict(parse_response(d)[1])["USN"] for d, _ in answers}
    assert usns[f"uuid:{uuid}"] == f"uuid:{uuid}"
    assert usns["urn:axis-com:service:BasicService:1"] == f"uuid:{uuid}::urn:axis-com:service:BasicService:1"


def test_persona_st_and_mx_bound(loopback_lab: Context, client: socket.socket) -> None:
    ctx = loopback_lab
    sent = time.monotonic()
    client.sendto(msearch("urn:axis-com:service:BasicService:1", mx=5), (ctx.ip, 1900))
    answers = collect(client, 2.0, until=1)
    assert len(answers) == 1
    assert answers[0][1] - sent < 1.3  # MX 5 is honoured within min(MX, 1) s
    assert dict(parse_response(answers[0][0])[1])["ST"] == "urn:axis-com:service:BasicService:1"


def test_unknown_target_and_missing_man_are_ignored(loopback_lab: Context, client: socket.socket) -> None:
    ctx = loopback_lab
    client.sendto(msearch("urn:schemas-upnp-org:device:MediaRenderer:1", mx=1), (ctx.ip, 1900))
    client.sendto(msearch("upnp:rootdevice", mx=1, man=None), (ctx.ip, 1900))
    client.sendto(msearch("upnp:rootdevice", mx=1, man='"ssdp:other"'), (ctx.ip, 1900))
    assert collect(client, 1.3) == []


GARBAGE = [
    b"",
    b"\x00" * 10,
    os.urandom(1400),
    b"M-SEARCH",
    b"M-SEARCH * HTTP/1.1\r\n",
    b'M-SEARCH * HTTP/1.1\r\nMAN: "ssdp:discover"\r\nST:\r\n\r\n',
    b'M-SEARCH * HTTP/1.1\r\nMAN: "ssdp:discover"\r\nMX: -3\r\nST: nothing\r\n\r\n',
    b'M-SEARCH * HTTP/1.1\r\nMAN: "ssdp:discover"\r\nMX: \xd9\xa3\r\nST: \xff\xfe\r\n\r\n',
    b'M-SEARCH * HTTP/1.1\r\nMAN: "ssdp:discover"\r\nST: ' + b"A" * 60000 + b"\r\n\r\n",
    b"NOTIFY * HTTP/1.1\r\nNTS: ssdp:alive\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n\r\n",
]


def test_garbage_does_not_kill_ssdp(loopback_lab: Context, client: socket.socket) -> None:
    ctx = loopback_lab
    for junk in GARBAGE:
        client.sendto(junk, (ctx.ip, 1900))
    # MX that is not a number is tolerated (answered within 1 s), not a crash
    client.sendto(msearch("upnp:rootdevice").replace(b"\r\nST:", b"\r\nMX: 1e99\r\nST:"), (ctx.ip, 1900))
    client.sendto(msearch("upnp:rootdevice", mx=1), (ctx.ip, 1900))
    answers = collect(client, 1.5, until=2)
    assert len(answers) == 2
    assert all(parse_response(d)[0] == "HTTP/1.1 200 OK" for d, _ in answers)


def test_description_only_for_get(loopback_lab: Context) -> None:
    http = loopback_lab.persona.services.http
    assert http is not None
    req = urllib.request.Request(f"http://{loopback_lab.ip}:{http.port}/rootdesc1.xml", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        NO_PROXY.open(req, timeout=5)
    assert err.value.code == 405
    err.value.close()


def test_mdns_needs_multicast(caplog: pytest.LogCaptureFixture) -> None:
    ctx = Context(persona=make_persona(8080), ip=LOOPBACK_IP, iface=None)
    with caplog.at_level(logging.INFO, logger="camscan.lab"):
        assert asyncio.run(mdns.start(ctx)) == []
    assert "mDNS needs multicast" in caplog.text


def test_ssdp_without_its_http_service_does_not_start(caplog: pytest.LogCaptureFixture) -> None:
    persona = make_persona(8080)
    persona = persona.model_copy(update={"services": persona.services.model_copy(update={"http": None})})
    ctx = Context(persona=persona, ip=LOOPBACK_IP, iface=None)
    assert asyncio.run(ssdp.start(ctx)) == []
    assert "lacks" in caplog.text


# --------------------------------------------------------------------------------------------- netns

RESPONDER = """
import asyncio, signal, sys
from scanner.lab.persona import Persona
from scanner.lab.responders import mdns, ssdp
from scanner.lab.responders.base import Context
from scanner.lab.responders.http import serve

async def main() -> None:
    persona = Persona.model_validate_json(sys.argv[1])
    ctx = Context(persona=persona, ip=sys.argv[2], iface=sys.argv[3])
    ssdp.register(ctx)
    server = await serve(ctx, persona.services.http)
    objects = await mdns.start(ctx) + await ssdp.start(ctx)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("READY", len(objects), flush=True)
    await stop.wait()
    for obj in objects:
        await asyncio.to_thread(obj.close) if hasattr(obj, "aclose") else obj.close()
    server.close()

asyncio.run(main())
"""

NOTIFY_LISTENER = """
import json, socket, sys, time
me = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 1900))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton("239.255.255.250") + socket.inet_aton(me))
print("LISTENING", flush=True)
got = []
deadline = time.monotonic() + float(sys.argv[2])
while (left := deadline - time.monotonic()) > 0 and len(got) < 4:
    s.settimeout(left)
    try:
        data, addr = s.recvfrom(65535)
    except TimeoutError:
        break
    if data.startswith(b"NOTIFY"):
        got.append([addr[0], data.decode("utf-8", "replace")])
s.close()
print(json.dumps(got), flush=True)
"""

CLIENT = """
import json, socket, struct, sys, threading, time, urllib.request
from zeroconf import DNSIncoming, IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf

me, target, stype, instance, host = sys.argv[1:6]
out = {}

# 1. browse with python-zeroconf pinned to this namespace's address
zc = Zeroconf(interfaces=[me], ip_version=IPVersion.V4Only)
found = threading.Event()
names = []
def on_change(zeroconf, service_type, name, state_change):
    if state_change is ServiceStateChange.Added:
        names.append(name)
        if name == instance:
            found.set()
browser = ServiceBrowser(zc, stype, handlers=[on_change])
found.wait(8)
out["browsed"] = names
info = zc.get_service_info(stype, instance, timeout=3000)
if info is not None:
    out["info"] = {
        "server": info.server, "port": info.port, "addresses": info.parsed_addresses(),
        "txt": {k.decode(): (v or b"").decode() for k, v in info.properties.items()},
    }
browser.cancel()
zc.close()

# 2. a legacy unicast DNS-SD query (source port != 5353) straight to the target's port 5353
def qname(name):
    return b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\\0"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((me, 0))
s.sendto(b"\\xff" * 3, (target, 5353))  # garbage first
query = struct.pack("!6H", 0x4242, 0, 2, 0, 0, 0) + qname(stype) + struct.pack("!2H", 12, 1)
query += qname(host) + struct.pack("!2H", 1, 1)
s.sendto(query, (target, 5353))
s.settimeout(3)
data, addr = s.recvfrom(65535)
msg = DNSIncoming(data)
out["unicast"] = {
    "from": list(addr), "id": msg.id, "is_response": msg.is_response(),
    "questions": [q.name for q in msg.questions],
    "answers": [[r.name, r.type, getattr(r, "alias", None), getattr(r, "address", b"").hex() if r.type == 1 else None]
                for r in msg.answers()],
}
s.close()

# 3. garbage, then a multicast M-SEARCH on this namespace's interface only, TTL 1
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((me, 0))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(me))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for junk in (b"", b"M-SEARCH * HTTP/1.1\\r\\n\\r\\n", bytes(range(256)) * 4):
    s.sendto(junk, ("239.255.255.250", 1900))
    s.sendto(junk, (target, 1900))
s.sendto(b'M-SEARCH * HTTP/1.1\\r\\nHOST: 239.255.255.250:1900\\r\\nMAN: "ssdp:discover"\\r\\nMX: 1\\r\\n'
         b'ST: upnp:rootdevice\\r\\n\\r\\n', ("239.255.255.250", 1900))
answers = []
deadline = time.monotonic() + 2
while (left := deadline - time.monotonic()) > 0:
    s.settimeout(left)
    try:
        data, addr = s.recvfrom(65535)
    except TimeoutError:
        break
    answers.append([addr[0], data.decode("utf-8", "replace")])
s.close()
out["msearch"] = answers
for line in answers[0][1].split("\\r\\n") if answers else []:
    if line.upper().startswith("LOCATION:"):
        url = line.split(":", 1)[1].strip()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=5) as resp:
            out["description"] = resp.read(1 << 20).decode()
print(json.dumps(out), flush=True)
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _ns_python(ns: str, script: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, PYTHON, "-c", script, *args]


@pytest.fixture(scope="module")
def namespaces() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("netns mode needs root and iproute2")
    pid = os.getpid()
    ns_a, ns_b = f"cs-mdns-{pid}-a", f"cs-mdns-{pid}-b"
    try:
        for ns in (ns_a, ns_b):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns_a, "link", "add", "lab0", "type", "veth", "peer", "name", "lab0", "netns", ns_b)
        for ns, ip in ((ns_a, NS_RESPONDER_IP), (ns_b, NS_CLIENT_IP)):
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", "lab0")
            _ip("-n", ns, "link", "set", "lab0", "up")
        yield ns_a, ns_b
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def test_netns_mdns_and_multicast_ssdp(namespaces: tuple[str, str]) -> None:
    ns_a, ns_b = namespaces
    persona = make_persona(80)
    rec = persona.services.mdns[0]
    instance = f"{rec.name}.{rec.type}"
    procs: list[subprocess.Popen[str]] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        listener = subprocess.Popen(
            _ns_python(ns_b, NOTIFY_LISTENER, NS_CLIENT_IP, "10"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env,
        )  # fmt: skip
        procs.append(listener)
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "LISTENING"

        responder = subprocess.Popen(
            _ns_python(ns_a, RESPONDER, persona.model_dump_json(), NS_RESPONDER_IP, "lab0"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env, cwd=ROOT,
        )  # fmt: skip
        procs.append(responder)
        assert responder.stdout is not None
        ready = responder.stdout.readline().strip()
        assert ready == "READY 2", responder.stderr.read() if responder.stderr and not ready else ready

        notify_out, notify_err = listener.communicate(timeout=15)
        notifies = json.loads(notify_out.strip().splitlines()[-1])
        assert notifies, notify_err
        sender, text = notifies[0]
        assert sender == NS_RESPONDER_IP
        assert text.startswith("NOTIFY * HTTP/1.1\r\n")
        n = dict(parse_response(text.encode())[1])
        assert n["NTS"] == "ssdp:alive"
        assert n["HOST"] == "239.255.255.250:1900"
        assert n["LOCATION"] == f"http://{NS_RESPONDER_IP}:80/rootdesc1.xml"
        assert {dict(parse_response(t.encode())[1])["NT"] for _, t in notifies} >= {"upnp:rootdevice"}

        result = subprocess.run(
            _ns_python(ns_b, CLIENT, NS_CLIENT_IP, NS_RESPONDER_IP, rec.type, instance, "axis-00408c000219.local."),
            capture_output=True, text=True, timeout=40, env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout.strip().splitlines()[-1])

        # browsing with zeroconf found the instance, its TXT, its host name and address
        assert instance in out["browsed"]
        info = out["info"]
        assert info["txt"] == {"macaddress": "00408C000219", "model": "M1065-LW"}
        assert info["server"] == "axis-00408c000219.local."
        assert info["addresses"] == [NS_RESPONDER_IP]
        assert info["port"] == 80

        # the legacy unicast query got a unicast reply from 5353, with our id and question echoed
        uni = out["unicast"]
        assert uni["from"] == [NS_RESPONDER_IP, 5353]
        assert uni["id"] == 0x4242
        assert uni["is_response"]
        assert rec.type in uni["questions"]
        answers = {(a[0], a[1]) for a in uni["answers"]}
        assert (rec.type, 12) in answers
        assert any(a[1] == 12 and a[2] == instance for a in uni["answers"])
        assert ["axis-00408c000219.local.", 1, None, socket.inet_aton(NS_RESPONDER_IP).hex()] in uni["answers"]

        # the multicast M-SEARCH got exactly one unicast answer, whose description parses
        assert len(out["msearch"]) == 1
        sender, text = out["msearch"][0]
        assert sender == NS_RESPONDER_IP
        h = dict(parse_response(text.encode())[1])
        assert h["ST"] == "upnp:rootdevice"
        assert h["LOCATION"] == f"http://{NS_RESPONDER_IP}:80/rootdesc1.xml"
        root = ElementTree.fromstring(out["description"].encode())
        device = root.find(f"{UPNP_NS}device")
        assert device is not None
        assert device.findtext(f"{UPNP_NS}friendlyName") == FRIENDLY
        assert device.findtext(f"{UPNP_NS}modelName") == "AXIS M1065-LW"

        # after the garbage, the responder is still alive; on SIGTERM it closes cleanly (goodbyes sent)
        assert responder.poll() is None
        stop_process(responder)
        assert responder.returncode == 0
    finally:
        for proc in procs:
            stop_process(proc)
