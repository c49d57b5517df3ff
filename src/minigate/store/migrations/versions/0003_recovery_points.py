"""Idempotency recovery points; one order per merchant_reference

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    duplicates = op.get_bind().execute(sa.text(
        "SELECT merchant_reference FROM orders GROUP BY merchant_reference "
        "HAVING COUNT(*) > 1 LIMIT 5")).scalars().all()
    if duplicates:
        raise RuntimeError(
            "cannot make orders.merchant_reference unique: these references have more than "
            f"one order: {', '.join(map(str, duplicates))}. Give the orphaned orders new "
            "references (they are the ones never paid), then run 'minigate migrate' again.")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recovery_point", sa.String(length=24), nullable=False,
                                      server_default="started"))
        batch_op.add_column(sa.Column("resource_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("owner", sa.String(length=32), nullable=False,
                                      server_default=""))
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_orders_merchant_reference", ["merchant_reference"])


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint("uq_orders_merchant_reference", type_="unique")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_column("owner")
        batch_op.drop_column("resource_id")
        batch_op.drop_column("recovery_point")
