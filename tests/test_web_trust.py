"""Trust figures: the price-signal median equals the exact median; the new-account flag counts
from a person's first activity."""

from __future__ import annotations

import random
import secrets
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db_fixtures import *  # noqa: F403  (fixtures: engine, on SQLite and PostgreSQL)
from escrow.db.models import (
    ArbitratorProfile,
    ArbitratorStats,
    Listing,
    PartyStats,
    Rating,
    Trade,
    User,
)
from webapp import trust
from webapp.checkout import BUY_ARBITRATORS
from webapp.listings import LISTING_PAGE
from webapp.profiles import PROFILE_LISTINGS, PROFILE_PAGE, PROFILE_RATINGS
from webapp.trust import (
    MIN_SIMILAR,
    is_new_account,
    risk_signals_for_listing,
    seller_record,
    similar_median,
)


def test_similar_median_matches_the_exact_median(app: Flask) -> None:
    rng = random.Random(11)
    with Session(app.extensions["escrow_engine"]) as session:
        seller = User(address="0x" + "ab" * 20)
        session.add(seller)
        session.flush()
        prices: list[int] = []
        for count in (MIN_SIMILAR - 1, 1, 1, 7, 10):  # below the minimum, then odd and even sizes
            for _ in range(count):
                price = rng.choice([rng.randint(1, 10**6), rng.randint(10**20, 10**30)])
                prices.append(price)
                session.add(
                    Listing(
                        ref="0x" + secrets.token_hex(32),
                        seller_id=seller.id,
                        title="Lamp",
                        price=price,
                        currency="ETH",
                        category="home",
                        photos=[],
                    )
                )
            session.add(
                Listing(
                    ref="0x" + secrets.token_hex(32),
                    seller_id=seller.id,
                    title="Other",
                    price=1,
                    currency="USD",
                    category="home",
                    photos=[],
                )
            )
            session.flush()
            ordered = sorted(prices)
            middle = len(ordered) // 2
            expected = (
                ordered[middle]
                if len(ordered) % 2
                else (ordered[middle - 1] + ordered[middle]) // 2
            )
            got = similar_median(session, "home", "ETH")
            assert got == (expected if len(prices) >= MIN_SIMILAR else None)


def test_new_account_counts_from_the_first_activity(app: Flask) -> None:
    """A seller whose first activity was 120 days ago is not new, even if their web account
    row was made yesterday; a seller who started 2 days ago is."""
    now = datetime.now(UTC)
    old, young = "0x" + "01" * 20, "0x" + "02" * 20
    with Session(app.extensions["escrow_engine"]) as session:
        for address in (old, young):
            session.add(User(address=address, languages=[], created_at=now - timedelta(days=1)))
        session.flush()
        # The old seller's first trade was paid 120 days ago (and finished), before they signed in.
        _trade(session, buyer="0x" + "03" * 20, seller=old, funded_at=now - timedelta(days=120))
        _trade(session, buyer="0x" + "04" * 20, seller=young, funded_at=now - timedelta(days=2))
        session.flush()
        old_record = seller_record(session, old, now=now)
        young_record = seller_record(session, young, now=now)
        assert old_record.account_age_days == 120
        assert young_record.account_age_days == 2
        assert not is_new_account(old_record, now) and is_new_account(young_record, now)
        old_listing = _listing(session, old)
        young_listing = _listing(session, young)
        assert "new_account" not in {
            s.code for s in risk_signals_for_listing(session, old_listing, now=now)
        }
        young_signals = risk_signals_for_listing(session, young_listing, now=now)
        assert "new_account" in {s.code for s in young_signals}

    # A web account made 120 days ago with a first listing: not new either.
    with Session(app.extensions["escrow_engine"]) as session:
        seller = User(address="0x" + "05" * 20, languages=[], created_at=now - timedelta(days=120))
        session.add(seller)
        session.flush()
        record = seller_record(session, seller.address, now=now)
        assert record.account_age_days == 120 and not is_new_account(record, now)


def _listing(session: Session, seller: str) -> Listing:
    user = session.scalar(select(User).where(User.address == seller))
    assert user is not None
    listing = Listing(
        ref="0x" + secrets.token_hex(32),
        seller_id=user.id,
        title="Bike",
        price=10**18,
        currency="ETH",
        category="bikes",
        photos=[],
    )
    session.add(listing)
    session.flush()
    return listing


