"""compute_nodes: availability_zone

A launcher is configured in an availability zone and says so in its STATS; the
compute API lists zones, checks a server's requested zone and shows each
service's zone from this column. Existing nodes are in the default zone until
they next report.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 12:15:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "compute_nodes",
        sa.Column("availability_zone", sa.String(255), nullable=False, server_default="nova"),
    )


def downgrade() -> None:
    op.drop_column("compute_nodes", "availability_zone")
