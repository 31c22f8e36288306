"""``escrow index`` and ``escrow reconcile``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete

from escrow.db.engine import database_url, make_engine, session_scope, upgrade
from escrow.db.models import IndexerCheckpoint, Trade, TradeEvent, UndecodedLog
from escrow.db.stats import parties_of_trades, recompute
from escrow.errors import EscrowError
from escrow.indexer.projection import detach_records
from escrow.indexer.reconcile import ReconcileReport, reconcile
from escrow.indexer.scanner import (
    MAX_BLOCKS_PER_BATCH,
    MAX_RETRY_DELAY,
    TRANSIENT_ERRORS,
    ChainResetError,
    Indexer,
    Progress,
    follow,
)
from escrow.leader import Leadership, LeadershipLost, leader_lock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    address: str
    start_block: int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``index`` and ``reconcile`` subcommands (they read ``args.rpc_url``)."""
    index = subparsers.add_parser(
        "index",
        help="keep the database equal to the escrow contract's events",
        description="Catch up from the last checkpoint, then follow new blocks.",
    )
    _common(index)
    index.add_argument(
        "--confirmations",
        type=int,
        default=0,
        help="leave the newest N blocks until they are N deep (default 0)",
    )
    index.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    index.add_argument("--once", action="store_true", help="catch up, then exit")
    index.add_argument(
        "--max-blocks-per-batch", type=int, default=MAX_BLOCKS_PER_BATCH, help=argparse.SUPPRESS
    )
    index.add_argument(
        "--reset",
        action="store_true",
        help="delete this contract's indexed rows first (after a chain reset)",
    )
    index.add_argument(
        "--leader-lock",
        action="store_true",
        help="on PostgreSQL, index only while holding the indexer's advisory lock (one active "
        "indexer per database, the others stand by and take over); no effect on SQLite",
    )
    index.set_defaults(handler=run_index)

    rec = subparsers.add_parser(
        "reconcile",
        help="compare every stored trade with the contract's state",
        description="Exit status 1 when differences remain.",
    )
    _common(rec)
    rec.add_argument(
        "--repair",
        action="store_true",
        help="re-read the trades' logs and rebuild the differing trades",
    )
    rec.add_argument("--json", action="store_true", help="print the report as JSON")
    rec.set_defaults(handler=run_reconcile)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=None,
        help="database (default: DATABASE_URL or the SQLite file in the data dir)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="escrow contract (default: the recorded deployment on this chain)",
    )
    parser.add_argument(
        "--from-block",
        type=int,
        default=None,
        help="first block to read (default: the deployment block)",
    )


def _connect(args: argparse.Namespace) -> Any:
    from escrow.chain import connect

    if not getattr(args, "rpc_url", None):
        raise EscrowError("indexing needs a chain node: pass --rpc-url or set ESCROW_RPC_URL")
    return connect(args.rpc_url)


def _targets(args: argparse.Namespace, chain: Any) -> list[Target]:
    """The escrow named by ``--address``, or every escrow of the recorded deployment (the
    current one first, then older versions whose trades may still be open)."""
    if args.address:
        return [Target(args.address.lower(), args.from_block or 0)]
    from escrow.deploy import read_deployment, registry_path

    deployment = read_deployment(chain.chain_id)
    if deployment is None:
        raise EscrowError(
            f"no deployment recorded for chain {chain.chain_id} "
            f"({registry_path(chain.chain_id)}): deploy first or pass --address"
        )
    return [
        Target(
            record.address.lower(),
            record.block_number if args.from_block is None else args.from_block,
        )
        for record in deployment.escrows
    ]


def _progress_printer() -> Any:
    def show(p: Progress) -> None:
        if p.target - p.block > 0 or p.events:
            rate = p.events / p.elapsed if p.elapsed > 0 else 0.0
            sys.stderr.write(
                f"\rindexed block {p.block}/{p.target}  events {p.events}  {rate:,.0f}/s   "
            )
            if p.block >= p.target:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return show


def reset_rows(engine: Any, chain_id: int, address: str) -> None:
    """Deletes one contract's indexed rows (events, trades and disputes, checkpoint).

    Messages, ratings and evidence files are people's words: they are detached from the
    trades, not deleted, and come back if the same funding appears again.
    """
    with session_scope(engine) as session:
        of_contract = (Trade.chain_id == chain_id) & (Trade.contract_address == address)
        people = parties_of_trades(session, of_contract)
        detach_records(session, of_contract)
        for model in (TradeEvent, UndecodedLog, Trade, IndexerCheckpoint):
            session.execute(
                delete(model).where(model.chain_id == chain_id, model.contract_address == address)
            )
        recompute(session, *people)  # their figures without this contract's trades


