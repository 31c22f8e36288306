"""Per-person figures kept by the indexer (``party_stats``, ``party_volumes``,
``arbitrator_stats``) equal a computation from scratch: after random trades, disputes, rulings,
ratings and reorganisations, after ``escrow index --reset`` and after the 0013 migration's
backfill; money sums are exact above 2**64 on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from db_fixtures import *  # noqa: F403  (fixtures)
from db_fixtures import Market
from escrow.db.engine import session_scope
from escrow.db.models import (
    ArbitratorStats,
    PartyStats,
    PartyVolume,
    Trade,
    TradeStatus,
)
from escrow.db.records import add_rating
from escrow.db.stats import recompute_all, snapshot
from escrow.indexer import Indexer
from escrow.indexer.commands import reset_rows

pytestmark = pytest.mark.anvil

BIG = 2**64 + 12_345  # above what a 64-bit integer holds


def make_indexer(market: Market, engine: Engine) -> Indexer:
    return Indexer(
        market.w3, engine, market.address, abi=market.abi, start_block=market.deploy_block
    )


def kept(engine: Engine) -> dict[str, Any]:
    with Session(engine) as session:
        return snapshot(session)


def from_scratch(engine: Engine) -> dict[str, Any]:
    """The figures computed again from the trades and ratings (the transaction is dropped)."""
    with Session(engine) as session:
        recompute_all(session)
        result = snapshot(session)
        session.rollback()
    return result


def assert_figures_right(engine: Engine) -> None:
    assert kept(engine) == from_scratch(engine)


class Scenario:
    """Random actions on the contract, remembering what each trade may do next."""

    def __init__(self, market: Market, rng: random.Random) -> None:
        self.market, self.rng = market, rng
        self.state: dict[int, str] = {}

    def step(self) -> None:
        market, rng = self.market, self.rng
        funded = [t for t, s in self.state.items() if s == "funded"]
        shipped = [t for t, s in self.state.items() if s == "shipped"]
        disputed = [t for t, s in self.state.items() if s == "disputed"]
        choice = rng.random()
        if choice < 0.35 or not (funded or shipped or disputed):
            amount = rng.choice([1, 10**15, BIG, 2 * BIG + 7])
            buyer = rng.choice(market.buyers[:4])
            self.state[market.fund(amount=amount, buyer=buyer)] = "funded"
        elif choice < 0.55 and funded:
            trade = rng.choice(funded)
            market.ship(trade)
            self.state[trade] = "shipped"
        elif choice < 0.7 and shipped:
            trade = rng.choice(shipped)
            market.confirm(trade)
            self.state[trade] = "released"
        elif choice < 0.85 and (funded or shipped):
            trade = rng.choice(funded + shipped)
            market.dispute(trade)
            self.state[trade] = "disputed"
        elif disputed:
            trade = rng.choice(disputed)
            market.rpc("evm_increaseTime", [rng.randint(60, 86_400)])
            market.rule(trade, rng.choice([0, 10_000, 2_500]))
            self.state[trade] = "resolved"


def rate_some(engine: Engine, rng: random.Random) -> None:
    """Ratings through the ORM, as the web app leaves them, on some finished trades."""
    with session_scope(engine) as session:
        for trade in session.scalars(select(Trade)):
            if TradeStatus(trade.status).is_final and rng.random() < 0.5:
                if session.scalar(
                    select(Trade.id).where(Trade.id == trade.id)
                ) is not None and not _rated(session, trade.id):
                    add_rating(session, trade, trade.buyer, rng.randint(1, 5))


def _rated(session: Session, trade_pk: int) -> bool:
    from escrow.db.models import Rating

    return session.scalar(select(Rating.id).where(Rating.trade_id == trade_pk)) is not None


@pytest.mark.parametrize("seed", [1, 2])
def test_figures_equal_a_computation_from_scratch_through_trades_and_reorgs(
    market: Market, engine: Engine, seed: int
) -> None:
    rng = random.Random(seed)
    scenario = Scenario(market, rng)
    indexer = make_indexer(market, engine)
    for _ in range(12):
        scenario.step()
    indexer.sync()
    rate_some(engine, rng)
    assert_figures_right(engine)

    for _round in range(2):
        fork = market.rpc("evm_snapshot", [])
        state_at_fork = dict(scenario.state)
        for _ in range(8):
            scenario.step()
        indexer.sync()
        rate_some(engine, rng)
        assert_figures_right(engine)
        # History is rewritten from the fork: the events above it must be undone.
        market.rpc("evm_revert", [fork])
        scenario.state = state_at_fork
        for _ in range(6):
            scenario.step()
        market.rpc("anvil_mine", [10])
        indexer.sync()
        assert_figures_right(engine)

    with Session(engine) as session:
        seller = session.get(PartyStats, market.seller.lower())
        assert seller is not None and seller.trades_total == len(scenario.state)
        finished = [t for t in session.scalars(select(Trade)) if TradeStatus(t.status).is_final]
        volume = session.scalars(
            select(PartyVolume.amount).where(PartyVolume.address == market.seller.lower())
        ).all()
        assert sum(volume) == sum(t.amount for t in finished)  # exact, no float on the way
        arbitrator = session.get(ArbitratorStats, market.arbitrator.lower())
        assert arbitrator is not None and arbitrator.trades == len(scenario.state)


def test_money_sums_are_exact_above_2_to_the_64(market: Market, engine: Engine) -> None:
    amounts = [BIG, BIG + 1, 3 * BIG]
    for amount in amounts:
        trade = market.fund(amount=amount, buyer=market.buyers[1])
        market.ship(trade)
        market.confirm(trade)
    make_indexer(market, engine).sync()
    with Session(engine) as session:
        for address in (market.seller.lower(), market.buyers[1].lower()):
            row = session.scalars(
                select(PartyVolume.amount).where(PartyVolume.address == address)
            ).one()
            assert row == sum(amounts) == 5 * BIG + 1
            assert isinstance(row, int)
    assert_figures_right(engine)


def test_reset_and_reindex_give_the_same_figures(market: Market, engine: Engine) -> None:
    rng = random.Random(5)
    scenario = Scenario(market, rng)
    for _ in range(10):
        scenario.step()
    indexer = make_indexer(market, engine)
    indexer.sync()
    before = kept(engine)
    reset_rows(engine, indexer.scope.chain_id, indexer.scope.contract_address)
    emptied = kept(engine)
    assert not emptied["volumes"] and not emptied["arbitrators"]
    assert all(not any(row.values()) for row in emptied["parties"].values())
    make_indexer(market, engine).sync()
    assert kept(engine) == before == from_scratch(engine)


def test_the_migration_backfills_the_figures(market: Market, engine: Engine) -> None:
    """An old data folder: trades indexed before 0013 get their figures from the migration."""
    import importlib.util

    from escrow.db.engine import MIGRATIONS_DIR

    rng = random.Random(9)
    scenario = Scenario(market, rng)
    for _ in range(14):
        scenario.step()
    make_indexer(market, engine).sync()
    rate_some(engine, rng)
    expected = kept(engine)
    with session_scope(engine) as session:
        for model in (PartyVolume, PartyStats, ArbitratorStats):
            session.execute(delete(model))
    path = next(MIGRATIONS_DIR.glob("versions/*_0013_party_stats.py"))
    spec = importlib.util.spec_from_file_location("migration_0013", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with engine.begin() as connection:
        migration._backfill(connection)
    assert kept(engine) == expected


def _orm_trade(session: Session, n: int, status: str, amount: int) -> Trade:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    trade = Trade(
        chain_id=1,
        contract_address="0x" + "1" * 40,
        onchain_id=n,
        listing_ref="0x" + "0" * 64,
        buyer="0x" + "b" * 40,
        seller="0x" + "5" * 40,
        arbitrator="0x" + "a" * 40,
        token="0x" + "0" * 40,
        amount=amount,
        ship_by=now,
        inspection_period=86400,
        arbitrator_fee_bps=0,
        platform_fee_bps=0,
        terms_hash="0x",
        status=status,
        funded_at=now,
        funded_block=n,
        funded_tx="0x" + f"{n:064x}",
        last_event_block=n,
    )
    session.add(trade)
    session.flush()
    return trade


def test_a_rating_changes_the_figures_in_its_own_transaction(engine: Engine) -> None:
    seller = "0x" + "5" * 40
    with session_scope(engine) as session:
        trade = _orm_trade(session, 1, "Released", 2 * BIG)
        _orm_trade(session, 2, "Funded", 1)
    with Session(engine) as session:
        trade = session.scalars(select(Trade).where(Trade.onchain_id == 1)).one()
        add_rating(session, trade, trade.buyer, 4)
        session.flush()
        row = session.get(PartyStats, seller)
        assert row is not None and (row.rating_count, row.rating_total) == (1, 4)
        session.rollback()  # the rating is not kept, nor is its count
    with Session(engine) as session:
        row = session.get(PartyStats, seller)
        assert row is not None and (row.rating_count, row.trades_total) == (0, 2)
        assert row.completed_as_seller == 1
        volume = session.scalars(select(PartyVolume.amount).where(PartyVolume.address == seller))
        assert list(volume) == [2 * BIG]
    assert_figures_right(engine)


def test_upgrading_an_old_database_fills_the_figures(db_url: str) -> None:
    """Trades, disputes and ratings stored at revision 0012; ``upgrade`` to 0013 fills the
    tables with what a computation from scratch gives (including sums above 2**64)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from escrow.db.engine import make_engine, upgrade
    from escrow.db.models import Dispute, Rating

    upgrade(db_url, "0012")
    engine = make_engine(db_url)
    rng = random.Random(4)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    sellers = ["0x" + f"{n:040x}" for n in (1, 2)]
    buyers = ["0x" + f"{n:040x}" for n in (7, 8, 9)]
    statuses = ["Funded", "Shipped", "Released", "Refunded", "Disputed", "Resolved", "Settled"]
    try:
        with engine.begin() as connection:
            rows = []
            for n in range(60):
                status = rng.choice(statuses)
                rows.append(
                    {
                        "chain_id": 1,
                        "contract_address": "0x" + "1" * 40,
                        "onchain_id": n + 1,
                        "listing_ref": "0x" + "0" * 64,
                        "buyer": rng.choice(buyers),
                        "seller": rng.choice(sellers),
                        "arbitrator": "0x" + "a" * 40,
                        "token": rng.choice(["0x" + "0" * 40, "0x" + "e" * 40]),
                        "amount": rng.choice([1, BIG, 3 * BIG]),
                        "ship_by": now,
                        "inspection_period": 86400,
                        "arbitrator_fee_bps": 0,
                        "platform_fee_bps": 0,
                        "terms_hash": "0x",
                        "status": status,
                        "funded_at": now,
                        "funded_block": n,
                        "funded_tx": "0x" + f"{n:064x}",
                        "last_event_block": n,
                        "extension_granted": False,
                        "disputed_at": now if status in ("Disputed", "Resolved") else None,
                    }
                )
            connection.execute(insert(Trade), rows)
            stored = connection.execute(
                select(Trade.id, Trade.status, Trade.buyer, Trade.seller)
            ).all()
            for pk, status, buyer, seller in stored:
                if status in ("Disputed", "Resolved"):
                    hours = rng.randint(1, 90)
                    resolved = status == "Resolved"
                    connection.execute(
                        insert(Dispute).values(
                            trade_id=pk,
                            opened_by=buyer,
                            opened_at=now,
                            opened_block=1,
                            ruling_deadline=now + timedelta(days=7),
                            resolved_at=now + timedelta(hours=hours)
                            if status == "Resolved"
                            else None,
                            by_timeout=(hours > 80) if resolved else None,
                            buyer_bps=rng.choice([0, 5000, 10_000])
                            if status == "Resolved"
                            else None,
                        )
                    )
                if rng.random() < 0.5:  # some on unfinished trades: those do not count
                    connection.execute(
                        insert(Rating).values(
                            trade_id=pk,
                            rater_side="buyer",
                            rater=buyer,
                            ratee=seller,
                            score=rng.randint(1, 5),
                            created_at=now,
                        )
                    )
        upgrade(db_url)
        figures = kept(engine)
        assert figures == from_scratch(engine)
        assert figures["parties"] and figures["arbitrators"]
        assert max(figures["volumes"].values()) > 2**64
    finally:
        engine.dispose()
