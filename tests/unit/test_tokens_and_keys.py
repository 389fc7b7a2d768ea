"""Fernet key repository, token format and password hashing."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
import sys

import pytest

from ciaostack.core import errors
from ciaostack.core.identity import passwords
from ciaostack.core.identity.keys import KeyRepository
from ciaostack.core.identity.revocation import Stamp
from ciaostack.core.identity.tokens import TokenCodec, TokenPayload


def _payload(**kw: object) -> TokenPayload:
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 678901)
    base = dict(
        user_id="u1",
        methods=("password",),
        issued_at=now,
        expires_at=now + dt.timedelta(hours=1),
        audit_ids=("a1",),
        project_id="p1",
    )
    base.update(kw)
    return TokenPayload(**base)  # type: ignore[arg-type]


def test_setup_creates_private_staged_and_primary(tmp_path) -> None:
    repo = KeyRepository(tmp_path / "keys")
    assert repo.setup() is True
    assert repo.setup() is False
    assert repo.version() == (0, 1)
    for name in ("0", "1"):
        mode = stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode)
        assert mode == 0o600


def test_round_trip_keeps_every_field(tmp_path) -> None:
    repo = KeyRepository(tmp_path / "keys")
    repo.setup()
    codec = TokenCodec(repo)
    payload = _payload(app_cred_id="c1", audit_ids=("a1", "a0"))
    assert codec.decode(codec.encode(payload)) == payload


def test_rotation_keeps_previous_tokens_until_pruned(tmp_path) -> None:
    repo = KeyRepository(tmp_path / "keys", max_active=3)
    repo.setup()
    old = TokenCodec(repo).encode(_payload())
    assert repo.rotate() == 2
    # A fresh process after one rotation still reads the old token.
    assert TokenCodec(repo).decode(old).user_id == "u1"
    newer = TokenCodec(repo).encode(_payload(user_id="u2"))
    repo.rotate()
    repo.rotate()
    # With max_active=3 (staged + primary + one old key) two more rotations drop key 1
    # (`old`) and key 2 (`newer`): both must be refused.
    with pytest.raises(errors.Unauthorized):
        TokenCodec(repo).decode(old)
    assert repo.version() == (0, 3, 4)
    with pytest.raises(errors.Unauthorized):
        TokenCodec(repo).decode(newer)


def test_running_process_picks_up_a_rotation(tmp_path) -> None:
    repo = KeyRepository(tmp_path / "keys")
    repo.setup()
    reader = TokenCodec(repo)
    reader.decode(TokenCodec(repo).encode(_payload()))  # loads keys 0 and 1
    repo.rotate()
    fresh = TokenCodec(repo).encode(_payload(user_id="u3"))  # made with the new primary
    assert reader.decode(fresh).user_id == "u3"


def test_foreign_and_garbled_tokens_are_unauthorized(tmp_path) -> None:
    ours = KeyRepository(tmp_path / "ours")
    theirs = KeyRepository(tmp_path / "theirs")
    ours.setup()
    theirs.setup()
    foreign = TokenCodec(theirs).encode(_payload())
    codec = TokenCodec(ours)
    for bad in (foreign, "garbage", "", "ü", foreign[:-4]):
        with pytest.raises(errors.Unauthorized):
            codec.decode(bad)


def test_passwords_are_bcrypt_and_long_ones_do_not_collide() -> None:
    hashed = passwords.hash_secret("s3cret", rounds=4)
    assert hashed.startswith("$2b$04$")
    assert passwords.check_secret("s3cret", hashed)
    assert not passwords.check_secret("s3cret!", hashed)
    long_a = "x" * 80 + "a"
    long_b = "x" * 80 + "b"
    assert not passwords.check_secret(long_b, passwords.hash_secret(long_a, rounds=4))
    assert not passwords.check_secret("anything", None)


def test_revocation_stamp_shows_every_change_to_every_process(tmp_path) -> None:
    path = tmp_path / "home" / "revocation.stamp"
    path.parent.mkdir()
    path.write_bytes(b"")  # an mtime-only stamp left by an older release
    reader, writer = Stamp(path), Stamp(path)
    seen = reader.read()
    # Two changes within one tick of the kernel's coarse clock, which an mtime
    # stamp could not tell apart: the reader sees each of them.
    for _ in range(2):
        writer.change()
        assert reader.read() != seen
        seen = reader.read()
    # A change made by another process shows without the reader reopening anything.
    changer = "import sys; from pathlib import Path; " + (
        "from ciaostack.core.identity.revocation import Stamp; Stamp(Path(sys.argv[1])).change()"
    )
    subprocess.run([sys.executable, "-c", changer, str(path)], check=True)
    assert reader.read() != seen
    assert path.stat().st_size == Stamp.SIZE


def test_an_unusable_revocation_stamp_leaves_only_the_poll(tmp_path, caplog) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    stamp = Stamp(blocker / "revocation.stamp")  # its directory cannot be made
    stamp.change()
    assert stamp.read() == stamp.read() == b""
    assert sum("revocation stamp" in r.getMessage() for r in caplog.records) == 1
