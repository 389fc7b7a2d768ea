"""instances: drop `usage`

Every STATS report rewrote each instance's memory, disk and CPU figures, and no
API ever showed them: the write cost the controller most of its time per report
(a node reports all its instances each time). The figures still travel in STATS.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("instances", "usage")


def downgrade() -> None:
    op.add_column("instances", sa.Column("usage", sa.JSON(), nullable=False, server_default="{}"))
