"""The image a server boots from is checked with a prepared statement: it must see
exactly what the image API's own visibility rule shows each kind of caller, on both
engines (the PostgreSQL pass runs this against a real server)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import select

from ciaostack.core import errors
from ciaostack.core.compute.servers import check_image
from ciaostack.core.db.models import Image, ImageMember
from ciaostack.core.db.session import Database
from ciaostack.core.identity.context import AuthContext
from ciaostack.core.images import query
from ciaostack.core.images.model import Caller

OWNER, MEMBER, OTHER = "p-owner", "p-member", "p-other"
# (owner, visibility, membership of MEMBER)
IMAGES = [
    (OWNER, "private", None),
    ("", "private", None),  # a project-less admin's snapshot
    (None, "private", None),
    (OWNER, "public", None),
    (OWNER, "community", None),
    (OWNER, "shared", "accepted"),
    (OWNER, "shared", "pending"),
    (OWNER, "shared", None),
]
CALLERS = {
    "admin": AuthContext(user_id="a", project_id=OTHER, roles=["admin"]),
    "owner": AuthContext(user_id="o", project_id=OWNER, roles=["member"]),
    "member": AuthContext(user_id="m", project_id=MEMBER, roles=["member"]),
    "other": AuthContext(user_id="x", project_id=OTHER, roles=["member"]),
    "no project": AuthContext(user_id="n", project_id=None, roles=["member"]),
}


@pytest.fixture(scope="module")
def images(migrated_database: Callable[[], Database]) -> tuple[Database, list[str]]:
    db = migrated_database()
    ids = []
    with db.session() as session:
        for owner, visibility, membership in IMAGES:
            image_id = str(uuid.uuid4())
            ids.append(image_id)
            session.add(Image(id=image_id, owner=owner, status="active", visibility=visibility))
            if membership:
                session.flush()
                session.add(ImageMember(image_id=image_id, member=MEMBER, status=membership))
    return db, ids


@pytest.mark.parametrize("who", list(CALLERS))
def test_a_boot_sees_what_the_image_api_shows(images, who: str) -> None:
    db, ids = images
    caller = CALLERS[who]
    rule = query.visible_to(Caller(caller.project_id, caller.user_id, caller.is_admin))
    with db.session(readonly=True) as session:
        shown = set(session.scalars(select(Image.id).where(rule, Image.id.in_(ids))))
        booted = set()
        for image_id in ids:
            try:
                check_image(session, caller, image_id, ram_mb=512, disk_gb=1)
                booted.add(image_id)
            except errors.BadRequest:
                pass
    assert booted == shown
    # and the rule itself is the one Glance documents
    expected = {
        "admin": set(ids),
        "owner": {ids[i] for i in (0, 3, 4, 5, 6, 7)},
        "member": {ids[i] for i in (3, 4, 5, 6)},
        "other": {ids[i] for i in (3, 4)},
        "no project": {ids[i] for i in (3, 4)},
    }[who]
    assert booted == expected


def test_a_boot_refuses_an_inactive_or_too_big_image(images) -> None:
    db, _ = images
    with db.session() as session:
        queued, big = str(uuid.uuid4()), str(uuid.uuid4())
        session.add(Image(id=queued, owner=OWNER, status="queued", visibility="public"))
        session.add(Image(id=big, owner=OWNER, status="active", visibility="public", min_ram=1024))
    caller = CALLERS["owner"]
    for image_id, message in ((queued, "not active"), (big, "memory")):
        with pytest.raises(errors.BadRequest, match=message), db.session() as session:
            check_image(session, caller, image_id, ram_mb=512, disk_gb=1)
