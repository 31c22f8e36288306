"""The chain indexer: reads the escrow contract's logs into the database and keeps it equal to
the chain (confirmations, reorganisations, chain resets, reconciliation)."""

from escrow.indexer.scanner import (
    ChainResetError,
    Indexer,
    IndexerThread,
    Progress,
    SyncResult,
)

__all__ = ["ChainResetError", "Indexer", "IndexerThread", "Progress", "SyncResult"]
