"""Demo data: seeded once, named accounts, arbitrator profiles, listings the pages can show
(in Russian, Kazakh and English, in Kazakh cities, with drawn photos stored like uploads)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escrow.chain import Chain
from escrow.db.engine import make_engine, upgrade
from escrow.db.models import ArbitratorProfile, Listing, User
from escrow.deploy import Deployment
from webapp import seed
from webapp.checkout import MAX_DELIVERY_DAYS, MIN_DELIVERY_DAYS
from webapp.listings import CATEGORIES, PHOTO_NAME, _photo_kind, clean_photo
from webapp.seed_assets import photos


def _session(app: Flask) -> Session:
    return app.extensions["escrow_sessions"]()  # type: ignore[no-any-return]


KAZAKH_LETTERS = set("әғқңөұүһіӘҒҚҢӨҰҮҺІ")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")


@pytest.fixture(autouse=True)
def _own_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A seed that finds no upload folder of its own falls back on ESCROW_DATA_DIR: never the
    project's ./data in these tests."""
    monkeypatch.setenv("ESCROW_DATA_DIR", str(tmp_path / "default-data"))


def _seed(app: Flask, chain: Chain, deployment: Deployment) -> bool:
    with app.app_context(), _session(app) as session:
        return seed.seed_demo_data(session, deployment, chain)


def _listings(app: Flask) -> list[Listing]:
    with _session(app) as session:
        return list(session.scalars(select(Listing).order_by(Listing.id)))


def _upload_files(app: Flask) -> set[str]:
    folder = Path(app.config["UPLOAD_DIR"])
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def test_seed_creates_people_arbitrators_and_listings(
    app: Flask, chain: Chain, deployment: Deployment
) -> None:
    assert _seed(app, chain, deployment) is True
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
    listings = _listings(app)
    assert len(listings) == len(seed.LISTINGS) and 40 <= len(listings) <= 50
    assert {lst.currency for lst in listings} == {"ETH", "USD", "KZT"}
    assert {lst.category for lst in listings} >= set(CATEGORIES) - {"other"}
    assert {lst.category for lst in listings} <= set(CATEGORIES)
    assert all(re.fullmatch(r"0x[0-9a-f]{64}", lst.ref) for lst in listings)
    assert len({lst.ref for lst in listings}) == len(listings)
    sellers = {lst.seller_id for lst in listings}
    assert sellers == {users[a].id for a in accounts[1:5]}
    assert all(lst.price > 0 and lst.status == "active" for lst in listings)
    assert all(MIN_DELIVERY_DAYS <= lst.delivery_days <= MAX_DELIVERY_DAYS for lst in listings)
    assert len({lst.delivery_days for lst in listings}) > 3


def test_seeded_cities_are_kazakh_cities_in_cyrillic(
    app: Flask, chain: Chain, deployment: Deployment
) -> None:
    _seed(app, chain, deployment)
    cities = {lst.city or "" for lst in _listings(app)}
    assert len(cities) >= 12
    assert cities >= {"Алматы", "Астана", "Шымкент", "Қарағанды", "Ақтөбе", "Павлодар"}
    assert cities >= {"Өскемен", "Атырау", "Қостанай", "Тараз", "Орал", "Семей"}
    assert all(CYRILLIC.search(city) and not re.search(r"[A-Za-z]", city) for city in cities)


def test_seeded_texts_are_in_russian_kazakh_and_english(
    app: Flask, chain: Chain, deployment: Deployment
) -> None:
    _seed(app, chain, deployment)
    listings = _listings(app)
    by_text = {lst.title: lst for lst in listings}
    counts = {"ru": 0, "kk": 0, "en": 0}
    for demo in seed.LISTINGS:
        stored = by_text[demo.title]
        text = f"{stored.title} {stored.description}"
        counts[demo.lang] += 1
        if demo.lang == "kk":
            assert set(text) & KAZAKH_LETTERS, demo.title
        elif demo.lang == "ru":
            assert CYRILLIC.search(text) and not set(text) & KAZAKH_LETTERS, demo.title
        else:
            assert not CYRILLIC.search(text), demo.title
    total = len(listings)
    assert 0.38 <= counts["ru"] / total <= 0.52
    assert 0.28 <= counts["kk"] / total <= 0.42
    assert 0.14 <= counts["en"] / total <= 0.26
    assert sum(1 for lst in listings if set(lst.title) & KAZAKH_LETTERS) >= 10
    assert any("iPhone 13, 128 ГБ" in lst.title for lst in listings)
    assert sum("айфон" in f"{lst.title} {lst.description}".lower() for lst in listings) >= 3
    titles = " ".join(lst.title for lst in listings).lower()
    for word in ("велосипед", "домбыра", "киіз үй", "етік", "диван", "абай"):
        assert word in titles, word
    with _session(app) as session:
        names = [u.display_name or "" for u in session.scalars(select(User))]
    assert any(set(name) & KAZAKH_LETTERS for name in names)


