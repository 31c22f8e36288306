"""The chain scanner: keeps the database equal to the contract's event history.

Each batch is one database transaction holding the batch's events, the rows they change and
the checkpoint (last block and its hash). A crash anywhere leaves either all of a batch or none
of it; the unique key (chain id, tx hash, log index) and the replay filter make re-reading a
range harmless. Before each batch the checkpoint's block hash is compared with the node's: on a
mismatch the indexer first checks that the chain itself is the same one (genesis hash and
contract code), then finds the last stored block still on the chain, rolls back everything
above it and reads on from there.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import requests
import sqlalchemy.exc
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from web3 import Web3
from web3.exceptions import Web3Exception

from escrow.db.engine import session_scope
from escrow.db.models import IndexerCheckpoint, TradeEvent
from escrow.errors import EscrowError
from escrow.indexer.decoder import DecodedLog, LogDecoder, RawLog, UndecodableLog, Undecoded
from escrow.indexer.projection import (
    BatchResult,
    Scope,
    apply_events,
    rollback_above,
    unstorable,
)
from escrow.indexer.source import LogSource

log = logging.getLogger(__name__)

#: Aim for this many events per batch (one transaction); the block range adapts to it.
TARGET_EVENTS_PER_BATCH = 5_000
MAX_BLOCKS_PER_BATCH = 10_000


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pauses Python's cycle collector while a batch is decoded and written.

    A batch makes a few dicts per event that live until it commits; the collector kept
    scanning them (about a sixth of a batch's time in a profile). Reference counting still
    frees everything at once; collection resumes afterwards. Left alone if already paused.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class ChainResetError(EscrowError):
    """The node serves another chain than the one the database was built from."""


@dataclass
class Progress:
    block: int  # last block indexed
    target: int  # block the scan is catching up to
    events: int  # events stored since the scan started
    elapsed: float  # seconds since the scan started


@dataclass
class SyncResult:
    from_block: int
    to_block: int
    events: int = 0
    skipped: int = 0
    orphans: int = 0
    undecoded: int = 0
    batches: int = 0
    reorgs: int = 0
    seconds: float = 0.0


class Indexer:
    """Indexes one escrow contract into one database.

    ``confirmations`` blocks at the chain head are left unread until they are that deep.
    ``start_block`` should be the deployment block (nothing before it concerns the contract).
    ``stablecoin`` is the token USD listings are paid in, ``tenge`` the one KZT listings are paid
    in; by default the ones recorded with this contract's deployment
    (``data/deployments/<chain id>.json``), if any.
    """

    def __init__(
        self,
        w3: Web3,
        engine: Engine,
        contract_address: str,
        *,
        abi: Sequence[dict[str, Any]] | None = None,
        start_block: int = 0,
        confirmations: int = 0,
        max_blocks_per_batch: int = MAX_BLOCKS_PER_BATCH,
        target_events_per_batch: int = TARGET_EVENTS_PER_BATCH,
        stablecoin: str | None = None,
        tenge: str | None = None,
    ) -> None:
        if abi is None:
            from escrow.client import escrow_events_abi

            abi = escrow_events_abi()
        self.source = LogSource(w3)
        self.engine = engine
        self.decoder = LogDecoder(abi)
        chain_id = self.source.chain_id
        if stablecoin is None:
            stablecoin = recorded_stablecoin(chain_id, contract_address)
        if tenge is None:
            tenge = recorded_tenge(chain_id, contract_address)
        self.scope = Scope(
            chain_id,
            contract_address.lower(),
            stablecoin.lower() if stablecoin else None,
            tenge.lower() if tenge else None,
        )
        self.start_block = start_block
        self.confirmations = confirmations
        self.max_blocks = max_blocks_per_batch
        self.target_events = target_events_per_batch
        self._blocks_per_batch = min(1_000, max_blocks_per_batch)
        self._verified = False
        #: Called inside a batch's transaction after its rows are written (tests use it to
        #: simulate a crash before the commit).
        self.before_commit: Callable[[Session, BatchResult], None] | None = None

    # ------------------------------------------------------------------ checkpoint

    def _checkpoint(self, session: Session) -> IndexerCheckpoint | None:
        return session.scalar(
            select(IndexerCheckpoint).where(
                IndexerCheckpoint.chain_id == self.scope.chain_id,
                IndexerCheckpoint.contract_address == self.scope.contract_address,
            )
        )

    def checkpoint(self) -> tuple[int, str | None]:
        """(last indexed block, its hash); (start_block - 1, None) before the first batch."""
        with session_scope(self.engine) as session:
            cp = self._checkpoint(session)
            if cp is None:
                return self.start_block - 1, None
            return cp.last_block, cp.last_block_hash

    def verify_chain(self) -> None:
        """Creates the checkpoint, or raises :class:`ChainResetError` if the chain changed."""
        genesis = self.source.genesis_hash()
        code = self.source.code_hash(self.scope.contract_address)
        empty_code = "0x" + "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        with session_scope(self.engine) as session:
            cp = self._checkpoint(session)
            if cp is None:
                if code == empty_code:
                    raise ChainResetError(
                        f"no contract at {self.scope.contract_address} on chain "
                        f"{self.scope.chain_id}: deploy it first or check the address"
                    )
                session.add(
                    IndexerCheckpoint(
                        chain_id=self.scope.chain_id,
                        contract_address=self.scope.contract_address,
                        genesis_hash=genesis,
                        code_hash=code,
                        start_block=self.start_block,
                        last_block=self.start_block - 1,
                        last_block_hash=None,
                    )
                )
            elif (
                cp.genesis_hash != genesis
                and cp.code_hash == code
                and cp.last_block_hash is not None
                and self.source.block_hash(cp.last_block) == cp.last_block_hash
            ):
                # anvil restarted from its state file keeps the recent blocks and makes a new
                # genesis block: the last block indexed is still there, so it is the same
                # history (a reset chain would not have it).
                log.info(
                    "genesis of chain %s changed but block %d is unchanged: node restarted "
                    "from saved state, same history",
                    self.scope.chain_id,
                    cp.last_block,
                )
                cp.genesis_hash = genesis
                self.start_block = cp.start_block
            elif cp.genesis_hash != genesis or cp.code_hash != code:
                what = (
                    "genesis block"
                    if cp.genesis_hash != genesis
                    else "code at the contract address"
                )
                raise ChainResetError(
                    f"the chain was reset: its {what} differs from the one this database was "
                    f"indexed from (chain {self.scope.chain_id}, contract "
                    f"{self.scope.contract_address}, indexed up to block {cp.last_block}). "
                    "Refusing to mix two histories: use a fresh database (or delete the "
                    "indexed rows with `escrow index --reset`) and redeploy if needed."
                )
            else:
                self.start_block = cp.start_block
        self._verified = True

    # ------------------------------------------------------------------ reorganisations

    def check_reorg(self) -> int | None:
        """Rolls back a reorganised tail; returns the block it rolled back to, or None."""
        last_block, last_hash = self.checkpoint()
        if last_hash is None or self.source.block_hash(last_block) == last_hash:
            return None
        self._verified = False
        self.verify_chain()  # a reset chain must not be "repaired" into a mix of histories
        with session_scope(self.engine) as session:
            fork = self._last_good_block(session, last_block)
            removed = rollback_above(session, self.scope, fork)
            cp = self._checkpoint(session)
            assert cp is not None
            cp.last_block = fork
            cp.last_block_hash = self.source.block_hash(fork) if fork >= 0 else None
        log.warning("chain reorganisation: rolled back %d events above block %d", removed, fork)
        return fork

    def _last_good_block(self, session: Session, below: int) -> int:
        """The highest stored event block still on the node's chain (binary search)."""
        blocks = session.execute(
            select(TradeEvent.block_number, TradeEvent.block_hash)
            .where(
                TradeEvent.chain_id == self.scope.chain_id,
                TradeEvent.contract_address == self.scope.contract_address,
                TradeEvent.block_number <= below,
            )
            .distinct()
            .order_by(TradeEvent.block_number)
        ).all()
        lo, hi = -1, len(blocks)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            number, stored_hash = blocks[mid]
            if self.source.block_hash(number) == stored_hash:
                lo = mid
            else:
                hi = mid
        return blocks[lo][0] if lo >= 0 else self.start_block - 1

    # ------------------------------------------------------------------ scanning

    def safe_head(self) -> int:
        return self.source.head() - self.confirmations

    def step(self, target: int | None = None) -> tuple[int, BatchResult] | None:
        """Indexes one batch up to at most ``target``; None when already there."""
        if not self._verified:
            self.verify_chain()
        if self.check_reorg() is not None:
            return self.step(target)
        last_block, _ = self.checkpoint()
        head = self.safe_head() if target is None else min(target, self.safe_head())
        if last_block >= head:
            return None
        first = last_block + 1
        last = min(head, first + self._blocks_per_batch - 1)
        last_hash = self.source.block_hash(last)
        with gc_paused():  # from reading the logs to the last commit
            raw = self.source.get_logs(self.scope.contract_address, first, last)
            if (
                last_hash is None
                or self.source.block_hash(last) != last_hash
                or any(r.block_number == last and r.block_hash != last_hash for r in raw)
            ):
                return (last_block, BatchResult())  # the chain moved under us: read again
            return self._store(raw, last_block, first, last, last_hash)

    def _store(
        self, raw: list[RawLog], last_block: int, first: int, last: int, last_hash: str
    ) -> tuple[int, BatchResult]:
        events, undecoded = self._decode_all(raw)
        total = BatchResult()
        committed = last_block
        # Crowded blocks can put many more events in the range than wanted: commit them in
        # groups of whole blocks, each with its own checkpoint.
        for group, group_last, group_hash in self._groups(events, last, last_hash):
            raw_here = [u for u in undecoded if committed < u.log.block_number <= group_last]
            with session_scope(self.engine) as session:
                result = apply_events(session, self.scope, group, raw_here)
                cp = self._checkpoint(session)
                assert cp is not None
                if cp.last_block != committed:
                    raise EscrowError("another indexer is writing the same contract's rows")
                cp.last_block, cp.last_block_hash = group_last, group_hash
                if self.before_commit is not None:
                    self.before_commit(session, result)
            committed = group_last
            total.applied += result.applied
            total.skipped += result.skipped
            total.orphans += result.orphans
            total.undecoded += result.undecoded
        self._adapt(last - first + 1, len(raw))
        return last, total

    def _groups(
        self, events: list[DecodedLog], last: int, last_hash: str
    ) -> list[tuple[list[DecodedLog], int, str]]:
        groups: list[tuple[list[DecodedLog], int, str]] = []
        start = 0
        while len(events) - start > self.target_events:
            end = start + self.target_events
            block = events[end - 1].block_number
            while end < len(events) and events[end].block_number == block:
                end += 1
            if end == len(events):
                break
            groups.append((events[start:end], block, events[end - 1].block_hash))
            start = end
        groups.append((events[start:], last, last_hash))
        return groups

    def _decode(self, raw: list[RawLog]) -> list[DecodedLog]:
        return self._decode_all(raw)[0]

    def _decode_all(self, raw: list[RawLog]) -> tuple[list[DecodedLog], list[Undecoded]]:
        """The decoded events, and the logs that could not be decoded or stored (any log the
        contract emits may come from a stranger: none may stop the indexer)."""
        missing = {r.block_number for r in raw if r.block_timestamp is None}
        stamps = self.source.block_timestamps(sorted(missing)) if missing else {}
        events = []
        undecoded = []
        for entry in raw:
            try:
                event = self.decoder.decode(entry)
            except UndecodableLog as exc:
                log.warning(
                    "storing an undecodable log raw (tx %s, log %d): %s",
                    entry.tx_hash,
                    entry.log_index,
                    str(exc)[:200],
                )
                undecoded.append(Undecoded(entry, str(exc)))
                continue
            if event.block_timestamp is None:
                event = replace(event, block_timestamp=stamps[event.block_number])
            problem = unstorable(event)
            if problem is not None:
                log.warning("storing a log raw (tx %s): %s", entry.tx_hash, problem)
                undecoded.append(Undecoded(entry, problem))
                continue
            events.append(event)
        return events, undecoded

    def _adapt(self, blocks: int, logs: int) -> None:
        if logs == 0:
            wanted = blocks * 4
        else:
            wanted = blocks * self.target_events // logs
        self._blocks_per_batch = max(1, min(self.max_blocks, wanted))

    def sync(
        self,
        to_block: int | None = None,
        *,
        max_batches: int | None = None,
        progress: Callable[[Progress], None] | None = None,
    ) -> SyncResult:
        """Catches up to ``to_block`` (default: head minus confirmations)."""
        started = time.perf_counter()
        first, _ = self.checkpoint()
        target = self.safe_head() if to_block is None else to_block
        result = SyncResult(from_block=first + 1, to_block=first)
        while max_batches is None or result.batches < max_batches:
            before = self.checkpoint()[0]
            outcome = self.step(target)
            if outcome is None:
                break
            block, batch = outcome
            if block < before:
                result.reorgs += 1
            result.to_block = block
            result.events += batch.applied
            result.skipped += batch.skipped
            result.orphans += batch.orphans
            result.undecoded += batch.undecoded
            result.batches += 1
            if progress is not None:
                progress(Progress(block, target, result.events, time.perf_counter() - started))
        result.seconds = time.perf_counter() - started
        return result

    def follow(
        self,
        stop: threading.Event,
        poll_interval: float = 1.0,
        progress: Callable[[Progress], None] | None = None,
    ) -> None:
        """Keeps indexing new blocks until ``stop`` is set (see :func:`follow`)."""
        follow([self], stop, poll_interval, progress)


