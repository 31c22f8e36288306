"""indexer safety: undecoded logs, records that outlive a reorganised trade

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 12:00:00

* ``undecoded_logs``: logs of the contract the indexer could not decode, kept raw.
* ``messages``, ``ratings``, ``evidence_files``: ``trade_id`` becomes nullable with
  ``ON DELETE SET NULL`` (was ``CASCADE``), plus ``detached_*`` columns remembering the trade
  while a reorganisation has removed it.

Downgrading deletes the records that are detached at that moment (the old schema cannot hold
them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from escrow.db.types import Uint256

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORD_TABLES = ("messages", "ratings", "evidence_files")


def _detached_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("detached_chain_id", sa.BigInteger(), nullable=True),
        sa.Column("detached_contract", sa.String(length=42), nullable=True),
        sa.Column("detached_onchain_id", Uint256(), nullable=True),
        sa.Column("detached_funded_tx", sa.String(length=66), nullable=True),
        sa.Column("detached_at", sa.DateTime(timezone=True), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "undecoded_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("contract_address", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_undecoded_logs")),
        sa.UniqueConstraint(
            "chain_id",
            "tx_hash",
            "log_index",
            name=op.f("uq_undecoded_logs_chain_id_tx_hash_log_index"),
        ),
    )
    op.create_index(
        "ix_undecoded_logs_scope_block",
        "undecoded_logs",
        ["chain_id", "contract_address", "block_number"],
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # SQLite changes a foreign key by copying the table, and dropping the old
        # evidence_files (foreign keys are on) would set every message's link to its file to
        # NULL: keep the links aside and put them back.
        op.execute(
            "CREATE TEMP TABLE migration_0005_links AS "
            "SELECT id, evidence_file_id FROM messages WHERE evidence_file_id IS NOT NULL"
        )
    for table in RECORD_TABLES:
        with op.batch_alter_table(table) as batch:
            for column in _detached_columns():
                batch.add_column(column)
            batch.alter_column("trade_id", existing_type=sa.Integer(), nullable=True)
            batch.drop_constraint(f"fk_{table}_trade_id_trades", type_="foreignkey")
            batch.create_foreign_key(
                f"fk_{table}_trade_id_trades",
                "trades",
                ["trade_id"],
                ["id"],
                ondelete="SET NULL",
            )
    if sqlite:
        _restore_links()


def _restore_links() -> None:
    op.execute(
        "UPDATE messages SET evidence_file_id = (SELECT l.evidence_file_id "
        "FROM migration_0005_links l WHERE l.id = messages.id) "
        "WHERE id IN (SELECT id FROM migration_0005_links)"
    )
    op.execute("DROP TABLE migration_0005_links")


def downgrade() -> None:
    for table in RECORD_TABLES:
        # (A message pointing at a deleted detached file keeps its text: that key is SET NULL.)
        op.execute(sa.text(f"DELETE FROM {table} WHERE trade_id IS NULL"))
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute(
            "CREATE TEMP TABLE migration_0005_links AS "
            "SELECT id, evidence_file_id FROM messages WHERE evidence_file_id IS NOT NULL"
        )
    for table in RECORD_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_trade_id_trades", type_="foreignkey")
            batch.create_foreign_key(
                f"fk_{table}_trade_id_trades",
                "trades",
                ["trade_id"],
                ["id"],
                ondelete="CASCADE",
            )
            batch.alter_column("trade_id", existing_type=sa.Integer(), nullable=False)
            for column in reversed(_detached_columns()):
                batch.drop_column(column.name)
    if sqlite:
        _restore_links()
    op.drop_index("ix_undecoded_logs_scope_block", table_name="undecoded_logs")
    op.drop_table("undecoded_logs")
