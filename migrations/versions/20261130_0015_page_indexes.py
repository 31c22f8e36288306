"""page indexes: a person's first listing and first trade on each side; an arbitrator's queue

``trust.first_activity`` (the "member since" of every listing, trade and profile page) asks
for the earliest listing of a seller and the earliest trade of a buyer and of a seller. With
only the single-column indexes, each read every row of that person (thousands for an active
seller); these composite indexes answer each ``min()`` with one index step. The arbitration
queue (an arbitrator's disputed trades by ruling deadline) reads its page from the fourth
instead of every trade in dispute. No table changes.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_listings_seller_created", "listings", ["seller_id", "created_at"], unique=False
    )
    op.create_index("ix_trades_buyer_funded", "trades", ["buyer", "funded_at"], unique=False)
    op.create_index("ix_trades_seller_funded", "trades", ["seller", "funded_at"], unique=False)
    op.create_index(
        "ix_trades_arbitrator_status_deadline",
        "trades",
        ["arbitrator", "status", "ruling_deadline"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_trades_arbitrator_status_deadline", table_name="trades")
    op.drop_index("ix_trades_seller_funded", table_name="trades")
    op.drop_index("ix_trades_buyer_funded", table_name="trades")
    op.drop_index("ix_listings_seller_created", table_name="listings")
