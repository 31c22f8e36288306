"""Schema rules, money as exact integers, migrations matching the models, on both databases."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db_fixtures import *  # noqa: F403  (fixtures)
from escrow.db.engine import downgrade, make_engine, upgrade
from escrow.db.evidence import evidence_path, store_evidence, verify_evidence
from escrow.db.models import Base, Listing, Rating, Trade, TradeEvent, User, not_search_structure
from escrow.db.records import RecordRejected, add_rating

SELLER = "0x" + "11" * 20
BUYER = "0x" + "22" * 20
ARBITRATOR = "0x" + "33" * 20
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_trade(
    session: Session, onchain_id: int = 1, amount: int = 10**18, status: str = "Released"
) -> Trade:
    trade = Trade(
        chain_id=31337,
        contract_address="0x" + "44" * 20,
        onchain_id=onchain_id,
        listing_ref="0x" + "00" * 32,
        buyer=BUYER,
        seller=SELLER,
        arbitrator=ARBITRATOR,
        token="0x" + "00" * 20,
        amount=amount,
        ship_by=NOW,
        inspection_period=3600,
        arbitrator_fee_bps=100,
        platform_fee_bps=0,
        terms_hash="0x" + "00" * 24,
        status=status,
        funded_at=NOW,
        funded_block=1,
        funded_tx="0x" + "55" * 32,
        last_event_block=1,
    )
    session.add(trade)
    session.flush()
    return trade


def make_seller(session: Session) -> User:
    user = User(address=SELLER, display_name="Sam", languages=["en", "de"])
    session.add(user)
    session.flush()
    return user


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(
                conn, opts={"compare_type": True, "include_name": not_search_structure}
            ),
            Base.metadata,
        )
    assert diff == []


def test_migrations_go_down_and_up_again(db_url: str) -> None:
    upgrade(db_url)
    downgrade(db_url, "base")
    engine = make_engine(db_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(db_url)
    engine = make_engine(db_url)
    assert {"trades", "trade_events", "ratings", "listings"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


@pytest.mark.parametrize("amount", [0, 1, 2**63, 2**128 - 1, 2**256 - 1, 10**77 + 12345])
def test_money_round_trips_exactly(engine: Engine, amount: int) -> None:
    with Session(engine) as session, session.begin():
        make_trade(session, onchain_id=amount, amount=amount)
    with Session(engine) as session:
        trade = session.scalar(select(Trade).where(Trade.onchain_id == amount))
        assert trade is not None
        assert trade.amount == amount and type(trade.amount) is int


def test_money_orders_numerically(engine: Engine) -> None:
    amounts = [2**200, 5, 10**18, 2**64, 999]
    with Session(engine) as session, session.begin():
        for i, amount in enumerate(amounts):
            make_trade(session, onchain_id=i, amount=amount)
    with Session(engine) as session:
        stored = session.scalars(select(Trade.amount).order_by(Trade.amount)).all()
        assert stored == sorted(amounts)
        above = select(Trade.amount).where(Trade.amount > 10**18).order_by(Trade.amount)
        assert session.scalars(above).all() == [2**64, 2**200]


def test_money_must_be_an_int(engine: Engine) -> None:
    with Session(engine) as session, pytest.raises(Exception, match="must be int"):
        make_trade(session, amount=1.5)  # type: ignore[arg-type]


def test_negative_price_is_rejected_by_the_database(engine: Engine) -> None:
    with Session(engine) as session:
        seller = make_seller(session)
        session.add(Listing(ref="0x" + "01" * 32, seller_id=seller.id, title="x", price=-1))
        with pytest.raises(IntegrityError):
            session.flush()


def test_negative_amount_and_quantity_are_rejected(engine: Engine) -> None:
    with Session(engine) as session:
        with pytest.raises(IntegrityError):
            make_trade(session, amount=-5)
        session.rollback()
        seller = make_seller(session)
        session.add(
            Listing(ref="0x" + "02" * 32, seller_id=seller.id, title="x", price=1, quantity=-1)
        )
        with pytest.raises(IntegrityError):
            session.flush()


def test_one_rating_per_side_per_trade(engine: Engine) -> None:
    with Session(engine) as session:
        trade = make_trade(session)
        add_rating(session, trade, BUYER, 5, "quick")
        add_rating(session, trade, SELLER, 4)
        session.flush()
        session.add(
            Rating(trade_id=trade.id, rater_side="buyer", rater=BUYER, ratee=SELLER, score=1)
        )
        with pytest.raises(IntegrityError):
            session.flush()


def test_only_counterparties_of_finished_trades_rate(engine: Engine) -> None:
    with Session(engine) as session:
        open_trade = make_trade(session, onchain_id=1, status="Shipped")
        with pytest.raises(RecordRejected, match="not finished"):
            add_rating(session, open_trade, BUYER, 5)
        done = make_trade(session, onchain_id=2)
        with pytest.raises(RecordRejected, match="not a party"):
            add_rating(session, done, ARBITRATOR, 5)
        with pytest.raises(RecordRejected, match="score"):
            add_rating(session, done, BUYER, 6)
        rating = add_rating(session, done, SELLER.upper().replace("0X", "0x"), 3)
        assert (rating.rater_side, rating.ratee) == ("seller", BUYER)


def test_score_out_of_range_is_rejected_by_the_database(engine: Engine) -> None:
    with Session(engine) as session:
        trade = make_trade(session)
        session.add(
            Rating(trade_id=trade.id, rater_side="buyer", rater=BUYER, ratee=SELLER, score=0)
        )
        with pytest.raises(IntegrityError):
            session.flush()


def test_trade_events_are_unique_per_log(engine: Engine) -> None:
    row = dict(
        chain_id=1,
        contract_address="0x" + "44" * 20,
        block_number=5,
        block_hash="0x" + "aa" * 32,
        tx_hash="0x" + "bb" * 32,
        log_index=0,
        event="TradeShipped",
        args={"big": 2**255},
    )
    with Session(engine) as session:
        session.add(TradeEvent(**row))
        session.flush()
        stored = session.scalar(select(TradeEvent))
        assert stored is not None and stored.args == {"big": 2**255}
        session.add(TradeEvent(**row))
        with pytest.raises(IntegrityError):
            session.flush()


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Listing(ref="0x" + "03" * 32, seller_id=12345, title="x", price=1))
        with pytest.raises(IntegrityError):
            session.flush()


def test_timestamps_default_to_now(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        user = make_seller(session)
        assert user.created_at.tzinfo is not None
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 1


def test_evidence_is_stored_under_its_hash(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path)) / "evidence"
    stored = store_evidence(io.BytesIO(b"a photo of the parcel"), root)
    again = store_evidence(b"a photo of the parcel", root)
    assert stored == again
    assert stored.onchain_hash == "0x" + stored.sha256 and len(stored.sha256) == 64
    assert evidence_path(stored.storage_path, root).read_bytes() == b"a photo of the parcel"
    assert verify_evidence(stored.storage_path, stored.sha256, root)
    assert not [p for p in root.iterdir() if p.name.startswith(".upload-")]
    with pytest.raises(ValueError, match="larger"):
        store_evidence(b"x" * 100, root, max_bytes=10)
    with pytest.raises(ValueError, match="outside"):
        evidence_path("../../etc/passwd", root)