def _trade(session: Session, *, buyer: str, seller: str, funded_at: datetime) -> Trade:
    trade = Trade(
        chain_id=1,
        contract_address="0x" + "11" * 20,
        onchain_id=int(secrets.token_hex(8), 16),
        listing_ref="0x" + "00" * 32,
        buyer=buyer,
        seller=seller,
        arbitrator="0x" + "aa" * 20,
        token="0x" + "00" * 20,
        amount=10**18,
        ship_by=funded_at + timedelta(days=5),
        inspection_period=3 * 86400,
        arbitrator_fee_bps=200,
        platform_fee_bps=100,
        terms_hash="0x" + "00" * 20,
        status="Released",
        funded_at=funded_at,
        funded_block=1,
        funded_tx="0x" + secrets.token_hex(32),
        last_event_block=1,
    )
    session.add(trade)
    return trade


def test_page_statements_read_the_same_on_both_databases(engine: Engine) -> None:
    """The listing page's, the Buy form's and the profile page's statements (one statement each
    for what separate ones read before) give the same records, counts, names and figures on
    SQLite and PostgreSQL."""
    now = datetime.now(UTC)
    seller, buyer, arbiter = "0x" + "51" * 20, "0x" + "b1" * 20, "0x" + "a1" * 20
    stranger, unknown = "0x" + "c1" * 20, "0x" + "d1" * 20
    with Session(engine) as session:
        for address, name in ((seller, "Алия"), (buyer, "Bob"), (arbiter, "Arb")):
            session.add(User(address=address, display_name=name, languages=["kk"]))
        session.flush()
        for _ in range(MIN_SIMILAR + 1):
            _listing(session, seller)
        target = _listing(session, seller)
        lone = _listing(session, seller)
        lone.category = None
        trade = _trade(session, buyer=buyer, seller=seller, funded_at=now - timedelta(days=30))
        session.flush()
        session.add(
            Rating(
                trade_id=trade.id,
                rater_side="buyer",
                rater=buyer,
                ratee=seller,
                score=4,
                comment="ok",
            )
        )
        session.add(PartyStats(address=stranger, trades_total=2, disputes=1))
        session.add(
            ArbitratorProfile(
                address=arbiter, languages=[], onchain_registered=True, onchain_max_fee_bps=500
            )
        )
        session.add(ArbitratorProfile(address=buyer, languages=[], onchain_registered=False))
        session.add(ArbitratorStats(address=arbiter, trades=4, cases=3, resolved=2, by_timeout=1))
        session.add(ArbitratorStats(address=stranger, trades=1, cases=1))
        session.commit()

        # The listing page: its seller's record and the number of similar listings.
        for listing, similar in ((target, MIN_SIMILAR + 1), (lone, 0)):
            row = session.execute(LISTING_PAGE, {"listing_id": listing.id}).one()
            assert row[0] is listing and row[0].seller.address == seller
            assert row.similar_count == similar
            assert trust.record_from_row(seller, row, now=now) == seller_record(
                session, seller, now=now, volume=False
            )
        assert similar_median(session, "bikes", "ETH", target.id, count=MIN_SIMILAR + 1) == 10**18

        # The Buy form: registered arbitrators only, with their names and figures (NULL: none).
        assert [tuple(r) for r in session.execute(BUY_ARBITRATORS)] == [
            (arbiter, None, 500, "Arb", 3, 2, 1)
        ]

        # The profile: account, record, arbitrator profile and figures (None when missing).
        for address in (seller, buyer, arbiter, stranger, unknown):
            row = session.execute(PROFILE_PAGE, {"address": address}).one()
            user, profile, figures = row[:3]
            assert user is session.scalar(select(User).where(User.address == address))
            assert profile is session.scalar(
                select(ArbitratorProfile).where(ArbitratorProfile.address == address)
            )
            assert figures is session.get(ArbitratorStats, address)
            assert trust.record_from_row(address, row, now=now) == seller_record(
                session, address, now=now, volume=False
            )
        ratings = session.execute(PROFILE_RATINGS, {"address": seller}).all()
        assert [(r.score, r.rater_side, r.rater, r.rater_name, r.comment) for r in ratings] == [
            (4, "buyer", buyer, "Bob", "ok")
        ]
        seller_id = session.scalar(select(User.id).where(User.address == seller))
        cards = session.execute(PROFILE_LISTINGS, {"user_id": seller_id}).all()
        assert len(cards) == MIN_SIMILAR + 3
        for card in cards:  # the columns a card shows, as the listing has them
            kept = session.get(Listing, card.id)
            assert tuple(card) == tuple(getattr(kept, name) for name in card._fields)
