"""/os-migrations: the resizes and cold migrations of servers, for administrators.

Filters: instance_uuid, status, host (either end), source_compute, and from
2.23 migration_type (2.23 also shows it); from 2.59 each migration's uuid, paging
by limit and marker (a uuid) with `migrations_links`, and changes-since, to
which 2.66 adds changes-before. Times are shown as Nova does, without a zone.
Nova's flavor ids are numbers: a flavor id that is not one shows as null.
"""

from __future__ import annotations

from typing import Any

import falcon

from ciaostack.compat.nova import common
from ciaostack.compat.nova.servers import changes_page
from ciaostack.compat.nova.views import zoneless_time
from ciaostack.core.controller import migrations
from ciaostack.core.db.models import Migration
from ciaostack.core.runtime import Runtime


def _flavor_number(flavor_id: str) -> int | None:
    return int(flavor_id) if flavor_id.isdigit() else None


def _view(row: Migration, with_type: bool, with_uuid: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "status": row.status,
        "instance_uuid": row.instance_id,
        "source_node": row.source_compute,
        "source_compute": row.source_compute,
        "dest_node": row.dest_compute,
        "dest_compute": row.dest_compute,
        "dest_host": None,
        "old_instance_type_id": _flavor_number(row.old_flavor_id),
        "new_instance_type_id": _flavor_number(row.new_flavor_id),
        "created_at": zoneless_time(row.created_at),
        "updated_at": zoneless_time(row.updated_at),
    }
    if with_type:
        body["migration_type"] = row.migration_type
    if with_uuid:
        body["uuid"] = row.uuid
    return body


class Migrations:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        common.authorize(req, self.rt, "os_compute_api:os-migrations:index")
        mv = common.microversion(req)
        paged = mv.matches("2.59")
        limit = marker = since = before = None
        if paged:
            limit, marker, since, before = changes_page(req)
        with self.rt.db.session(readonly=True) as session:
            rows = migrations.listing(
                session,
                instance_id=common.query(req, "instance_uuid"),
                status=common.query(req, "status"),
                host=common.query(req, "host"),
                source_compute=common.query(req, "source_compute"),
                migration_type=common.query(req, "migration_type") if mv.matches("2.23") else None,
                changes_since=since,
                changes_before=before,
                marker=marker,
                limit=limit,
            )
            body: dict[str, Any] = {
                "migrations": [_view(r, mv.matches("2.23"), paged) for r in rows]
            }
        if paged and limit is not None:
            last = rows[-1].uuid if rows else None
            links = common.next_links(req, "os-migrations", len(rows), limit, last)
            if links:
                body["migrations_links"] = links
        resp.media = body


def add_routes(app: falcon.App, rt: Runtime, prefix: str) -> None:
    app.add_route(f"{prefix}/os-migrations", Migrations(rt))
