"""error_servers_hold_quota: a server in error keeps its quota until deleted

As in Nova, a server in ERROR still counts against its project's instances,
cores and ram. Servers already in error had given theirs back: the project's
counters take it again, so that deleting them later leaves the counters right.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 16:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_instances = sa.table(
    "instances",
    sa.column("project_id", sa.String),
    sa.column("deleted", sa.Boolean),
    sa.column("vm_state", sa.String),
    sa.column("vcpus", sa.Integer),
    sa.column("mem_mb", sa.Integer),
)
_usages = sa.table(
    "quota_usages",
    sa.column("project_id", sa.String),
    sa.column("resource", sa.String),
    sa.column("in_use", sa.Integer),
)
_HELD = {
    "instances": sa.func.count(),
    "cores": sa.func.coalesce(sa.func.sum(_instances.c.vcpus), 0),
    "ram": sa.func.coalesce(sa.func.sum(_instances.c.mem_mb), 0),
}


def _shift(sign: int) -> None:
    """Add (1) or take back (-1) what the project's servers in error hold."""
    for resource, held in _HELD.items():
        in_error = (
            sa.select(held)
            .where(
                _instances.c.project_id == _usages.c.project_id,
                _instances.c.deleted.is_(sa.false()),
                _instances.c.vm_state == "error",
            )
            .scalar_subquery()
        )
        op.execute(
            _usages.update()
            .where(_usages.c.resource == resource)
            .values(in_use=_usages.c.in_use + sign * in_error)
        )


def upgrade() -> None:
    _shift(1)


def downgrade() -> None:
    _shift(-1)
