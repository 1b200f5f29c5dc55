"""The lab's WS-Discovery and ONVIF responders, over real sockets.

Loopback: the responders run in a thread of this process on 127.77.0.x (unicast only); a plain UDP socket
probes them and onvif-zeep-async talks to the device service. Netns (root): two namespaces joined by a veth
pair (10.77.250.0/24), the responder in one, the "scanner" in the other: the Hello and a multicast Probe cross
the veth. Nothing is sent anywhere but loopback and namespaces created here.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import hashlib
import http.client
import os
import shutil
import socket
import struct
import subprocess
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import defusedxml
import defusedxml.ElementTree as SafeET
import pytest

from scanner.lab.persona import Persona
from scanner.lab.responders import http as lab_http
from scanner.lab.responders import onvif, wsd
from scanner.lab.responders.base import Context

T = TypeVar("T")

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
GROUP = "239.255.255.250"
PORT_OFFSET = 18000  # HTTP 80 -> 18080 on the persona's own 127.77.0.x address
USER, PASSWORD = "admin", "lab-Secret-42"


def make_persona(n: int, *, hostile: bool = False, manufacturer: str = "HIKVISION") -> Persona:
    return Persona.model_validate(
        {
            "id": f"test-wsd-{n}",
            "name": "Test camera",
            "sources": ["tests/lab/test_wsd_onvif.py"],
            "mac": f"44:19:b6:77:00:{n:02x}",
            "ip": f"10.77.0.{n}",
            "credentials": [USER, PASSWORD],
            "expect": {"manufacturer": "Hikvision"},
            "services": {
                "http": {"port": 80, "server": "App-webs/"},
                "onvif": {
                    "manufacturer": manufacturer,
                    "model": "DS-2CD2143G0-I",
                    "firmware": "V5.5.0 build 170725",
                    "serial": "DS-2CD2143G0-I20170725AAWR123456789",
                    "hardware_id": "88",
                    "scopes": ["onvif://www.onvif.org/hardware/DS-2CD2143G0-I"],
                },
                "wsd": {
                    "scopes": [
                        "onvif://www.onvif.org/type/video_encoder",
                        "onvif://www.onvif.org/Profile/Streaming",
                        "onvif://www.onvif.org/hardware/DS-2CD2143G0-I",
                        "onvif://www.onvif.org/name/HIKVISION%20DS-2CD2143G0-I",
                        "onvif://www.onvif.org/location/city/hangzhou",
                    ]
                },
            },
            "hostile": {"oversize_wsd": hostile, "entity_bomb": hostile},
        }
    )


# ---------------------------------------------------------------------------------------------- helpers

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def enter_netns(name: str) -> None:
    """Move the calling thread (only) into a named network namespace."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    finally:
        os.close(fd)


def in_netns(name: str, fn: Callable[[], T]) -> T:
    """Run fn in a short-lived thread inside the namespace; sockets it creates stay in that namespace."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            enter_netns(name)
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join(10)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


class Lab(threading.Thread):
    """The persona's HTTP (+ONVIF) and WS-Discovery responders on an event loop in a thread of their own."""

    def __init__(self, ctx: Context, netns: str | None = None) -> None:
        super().__init__(daemon=True)
        self.ctx, self.netns = ctx, netns
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            if self.netns:
                enter_netns(self.netns)
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
        finally:
            self.ready.set()

    async def _main(self) -> None:
        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        onvif.register(self.ctx)
        assert self.ctx.persona.services.http is not None
        server = await lab_http.serve(self.ctx, self.ctx.persona.services.http)
        closers = await wsd.start(self.ctx)
        self.ready.set()
        try:
            await self.stopping.wait()
        finally:
            for c in closers:
                c.close()  # type: ignore[attr-defined]
            server.close()
            await server.wait_closed()

    def __enter__(self) -> Lab:
        self.start()
        assert self.ready.wait(10), "lab did not start"
        if self.error:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loop is not None and self.stopping is not None:
            self.loop.call_soon_threadsafe(self.stopping.set)
        self.join(10)
        assert not self.is_alive(), "lab did not stop"
        assert self.error is None, self.error


