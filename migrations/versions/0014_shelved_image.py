"""shelved_image_id: the image a shelved server's disk is kept in

And vm_state grows to 32 characters: "shelved_offloaded" has 17.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 12:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("shelved_image_id", sa.String(length=36), nullable=True))
        batch.create_index("ix_instances_shelved_image_id", ["shelved_image_id"])
        batch.alter_column(
            "vm_state", existing_type=sa.String(length=16), type_=sa.String(length=32)
        )


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.alter_column(
            "vm_state", existing_type=sa.String(length=32), type_=sa.String(length=16)
        )
        batch.drop_index("ix_instances_shelved_image_id")
        batch.drop_column("shelved_image_id")
