"""The price-signal median, computed in the database, equals the exact median."""

from __future__ import annotations

import random
import secrets

from flask import Flask
from sqlalchemy.orm import Session

from escrow.db.models import Listing, User
from webapp.trust import MIN_SIMILAR, similar_median


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
