"""escrow contract v2: delivery window, receipt, inspection extension; listing delivery days

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.add_column(sa.Column("delivery_window", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("extension_days", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("extension_granted", sa.Boolean(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("listings") as batch:
        batch.add_column(
            sa.Column("delivery_days", sa.Integer(), server_default="10", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("listings") as batch:
        batch.drop_column("delivery_days")
    with op.batch_alter_table("trades") as batch:
        batch.drop_column("received_at")
        batch.drop_column("extension_granted")
        batch.drop_column("extension_days")
        batch.drop_column("delivery_window")
