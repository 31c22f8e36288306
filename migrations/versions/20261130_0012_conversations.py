"""conversations: a buyer's messages to a seller about a listing, before buying

Two new tables; ``listings`` is not altered (a batch rebuild of it on SQLite would drop the
search triggers of 0011).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("listing_id", sa.Integer(), nullable=True),
        sa.Column("listing_title", sa.String(length=200), nullable=False),
        sa.Column("buyer_id", sa.Integer(), nullable=False),
        sa.Column("seller_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("buyer_read_id", sa.Integer(), server_default="0", nullable=False),
        sa.Column("seller_read_id", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("buyer_id <> seller_id", name=op.f("ck_conversations_not_self")),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["listings.id"],
            name=op.f("fk_conversations_listing_id_listings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["buyer_id"], ["users.id"], name=op.f("fk_conversations_buyer_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["seller_id"], ["users.id"], name=op.f("fk_conversations_seller_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sa.UniqueConstraint(
            "listing_id", "buyer_id", name=op.f("uq_conversations_listing_id_buyer_id")
        ),
    )
    op.create_index("ix_conversations_buyer_last", "conversations", ["buyer_id", "last_message_at"])
    op.create_index(
        "ix_conversations_seller_last", "conversations", ["seller_id", "last_message_at"]
    )
    op.create_table(
        "conversation_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_messages_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sender_id"], ["users.id"], name=op.f("fk_conversation_messages_sender_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_messages")),
    )
    op.create_index(
        "ix_conversation_messages_conversation_id",
        "conversation_messages",
        ["conversation_id", "id"],
    )
    op.create_index(
        "ix_conversation_messages_sender_created",
        "conversation_messages",
        ["sender_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_conversation_messages_sender_created", table_name="conversation_messages")
    op.drop_index("ix_conversation_messages_conversation_id", table_name="conversation_messages")
    op.drop_table("conversation_messages")
    op.drop_index("ix_conversations_seller_last", table_name="conversations")
    op.drop_index("ix_conversations_buyer_last", table_name="conversations")
    op.drop_table("conversations")