def probe_message(message_id: str, types: str | None = "tdn:NetworkVideoTransmitter", scopes: str = "") -> bytes:
    """A Probe written with other prefixes than the responder's (matching must be by local name)."""
    types_el = f"<w:Types>{types}</w:Types>" if types is not None else ""
    scopes_el = f"<w:Scopes>{scopes}</w:Scopes>" if scopes else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP}" xmlns:a="{WSA}" xmlns:w="{WSD}" '
        'xmlns:tdn="http://www.onvif.org/ver10/network/wsdl">'
        f"<s:Header><a:MessageID>{message_id}</a:MessageID>"
        "<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>"
        f"<a:Action>{WSD}/Probe</a:Action></s:Header>"
        f"<s:Body><w:Probe>{types_el}{scopes_el}</w:Probe></s:Body></s:Envelope>"
    ).encode()


def new_id() -> str:
    return f"uuid:{uuid.uuid4()}"


def udp_client(bind_ip: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bind_ip, 0))
    sock.settimeout(2)
    return sock


def receive(sock: socket.socket, timeout: float = 2.0) -> tuple[bytes, tuple[str, int]] | None:
    sock.settimeout(timeout)
    try:
        data, addr = sock.recvfrom(70000)
    except TimeoutError:
        return None
    return data, addr


def parse_match(data: bytes) -> dict[str, Any]:
    root = SafeET.fromstring(data, forbid_dtd=True)
    header, body = root.find(f"{{{SOAP}}}Header"), root.find(f"{{{SOAP}}}Body")
    assert header is not None and body is not None
    match = body.find(f"{{{WSD}}}ProbeMatches/{{{WSD}}}ProbeMatch")
    if match is None:
        match = body.find(f"{{{WSD}}}Hello")
    assert match is not None
    return {
        "message_id": header.findtext(f"{{{WSA}}}MessageID"),
        "relates_to": header.findtext(f"{{{WSA}}}RelatesTo"),
        "action": header.findtext(f"{{{WSA}}}Action"),
        "address": match.findtext(f"{{{WSA}}}EndpointReference/{{{WSA}}}Address"),
        "types": (match.findtext(f"{{{WSD}}}Types") or "").split(),
        "scopes": (match.findtext(f"{{{WSD}}}Scopes") or "").split(),
        "xaddrs": (match.findtext(f"{{{WSD}}}XAddrs") or "").split(),
        "metadata_version": match.findtext(f"{{{WSD}}}MetadataVersion"),
    }


def loopback_ctx(persona: Persona) -> Context:
    return Context(persona, persona.loopback_ip(), None, port_offset=PORT_OFFSET)


# ---------------------------------------------------------------------------------------------- pure parts


def test_parse_probe_matches_by_local_name() -> None:
    probe = wsd.parse_probe(probe_message("uuid:1", "foo:NetworkVideoTransmitter bar:Device"))
    assert probe is not None and probe.message_id == "uuid:1"
    assert probe.types == ["NetworkVideoTransmitter", "Device"]
    assert wsd.probe_matches(probe, ["dn:NetworkVideoTransmitter", "tds:Device"], [])
    assert not wsd.probe_matches(probe, ["dn:NetworkVideoTransmitter"], [])
    scoped = wsd.parse_probe(probe_message("uuid:2", None, "onvif://www.onvif.org/location"))
    assert scoped is not None
    assert wsd.probe_matches(scoped, [], ["onvif://www.onvif.org/location/city/hangzhou"])
    assert not wsd.probe_matches(scoped, [], ["onvif://www.onvif.org/locationx/a"])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\xff" * 100,
        b"<not-closed",
        b"<a>" * 50_000,
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
        probe_message("uuid:x").replace(SOAP.encode(), b"http://schemas.xmlsoap.org/soap/envelope/"),
        probe_message("uuid:<&>").replace(b"<&>", b"&lt;&amp;&gt;"),
        probe_message("uuid:" + "x" * 300),
        probe_message("uuid:y").replace(b"/Probe<", b"/Resolve<"),
    ],
)
def test_parse_probe_refuses_garbage(data: bytes) -> None:
    assert wsd.parse_probe(data) is None


