"""Token format: a Fernet-encrypted compact JSON payload.

Tokens are never stored. The payload carries only ids and times; names, roles
and the catalog are looked up at validation (and then cached), so a token
stays short and a role or name change shows in the next validation.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time

import orjson
from cryptography.fernet import InvalidToken, MultiFernet

from ciaostack.core import errors
from ciaostack.core.identity.keys import KeyRepository

FORMAT_VERSION = 1
# Reload the key repository at most this often when a token does not decrypt.
_RELOAD_INTERVAL = 1.0


@dataclasses.dataclass(frozen=True)
class TokenPayload:
    user_id: str
    methods: tuple[str, ...]
    issued_at: dt.datetime
    expires_at: dt.datetime
    audit_ids: tuple[str, ...]
    project_id: str | None = None
    domain_id: str | None = None
    app_cred_id: str | None = None


_EPOCH = dt.datetime(1970, 1, 1)


def _ts(value: dt.datetime) -> float:
    """Seconds since the epoch of a naive UTC time (what `timestamp()` of it made aware
    gives, at a sixth of the cost: two per token issued)."""
    return (value - _EPOCH).total_seconds()


def _from_ts(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC).replace(tzinfo=None)


class TokenCodec:
    def __init__(self, keys: KeyRepository) -> None:
        self._keys = keys
        self._lock = threading.Lock()
        self._fernet: MultiFernet | None = None
        self._loaded_at = 0.0

    def _current(self, reload: bool = False) -> MultiFernet:
        with self._lock:
            now = time.monotonic()
            if self._fernet is None or (reload and now - self._loaded_at > _RELOAD_INTERVAL):
                self._fernet = self._keys.load()
                self._loaded_at = now
            return self._fernet

    def encode(self, payload: TokenPayload) -> str:
        body = [
            FORMAT_VERSION,
            payload.user_id,
            list(payload.methods),
            _ts(payload.issued_at),
            _ts(payload.expires_at),
            list(payload.audit_ids),
            payload.project_id,
            payload.domain_id,
            payload.app_cred_id,
        ]
        raw = orjson.dumps(body)
        # A rotation elsewhere may have promoted a key: pick it up for new tokens.
        return self._current(reload=True).encrypt(raw).decode("ascii")

    def decode(self, token: str) -> TokenPayload:
        """Raises Unauthorized for anything that is not a token we issued."""
        try:
            data = token.encode("ascii")
        except UnicodeEncodeError as exc:
            raise errors.Unauthorized("The token is not valid.") from exc
        try:
            raw = self._current().decrypt(data)
        except InvalidToken:
            try:
                raw = self._current(reload=True).decrypt(data)
            except InvalidToken as exc:
                raise errors.Unauthorized("The token is not valid.") from exc
        try:
            (
                version,
                user_id,
                methods,
                issued,
                expires,
                audit_ids,
                project_id,
                domain_id,
                app_cred_id,
            ) = orjson.loads(raw)
        except (ValueError, TypeError) as exc:
            raise errors.Unauthorized("The token is not valid.") from exc
        if version != FORMAT_VERSION:
            raise errors.Unauthorized("The token is not valid.")
        return TokenPayload(
            user_id=user_id,
            methods=tuple(methods),
            issued_at=_from_ts(issued),
            expires_at=_from_ts(expires),
            audit_ids=tuple(audit_ids),
            project_id=project_id,
            domain_id=domain_id,
            app_cred_id=app_cred_id,
        )