def follow(
    indexers: Sequence[Indexer],
    stop: threading.Event,
    poll_interval: float = 1.0,
    progress: Callable[[Progress], None] | None = None,
) -> None:
    """Keeps indexing new blocks of every contract until ``stop`` is set.

    After an upgrade a market follows its current escrow and the older ones whose trades are
    still being finished: each poll brings every one of them up to the chain head in turn.
    A node that restarts or a database that is locked or down for a while is waited out
    (with a growing pause, at most ``MAX_RETRY_DELAY``): every batch is atomic with its
    checkpoint, so resuming neither loses nor doubles an event. A chain reset stays fatal.
    """
    delay = poll_interval
    while not stop.is_set():
        try:
            for indexer in indexers:
                indexer.sync(progress=progress)
        except TRANSIENT_ERRORS as exc:
            log.warning(
                "indexer waiting %.1f s after %s: %s",
                delay,
                exc.__class__.__name__,
                str(exc)[:200],
            )
            stop.wait(delay)
            delay = min(max(delay * 2, 0.5), MAX_RETRY_DELAY)
            continue
        delay = poll_interval
        stop.wait(poll_interval)


def indexed_through(session: Session, chain_id: int | None, addresses: Sequence[str]) -> int | None:
    """The last block applied for every one of ``addresses`` (lower case): the lowest of their
    checkpoints, or None until each has one. ``chain_id`` None: any chain."""
    query = select(IndexerCheckpoint.last_block).where(
        IndexerCheckpoint.contract_address.in_(list(addresses))
    )
    if chain_id is not None:
        query = query.where(IndexerCheckpoint.chain_id == chain_id)
    lasts = session.scalars(query).all()
    return int(min(lasts)) if lasts and len(lasts) == len(addresses) else None