def test_endpoint_uuid_is_stable_and_overridable() -> None:
    a, b = make_persona(213), make_persona(213)
    assert wsd.endpoint_uuid(a) == wsd.endpoint_uuid(b)
    assert wsd.endpoint_uuid(a) != wsd.endpoint_uuid(make_persona(214))
    uuid.UUID(wsd.endpoint_uuid(a))
    assert wsd.endpoint_uuid(a).endswith("4419b67700d5")  # gSOAP firmware ends the uuid in the MAC
    c = make_persona(213)
    assert c.services.wsd is not None
    c.services.wsd.endpoint_uuid = "urn:uuid:11111111-2222-3333-4444-555555555555"
    assert wsd.endpoint_uuid(c) == "11111111-2222-3333-4444-555555555555"


# ---------------------------------------------------------------------------------------------- loopback


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(loopback_ctx(make_persona(213))) as running:
        yield running


def test_unicast_probe_gets_probe_match(lab: Lab) -> None:
    persona, ip = lab.ctx.persona, lab.ctx.ip
    with udp_client("127.0.0.1") as sock:
        mid = new_id()
        sock.sendto(probe_message(mid), (ip, 3702))
        got = receive(sock)
        assert got is not None, "no ProbeMatch"
        data, addr = got
        assert addr == (ip, 3702)
        assert b"<env:Envelope" in data and b"wsadis:RelatesTo" in data  # Hikvision's gSOAP prefixes
        m = parse_match(data)
        assert m["relates_to"] == mid
        assert m["message_id"].startswith("urn:uuid:") and m["message_id"] != mid
        assert m["action"] == f"{WSD}/ProbeMatches"
        assert m["address"] == "urn:uuid:" + wsd.endpoint_uuid(persona)
        assert m["types"] == ["dn:NetworkVideoTransmitter", "tds:Device"]
        assert persona.services.wsd is not None
        assert m["scopes"] == persona.services.wsd.scopes
        assert m["xaddrs"] == [f"http://{ip}:{80 + PORT_OFFSET}/onvif/device_service"]
        assert m["metadata_version"] == "10"

        # a second probe: fresh MessageID, same endpoint; empty Types match too
        mid2 = new_id()
        sock.sendto(probe_message(mid2, types=None), (ip, 3702))
        got = receive(sock)
        assert got is not None
        m2 = parse_match(got[0])
        assert m2["relates_to"] == mid2 and m2["message_id"] != m["message_id"]
        assert m2["address"] == m["address"]

        # a repeated probe (same MessageID, as clients retransmit) is answered once
        sock.sendto(probe_message(mid2, types=None), (ip, 3702))
        assert receive(sock, 0.3) is None

        # types the persona lacks, or a scope it lacks: no answer
        sock.sendto(probe_message(new_id(), "dn:NetworkVideoDisplay"), (ip, 3702))
        sock.sendto(probe_message(new_id(), None, "onvif://www.onvif.org/name/AXIS"), (ip, 3702))
        assert receive(sock, 0.3) is None

        # a scope it has (RFC 3986 prefix) and both types: answered
        mid3 = new_id()
        sock.sendto(
            probe_message(mid3, "dn:NetworkVideoTransmitter tds:Device", "onvif://www.onvif.org/hardware"), (ip, 3702)
        )
        got = receive(sock)
        assert got is not None and parse_match(got[0])["relates_to"] == mid3


