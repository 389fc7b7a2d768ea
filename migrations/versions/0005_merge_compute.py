"""Merge the two compute API branches (resources and servers) into one head.

Revision ID: 0005
Revises: 0004c, 0004s
"""

revision = "0005"
down_revision = ("0004c", "0004s")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the two parents touch different tables."""


def downgrade() -> None:
    """Nothing to undo."""
