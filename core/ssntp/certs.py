"""The cluster CA and role certificates that SSNTP's mutual TLS rests on.

A peer's roles are extended-key-usage OIDs in its certificate
(1.3.6.1.4.1.343.8.N); a peer may claim in CONNECT only roles its
certificate holds. Keys are ECDSA P-256: small and fast to handshake.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ciaostack.core.ssntp.frames import Role

ROLE_OIDS: dict[Role, x509.ObjectIdentifier] = {
    Role.AGENT: x509.ObjectIdentifier("1.3.6.1.4.1.343.8.1"),
    Role.SCHEDULER: x509.ObjectIdentifier("1.3.6.1.4.1.343.8.2"),
    Role.CONTROLLER: x509.ObjectIdentifier("1.3.6.1.4.1.343.8.3"),
    Role.NETAGENT: x509.ObjectIdentifier("1.3.6.1.4.1.343.8.4"),
    Role.SERVER: x509.ObjectIdentifier("1.3.6.1.4.1.343.8.5"),
    Role.CNCIAGENT: x509.ObjectIdentifier("1.3.6.1.4.1.343.8.6"),
}
ROLE_NAMES = {
    "agent": Role.AGENT,
    "scheduler": Role.SCHEDULER,
    "controller": Role.CONTROLLER,
    "netagent": Role.NETAGENT,
    "server": Role.SERVER,
    "cnciagent": Role.CNCIAGENT,
}
VALIDITY = dt.timedelta(days=3650)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_ca(directory: Path, name: str = "ciaostack cluster CA") -> tuple[Path, Path]:
    """Write ca.pem and ca-key.pem (0600); returns their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    ca_pem, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    _write_private(ca_key, _key_pem(key))
    directory.mkdir(parents=True, exist_ok=True)
    ca_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return ca_pem, ca_key


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue(
    directory: Path,
    ca_pem: Path,
    ca_key: Path,
    roles: Role,
    name: str,
    hosts: list[str] | None = None,
) -> Path:
    """Write <name>.pem holding the key and the certificate (0600); returns its path."""
    ca_cert = x509.load_pem_x509_certificate(ca_pem.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    hosts = hosts or ["localhost", "127.0.0.1"]
    now = dt.datetime.now(dt.UTC)
    usages = [ROLE_OIDS[r] for r in ROLE_OIDS if r in roles]
    usages += [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(_san(hosts), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
        .sign(signer, hashes.SHA256())
    )
    path = directory / f"{name}.pem"
    _write_private(path, _key_pem(key) + cert.public_bytes(serialization.Encoding.PEM))
    return path


def roles_of(der: bytes) -> Role:
    """The SSNTP roles a DER certificate grants."""
    cert = x509.load_der_x509_certificate(der)
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return Role(0)
    granted = Role(0)
    for role, oid in ROLE_OIDS.items():
        if oid in eku:
            granted |= role
    return granted
