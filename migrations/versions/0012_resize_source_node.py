"""resize_source_node: a resize may move an instance to another node

The node an instance left during a resize keeps its copy until the owner
confirms or reverts; the instance row names that node meanwhile.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 12:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("resize_source_node", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("resize_source_node")
