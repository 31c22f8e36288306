"""listings can be priced in tenge (the tenge stablecoin)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 04:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("listings") as batch:
        batch.drop_constraint("currency", type_="check")
        batch.create_check_constraint("currency", "currency IN ('ETH', 'USD', 'KZT')")


def downgrade() -> None:
    with op.batch_alter_table("listings") as batch:
        batch.drop_constraint("currency", type_="check")
        batch.create_check_constraint("currency", "currency IN ('ETH', 'USD')")
