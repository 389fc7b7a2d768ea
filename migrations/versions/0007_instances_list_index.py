"""instances: an index in the server list's default order

The compute API lists a project's live servers newest first (project_id,
deleted, then created_at and id descending): with the order in the index, a
page is read in order and stops at its limit instead of sorting every
instance of the project. It replaces the (project_id, deleted) index, which is
its prefix.

Revision ID: 0007
Revises: 0006sa
Create Date: 2026-11-22 08:15:00.000000
"""

from alembic import op

revision = "0007"
down_revision = "0006sa"
branch_labels = None
depends_on = None

COLUMNS = ["project_id", "deleted", "created_at", "id"]


def upgrade() -> None:
    op.create_index("ix_instances_project_deleted_created", "instances", COLUMNS, unique=False)
    op.drop_index("ix_instances_project_deleted", table_name="instances")


def downgrade() -> None:
    op.create_index(
        "ix_instances_project_deleted", "instances", ["project_id", "deleted"], unique=False
    )
    op.drop_index("ix_instances_project_deleted_created", table_name="instances")
