"""checkout holds and listing versions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 23:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from escrow.db.types import Uint256

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("listings") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.create_table(
        "checkout_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("listing_id", sa.Integer(), nullable=False),
        sa.Column("buyer", sa.String(length=42), nullable=False),
        sa.Column("seller", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("amount", Uint256(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("listing_version", sa.Integer(), nullable=False),
        sa.Column("arbitrator", sa.String(length=42), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=16), nullable=True),
        sa.CheckConstraint(
            "state IN ('wallet', 'payment', 'ended')", name=op.f("ck_checkout_holds_state")
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["listings.id"],
            name=op.f("fk_checkout_holds_listing_id_listings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_holds")),
    )
    op.create_index("ix_checkout_holds_buyer_state", "checkout_holds", ["buyer", "state"])
    op.create_index(
        "ix_checkout_holds_listing_state", "checkout_holds", ["listing_id", "state"]
    )
    # A hold no longer hides the item: it stays listed as "on hold until ...".
    op.execute("UPDATE listings SET status = 'active' WHERE status = 'reserved'")


def downgrade() -> None:
    op.drop_index("ix_checkout_holds_listing_state", table_name="checkout_holds")
    op.drop_index("ix_checkout_holds_buyer_state", table_name="checkout_holds")
    op.drop_table("checkout_holds")
    with op.batch_alter_table("listings") as batch:
        batch.drop_column("version")
