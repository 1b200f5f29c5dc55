"""Self-signed (or lab-CA-signed) certificates carrying a persona's subject and issuer, made on start."""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scanner.lab.persona import Certificate


def make_certificate(spec: Certificate | None, persona_id: str, directory: Path | None = None) -> tuple[str, str]:
    """(cert path, key path), written in `directory` (default: a new private temporary directory)."""
    subject = x509.Name.from_rfc4514_string(spec.subject if spec else f"CN={persona_id}")
    issuer = x509.Name.from_rfc4514_string(spec.issuer) if spec and spec.issuer else subject
    key = ec.generate_private_key(ec.SECP256R1())
    signer = key if issuer == subject else ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(signer, hashes.SHA256())
    )
    d = directory or Path(tempfile.mkdtemp(prefix=f"camscan-lab-{persona_id}-"))
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (d / "key.pem").chmod(0o600)
    return str(d / "cert.pem"), str(d / "key.pem")
