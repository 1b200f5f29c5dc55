"""The UPnP description is fetched through the HTTP probe's client: a device whose web server speaks only
TLS 1.0 (many installed cameras) gives its description to SSDP as it gives its pages to the HTTP probe.
A real TLS server on loopback; nothing else."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from pathlib import Path

import pytest

from scanner.discovery import ssdp
from scanner.lab.certs import make_certificate
from scanner.netctx import ScanContext
from scanner.scope import RateLimiter, Scope

HOST = "127.77.0.231"
DESCRIPTION = (
    b'<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major>'
    b"<minor>0</minor></specVersion><device><deviceType>urn:schemas-upnp-org:device:Basic:1</deviceType>"
    b"<manufacturer>Old Camera Co</manufacturer><modelName>OC-100</modelName></device></root>"
)


def tls10_only_context(tmp_path: Path) -> ssl.SSLContext:
    cert, key = make_certificate(None, "old-camera", tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tls.minimum_version = ssl.TLSVersion.TLSv1
        tls.maximum_version = ssl.TLSVersion.TLSv1
    tls.set_ciphers("ALL:@SECLEVEL=0")
    return tls


async def fetch_from_tls10_server(tmp_path: Path) -> tuple[bytes | None, bool]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            head = f"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {len(DESCRIPTION)}\r\n\r\n"
            writer.write(head.encode() + DESCRIPTION)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0, ssl=tls10_only_context(tmp_path))
    port = server.sockets[0].getsockname()[1]
    try:
        ctx = ScanContext(scope=Scope.build([HOST]), rate=RateLimiter(1000), timeout=2.0)
        body = await ssdp.fetch(ctx, HOST, port, "/description.xml", tls=True)
        # a default client context (what the description fetch used before) cannot talk to this server
        plain = ssl.create_default_context()
        plain.check_hostname, plain.verify_mode = False, ssl.CERT_NONE
        try:
            _, w = await asyncio.open_connection(HOST, port, ssl=plain)
            w.close()
            default_ok = True
        except (ssl.SSLError, OSError):
            default_ok = False
        return body, default_ok
    finally:
        server.close()
        await server.wait_closed()


def test_description_is_read_from_a_tls10_only_device(tmp_path: Path) -> None:
    try:
        tls10_only_context(tmp_path)
    except ssl.SSLError as exc:  # an OpenSSL built without TLS 1.0 at all: nothing to test
        pytest.skip(f"this OpenSSL cannot serve TLS 1.0: {exc}")
    body, default_ok = asyncio.run(fetch_from_tls10_server(tmp_path))
    assert not default_ok, "the premise: a default TLS client refuses this server"
    assert body is not None
    found = {(e.key, e.value) for e in ssdp.parse_description(body)}
    assert ("upnp.manufacturer", "Old Camera Co") in found and ("upnp.model_name", "OC-100") in found