def test_seeded_prices_in_tenge_are_in_tiyn(
    app: Flask, chain: Chain, deployment: Deployment
) -> None:
    _seed(app, chain, deployment)
    listings = _listings(app)
    tenge = [lst for lst in listings if lst.currency == "KZT"]
    assert len(tenge) >= 10
    assert all(lst.price % 100 == 0 for lst in tenge)  # whole tenge, 2 decimals
    iphone = next(lst for lst in listings if lst.title.startswith("iPhone 13"))
    assert iphone.currency == "KZT" and iphone.price == 235_000 * 100
    # Sensible amounts: 1,000 to 5 million tenge, 5 to 1,000 dollars, at most 1 ether.
    assert all(1_000 * 100 <= lst.price <= 5_000_000 * 100 for lst in tenge)
    dollars = [lst.price for lst in listings if lst.currency == "USD"]
    assert dollars and all(5 * 10**6 <= p <= 1_000 * 10**6 for p in dollars)
    ether = [lst.price for lst in listings if lst.currency == "ETH"]
    assert ether and all(0 < p <= 10**18 for p in ether)


def test_every_seeded_listing_has_photos_stored_like_uploads(
    app: Flask, chain: Chain, deployment: Deployment
) -> None:
    _seed(app, chain, deployment)
    folder = Path(app.config["UPLOAD_DIR"])
    listings = _listings(app)
    named: list[str] = []
    for lst in listings:
        assert 1 <= len(lst.photos) <= 2, lst.title
        for name in lst.photos:
            assert PHOTO_NAME.match(name) and name.endswith(".jpg"), name
            data = (folder / name).read_bytes()
            with Image.open(io.BytesIO(data)) as image:
                assert image.format == "JPEG" and image.size == (800, 600)
                image.load()
                assert not image.info.get("exif")
            # What the upload checks would take (a JPEG by its first bytes, that decodes).
            assert _photo_kind(data[:16]) == "jpg"
            assert clean_photo(data, "jpg", int(app.config["MAX_PHOTO_PIXELS"]))
            named.append(name)
    assert len(named) == len(set(named)) > len(listings)
    assert _upload_files(app) == set(named)  # nothing else written
    # Served from the market's own origin like any uploaded photo.
    client = app.test_client()
    with client.get(f"/uploads/{named[0]}") as response:
        assert response.status_code == 200 and response.mimetype == "image/jpeg"
        assert response.get_data() == (folder / named[0]).read_bytes()


def test_seeded_photos_are_drawn_deterministically(
    app: Flask, chain: Chain, deployment: Deployment
) -> None:
    _seed(app, chain, deployment)
    folder = Path(app.config["UPLOAD_DIR"])
    first = _listings(app)[0]
    demo, position = seed.LISTINGS[0], 0
    assert first.title == demo.title
    args = (demo.art, demo.category, demo.caption, f"{position}:{demo.title}", 0, demo.color)
    again = photos.photo_bytes(*args)
    assert again == photos.photo_bytes(*args)
    stored = (folder / first.photos[0]).read_bytes()
    assert clean_photo(again, "jpg", 10**8) == stored
    # Listings of one drawing still differ (their seeds pick the colours).
    assert len({(folder / lst.photos[0]).read_bytes() for lst in _listings(app)}) == len(
        seed.LISTINGS
    )


