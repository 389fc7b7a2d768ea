"""migrations: the record of each resize and cold migration (os-migrations)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 12:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migrations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("migration_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_node", sa.String(length=36), nullable=True),
        sa.Column("source_compute", sa.String(length=255), nullable=True),
        sa.Column("dest_node", sa.String(length=36), nullable=True),
        sa.Column("dest_compute", sa.String(length=255), nullable=True),
        sa.Column("old_flavor_id", sa.String(length=255), nullable=False),
        sa.Column("new_flavor_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uuid"),
    )
    op.create_index("ix_migrations_instance_id", "migrations", ["instance_id"])


def downgrade() -> None:
    op.drop_index("ix_migrations_instance_id", table_name="migrations")
    op.drop_table("migrations")
