"""Key pairs: a user's SSH public keys (or X.509 certificates) for new servers.

A generated pair is an RSA 2048 key, as Nova makes: the private key is returned
once and never stored. Fingerprints are Nova's: the MD5 of an SSH key's blob,
the SHA-1 of a certificate's DER, both as colon-separated hex. The `key_pairs`
quota counts per user, so its usage counter is kept under the user's id.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ciaostack.core import errors, quota
from ciaostack.core.db.models import KeyPair, utcnow

SSH = "ssh"
X509 = "x509"
TYPES = (SSH, X509)
RSA_BITS = 2048
# Microsoft's User Principal Name: Windows (WinRM) maps a certificate to a user by it.
UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
CERT_DAYS = 3650


class KeypairLimitExceeded(errors.Forbidden):
    def __init__(self) -> None:
        super().__init__("Quota exceeded, too many key pairs.")


def _invalid(reason: str) -> errors.BadRequest:
    return errors.BadRequest(f"Keypair data is invalid: {reason}")


def _colon_hex(digest: str) -> str:
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def ssh_fingerprint(public_key: str) -> str:
    """BadRequest unless `public_key` is an OpenSSH public key line."""
    try:
        serialization.load_ssh_public_key(public_key.encode())
        blob = base64.b64decode(public_key.split()[1])
    except (
        ValueError,
        IndexError,
        TypeError,
        binascii.Error,
        UnicodeError,
        UnsupportedAlgorithm,
    ) as exc:
        raise _invalid("failed to generate fingerprint") from exc
    return _colon_hex(hashlib.md5(blob, usedforsecurity=False).hexdigest())


def x509_fingerprint(certificate: str) -> str:
    try:
        cert = x509.load_pem_x509_certificate(certificate.encode())
    except (ValueError, TypeError, UnicodeError) as exc:
        raise _invalid(f"failed to generate X509 fingerprint. Error message: {exc}") from exc
    return _colon_hex(cert.fingerprint(hashes.SHA1()).hex())  # noqa: S303 - Nova's format


def fingerprint(public_key: str, key_type: str) -> str:
    return x509_fingerprint(public_key) if key_type == X509 else ssh_fingerprint(public_key)


@dataclasses.dataclass(frozen=True)
class Generated:
    private_key: str
    public_key: str


def generate_ssh() -> Generated:
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return Generated(private_key=private, public_key=f"{public.decode()} Generated-by-Nova")


def generate_x509(user_id: str) -> Generated:
    """A self-signed client certificate for the user (what Windows guests accept for
    WinRM); the private key travels as base64 PKCS#12, as Nova returns it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id)])
    upn = f"{user_id}@localhost".encode()
    # The UPN is an otherName holding a DER UTF8String; user ids (64 characters at
    # most) keep it under 128 bytes, so its length fits the one-byte short form.
    upn_der = bytes([0x0C, len(upn)]) + upn
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.OtherName(UPN_OID, upn_der)]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    bundle = pkcs12.serialize_key_and_certificates(
        None, key, cert, None, serialization.NoEncryption()
    )
    return Generated(
        private_key=base64.b64encode(bundle).decode(),
        public_key=cert.public_bytes(serialization.Encoding.PEM).decode(),
    )


def _reserve(session: Session, user_id: str, limit: int) -> None:
    try:
        quota.reserve(session, user_id, {"key_pairs": 1}, {"key_pairs": limit})
    except quota.QuotaExceeded as exc:
        raise KeypairLimitExceeded() from exc


def generate(key_type: str, user_id: str) -> Generated:
    """A new pair of the type; done before the create's transaction, which it would
    otherwise hold open for the RSA key's generation."""
    return generate_x509(user_id) if key_type == X509 else generate_ssh()


def create(
    session: Session, user_id: str, name: str, key_type: str, public_key: str, limit: int
) -> KeyPair:
    """Store a pair (imported, or from generate()). Checks run in Nova's order: the
    key_pairs quota (`limit`, -1 unlimited; Forbidden when full), the key data, then
    the name (Conflict when the user has it)."""
    _reserve(session, user_id, limit)
    pair = KeyPair(
        user_id=user_id,
        name=name,
        type=key_type,
        public_key=public_key,
        fingerprint=fingerprint(public_key, key_type),
        created_at=utcnow(),
    )
    exists = select(KeyPair.id).where(KeyPair.user_id == user_id, KeyPair.name == name)
    if session.scalar(exists) is not None:
        raise errors.Conflict(f"Key pair '{name}' already exists.")
    try:
        with session.begin_nested():
            session.add(pair)
    except IntegrityError as exc:
        raise errors.Conflict(f"Key pair '{name}' already exists.") from exc
    return pair


def get(session: Session, user_id: str, name: str) -> KeyPair:
    pair = session.scalar(select(KeyPair).where(KeyPair.user_id == user_id, KeyPair.name == name))
    if pair is None:
        raise errors.NotFound(f"Keypair {name} not found for user {user_id}")
    return pair


def for_server(session: Session, user_id: str, name: str | None) -> KeyPair | None:
    """The pair a server create or rebuild names (None for none): a name the user has no
    pair under is the request's fault, so Nova answers 400, not 404."""
    if not name:
        return None
    try:
        return get(session, user_id, name)
    except errors.NotFound as exc:
        raise errors.BadRequest("Invalid key_name provided.") from exc


def list_pairs(
    session: Session, user_id: str, limit: int | None = None, marker: str | None = None
) -> list[KeyPair]:
    """A user's pairs by name; the marker is a name (BadRequest when the user has none)."""
    stmt = select(KeyPair).where(KeyPair.user_id == user_id)
    if marker is not None:
        if (
            session.scalar(
                select(KeyPair.id).where(KeyPair.user_id == user_id, KeyPair.name == marker)
            )
            is None
        ):
            raise errors.BadRequest(f"Marker {marker} could not be found.")
        stmt = stmt.where(KeyPair.name > marker)
    stmt = stmt.order_by(KeyPair.name)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def delete(session: Session, user_id: str, name: str) -> None:
    pair = get(session, user_id, name)
    session.delete(pair)
    quota.release(session, user_id, {"key_pairs": 1})
    session.flush()