def recorded_stablecoin(chain_id: int, contract_address: str) -> str | None:
    """The stablecoin recorded with this contract's deployment on this chain, or None."""
    return _recorded_token(chain_id, contract_address, "stablecoin")


def recorded_tenge(chain_id: int, contract_address: str) -> str | None:
    """The tenge token recorded with this contract's deployment on this chain, or None
    (also for a record written before the tenge existed)."""
    return _recorded_token(chain_id, contract_address, "tenge")


def _recorded_token(chain_id: int, contract_address: str, key: str) -> str | None:
    from escrow.deploy import registry_path

    try:
        record = json.loads(registry_path(chain_id).read_text())
        escrows = [record["escrow"], *record.get("previous_escrows", [])]
        if all(str(e["address"]).lower() != contract_address.lower() for e in escrows):
            return None
        coin = record.get(key)
        return str(coin["address"]).lower() if coin else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


#: Errors that end when the node or the database is back: connection failures, node errors
#: (such as a block it has just pruned), a locked or unreachable database.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.RequestException,
    OSError,
    TimeoutError,
    Web3Exception,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)
MAX_RETRY_DELAY = 10.0


class IndexerThread(threading.Thread):
    """Runs :meth:`Indexer.follow` in the background (for the web app and tests)."""

    def __init__(self, indexer: Indexer, poll_interval: float = 1.0) -> None:
        super().__init__(name="escrow-indexer", daemon=True)
        self.indexer = indexer
        self.poll_interval = poll_interval
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.indexer.follow(self.stop_event, self.poll_interval)
        except BaseException as exc:  # reported to whoever joins the thread
            self.error = exc
            log.exception("indexer stopped")

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.join(timeout)
