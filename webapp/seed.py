"""Demo data for a fresh local market: named dev accounts, arbitrator profiles, listings.

``seed_demo_data`` runs once: it does nothing when the database already has users. From a
shell, ``python -m webapp.seed`` connects to ``ESCROW_RPC_URL``, loads the recorded
deployment and seeds the database at ``DATABASE_URL``.
"""

from __future__ import annotations

import secrets
import sys
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escrow.chain import Chain
from escrow.db.models import ArbitratorProfile, Listing, ListingStatus, User, utcnow
from escrow.deploy import Deployment

ETH = 10**18
USD = 10**6

SELLERS = [
    ("Aigerim's Electronics", ["Kazakh", "Russian", "English"], "Almaty"),
    ("Nurlan Mebel", ["Kazakh", "Russian"], "Astana"),
    ("Dana Kids & Books", ["Kazakh", "Russian"], "Shymkent"),
    ("Yerlan Velo", ["Russian", "English"], "Karaganda"),
]
BUYERS = [
    ("Asel B.", ["Kazakh", "Russian"]),
    ("Timur K.", ["Russian"]),
    ("Madina S.", ["Kazakh", "English"]),
]
ARBITRATORS = [
    (
        "Arbitr Almaty (Saule N.)",
        ["Kazakh", "Russian", "English"],
        "Former consumer-rights lawyer; rules on electronics and phones within 48 hours.",
    ),
    (
        "Fair Deal Astana (Ruslan T.)",
        ["Russian", "English"],
        "Mediator for marketplace disputes since 2019; prefers photo and video evidence.",
    ),
]

