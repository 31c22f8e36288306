"""listing search: Unicode case-insensitive substring index over title, description and city

SQLite: an FTS5 table ``listings_search`` (trigram tokenizer, case_sensitive 0) with external
content (the listings table itself), kept in step by three triggers on ``listings``, and filled
from the existing listings here ('rebuild').

PostgreSQL: a stored generated column ``listings.search_text`` =
``lower(title || ' ' || coalesce(description, '') || ' ' || coalesce(city, ''))`` (lower-cased
once when a listing is written, not on every search: ``lower()`` on Cyrillic costs about a
microsecond per row) with a GIN trigram index (pg_trgm, created when missing; it is a trusted
extension, so the database owner may create it). The column is not in the models: the ORM never
writes it, and ``webapp/search.py`` reads it by name.

NOTE for later migrations on SQLite: ``batch_alter_table("listings")`` copies the table and
drops the old one, and with it these triggers. Such a migration must create the three
triggers again (``_create_sqlite_triggers`` below, copied into it) and 'rebuild' the index;
``tests/test_search.py`` checks that the triggers exist at head.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FTS = "listings_search"
PG_COLUMN = "search_text"
PG_INDEX = "ix_listings_search_trgm"
PG_DOCUMENT = "lower(title || ' ' || coalesce(description, '') || ' ' || coalesce(city, ''))"


def _create_sqlite_triggers() -> None:
    op.execute(
        f"""
        CREATE TRIGGER listings_search_insert AFTER INSERT ON listings BEGIN
            INSERT INTO {FTS}(rowid, title, description, city)
            VALUES (new.id, new.title, new.description, new.city);
        END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER listings_search_delete AFTER DELETE ON listings BEGIN
            INSERT INTO {FTS}({FTS}, rowid, title, description, city)
            VALUES ('delete', old.id, old.title, old.description, old.city);
        END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER listings_search_update
        AFTER UPDATE OF id, title, description, city ON listings BEGIN
            INSERT INTO {FTS}({FTS}, rowid, title, description, city)
            VALUES ('delete', old.id, old.title, old.description, old.city);
            INSERT INTO {FTS}(rowid, title, description, city)
            VALUES (new.id, new.title, new.description, new.city);
        END
        """
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(
            f"""
            CREATE VIRTUAL TABLE {FTS} USING fts5(
                title, description, city,
                content='listings', content_rowid='id',
                tokenize='trigram case_sensitive 0'
            )
            """
        )
        _create_sqlite_triggers()
        op.execute(f"INSERT INTO {FTS}({FTS}) VALUES ('rebuild')")
    elif bind.dialect.name == "postgresql":
        schema = bind.scalar(
            text(
                "SELECT n.nspname FROM pg_extension e "
                "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
            )
        )
        if schema is None:
            op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            schema = bind.scalar(
                text(
                    "SELECT n.nspname FROM pg_extension e "
                    "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
                )
            )
        # The operator class is named with its schema: the extension may live in a schema
        # that is not on the search path (one database, several schemas).
        opclass = f'"{schema}".gin_trgm_ops'
        op.execute(
            f"ALTER TABLE listings ADD COLUMN {PG_COLUMN} text "
            f"GENERATED ALWAYS AS ({PG_DOCUMENT}) STORED"
        )
        op.execute(f"CREATE INDEX {PG_INDEX} ON listings USING gin ({PG_COLUMN} {opclass})")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in (
            "listings_search_update",
            "listings_search_delete",
            "listings_search_insert",
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute(f"DROP TABLE IF EXISTS {FTS}")
    elif bind.dialect.name == "postgresql":
        # The extension stays: other schemas in the database may use it.
        op.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")
        op.execute(f"ALTER TABLE listings DROP COLUMN IF EXISTS {PG_COLUMN}")