def test_every_drawing_renders(tmp_path: Path) -> None:
    for art in photos.ARTS:
        for number in (0, 1):
            image = photos.draw_photo(art, "other", "Қысқы етік, 38 өлшем", art, number)
            assert image.size == (800, 600) and image.mode == "RGB"
            assert len(image.getcolors(800 * 600) or []) > 20, art  # more than a flat colour
    assert {demo.art for demo in seed.LISTINGS} <= set(photos.ARTS)


def test_seed_is_idempotent(app: Flask, chain: Chain, deployment: Deployment) -> None:
    assert _seed(app, chain, deployment) is True
    files = _upload_files(app)
    with _session(app) as session:
        users = session.scalar(select(func.count(User.id)))
    assert _seed(app, chain, deployment) is False
    with _session(app) as session:
        assert session.scalar(select(func.count(Listing.id))) == len(seed.LISTINGS)
        assert session.scalar(select(func.count(User.id))) == users
        assert session.scalar(select(func.count(ArbitratorProfile.id))) == 2
    assert _upload_files(app) == files


def test_seed_writes_photos_to_the_data_folder_of_the_database(
    tmp_path: Path, chain: Chain, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside the app (the local stack seeds before the web server starts), photos go to
    ``<data>/uploads`` next to the data folder's ``escrow.sqlite3``."""
    monkeypatch.setenv("ESCROW_DATA_DIR", str(tmp_path / "elsewhere"))
    data = tmp_path / "stack"
    data.mkdir()
    url = f"sqlite:///{data / 'escrow.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            assert seed.default_upload_dir(session) == (data / "uploads").resolve()
            assert seed.seed_demo_data(session, deployment, chain) is True
            names = [n for p in session.scalars(select(Listing.photos)) for n in p]
    finally:
        engine.dispose()
    assert {p.name for p in (data / "uploads").iterdir()} == set(names)
    assert not (tmp_path / "elsewhere").exists()


def test_seed_leaves_no_photos_when_it_fails(
    app: Flask, chain: Chain, deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_: Any) -> None:
        raise RuntimeError("database gone")

    with _session(app) as session:
        monkeypatch.setattr(session, "commit", fail)
        with pytest.raises(RuntimeError):
            seed.seed_demo_data(session, deployment, chain, upload_dir=app.config["UPLOAD_DIR"])
    assert _upload_files(app) == set()
    with _session(app) as session:
        assert session.scalar(select(func.count(Listing.id))) == 0


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
        seed.seed_demo_data(session, deployment, chain, upload_dir=app.config["UPLOAD_DIR"])
        profile = session.scalar(
            select(ArbitratorProfile).where(ArbitratorProfile.address == address)
        )
        assert profile is not None and profile.bio and profile.onchain_max_fee_bps == 500
        assert session.scalar(select(func.count(ArbitratorProfile.id))) == 2


def test_seeded_market_renders(app: Flask, chain: Chain, deployment: Deployment, web: Any) -> None:
    _seed(app, chain, deployment)
    with _session(app) as session:
        listing = session.scalars(select(Listing).where(Listing.currency == "KZT").limit(1)).one()
        listing_id, photo = listing.id, listing.photos[0]
    client = web(None).client
    page = client.get("/").get_data(as_text=True)
    assert f"{len(seed.LISTINGS)} listings" in page
    assert "photo-placeholder" not in page and page.count('src="/uploads/') >= 10
    assert "Алматы" in page or "Астана" in page
    detail = client.get(f"/listings/{listing_id}")
    assert detail.status_code == 200 and f"/uploads/{photo}" in detail.get_data(as_text=True)
    assert client.get("/?category=bikes&currency=USD&min=30").status_code == 200
    arbitrators = client.get("/arbitrators").get_data(as_text=True)
    assert "Арбитр Алматы" in arbitrators


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
    monkeypatch.setenv("ESCROW_DATA_DIR", str(tmp_path / "data"))
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
            names = {n for p in session.scalars(select(Listing.photos)) for n in p}
    finally:
        engine.dispose()
    # Where the web app looks for them: <ESCROW_DATA_DIR>/uploads.
    assert {p.name for p in (tmp_path / "data" / "uploads").iterdir()} == names


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
