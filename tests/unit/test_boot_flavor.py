"""A server create reads its flavor with a prepared statement: it must find exactly what
the flavor API's own lookup finds for each kind of caller, with the same figures, on
both engines (the PostgreSQL pass runs this against a real server)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ciaostack.core import errors
from ciaostack.core.compute import flavors
from ciaostack.core.db.models import Flavor, FlavorAccess
from ciaostack.core.db.session import Database

GRANTED, OTHER = "p-granted", "p-other"
FLAVORS = {
    "public": {"is_public": True},
    "private-granted": {"is_public": False},
    "private": {"is_public": False},
    "disabled": {"is_public": True, "disabled": True},
}
CALLERS = {  # project, is_admin
    "admin": (OTHER, True),
    "granted": (GRANTED, False),
    "other": (OTHER, False),
    "no project": (None, False),
}
SIZE = ("id", "name", "ram", "vcpus", "disk", "ephemeral", "swap", "disabled")


@pytest.fixture(scope="module")
def db(migrated_database: Callable[[], Database]) -> Database:
    database = migrated_database()
    with database.session() as session:
        for n, (name, fields) in enumerate(FLAVORS.items()):
            session.add(
                Flavor(
                    id=f"bf-{name}",
                    name=f"boot-{name}",
                    ram=256 * (n + 1),
                    vcpus=n + 1,
                    disk=n,
                    ephemeral=n % 2,
                    swap=64 * n,
                    **fields,
                )
            )
        session.flush()
        session.add(FlavorAccess(flavor_id="bf-private-granted", project_id=GRANTED))
    return database


def _found(lookup, db: Database, flavor_id: str, who: str) -> tuple | None:  # noqa: ANN001
    project, admin = CALLERS[who]
    with db.session(readonly=True) as session:
        try:
            flavor = lookup(session, flavor_id, project, admin)
        except errors.NotFound:
            return None
        return tuple(getattr(flavor, field) for field in SIZE)


@pytest.mark.parametrize("who", list(CALLERS))
def test_a_create_finds_the_flavor_the_api_finds(db: Database, who: str) -> None:
    seen = {}
    for name in FLAVORS:
        size = _found(flavors.get_flavor_size, db, f"bf-{name}", who)
        assert size == _found(flavors.get_flavor, db, f"bf-{name}", who)
        seen[name] = size is not None
    expected = {"public": True, "private-granted": who in ("admin", "granted")}
    expected |= {"private": who == "admin", "disabled": True}  # a create refuses it itself
    assert seen == expected
    assert _found(flavors.get_flavor_size, db, "bf-missing", who) is None