def run_index(args: argparse.Namespace) -> int:
    url = args.database_url or database_url()
    if getattr(args, "leader_lock", False):
        if not args.once:
            return _run_index_as_leader(args, url)
        # One catch-up, and only if no other indexer is active: that one is keeping up.
        lock = leader_lock(url, "indexer")
        try:
            if not lock.try_acquire():
                print("another indexer is active on this database: nothing to do")
                return 0
            return _run_index_unlocked(args, url)
        finally:
            lock.release()
    return _run_index_unlocked(args, url)


def _run_index_unlocked(args: argparse.Namespace, url: str) -> int:
    upgrade(url)
    engine = make_engine(url)
    try:
        return _run_index(args, engine)
    finally:
        engine.dispose()


def _indexers(args: argparse.Namespace, engine: Any) -> tuple[list[Any], list[Indexer]]:
    """The escrows to follow and one indexer each (their rows first reset with ``--reset``)."""
    chain = _connect(args)
    targets = _targets(args, chain)
    if args.reset:
        for target in targets:
            reset_rows(engine, chain.chain_id, target.address)
    indexers = [
        Indexer(
            chain.w3,
            engine,
            target.address,
            start_block=target.start_block,
            confirmations=args.confirmations,
            max_blocks_per_batch=args.max_blocks_per_batch,
        )
        for target in targets
    ]
    return targets, indexers


def _run_index(args: argparse.Namespace, engine: Any) -> int:
    targets, indexers = _indexers(args, engine)
    show = _progress_printer()
    try:
        if args.once:
            for target, indexer in zip(targets, indexers, strict=True):
                result = indexer.sync(progress=show)
                undecoded = (
                    f", {result.undecoded} logs stored undecoded" if result.undecoded else ""
                )
                where = f"{target.address}: " if len(targets) > 1 else ""
                print(
                    f"{where}indexed blocks {result.from_block}..{result.to_block}: "
                    f"{result.events} events in {result.seconds:.1f} s{undecoded}"
                )
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            follow(indexers, stop, args.poll, progress=show)
        except KeyboardInterrupt:
            pass
        return 0
    except ChainResetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run_index_as_leader(args: argparse.Namespace, url: str) -> int:
    """Stands by until this process holds the indexer's lock, then indexes while it holds it;
    a lost lock stops the writes and it stands by again (escrow.leader)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s indexer %(levelname)s: %(message)s",
            stream=sys.stderr,
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = leader_lock(url, "indexer")
    try:
        while lock.acquire(stop):
            # Migrations and --reset happen under the lock: never two at once.
            upgrade(url)
            engine = make_engine(url)
            try:
                return _follow_while_active(args, engine, lock, stop)
            except LeadershipLost as exc:
                log.warning("%s: stopped writing, waiting for the lock again", exc)
            finally:
                engine.dispose()
        return 0
    except KeyboardInterrupt:
        return 0
    except ChainResetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        lock.release()


def _follow_while_active(
    args: argparse.Namespace, engine: Any, lock: Leadership, stop: threading.Event
) -> int:
    """:func:`follow`, one batch at a time, with the lock checked before each batch."""
    targets, indexers = _indexers(args, engine)
    show = _progress_printer()
    delay = args.poll
    while not stop.is_set():
        try:
            for indexer in indexers:
                while not stop.is_set():
                    lock.check()
                    if indexer.sync(max_batches=1, progress=show).batches == 0:
                        break
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
        delay = args.poll
        stop.wait(args.poll)
    return 0


def run_reconcile(args: argparse.Namespace) -> int:
    url = args.database_url or database_url()
    engine = make_engine(url)
    try:
        return _run_reconcile(args, engine)
    finally:
        engine.dispose()


def _run_reconcile(args: argparse.Namespace, engine: Any) -> int:
    chain = _connect(args)
    report = ReconcileReport()
    for target in _targets(args, chain):
        report.merge(reconcile(chain.w3, engine, target.address, repair=args.repair))
    if args.json:
        print(
            json.dumps(
                {
                    "checked": report.checked,
                    "repaired": [hex(i) for i in report.repaired],
                    "differences": [str(d) for d in report.differences],
                    "undecoded_logs": report.undecoded_logs,
                    "undecoded": [
                        {
                            "block": u.block_number,
                            "tx_hash": u.tx_hash,
                            "log_index": u.log_index,
                            "error": u.error,
                        }
                        for u in report.undecoded
                    ],
                },
                indent=2,
            )
        )
    else:
        for difference in report.differences:
            print(difference)
        for entry in report.undecoded:
            print(entry)
        print(
            f"{report.checked} trades checked, {len(report.differences)} differences, "
            f"{len(report.repaired)} repaired, {report.undecoded_logs} undecoded logs"
        )
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m escrow.indexer``)."""
    from escrow.settings import rpc_url

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m escrow.indexer")
    parser.add_argument("--rpc-url", default=rpc_url())
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except EscrowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
