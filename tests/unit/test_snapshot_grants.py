"""Upload grants: what a compute node presents to upload one snapshot's data."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ciaostack.core import errors
from ciaostack.core.identity.keys import KeyRepository
from ciaostack.core.images.snapshots import Grant, Rotation, UploadGrants

GRANT = Grant(image_id="img-1", project_id="p1", user_id="u1", instance_id="server-1")


@pytest.fixture
def grants(tmp_path: Path) -> UploadGrants:
    KeyRepository(tmp_path / "keys").setup()
    return UploadGrants(tmp_path / "keys", lifetime=60)


def test_a_grant_is_good_for_its_image_only(grants: UploadGrants) -> None:
    token = grants.issue(GRANT)
    assert grants.verify(token, "img-1") == GRANT
    with pytest.raises(errors.Unauthorized):
        grants.verify(token, "img-2")


def test_a_backup_grant_carries_its_rotation(grants: UploadGrants) -> None:
    backup = Grant("img-1", "p1", "u1", "server-1", Rotation("server-1", "daily", 0))
    assert grants.verify(grants.issue(backup), "img-1") == backup
    assert grants.verify(grants.issue(GRANT), "img-1").rotation is None


def test_a_rotation_of_another_server_is_refused(grants: UploadGrants) -> None:
    other = Grant("img-1", "p1", "u1", "server-1", Rotation("server-2", "daily", 0))
    with pytest.raises(errors.Unauthorized):
        grants.verify(grants.issue(other), "img-1")


def test_expired_or_tampered_grants_are_refused(grants: UploadGrants) -> None:
    token = grants.issue(GRANT, now=time.time() - 120)
    with pytest.raises(errors.Unauthorized):
        grants.verify(token, "img-1")
    payload, signature = grants.issue(GRANT).split(".")
    other_payload = grants.issue(Grant("img-2", "p1", "u1", "server-1")).split(".")[0]
    for bad in (
        f"{other_payload}.{signature}",
        f"{payload}.{signature[:-2]}AA",
        payload,
        "",
        "...",
        "not base64!.x",
        "ünï.cödé",
        f"{payload}.{signature}\udcff",
    ):
        with pytest.raises(errors.Unauthorized):
            grants.verify(bad, "img-1")


def test_grants_survive_a_key_rotation_but_not_a_new_repository(tmp_path: Path) -> None:
    repo = KeyRepository(tmp_path / "keys")
    repo.setup()
    grants = UploadGrants(tmp_path / "keys")
    token = grants.issue(GRANT)
    repo.rotate()
    assert grants.verify(token, "img-1") == GRANT
    elsewhere = KeyRepository(tmp_path / "other")
    elsewhere.setup()
    with pytest.raises(errors.Unauthorized):
        UploadGrants(tmp_path / "other").verify(token, "img-1")


def test_no_repository_means_no_grants(tmp_path: Path) -> None:
    grants = UploadGrants(tmp_path / "missing")
    with pytest.raises(errors.Conflict):
        grants.issue(GRANT)
    with pytest.raises(errors.Unauthorized):
        grants.verify("a.b", "img-1")
