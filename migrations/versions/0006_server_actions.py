"""server actions: an instance's flavors during a resize, nodes' console replies

Revision ID: 0006sa
Revises: 0005
Create Date: 2026-11-22 08:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006sa"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("new_flavor", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("old_flavor", sa.JSON(), nullable=True))

    op.create_table(
        "console_replies",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )
    with op.batch_alter_table("console_replies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_console_replies_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("console_replies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_replies_created_at"))

    op.drop_table("console_replies")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("old_flavor")
        batch_op.drop_column("new_flavor")
