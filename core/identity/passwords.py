"""Password and secret hashing with bcrypt, the slow KDF Keystone uses too.

bcrypt reads at most 72 bytes, so longer secrets are first reduced to a
SHA-256 digest: two long passwords that share a 72-byte prefix must not match.
"""

from __future__ import annotations

import base64
import hashlib

import bcrypt

MAX_LENGTH = 4096


def _material(secret: str) -> bytes:
    raw = secret.encode("utf-8")
    if len(raw) > 72:
        raw = base64.b64encode(hashlib.sha256(raw).digest())
    return raw


def hash_secret(secret: str, rounds: int) -> str:
    return bcrypt.hashpw(_material(secret), bcrypt.gensalt(rounds)).decode("ascii")


def check_secret(secret: str, hashed: str | None) -> bool:
    if not hashed:
        # Spend the same time as a real check so absent users can't be told apart.
        bcrypt.checkpw(b"x", _DUMMY)
        return False
    return bcrypt.checkpw(_material(secret), hashed.encode("ascii"))


_DUMMY = bcrypt.hashpw(b"ciaostack", bcrypt.gensalt(4))


def set_dummy_rounds(rounds: int) -> None:
    """Make the absent-user check cost what a real one costs at this deployment's rounds."""
    global _DUMMY
    _DUMMY = bcrypt.hashpw(b"ciaostack", bcrypt.gensalt(rounds))
