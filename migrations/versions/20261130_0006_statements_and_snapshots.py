"""pending dispute statements and the listing as each buyer saw it

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 00:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("checkout_holds") as batch:
        batch.add_column(sa.Column("listing_snapshot", sa.JSON(), nullable=True))
    op.create_table(
        "pending_statements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trade_id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["trade_id"],
            ["trades.id"],
            name=op.f("fk_pending_statements_trade_id_trades"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_statements")),
    )
    op.create_index(
        "ix_pending_statements_trade_sender", "pending_statements", ["trade_id", "sender"]
    )


def downgrade() -> None:
    op.drop_index("ix_pending_statements_trade_sender", table_name="pending_statements")
    op.drop_table("pending_statements")
    with op.batch_alter_table("checkout_holds") as batch:
        batch.drop_column("listing_snapshot")
