"""compute core

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 04:38:24.281914
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compute_nodes",
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("node_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=False),
        sa.Column("mem_total_mb", sa.Integer(), nullable=False),
        sa.Column("mem_available_mb", sa.Integer(), nullable=False),
        sa.Column("disk_total_mb", sa.Integer(), nullable=False),
        sa.Column("disk_available_mb", sa.Integer(), nullable=False),
        sa.Column("vcpus_total", sa.Integer(), nullable=False),
        sa.Column("vcpus_available", sa.Integer(), nullable=False),
        sa.Column("load", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("uuid"),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("image_id", sa.String(length=64), nullable=False),
        sa.Column("vm_type", sa.String(length=16), nullable=False),
        sa.Column("mem_mb", sa.Integer(), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("disk_gb", sa.Integer(), nullable=False),
        sa.Column("vm_state", sa.String(length=16), nullable=False),
        sa.Column("task_state", sa.String(length=32), nullable=True),
        sa.Column("power_state", sa.Integer(), nullable=False),
        sa.Column("node_uuid", sa.String(length=36), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("node_lost", sa.Boolean(), nullable=False),
        sa.Column("availability_zone", sa.String(length=255), nullable=False),
        sa.Column("start_payload", sa.JSON(), nullable=False),
        sa.Column("start_attempts", sa.Integer(), nullable=False),
        sa.Column("excluded_nodes", sa.JSON(), nullable=False),
        sa.Column("fault", sa.JSON(), nullable=True),
        sa.Column("usage", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("launched_at", sa.DateTime(), nullable=True),
        sa.Column("terminated_at", sa.DateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instances_node_uuid"), ["node_uuid"], unique=False)
        batch_op.create_index(
            "ix_instances_project_deleted", ["project_id", "deleted"], unique=False
        )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("command", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_claimed_at"), ["claimed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_instance_id"), ["instance_id"], unique=False)

    op.create_table(
        "quota_usages",
        sa.Column("project_id", sa.String(length=64), nullable=False),
        sa.Column("resource", sa.String(length=64), nullable=False),
        sa.Column("in_use", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "resource"),
    )


def downgrade() -> None:
    op.drop_table("quota_usages")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_instance_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_claimed_at"))

    op.drop_table("outbox")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index("ix_instances_project_deleted")
        batch_op.drop_index(batch_op.f("ix_instances_node_uuid"))

    op.drop_table("instances")
    op.drop_table("compute_nodes")