def test_garbage_datagrams_do_not_kill_the_responder(lab: Lab) -> None:
    ip = lab.ctx.ip
    junk = [
        b"",
        os.urandom(1400),
        b"\xff" * 65000,  # as large as loopback carries
        b"<" * 60000,
        b'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY a "a"><!ENTITY b "&a;&a;&a;&a;">]><s:Envelope/>',
        probe_message(new_id())[:120],
        probe_message(new_id()).replace(b"s:Body", b"s:Bod"),
        "<é>\udcff".encode("utf-8", "surrogatepass"),
    ]
    with udp_client("127.0.0.1") as sock:
        for data in junk:
            sock.sendto(data, (ip, 3702))
        assert receive(sock, 0.3) is None
        mid = new_id()
        sock.sendto(probe_message(mid), (ip, 3702))
        got = receive(sock)
        assert got is not None and parse_match(got[0])["relates_to"] == mid
    assert lab.is_alive()


async def _call(coro: Any) -> Any:
    return await asyncio.wait_for(coro, 5)


def test_onvif_with_onvif_zeep_async(lab: Lab) -> None:
    import zeep.exceptions
    from onvif import ONVIFCamera

    o = lab.ctx.persona.services.onvif
    assert o is not None
    ip, port = lab.ctx.ip, 80 + PORT_OFFSET

    async def scenario() -> None:
        cam = ONVIFCamera(ip, port, USER, PASSWORD, no_cache=True)
        try:
            await _call(cam.update_xaddrs())  # GetServices, before authentication
            assert cam.xaddrs["http://www.onvif.org/ver10/device/wsdl"] == f"http://{ip}:{port}/onvif/device_service"
            mgmt = await cam.create_devicemgmt_service()
            now = await _call(mgmt.GetSystemDateAndTime())
            utc = now.UTCDateTime
            device_time = datetime(
                utc.Date.Year, utc.Date.Month, utc.Date.Day, utc.Time.Hour, utc.Time.Minute, utc.Time.Second, tzinfo=UTC
            )
            assert abs(device_time - datetime.now(UTC)) < timedelta(seconds=5)
            caps = await _call(mgmt.GetCapabilities({"Category": "All"}))
            assert caps.Device.XAddr == f"http://{ip}:{port}/onvif/device_service"
            info = await _call(mgmt.GetDeviceInformation())
            assert (info.Manufacturer, info.Model, info.FirmwareVersion, info.SerialNumber, info.HardwareId) == (
                o.manufacturer,
                o.model,
                o.firmware,
                o.serial,
                o.hardware_id,
            )
            scopes = await _call(mgmt.GetScopes())
            assert [s.ScopeItem for s in scopes] == o.scopes
        finally:
            await cam.close()

        bad = ONVIFCamera(ip, port, USER, "wrong-password", no_cache=True)
        try:
            mgmt = await bad.create_devicemgmt_service()
            await _call(mgmt.GetSystemDateAndTime())  # needs no authentication
            with pytest.raises(zeep.exceptions.Fault) as fault:
                await _call(mgmt.GetDeviceInformation())
            assert fault.value.message == "Sender not Authorized"
            assert [q.localname for q in fault.value.subcodes or []] == ["NotAuthorized"]
        finally:
            await bad.close()

    asyncio.run(scenario())


def _security(username: str, password: str, *, nonce: bytes, created: str, digest: bool = True) -> str:
    if digest:
        value = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
        kind = "PasswordDigest"
    else:
        value, kind = password, "PasswordText"
    return (
        '<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"'
        ' xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">'
        f"<wsse:UsernameToken><wsse:Username>{username}</wsse:Username>"
        '<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0'
        f'#{kind}">{value}</wsse:Password>'
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce><wsu:Created>{created}</wsu:Created>"
        "</wsse:UsernameToken></wsse:Security>"
    )


def soap_request(operation: str, security: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{SOAP}">'
        f"<s:Header>{security}</s:Header><s:Body>"
        f'<{operation} xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>'
    ).encode()


