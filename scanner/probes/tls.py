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


def leaf_certificate(raw: bytes) -> tuple[bytes | None, bool]:
    """(the first certificate of the server's Certificate handshake message, whether looking further is
    useless) from the server's first bytes of a TLS 1.0-1.2 connection (RFC 5246 §6.2, §7.4.2). TLS 1.3
    encrypts the certificate: after its ServerHello only non-handshake records follow, and the answer is
    (None, True)."""
    handshake = bytearray()
    pos = 0
    while pos + 5 <= len(raw):
        ctype, major = raw[pos], raw[pos + 1]
        length = raw[pos + 3] << 8 | raw[pos + 4]
        if ctype != 22 or major != 3:
            return None, True
        if pos + 5 + length > len(raw):
            break
        handshake += raw[pos + 5 : pos + 5 + length]
        pos += 5 + length
    i = 0
    while i + 4 <= len(handshake):
        mtype = handshake[i]
        mlen = handshake[i + 1] << 16 | handshake[i + 2] << 8 | handshake[i + 3]
        if i + 4 + mlen > len(handshake):
            return None, False
        if mtype == 11:
            body = handshake[i + 4 : i + 4 + mlen]
            if len(body) < 6:
                return None, True
            clen = body[3] << 16 | body[4] << 8 | body[5]
            der = bytes(body[6 : 6 + clen])
            return (der if len(der) == clen else None), True
        if mtype == 14:  # ServerHelloDone: this server sent no Certificate (anonymous key exchange)
            return None, True
        i += 4 + mlen
    return None, False



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
