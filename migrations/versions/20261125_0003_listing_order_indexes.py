"""indexes for the market's listing orders

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 15:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_listings_status_created", "listings", ["status", "created_at", "id"])
    op.create_index("ix_listings_status_currency_price", "listings",
                    ["status", "currency", "price", "id"])
    op.create_index("ix_listings_status_category_currency_price", "listings",
                    ["status", "category", "currency", "price", "id"])


def downgrade() -> None:
    op.drop_index("ix_listings_status_category_currency_price", table_name="listings")
    op.drop_index("ix_listings_status_currency_price", table_name="listings")
    op.drop_index("ix_listings_status_created", table_name="listings")