def post(ip: str, body: bytes, method: str = "POST") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(ip, 80 + PORT_OFFSET, timeout=5)
    try:
        conn.request(method, "/onvif/device_service", body=body, headers={"Content-Type": "application/soap+xml"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def stamp(delta: timedelta = timedelta(0)) -> str:
    return (datetime.now(UTC) + delta).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_ws_security_rules(lab: Lab) -> None:
    ip = lab.ctx.ip

    def refused(status: int, body: bytes) -> bool:
        return status == 400 and b"ter:NotAuthorized" in body and b"Sender not Authorized" in body

    nonce = os.urandom(16)
    good = _security(USER, PASSWORD, nonce=nonce, created=stamp())
    status, body = post(ip, soap_request("GetDeviceInformation", good))
    assert status == 200 and b"<tds:SerialNumber>DS-2CD2143G0-I" in body
    assert refused(*post(ip, soap_request("GetDeviceInformation", good))), "a reused nonce must be refused"
    skewed = _security(USER, PASSWORD, nonce=os.urandom(16), created=stamp(timedelta(minutes=4)))
    assert post(ip, soap_request("GetScopes", skewed))[0] == 200, "4 minutes of skew are allowed"
    for security in (
        "",
        _security(USER, PASSWORD, nonce=os.urandom(16), created=stamp(timedelta(minutes=-6))),
        _security(USER, PASSWORD, nonce=os.urandom(16), created=stamp(timedelta(minutes=6))),
        _security(USER, "wrong", nonce=os.urandom(16), created=stamp()),
        _security("operator", PASSWORD, nonce=os.urandom(16), created=stamp()),
        _security(USER, PASSWORD, nonce=os.urandom(16), created=stamp(), digest=False),
        _security(USER, PASSWORD, nonce=os.urandom(16), created="not-a-date"),
    ):
        assert refused(*post(ip, soap_request("GetDeviceInformation", security)))
    # unauthenticated operations, unknown ones, and garbage
    assert post(ip, soap_request("GetSystemDateAndTime"))[0] == 200
    status, body = post(ip, soap_request("SystemReboot"))
    assert status == 500 and b"ter:ActionNotSupported" in body
    assert post(ip, b"", "GET")[0] == 405
    for junk in (b"", b"<<<", os.urandom(3000), b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'):
        status, body = post(ip, junk)
        assert status == 400 and b"ter:WellFormed" in body
        SafeET.fromstring(body, forbid_dtd=True)  # a normal persona's answers are plain XML


def test_hostile_persona() -> None:
    import zeep.exceptions
    from onvif import ONVIFCamera

    with Lab(loopback_ctx(make_persona(214, hostile=True))) as lab, udp_client("127.0.0.1") as sock:
        ip = lab.ctx.ip
        mid = new_id()
        sock.sendto(probe_message(mid), (ip, 3702))
        answers = []
        while (got := receive(sock, 1.0)) is not None:
            answers.append(got[0])
        assert len(answers) == 3
        normal, big, broken = answers
        assert parse_match(normal)["relates_to"] == mid
        assert len(big) > 60_000
        assert len(parse_match(big)["scopes"]) > 1000
        with pytest.raises(ET.ParseError):
            SafeET.fromstring(broken)

        status, body = post(ip, soap_request("GetSystemDateAndTime"))
        assert status == 200 and b"<!DOCTYPE" in body and b"&lol9;" in body
        with pytest.raises(defusedxml.DefusedXmlException):
            SafeET.fromstring(body)

        async def zeep_refuses() -> None:
            cam = ONVIFCamera(ip, 80 + PORT_OFFSET, USER, PASSWORD, no_cache=True)
            try:
                mgmt = await cam.create_devicemgmt_service()
                with pytest.raises((zeep.exceptions.EntitiesForbidden, zeep.exceptions.DTDForbidden)):
                    await _call(mgmt.GetSystemDateAndTime())
            finally:
                await cam.close()

        asyncio.run(zeep_refuses())


def test_axis_style() -> None:
    persona = make_persona(215, manufacturer="AXIS")
    with Lab(loopback_ctx(persona)) as lab, udp_client("127.0.0.1") as sock:
        mid = new_id()
        sock.sendto(probe_message(mid), (lab.ctx.ip, 3702))
        got = receive(sock)
        assert got is not None
        assert b"<SOAP-ENV:Envelope" in got[0] and b'SOAP-ENV:mustUnderstand="true"' in got[0]
        m = parse_match(got[0])
        assert m["relates_to"] == mid and m["message_id"].startswith("uuid:") and m["metadata_version"] == "1"


# ---------------------------------------------------------------------------------------------- netns

NS_IP_RESPONDER, NS_IP_SCANNER = "10.77.250.11", "10.77.250.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def netns_pair() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    responder, scanner = f"cswsd-{os.getpid()}-r", f"cswsd-{os.getpid()}-s"
    try:
        for ns in (responder, scanner):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", responder, "link", "add", "lab0", "type", "veth", "peer", "name", "lab1", "netns", scanner)
        _ip("-n", responder, "addr", "add", f"{NS_IP_RESPONDER}/24", "dev", "lab0")
        _ip("-n", scanner, "addr", "add", f"{NS_IP_SCANNER}/24", "dev", "lab1")
        _ip("-n", responder, "link", "set", "lab0", "up")
        _ip("-n", scanner, "link", "set", "lab1", "up")
        yield responder, scanner
    finally:
        for ns in (responder, scanner):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10, check=False)


def _group_listener() -> socket.socket:
    """The scanner side's socket on the WS-Discovery group (to hear the Hello), on its lab interface only."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", 3702))
    mreq = socket.inet_aton(GROUP) + socket.inet_aton(NS_IP_SCANNER)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    return sock


def _multicast_sender() -> socket.socket:
    sock = udp_client(NS_IP_SCANNER)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(NS_IP_SCANNER))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, struct.pack("b", 1))
    return sock


def test_netns_multicast_probe_and_hello(netns_pair: tuple[str, str]) -> None:
    responder_ns, scanner_ns = netns_pair
    persona = make_persona(216)
    ctx = Context(persona, NS_IP_RESPONDER, "lab0")
    assert persona.services.wsd is not None
    listener = in_netns(scanner_ns, _group_listener)
    sender = in_netns(scanner_ns, _multicast_sender)
    with listener, sender, Lab(ctx, netns=responder_ns) as lab:
        got = receive(listener)
        assert got is not None, "no Hello"
        hello, addr = got
        assert addr == (NS_IP_RESPONDER, 3702)
        h = parse_match(hello)
        assert h["action"] == f"{WSD}/Hello" and h["relates_to"] is None
        assert h["address"] == "urn:uuid:" + wsd.endpoint_uuid(persona)
        assert h["xaddrs"] == [f"http://{NS_IP_RESPONDER}/onvif/device_service"]

        # garbage to the group first: the responder must survive it
        for junk in (os.urandom(1200), b"<" * 30000, b"\x00"):
            sender.sendto(junk, (GROUP, 3702))
        mid = new_id()
        sender.sendto(probe_message(mid, "dn:NetworkVideoTransmitter"), (GROUP, 3702))
        got = receive(sender)
        assert got is not None, "no ProbeMatch to the multicast Probe"
        data, addr = got
        assert addr == (NS_IP_RESPONDER, 3702)
        m = parse_match(data)
        assert m["relates_to"] == mid and m["scopes"] == persona.services.wsd.scopes
        assert m["xaddrs"] == h["xaddrs"]

        # routed networks probe by unicast: the same socket answers
        mid = new_id()
        sender.sendto(probe_message(mid), (NS_IP_RESPONDER, 3702))
        got = receive(sender)
        assert got is not None and parse_match(got[0])["relates_to"] == mid
        assert lab.is_alive()
