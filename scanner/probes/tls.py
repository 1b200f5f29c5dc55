"""TLS certificate probe: the subject and issuer of the certificate a device presents (`tls.subject`,
`tls.issuer`, RFC 4514 strings as `cryptography` writes them). Cameras ship self-signed certificates that
name their maker (`CN=IPC,O=HIKVISION,C=CN`); nothing is verified, we only read what is presented."""

from __future__ import annotations

import asyncio
import ssl

from cryptography import x509

from scanner.model import Evidence, evidence
from scanner.netctx import ScanContext
from scanner.probes.http import close_writer, insecure_tls_context

SOURCE = "tls"
MAX_CERT = 64 * 1024  # a device certificate is a few kB


def parse_certificate(der: bytes) -> list[Evidence]:
    """`tls.subject` and `tls.issuer` of a DER certificate; nothing for anything that does not parse."""
    if not der or len(der) > MAX_CERT:
        return []
    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        issuer = cert.issuer.rfc4514_string()
    except Exception:  # cryptography raises ValueError and others on garbage
        return []
    out = []
    if subject.strip():
        out.append(evidence("tls.subject", subject, SOURCE))
    if issuer.strip():
        out.append(evidence("tls.issuer", issuer, SOURCE))
    return out


async def peer_certificate(ctx: ScanContext, ip: str, port: int) -> bytes | None:
    """The DER certificate presented on `ip:port`, or None (closed, silent, not TLS, out of scope)."""
    if not ctx.allowed(ip):
        return None
    await ctx.rate.acquire()
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(
                ip, port, ssl=insecure_tls_context(), server_hostname="", ssl_handshake_timeout=ctx.timeout
            ),
            timeout=ctx.timeout * 2,  # connect, then the handshake
        )
    except (OSError, ssl.SSLError, TimeoutError, EOFError):
        return None
    try:
        tls_object = writer.get_extra_info("ssl_object")
        der = tls_object.getpeercert(binary_form=True) if isinstance(tls_object, ssl.SSLObject) else None
    finally:
        await close_writer(writer)
    return der if isinstance(der, bytes) else None


async def probe(ctx: ScanContext, ip: str, port: int) -> list[Evidence]:
    """Certificate subject and issuer of the TLS service on `ip:port`. Never raises."""
    try:
        der = await peer_certificate(ctx, ip, port)
    except Exception as exc:  # a probe never raises
        ctx.errors.append(f"tls {ip}:{port}: {exc.__class__.__name__}")
        return []
    return parse_certificate(der) if der else []
