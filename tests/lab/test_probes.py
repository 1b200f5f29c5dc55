"""The per-host probes (HTTP, TLS, RTSP, ONVIF, banners) against the lab's responders on real loopback sockets.

Each test starts the responders it needs in-process on an unusual 127.77.0.x address (ports from the kernel),
runs the probe in the same event loop, and closes everything. Also: a hostile persona (a 200 kB Server header,
answers trickled over many seconds, an XML entity bomb in every ONVIF answer), a silent service, a closed port,
and an address outside the scope, which must not be contacted at all.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from scanner.lab.persona import PERSONA_DIR, Persona, load_persona
from scanner.lab.responders.base import Context
from scanner.lab.serve import close_all, start_services
from scanner.model import BODY_CAP, VALUE_CAP, Evidence
from scanner.netctx import Credentials, ScanContext
from scanner.probes import banner, http, onvif, rtsp, tls
from scanner.scope import RateLimiter, Scope, parse_targets

CAM_IP = "127.77.0.223"  # unusual addresses, so parallel lab tests do not share them
HOSTILE_IP = "127.77.0.224"
OUTSIDE_IP = "127.77.0.225"  # never in a scope here
FAVICON = b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00" + bytes(range(256)) * 2
LAB_CREDENTIALS = ("admin", "camscan-lab")
DAHUA_REALM = "Login to 4L0263APAZ3A5F1"


def free_port(ip: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


def scan_context(*ips: str, timeout: float = 1.0) -> ScanContext:
    scope = Scope(targets=parse_targets(list(ips)), specs=list(ips))
    return ScanContext(scope=scope, rate=RateLimiter(1000), timeout=timeout)


def pairs(items: list[Evidence]) -> list[tuple[str, str]]:
    return [(e.key, e.value) for e in items]


def camera(ip: str, ports: dict[str, int], hostile: dict[str, Any] | None = None, server: str = "App-webs/") -> Persona:
    return Persona.model_validate(
        {
            "id": "test-probes",
            "name": "Test camera for the probes",
            "sources": ["tests/lab/test_probes.py"],
            "mac": "58:50:ed:00:02:23",
            "ip": "10.77.0." + ip.rsplit(".", 1)[1],
            "credentials": list(LAB_CREDENTIALS),
            "expect": {"manufacturer": "Hikvision"},
            "hostile": hostile or {},
            "services": {
                "http": {
                    "port": ports["http"],
                    "server": server,
                    "routes": {
                        "/": {"status": 302, "headers": [["Location", "/doc/page/login.asp"]]},
                        "/doc/page/login.asp": {
                            "body": "<html><head><title>\n  Network &amp; Camera </title></head><body>login</body>"
                        },
                        "/favicon.ico": {
                            "body_base64": base64.b64encode(FAVICON).decode(),
                            "content_type": "image/x-icon",
                        },
                    },
                },
                "https": {
                    "port": ports["https"],
                    "tls": True,
                    "server": "Webs",
                    "certificate": {"subject": "CN=IPC,O=HIKVISION,C=CN", "issuer": "CN=Lab CA,O=camscan"},
                    "auth": {"scheme": "digest", "realm": DAHUA_REALM},
                    "routes": {"/": {"status": 401, "body": "Unauthorized"}},
                },
                "rtsp": {
                    "port": ports["rtsp"],
                    "server": "Rtsp Server/3.0",
                    "auth": {"scheme": "digest", "realm": DAHUA_REALM},
                },
                "onvif": {
                    "http": "http",
                    "manufacturer": "HIKVISION",
                    "model": "DS-2CD2085G1-I",
                    "firmware": "V5.6.5 build 200316",
                    "serial": "DS-2CD2085G1-I20200414AAWRE33853311",
                    "hardware_id": "88",
                },
                "tcp": [
                    {"port": ports["ssh"], "banner": "SSH-2.0-dropbear_2014.63"},
                    {"port": ports["ftp"], "banner": "220 (vsFTPd 3.0.3)"},
                    {"port": ports["silent"], "banner": None},
                ],
            },
        }
    )


def lab_ports(ip: str) -> dict[str, int]:
    """Six distinct free ports (all held open while choosing, so the kernel cannot hand one out twice)."""
    names = ("http", "https", "rtsp", "ssh", "ftp", "silent")
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in names]
    try:
        for s in socks:
            s.bind((ip, 0))
        return {name: int(s.getsockname()[1]) for name, s in zip(names, socks, strict=True)}
    finally:
        for s in socks:
            s.close()


@asynccontextmanager
async def lab(persona: Persona, ip: str, runtime: Path) -> AsyncIterator[Context]:
    """Every service the persona enables, on `ip`, started and closed exactly as scanner/lab/serve.py does."""
    ctx = Context(persona=persona, ip=ip, iface=None, runtime_dir=runtime)
    closers = await start_services(ctx)
    try:
        yield ctx
    finally:
        await close_all(closers)
        await asyncio.sleep(0.05)  # let the transports' connection_lost close their sockets


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        # A trickling lab handler still writing when the loop ends is cancelled; Python 3.11's streams then log
        # its CancelledError from a callback. That is the responder's end, not the probe's: keep the log clean.
        loop = asyncio.get_running_loop()

        def quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if not isinstance(context.get("exception"), asyncio.CancelledError):
                loop.default_exception_handler(context)

        loop.set_exception_handler(quiet)
        return await coro

    return asyncio.run(main())


# --------------------------------------------------------------------------------------------- HTTP, TLS


def test_http_follows_same_host_redirect_and_hashes_favicon(tmp_path: Path) -> None:
    ports = lab_ports(CAM_IP)

    async def main() -> tuple[list[Evidence], ScanContext]:
        async with lab(camera(CAM_IP, ports), CAM_IP, tmp_path):
            ctx = scan_context(CAM_IP)
            return await http.probe(ctx, CAM_IP, ports["http"]), ctx

    ev, ctx = run(main())
    got = pairs(ev)
    assert ("http.server", "App-webs/") in got
    assert ("http.redirect", "/doc/page/login.asp") in got
    assert ("http.title", "Network & Camera") in got  # from the redirect's target
    assert any(k == "http.body" and "login" in v for k, v in got)
    assert ("http.favicon.mmh3", http.favicon_hash(FAVICON)) in got
    assert len(got) == len(set(got))  # the same server header twice is one piece of evidence
    assert ctx.errors == []


def test_https_challenge_and_certificate(tmp_path: Path) -> None:
    ports = lab_ports(CAM_IP)

    async def main() -> tuple[list[Evidence], list[Evidence], ScanContext]:
        async with lab(camera(CAM_IP, ports), CAM_IP, tmp_path):
            ctx = scan_context(CAM_IP)
            return (
                await http.probe(ctx, CAM_IP, ports["https"], tls=True),
                await tls.probe(ctx, CAM_IP, ports["https"]),
                ctx,
            )

    web, cert, ctx = run(main())
    got = pairs(web)
    assert ("http.server", "Webs") in got
    (challenge,) = [v for k, v in got if k == "http.www_authenticate"]
    assert challenge.startswith(f'Digest realm="{DAHUA_REALM}", qop="auth", nonce="')
    assert not any(k == "http.favicon.mmh3" for k, _ in got)  # the 404 page is not a favicon
    assert pairs(cert) == [("tls.subject", "CN=IPC,O=HIKVISION,C=CN"), ("tls.issuer", "CN=Lab CA,O=camscan")]
    assert ctx.errors == []


def test_tls_probe_on_a_plain_http_port_gives_nothing(tmp_path: Path) -> None:
    ports = lab_ports(CAM_IP)

    async def main() -> tuple[list[Evidence], list[Evidence], ScanContext]:
        async with lab(camera(CAM_IP, ports), CAM_IP, tmp_path):
            ctx = scan_context(CAM_IP, timeout=0.3)  # the server waits for a request; the handshake times out
            return (
                await tls.probe(ctx, CAM_IP, ports["http"]),
                await http.probe(ctx, CAM_IP, ports["http"], tls=True),
                ctx,
            )

    cert, web, ctx = run(main())
    assert cert == [] and web == [] and ctx.errors == []


# --------------------------------------------------------------------------------------------- RTSP, banners


def test_rtsp_options_then_describe(tmp_path: Path) -> None:
    ports = lab_ports(CAM_IP)

    async def main() -> tuple[list[bytes], list[Evidence], ScanContext]:
        async with lab(camera(CAM_IP, ports), CAM_IP, tmp_path):
            ctx = scan_context(CAM_IP)
            return await rtsp.exchange(ctx, CAM_IP, ports["rtsp"]), await rtsp.probe(ctx, CAM_IP, ports["rtsp"]), ctx

    answers, ev, ctx = run(main())
    assert [rtsp.parse_rtsp_response(a).status for a in answers] == [200, 401]
    assert [rtsp.parse_rtsp_response(a).header("CSeq") for a in answers] == ["1", "2"]
    got = pairs(ev)
    assert got[0] == ("rtsp.server", "Rtsp Server/3.0")
    assert len(got) == 2 and got[1][0] == "rtsp.www_authenticate"
    assert got[1][1].startswith(f'Digest realm="{DAHUA_REALM}"')
    assert ctx.errors == []


def test_rtsp_without_auth_reads_the_sdp_and_stops(tmp_path: Path) -> None:
    ports = lab_ports(CAM_IP)
    persona = camera(CAM_IP, ports)
    assert persona.services.rtsp is not None
    persona.services.rtsp.auth = None

    async def main() -> tuple[list[bytes], list[Evidence], float]:
        async with lab(persona, CAM_IP, tmp_path):
            ctx = scan_context(CAM_IP)
            t0 = time.monotonic()
            answers = await rtsp.exchange(ctx, CAM_IP, ports["rtsp"])
            return answers, await rtsp.probe(ctx, CAM_IP, ports["rtsp"]), time.monotonic() - t0

    answers, ev, elapsed = run(main())
    describe = rtsp.parse_rtsp_response(answers[1])
    assert describe.status == 200 and describe.body.startswith(b"v=0") and describe.body_complete
    assert pairs(ev) == [("rtsp.server", "Rtsp Server/3.0")]
    assert elapsed < 1.0  # framed by Content-Length: no waiting for a close that does not come


def test_banners(tmp_path: Path) -> None:
    ports = lab_ports(CAM_IP)

    async def main() -> tuple[list[Evidence], list[Evidence], list[Evidence], ScanContext]:
        async with lab(camera(CAM_IP, ports), CAM_IP, tmp_path):
            ctx = scan_context(CAM_IP, timeout=0.5)
            return (
                await banner.probe(ctx, CAM_IP, ports["ssh"], kind="ssh"),
                await banner.probe(ctx, CAM_IP, ports["ftp"], kind="ftp"),
                await banner.probe(ctx, CAM_IP, ports["silent"], kind="ssh"),
                ctx,
            )

    ssh, ftp, silent, ctx = run(main())
    assert pairs(ssh) == [("ssh.banner", "SSH-2.0-dropbear_2014.63")]
    assert pairs(ftp) == [("ftp.banner", "220 (vsFTPd 3.0.3)")]
    assert silent == [] and ctx.errors == []


def test_telnet_negotiation_is_refused_and_the_greeting_read() -> None:
    """A telnetd that asks DO ECHO and DO NAWS and prints its prompt only when they are answered."""
    port = free_port(CAM_IP)
    heard: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"\xff\xfd\x01\xff\xfd\x1f")
            await writer.drain()
            heard.append(await asyncio.wait_for(reader.readexactly(6), timeout=2))
            writer.write(b"\xff\xfb\x01\r\nBusyBox v1.19.3 built-in shell\r\n(none) login: ")
            await writer.drain()
            await asyncio.wait_for(reader.read(100), timeout=2)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> tuple[list[Evidence], float]:
        server = await asyncio.start_server(handle, CAM_IP, port)
        try:
            ctx = scan_context(CAM_IP, timeout=2.0)
            t0 = time.monotonic()
            ev = await banner.probe(ctx, CAM_IP, port, kind="telnet")
            return ev, time.monotonic() - t0
        finally:
            server.close()
            await server.wait_closed()
            await asyncio.sleep(0.05)

    ev, elapsed = run(main())
    assert heard == [b"\xff\xfc\x01\xff\xfc\x1f"]  # WONT ECHO, WONT NAWS
    assert pairs(ev) == [("telnet.banner", "BusyBox v1.19.3 built-in shell\r\n(none) login:")]
    assert elapsed < 1.5  # an idle gap after the prompt ends the read, not the full timeout


def test_a_multi_line_ftp_greeting_is_read_to_its_final_line() -> None:
    """A greeting sent in pieces (a line before the reply code, then the 220 lines) is read whole, and what the
    server sends after its final line is not."""
    port = free_port(CAM_IP)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for piece in (
                b"ftpd - accept the connection from 127.0.0.1\n",
                b"220-eDVR FTP Server v1.1 (c)Copyright WebGate Inc. 2008-2010\r\n220-Welcome to DS1004\r\n",
                b"220 You will be disconnected after 180 seconds of inactivity.\r\n",
            ):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.05)
            writer.write(b"421 Timeout\r\n")
            await writer.drain()
            await asyncio.wait_for(reader.read(100), timeout=2)
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> list[Evidence]:
        server = await asyncio.start_server(handle, CAM_IP, port)
        try:
            return await banner.probe(scan_context(CAM_IP, timeout=2.0), CAM_IP, port, kind="ftp")
        finally:
            server.close()
            await server.wait_closed()
            await asyncio.sleep(0.05)

    assert pairs(run(main())) == [
        ("ftp.banner", "ftpd - accept the connection from 127.0.0.1"),
        (
            "ftp.greeting",
            "ftpd - accept the connection from 127.0.0.1 220-eDVR FTP Server v1.1 (c)Copyright WebGate Inc. 2008-2010 "
            "220-Welcome to DS1004 220 You will be disconnected after 180 seconds of inactivity.",
        ),
    ]


# --------------------------------------------------------------------------------------------- ONVIF


def test_onvif_system_date_and_time(tmp_path: Path) -> None:
    ports = lab_ports(CAM_IP)

    async def main() -> tuple[bool, bool, bool, ScanContext]:
        async with lab(camera(CAM_IP, ports), CAM_IP, tmp_path):
            ctx = scan_context(CAM_IP)
            return (
                await onvif.get_system_date_and_time(ctx, CAM_IP, ports["http"]),
                await onvif.get_system_date_and_time(ctx, CAM_IP, ports["https"]),  # TLS port: no plain answer
                await onvif.get_system_date_and_time(ctx, CAM_IP, ports["rtsp"]),
                ctx,
            )

    on_http, on_https, on_rtsp, ctx = run(main())
    assert on_http is True and on_https is False and on_rtsp is False
    assert ctx.errors == []


def test_onvif_system_date_and_time_without_onvif(tmp_path: Path) -> None:
    ports = lab_ports(CAM_IP)
    persona = camera(CAM_IP, ports)
    persona.services.onvif = None

    async def main() -> bool:
        async with lab(persona, CAM_IP, tmp_path):
            return await onvif.get_system_date_and_time(scan_context(CAM_IP), CAM_IP, ports["http"])

    assert run(main()) is False  # a 404 page is not ONVIF


def test_onvif_device_information(tmp_path: Path) -> None:
    pytest.importorskip("onvif")
    ports = lab_ports(CAM_IP)

    async def main() -> tuple[list[Evidence], list[Evidence], ScanContext]:
        async with lab(camera(CAM_IP, ports), CAM_IP, tmp_path):
            ctx = scan_context(CAM_IP)
            good = await onvif.device_information(ctx, CAM_IP, ports["http"], Credentials(*LAB_CREDENTIALS))
            ok_errors = list(ctx.errors)
            bad = await onvif.device_information(ctx, CAM_IP, ports["http"], Credentials("admin", "Wr0ng-Secret"))
            assert ok_errors == []
            return good, bad, ctx

    good, bad, ctx = run(main())
    assert pairs(good) == [
        ("onvif.manufacturer", "HIKVISION"),
        ("onvif.model", "DS-2CD2085G1-I"),
        ("onvif.firmware", "V5.6.5 build 200316"),
        ("onvif.serial", "DS-2CD2085G1-I20200414AAWRE33853311"),
        ("onvif.hardware_id", "88"),
    ]
    assert bad == []
    assert len(ctx.errors) == 1 and CAM_IP in ctx.errors[0]
    assert "Wr0ng-Secret" not in ctx.errors[0] and "admin" not in ctx.errors[0]


def test_onvif_device_information_without_credentials_or_service(tmp_path: Path) -> None:
    ports = lab_ports(CAM_IP)

    async def main() -> tuple[list[Evidence], list[Evidence], ScanContext]:
        async with lab(camera(CAM_IP, ports), CAM_IP, tmp_path):
            ctx = scan_context(CAM_IP)
            return (
                await onvif.device_information(ctx, CAM_IP, ports["http"], None),
                await onvif.device_information(ctx, CAM_IP, free_port(CAM_IP), Credentials(*LAB_CREDENTIALS)),
                ctx,
            )

    no_creds, closed, ctx = run(main())
    assert no_creds == [] and closed == [] and ctx.errors == []


# --------------------------------------------------------------------------------------------- hostile


def test_hostile_200_kB_server_header(tmp_path: Path) -> None:
    ports = lab_ports(HOSTILE_IP)
    persona = camera(HOSTILE_IP, ports, hostile={"oversize_http_header": True})  # Server: App-webs/AAAA... 200 kB

    async def main() -> tuple[list[Evidence], ScanContext]:
        async with lab(persona, HOSTILE_IP, tmp_path):
            ctx = scan_context(HOSTILE_IP)
            return await http.probe(ctx, HOSTILE_IP, ports["http"]), ctx

    ev, ctx = run(main())
    got = dict(pairs(ev))
    assert got["http.server"] == ("App-webs/" + "A" * VALUE_CAP)[:VALUE_CAP]
    assert got["http.title"] == "Network & Camera"
    assert ctx.errors == []


def test_hostile_trickle_stays_within_the_deadline(tmp_path: Path) -> None:
    ports = lab_ports(HOSTILE_IP)
    persona = camera(HOSTILE_IP, ports, hostile={"trickle_seconds": 30.0, "oversize_http_header": True})
    timeout = 0.5

    async def main() -> tuple[list[Evidence], float, ScanContext]:
        async with lab(persona, HOSTILE_IP, tmp_path):
            ctx = scan_context(HOSTILE_IP, timeout=timeout)
            t0 = time.monotonic()
            ev = await http.probe(ctx, HOSTILE_IP, ports["http"])
            return ev, time.monotonic() - t0, ctx

    ev, elapsed, ctx = run(main())
    assert elapsed < http.DEADLINE_FACTOR * timeout + 0.5
    for e in ev:  # what came is partial, and bounded
        assert e.key.startswith("http.") and len(e.value) <= (BODY_CAP if e.key == "http.body" else VALUE_CAP)
    assert ctx.errors == []


def test_shipped_hostile_persona(tmp_path: Path) -> None:
    """scanner/lab/personas/hostile.yaml as shipped: injection strings, 200 kB header, 2 s trickle, entity bomb."""
    persona = load_persona(PERSONA_DIR / "hostile.yaml")
    web = persona.services.http
    assert web is not None
    web.port = free_port(HOSTILE_IP)
    timeout = 1.0

    async def main() -> tuple[list[Evidence], bool, float, ScanContext]:
        async with lab(persona, HOSTILE_IP, tmp_path):
            ctx = scan_context(HOSTILE_IP, timeout=timeout)
            t0 = time.monotonic()
            ev = await http.probe(ctx, HOSTILE_IP, web.port)
            elapsed = time.monotonic() - t0
            present = await onvif.get_system_date_and_time(ctx, HOSTILE_IP, web.port)
            return ev, present, elapsed, ctx

    ev, present, elapsed, ctx = run(main())
    assert elapsed < http.DEADLINE_FACTOR * timeout + 0.5
    got = dict(pairs(ev))
    assert got["http.server"].startswith("=cmd|' /C calc'!A0AAAA") and len(got["http.server"]) == VALUE_CAP
    assert got["http.title"] == "<script>alert(1)</script>=cmd|' /C calc'!A0"  # verbatim: reports escape it
    assert present is False  # the entity bomb is refused, not expanded
    assert ctx.errors == []


def test_hostile_onvif_entity_bomb_is_not_expanded(tmp_path: Path) -> None:
    pytest.importorskip("onvif")
    ports = lab_ports(HOSTILE_IP)
    persona = camera(HOSTILE_IP, ports, hostile={"entity_bomb": True})

    async def main() -> tuple[bool, list[Evidence], list[Evidence], float, ScanContext]:
        async with lab(persona, HOSTILE_IP, tmp_path):
            ctx = scan_context(HOSTILE_IP)
            t0 = time.monotonic()
            present = await onvif.get_system_date_and_time(ctx, HOSTILE_IP, ports["http"])
            good = await onvif.device_information(ctx, HOSTILE_IP, ports["http"], Credentials(*LAB_CREDENTIALS))
            bad = await onvif.device_information(ctx, HOSTILE_IP, ports["http"], Credentials("admin", "Wr0ng-Secret"))
            return present, good, bad, time.monotonic() - t0, ctx

    present, good, bad, elapsed, ctx = run(main())
    assert present is False and good == [] and bad == []
    assert elapsed < 5
    assert ctx.errors and all(HOSTILE_IP in line for line in ctx.errors)
    assert not any("camscan-lab" in line or "Wr0ng-Secret" in line for line in ctx.errors)
    assert any("Forbidden" in line for line in ctx.errors)  # zeep refused the DTD/entities


# --------------------------------------------------------------------------------------------- silence, scope


def test_silent_and_closed_ports(tmp_path: Path) -> None:
    """A service that accepts and says nothing, and a port nobody listens on: [] within the deadline, no errors."""
    closed = free_port(CAM_IP)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()

    probes: list[Callable[[ScanContext, int], Awaitable[Any]]] = [
        lambda c, p: http.probe(c, CAM_IP, p),
        lambda c, p: http.probe(c, CAM_IP, p, tls=True),
        lambda c, p: tls.probe(c, CAM_IP, p),
        lambda c, p: rtsp.probe(c, CAM_IP, p),
        lambda c, p: banner.probe(c, CAM_IP, p, kind="ftp"),
        lambda c, p: onvif.get_system_date_and_time(c, CAM_IP, p),
    ]
    timeout = 0.3

    async def main() -> tuple[list[Any], float, ScanContext]:
        server = await asyncio.start_server(handle, CAM_IP, 0)
        silent = server.sockets[0].getsockname()[1]
        try:
            ctx = scan_context(CAM_IP, timeout=timeout)
            t0 = time.monotonic()
            results = await asyncio.gather(*(p(ctx, port) for p in probes for port in (silent, closed)))
            return results, time.monotonic() - t0, ctx
        finally:
            server.close()
            await server.wait_closed()
            await asyncio.sleep(0.05)

    results, elapsed, ctx = run(main())
    assert all(r in ([], False) for r in results)
    assert elapsed < 3 * timeout + 1.0
    assert ctx.errors == []


def test_nothing_is_sent_outside_the_scope(tmp_path: Path) -> None:
    connections: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append("x")
        writer.write(b"SSH-2.0-should-not-be-seen\r\n")
        writer.close()

    async def main() -> list[Any]:
        server = await asyncio.start_server(handle, OUTSIDE_IP, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            ctx = scan_context(CAM_IP)  # OUTSIDE_IP is not in it
            return [
                await http.probe(ctx, OUTSIDE_IP, port),
                await tls.probe(ctx, OUTSIDE_IP, port),
                await rtsp.probe(ctx, OUTSIDE_IP, port),
                await banner.probe(ctx, OUTSIDE_IP, port, kind="ssh"),
                await onvif.get_system_date_and_time(ctx, OUTSIDE_IP, port),
                await onvif.device_information(ctx, OUTSIDE_IP, port, Credentials(*LAB_CREDENTIALS)),
            ]
        finally:
            server.close()
            await server.wait_closed()

    assert run(main()) == [[], [], [], [], False, []]
    assert connections == []


def test_redirect_to_another_host_is_not_followed(tmp_path: Path) -> None:
    """`Location: http://<other in-scope host>/` is reported, never fetched."""
    ports = lab_ports(CAM_IP)
    persona = camera(CAM_IP, ports)
    assert persona.services.http is not None
    persona.services.http.routes["/"].headers = [("Location", f"http://{HOSTILE_IP}:{ports['http']}/x")]
    connections: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append("x")
        writer.close()

    async def main() -> list[Evidence]:
        other = await asyncio.start_server(handle, HOSTILE_IP, ports["http"])
        try:
            async with lab(persona, CAM_IP, tmp_path):
                return await http.probe(scan_context(CAM_IP, HOSTILE_IP), CAM_IP, ports["http"])
        finally:
            other.close()
            await other.wait_closed()

    got = pairs(run(main()))
    assert ("http.redirect", f"http://{HOSTILE_IP}:{ports['http']}/x") in got
    assert not any(k == "http.title" for k, _ in got)
    assert connections == []
