"""Demo data: seeded once, named accounts, arbitrator profiles, listings the pages can show."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escrow.chain import Chain
from escrow.db.engine import make_engine
from escrow.db.models import ArbitratorProfile, Listing, User
from escrow.deploy import Deployment
from webapp import seed
from webapp.listings import CATEGORIES


def _session(app: Flask) -> Session:
    return app.extensions["escrow_sessions"]()  # type: ignore[no-any-return]


def test_seed_creates_people_arbitrators_and_listings(
    app: Flask, chain: Chain, deployment: Deployment
) -> None:
    with _session(app) as session:
        assert seed.seed_demo_data(session, deployment, chain) is True
    accounts = [a.lower() for a in chain.accounts]
    arbitrators = [a.lower() for a in deployment.arbitrators]
    with _session(app) as session:
        users = {u.address: u for u in session.scalars(select(User))}
        for index in range(1, 8):
            assert users[accounts[index]].display_name, index
        for address in arbitrators:
            assert users[address].display_name
        assert accounts[0] not in users  # the platform owner is not a market member
        profiles = session.scalars(select(ArbitratorProfile)).all()
        assert sorted(p.address for p in profiles) == sorted(arbitrators)
        assert all(p.bio and p.languages and p.user_id for p in profiles)
        listings = session.scalars(select(Listing)).all()
    assert 20 <= len(listings) <= 30
    assert {lst.currency for lst in listings} == {"ETH", "USD"}
    assert {lst.category for lst in listings} >= set(CATEGORIES) - {"other"}
    assert {lst.city for lst in listings} == {"Almaty", "Astana", "Shymkent", "Karaganda"}
    assert all(re.fullmatch(r"0x[0-9a-f]{64}", lst.ref) for lst in listings)
    assert len({lst.ref for lst in listings}) == len(listings)
    sellers = {lst.seller_id for lst in listings}
    assert sellers == {users[a].id for a in accounts[1:5]}
    assert all(lst.price > 0 and lst.status == "active" and lst.photos == [] for lst in listings)


def test_seed_is_idempotent(app: Flask, chain: Chain, deployment: Deployment) -> None:
    with _session(app) as session:
        assert seed.seed_demo_data(session, deployment, chain) is True
    with _session(app) as session:
        assert seed.seed_demo_data(session, deployment, chain) is False
        assert session.scalar(select(func.count(Listing.id))) == len(seed.LISTINGS)


def test_seed_does_nothing_when_users_exist(
    app: Flask, chain: Chain, deployment: Deployment
) -> None:
    with _session(app) as session:
        session.add(User(address="0x" + "1" * 40, languages=[]))
        session.commit()
        assert seed.seed_demo_data(session, deployment, chain) is False
        assert session.scalar(select(func.count(Listing.id))) == 0


def test_seed_fills_arbitrator_profiles_the_indexer_made(
    app: Flask, chain: Chain, deployment: Deployment
) -> None:
    address = deployment.arbitrators[0].lower()
    with _session(app) as session:
        session.add(
            ArbitratorProfile(
                address=address, languages=[], onchain_registered=True, onchain_max_fee_bps=500
            )
        )
        session.commit()
        seed.seed_demo_data(session, deployment, chain)
        profile = session.scalar(
            select(ArbitratorProfile).where(ArbitratorProfile.address == address)
        )
        assert profile is not None and profile.bio and profile.onchain_max_fee_bps == 500
        assert session.scalar(select(func.count(ArbitratorProfile.id))) == 2


def test_seeded_market_renders(app: Flask, chain: Chain, deployment: Deployment, web: Any) -> None:
    with _session(app) as session:
        seed.seed_demo_data(session, deployment, chain)
        listing_id = session.scalars(select(Listing.id).limit(1)).one()
    client = web(None).client
    page = client.get("/").get_data(as_text=True)
    assert "photo-placeholder" in page and f"{len(seed.LISTINGS)} listings" in page
    assert "Almaty" in page
    assert client.get(f"/listings/{listing_id}").status_code == 200
    assert client.get("/?category=bikes&currency=USD&min=30").status_code == 200
    arbitrators = client.get("/arbitrators").get_data(as_text=True)
    assert "Arbitr Almaty" in arbitrators


def test_console_entry_seeds_the_configured_database(
    tmp_path: Path,
    chain: Chain,
    deployment: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import escrow.chain
    import escrow.deploy

    url = f"sqlite:///{tmp_path / 'seed.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("ESCROW_RPC_URL", "http://127.0.0.1:8545")
    connected: list[str] = []

    def fake_connect(rpc_url: str, **_: Any) -> Chain:
        connected.append(rpc_url)
        return chain

    monkeypatch.setattr(escrow.chain, "connect", fake_connect)
    monkeypatch.setattr(escrow.deploy, "load_deployment", lambda _chain: deployment)
    assert seed.main([]) == 0
    assert connected == ["http://127.0.0.1:8545"]
    assert "Seeded" in capsys.readouterr().out
    assert seed.main([]) == 0
    assert "nothing seeded" in capsys.readouterr().out
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            assert session.scalar(select(func.count(Listing.id))) == len(seed.LISTINGS)
    finally:
        engine.dispose()


def test_console_entry_explains_missing_settings(
    monkeypatch: pytest.MonkeyPatch, chain: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    import escrow.chain
    import escrow.deploy

    monkeypatch.delenv("ESCROW_RPC_URL", raising=False)
    assert seed.main([]) == 2
    assert "ESCROW_RPC_URL" in capsys.readouterr().err
    monkeypatch.setenv("ESCROW_RPC_URL", "http://127.0.0.1:8545")
    monkeypatch.setattr(escrow.chain, "connect", lambda *_a, **_k: chain)
    monkeypatch.setattr(escrow.deploy, "load_deployment", lambda _chain: None)
    assert seed.main([]) == 2
    assert "not deployed" in capsys.readouterr().err