# (seller index, title, description, category, price, currency)
LISTINGS: list[tuple[int, str, str, str, int, str]] = [
    (
        0,
        "iPhone 13 128 GB, blue",
        "Battery 89%, always in a case, box and cable included.",
        "phones",
        310 * USD,
        "USD",
    ),
    (
        0,
        "Samsung Galaxy S22",
        "Small scratch on the frame, screen perfect.",
        "phones",
        275 * USD,
        "USD",
    ),
    (
        0,
        "MacBook Air M1 2020",
        "8 GB / 256 GB, 120 battery cycles, Russian-English keyboard.",
        "electronics",
        ETH // 4,
        "ETH",
    ),
    (
        0,
        "Sony WH-1000XM4 headphones",
        "Noise cancelling, with the travel case.",
        "electronics",
        120 * USD,
        "USD",
    ),
    (
        0,
        "PlayStation 5 with two controllers",
        "Disc edition, bought in Almaty in 2023.",
        "electronics",
        ETH * 3 // 20,
        "ETH",
    ),
    (
        0,
        "Xiaomi Redmi Note 12",
        "Dual SIM, 6/128 GB, works with Kcell and Beeline.",
        "phones",
        140 * USD,
        "USD",
    ),
    (
        1,
        "Corner sofa, grey",
        "2.6 m, folds into a bed. Pick-up in Astana, Esil district.",
        "furniture",
        380 * USD,
        "USD",
    ),
    (1, "Oak dining table with 4 chairs", "Solid oak, 160x90 cm.", "furniture", ETH // 10, "ETH"),
    (
        1,
        "Wardrobe with mirror",
        "Two doors, 180 cm high; we help carry it down.",
        "furniture",
        95 * USD,
        "USD",
    ),
    (
        1,
        "Office chair, ergonomic",
        "Adjustable arms and lumbar support.",
        "furniture",
        60 * USD,
        "USD",
    ),
    (1, "Carpet 2x3 m, wool", "Traditional pattern, dry-cleaned.", "home", 150 * USD, "USD"),
    (
        1,
        "Samovar, electric, 5 l",
        "Works, a little patina on the handles.",
        "home",
        ETH // 50,
        "ETH",
    ),
    (2, "Children's bike 16\"", "For ages 4-6, with training wheels.", "kids", 45 * USD, "USD"),
    (2, "Stroller 2-in-1", "Cradle and seat, rain cover included.", "kids", ETH // 20, "ETH"),
    (2, "Lego Classic 1500 pieces", "Complete, sorted in boxes.", "kids", 35 * USD, "USD"),
    (2, "Abai — Book of Words (Kazakh/Russian)", "Hardcover, like new.", "books", 8 * USD, "USD"),
    (2, "Harry Potter box set (Russian)", "All seven books.", "books", ETH // 100, "ETH"),
    (
        2,
        "Winter jacket for a child, 110 cm",
        "Warm down jacket, good to -25 °C.",
        "clothing",
        30 * USD,
        "USD",
    ),
    (
        3,
        "Mountain bike Merida Big Nine",
        '29" wheels, size L, serviced this spring.',
        "bikes",
        ETH // 8,
        "ETH",
    ),
    (3, "Road bike Giant Contend", "Size M, Shimano Claris.", "bikes", 420 * USD, "USD"),
    (
        3,
        "Kick scooter Xiaomi Pro 2",
        "Range about 30 km, new tyres.",
        "bikes",
        ETH * 3 // 40,
        "ETH",
    ),
    (3, "Men's leather jacket, L", "Genuine leather, worn twice.", "clothing", 90 * USD, "USD"),
    (3, "Winter boots, size 43", "Fur lined, for Karaganda winters.", "clothing", ETH // 80, "ETH"),
    (
        3,
        "Cycling helmet and lights set",
        "Helmet size M, front and rear USB lights.",
        "bikes",
        25 * USD,
        "USD",
    ),
]


def seed_demo_data(session: Session, deployment: Deployment, chain: Chain) -> bool:
    """Seeds a fresh database and commits; returns False (doing nothing) if users exist."""
    if session.scalar(select(func.count(User.id))):
        return False
    accounts = [a.lower() for a in chain.accounts]
    arbitrators = [a.lower() for a in deployment.arbitrators]
    now = utcnow()
    # Demo members "joined" a while ago so the new-account warning is not on every listing.
    joined = now - timedelta(days=120)

    sellers: list[User] = []
    for index, (name, languages, _city) in enumerate(SELLERS, start=1):
        if index < len(accounts) and accounts[index] not in arbitrators:
            sellers.append(_user(session, accounts[index], name, languages, joined))
    for offset, (name, languages) in enumerate(BUYERS):
        index = len(SELLERS) + 1 + offset
        if index < len(accounts) and accounts[index] not in arbitrators:
            _user(session, accounts[index], name, languages, joined)
    for address, (name, languages, bio) in zip(arbitrators, ARBITRATORS, strict=False):
        user = _user(session, address, name, languages, joined)
        profile = session.scalar(
            select(ArbitratorProfile).where(ArbitratorProfile.address == address)
        )
        if profile is None:
            profile = ArbitratorProfile(address=address)
            session.add(profile)
        profile.user_id = user.id
        profile.bio = bio
        profile.languages = languages

    for position, (seller_index, title, description, category, price, currency) in enumerate(
        LISTINGS
    ):
        if seller_index >= len(sellers):
            continue
        session.add(
            Listing(
                ref="0x" + secrets.token_hex(32),
                seller_id=sellers[seller_index].id,
                title=title,
                description=description,
                price=price,
                currency=currency,
                quantity=1,
                category=category,
                city=SELLERS[seller_index][2],
                photos=[],
                status=ListingStatus.ACTIVE.value,
                # Spread over the last days so "newest first" has an order to show.
                created_at=now - timedelta(hours=6 * (len(LISTINGS) - position)),
            )
        )
    session.commit()
    return True


def _user(
    session: Session, address: str, name: str, languages: list[str], joined: datetime
) -> User:
    user = User(address=address, display_name=name, languages=list(languages), created_at=joined)
    session.add(user)
    session.flush()
    return user


def main(argv: list[str] | None = None) -> int:
    from escrow import settings
    from escrow.chain import connect
    from escrow.db.engine import database_url, make_engine, upgrade
    from escrow.deploy import load_deployment

    rpc_url = settings.rpc_url()
    if not rpc_url:
        print("Set ESCROW_RPC_URL to the chain's JSON-RPC address.", file=sys.stderr)
        return 2
    chain = connect(rpc_url)
    deployment = load_deployment(chain)
    if deployment is None:
        print(
            f"The escrow is not deployed on chain {chain.chain_id}; run `escrow deploy`.",
            file=sys.stderr,
        )
        return 2
    url = database_url()
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            seeded = seed_demo_data(session, deployment, chain)
    finally:
        engine.dispose()
    print(
        "Seeded the demo market." if seeded else "The database already has users; nothing seeded."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
