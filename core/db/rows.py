"""Writing new rows on hot paths without the unit of work's flush.

A flush works out dependencies, defaults and history for every pending object and
costs several times the INSERT it emits. Creating a server writes half a dozen
rows whose every column the code sets; these helpers write them with one Core
INSERT per table and, where the caller goes on using the objects, keep them in
the session as if they had just been loaded, so later changes flush as UPDATEs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Table, insert
from sqlalchemy.orm import Session, make_transient_to_detached

from ciaostack.core.db import prepared
from ciaostack.core.db.models import Base


@functools.cache
def insert_into(table: Table) -> Insert:
    """The table's INSERT, built once (building a statement costs more than running it)."""
    return insert(table)


def insert_objects(session: Session, objects: Sequence[Base]) -> None:
    """INSERT new objects of one class now and keep them in the session as loaded.

    Only the attributes set on the objects are written (the table's defaults fill the
    rest, and the objects read those back when first asked)."""
    if not objects:
        return
    table = type(objects[0]).__table__
    keys = [c.key for c in table.columns if c.key in objects[0].__dict__]
    rows: list[dict[str, Any]] = [{k: obj.__dict__[k] for k in keys} for obj in objects]
    prepared.run(session, insert_into(table), rows)
    for obj in objects:
        make_transient_to_detached(obj)
        session.add(obj)
