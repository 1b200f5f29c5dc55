#!/usr/bin/env python3
"""TLS: the server's first bytes (records, handshake messages) to the leaf certificate, and a DER certificate to
its subject and issuer (scanner/probes/tls.py). Never raises; tls.subject / tls.issuer Evidence only; the leaf
is exactly the length its message announced."""

from __future__ import annotations

from tests.fuzz.contract import check_evidence, fuzz, instrumented

with instrumented(__name__):
    from scanner.probes import tls

KEYS = ("tls.subject", "tls.issuer")


def check(data: bytes) -> None:
    check_evidence(tls.parse_certificate(data), KEYS)
    der, final = tls.leaf_certificate(data)
    assert isinstance(final, bool)
    if der is not None:
        assert isinstance(der, bytes) and len(der) < len(data)
        check_evidence(tls.parse_certificate(der), KEYS)


fuzz(__name__, check)
