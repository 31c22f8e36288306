"""sign-in nonces and listing reservations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_nonces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_nonces")),
        sa.UniqueConstraint("nonce", name=op.f("uq_login_nonces_nonce")),
    )
    op.create_index(op.f("ix_login_nonces_expires_at"), "login_nonces", ["expires_at"])
    with op.batch_alter_table("listings") as batch:
        batch.add_column(sa.Column("reserved_by", sa.String(length=42), nullable=True))
        batch.add_column(sa.Column("reserved_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("listings") as batch:
        batch.drop_column("reserved_until")
        batch.drop_column("reserved_by")
    op.drop_index(op.f("ix_login_nonces_expires_at"), table_name="login_nonces")
    op.drop_table("login_nonces")
