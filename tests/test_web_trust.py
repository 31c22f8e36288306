"""Trust figures: the price-signal median equals the exact median; the new-account flag counts
from a person's first activity."""

from __future__ import annotations

import random
import secrets
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from escrow.db.models import Listing, Trade, User
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
