"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 14:19:13.387008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from escrow.db.types import Uint256

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "indexer_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract_address", sa.String(length=42), nullable=False),
        sa.Column("genesis_hash", sa.String(length=66), nullable=False),
        sa.Column("code_hash", sa.String(length=66), nullable=False),
        sa.Column("start_block", sa.BigInteger(), nullable=False),
        sa.Column("last_block", sa.BigInteger(), nullable=False),
        sa.Column("last_block_hash", sa.String(length=66), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indexer_checkpoints")),
        sa.UniqueConstraint(
            "chain_id",
            "contract_address",
            name=op.f("uq_indexer_checkpoints_chain_id_contract_address"),
        ),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=True),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("address", name=op.f("uq_users_address")),
    )
    op.create_table(
        "arbitrator_profiles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("bio", sa.Text(), nullable=True),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=True),
        sa.Column("onchain_registered", sa.Boolean(), nullable=False),
        sa.Column("onchain_max_fee_bps", sa.Integer(), nullable=True),
        sa.Column("onchain_updated_block", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "fee_bps IS NULL OR (fee_bps >= 0 AND fee_bps <= 10000)",
            name=op.f("ck_arbitrator_profiles_fee_bps"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_arbitrator_profiles_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arbitrator_profiles")),
        sa.UniqueConstraint("address", name=op.f("uq_arbitrator_profiles_address")),
    )
    op.create_index(
        op.f("ix_arbitrator_profiles_user_id"), "arbitrator_profiles", ["user_id"], unique=False
    )

    op.create_table(
        "listings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=66), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("price", Uint256(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column("photos", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("currency IN ('ETH', 'USD')", name=op.f("ck_listings_currency")),
        sa.CheckConstraint(
            "status IN ('active', 'reserved', 'sold', 'withdrawn')", name=op.f("ck_listings_status")
        ),
        sa.CheckConstraint("price >= 0", name=op.f("ck_listings_price_not_negative")),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_listings_quantity_not_negative")),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["users.id"], name=op.f("fk_listings_seller_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listings")),
        sa.UniqueConstraint("ref", name=op.f("uq_listings_ref")),
    )
    op.create_index(op.f("ix_listings_category"), "listings", ["category"], unique=False)
    op.create_index(op.f("ix_listings_city"), "listings", ["city"], unique=False)
    op.create_index(op.f("ix_listings_seller_id"), "listings", ["seller_id"], unique=False)
    op.create_index(op.f("ix_listings_status"), "listings", ["status"], unique=False)

    op.create_table(
        "trades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract_address", sa.String(length=42), nullable=False),
        sa.Column("onchain_id", Uint256(), nullable=False),
        sa.Column("listing_id", sa.Integer(), nullable=True),
        sa.Column("listing_ref", sa.String(length=66), nullable=False),
        sa.Column("buyer", sa.String(length=42), nullable=False),
        sa.Column("seller", sa.String(length=42), nullable=False),
        sa.Column("arbitrator", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("amount", Uint256(), nullable=False),
        sa.Column("ship_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("inspection_period", sa.Integer(), nullable=False),
        sa.Column("arbitrator_fee_bps", sa.Integer(), nullable=False),
        sa.Column("platform_fee_bps", sa.Integer(), nullable=False),
        sa.Column("terms_hash", sa.String(length=50), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("shipment_ref", sa.String(length=66), nullable=True),
        sa.Column("inspection_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ruling_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("split_proposer", sa.String(length=8), nullable=True),
        sa.Column("proposed_buyer_bps", sa.Integer(), nullable=True),
        sa.Column("released_by_buyer", sa.Boolean(), nullable=True),
        sa.Column("refunded_after_deadline", sa.Boolean(), nullable=True),
        sa.Column("buyer_bps", sa.Integer(), nullable=True),
        sa.Column("buyer_amount", Uint256(), nullable=True),
        sa.Column("seller_amount", Uint256(), nullable=True),
        sa.Column("platform_fee", Uint256(), nullable=True),
        sa.Column("arbitrator_fee", Uint256(), nullable=True),
        sa.Column("funded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("split_proposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disputed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_block", sa.BigInteger(), nullable=True),
        sa.Column("funded_block", sa.BigInteger(), nullable=False),
        sa.Column("funded_tx", sa.String(length=66), nullable=False),
        sa.Column("last_event_block", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "split_proposer IS NULL OR split_proposer IN ('buyer', 'seller')",
            name=op.f("ck_trades_split_proposer"),
        ),
        sa.CheckConstraint(
            "status IN ('None', 'Funded', 'Shipped', 'Disputed', "
            "'Released', 'Refunded', 'Settled', 'Resolved')",
            name=op.f("ck_trades_status"),
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_trades_amount_not_negative")),
        sa.CheckConstraint(
            "arbitrator_fee IS NULL OR arbitrator_fee >= 0", name=op.f("ck_trades_arbitrator_fee")
        ),
        sa.CheckConstraint(
            "buyer_amount IS NULL OR buyer_amount >= 0", name=op.f("ck_trades_buyer_amount")
        ),
        sa.CheckConstraint(
            "platform_fee IS NULL OR platform_fee >= 0", name=op.f("ck_trades_platform_fee")
        ),
        sa.CheckConstraint(
            "seller_amount IS NULL OR seller_amount >= 0", name=op.f("ck_trades_seller_amount")
        ),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["listings.id"],
            name=op.f("fk_trades_listing_id_listings"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trades")),
        sa.UniqueConstraint(
            "chain_id",
            "contract_address",
            "onchain_id",
            name=op.f("uq_trades_chain_id_contract_address_onchain_id"),
        ),
    )
    op.create_index(op.f("ix_trades_arbitrator"), "trades", ["arbitrator"], unique=False)
    op.create_index(op.f("ix_trades_buyer"), "trades", ["buyer"], unique=False)
    op.create_index(op.f("ix_trades_listing_id"), "trades", ["listing_id"], unique=False)
    op.create_index(op.f("ix_trades_seller"), "trades", ["seller"], unique=False)
    op.create_index(op.f("ix_trades_status"), "trades", ["status"], unique=False)

    op.create_table(
        "disputes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trade_id", sa.Integer(), nullable=False),
        sa.Column("opened_by", sa.String(length=42), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_block", sa.BigInteger(), nullable=False),
        sa.Column("ruling_deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("statement", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("by_timeout", sa.Boolean(), nullable=True),
        sa.Column("buyer_bps", sa.Integer(), nullable=True),
        sa.Column("buyer_amount", Uint256(), nullable=True),
        sa.Column("seller_amount", Uint256(), nullable=True),
        sa.Column("arbitrator_fee", Uint256(), nullable=True),
        sa.Column("platform_fee", Uint256(), nullable=True),
        sa.CheckConstraint(
            "arbitrator_fee IS NULL OR arbitrator_fee >= 0", name=op.f("ck_disputes_arbitrator_fee")
        ),
        sa.CheckConstraint(
            "buyer_amount IS NULL OR buyer_amount >= 0", name=op.f("ck_disputes_buyer_amount")
        ),
        sa.CheckConstraint(
            "platform_fee IS NULL OR platform_fee >= 0", name=op.f("ck_disputes_platform_fee")
        ),
        sa.CheckConstraint(
            "seller_amount IS NULL OR seller_amount >= 0", name=op.f("ck_disputes_seller_amount")
        ),
        sa.ForeignKeyConstraint(
            ["trade_id"],
            ["trades.id"],
            name=op.f("fk_disputes_trade_id_trades"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputes")),
        sa.UniqueConstraint("trade_id", name=op.f("uq_disputes_trade_id")),
    )
    op.create_table(
        "evidence_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trade_id", sa.Integer(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=42), nullable=False),
        sa.Column("original_name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_path", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("onchain_uri", sa.String(length=500), nullable=True),
        sa.Column("onchain_tx_hash", sa.String(length=66), nullable=True),
        sa.Column("onchain_block", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_evidence_files_size_not_negative")),
        sa.ForeignKeyConstraint(
            ["trade_id"],
            ["trades.id"],
            name=op.f("fk_evidence_files_trade_id_trades"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence_files")),
        sa.UniqueConstraint("trade_id", "sha256", name=op.f("uq_evidence_files_trade_id_sha256")),
    )
    op.create_index(op.f("ix_evidence_files_sha256"), "evidence_files", ["sha256"], unique=False)
    op.create_index(
        op.f("ix_evidence_files_trade_id"), "evidence_files", ["trade_id"], unique=False
    )

    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trade_id", sa.Integer(), nullable=False),
        sa.Column("rater_side", sa.String(length=8), nullable=False),
        sa.Column("rater", sa.String(length=42), nullable=False),
        sa.Column("ratee", sa.String(length=42), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rater_side IN ('buyer', 'seller')", name=op.f("ck_ratings_rater_side")),
        sa.CheckConstraint("rater <> ratee", name=op.f("ck_ratings_not_self")),
        sa.CheckConstraint("score >= 1 AND score <= 5", name=op.f("ck_ratings_score_range")),
        sa.ForeignKeyConstraint(
            ["trade_id"], ["trades.id"], name=op.f("fk_ratings_trade_id_trades"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
        sa.UniqueConstraint("trade_id", "rater_side", name=op.f("uq_ratings_trade_id_rater_side")),
    )
    op.create_index(op.f("ix_ratings_ratee"), "ratings", ["ratee"], unique=False)
    op.create_index(op.f("ix_ratings_trade_id"), "ratings", ["trade_id"], unique=False)

    op.create_table(
        "trade_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract_address", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("block_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("trade_id", sa.Integer(), nullable=True),
        sa.Column("onchain_trade_id", Uint256(), nullable=True),
        sa.Column("account", sa.String(length=42), nullable=True),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trade_id"],
            ["trades.id"],
            name=op.f("fk_trade_events_trade_id_trades"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trade_events")),
        sa.UniqueConstraint(
            "chain_id",
            "tx_hash",
            "log_index",
            name=op.f("uq_trade_events_chain_id_tx_hash_log_index"),
        ),
    )
    op.create_index(op.f("ix_trade_events_account"), "trade_events", ["account"], unique=False)
    op.create_index(
        op.f("ix_trade_events_onchain_trade_id"), "trade_events", ["onchain_trade_id"], unique=False
    )
    op.create_index(
        "ix_trade_events_scope_block",
        "trade_events",
        ["chain_id", "contract_address", "block_number"],
        unique=False,
    )
    op.create_index(op.f("ix_trade_events_trade_id"), "trade_events", ["trade_id"], unique=False)

    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trade_id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("evidence_file_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["evidence_file_id"],
            ["evidence_files.id"],
            name=op.f("fk_messages_evidence_file_id_evidence_files"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["trade_id"],
            ["trades.id"],
            name=op.f("fk_messages_trade_id_trades"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.create_index(
        op.f("ix_messages_evidence_file_id"), "messages", ["evidence_file_id"], unique=False
    )
    op.create_index(op.f("ix_messages_sender"), "messages", ["sender"], unique=False)
    op.create_index(op.f("ix_messages_trade_id"), "messages", ["trade_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_messages_trade_id"), table_name="messages")
    op.drop_index(op.f("ix_messages_sender"), table_name="messages")
    op.drop_index(op.f("ix_messages_evidence_file_id"), table_name="messages")

    op.drop_table("messages")
    op.drop_index(op.f("ix_trade_events_trade_id"), table_name="trade_events")
    op.drop_index("ix_trade_events_scope_block", table_name="trade_events")
    op.drop_index(op.f("ix_trade_events_onchain_trade_id"), table_name="trade_events")
    op.drop_index(op.f("ix_trade_events_account"), table_name="trade_events")

    op.drop_table("trade_events")
    op.drop_index(op.f("ix_ratings_trade_id"), table_name="ratings")
    op.drop_index(op.f("ix_ratings_ratee"), table_name="ratings")

    op.drop_table("ratings")
    op.drop_index(op.f("ix_evidence_files_trade_id"), table_name="evidence_files")
    op.drop_index(op.f("ix_evidence_files_sha256"), table_name="evidence_files")

    op.drop_table("evidence_files")
    op.drop_table("disputes")
    op.drop_index(op.f("ix_trades_status"), table_name="trades")
    op.drop_index(op.f("ix_trades_seller"), table_name="trades")
    op.drop_index(op.f("ix_trades_listing_id"), table_name="trades")
    op.drop_index(op.f("ix_trades_buyer"), table_name="trades")
    op.drop_index(op.f("ix_trades_arbitrator"), table_name="trades")

    op.drop_table("trades")
    op.drop_index(op.f("ix_listings_status"), table_name="listings")
    op.drop_index(op.f("ix_listings_seller_id"), table_name="listings")
    op.drop_index(op.f("ix_listings_city"), table_name="listings")
    op.drop_index(op.f("ix_listings_category"), table_name="listings")

    op.drop_table("listings")
    op.drop_index(op.f("ix_arbitrator_profiles_user_id"), table_name="arbitrator_profiles")

    op.drop_table("arbitrator_profiles")
    op.drop_table("users")
    op.drop_table("indexer_checkpoints")
