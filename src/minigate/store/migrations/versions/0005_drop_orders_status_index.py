"""Drop ix_orders_status: ix_orders_status_expires (status, expires_at) serves every lookup
by status, and each order write paid for both

Revision ID: 0005
Revises: 0004_dashboard
Create Date: 2026-11-28 19:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004_dashboard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_status")


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_status", ["status"], unique=False)
