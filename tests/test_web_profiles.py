"""Profiles, the trust record and risk signals, arbitrators and ratings."""

from __future__ import annotations

import itertools
import re
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask, render_template_string
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from escrow.db.models import ArbitratorProfile, Dispute, Listing, Rating, Trade, User
from helpers import ONE_ETH, USD, Roles
from webapp import trust
from webapp.extensions import fragments

ZERO = "0x" + "0" * 40
_ids = itertools.count(1)


def _session(app: Flask) -> Session:
    return app.extensions["escrow_sessions"]()  # type: ignore[no-any-return]


def _user(session: Session, address: str, age_days: int = 100, **fields: Any) -> User:
    address = address.lower()
    user = session.scalar(select(User).where(User.address == address))
    if user is None:
        user = User(
            address=address,
            created_at=datetime.now(UTC) - timedelta(days=age_days),
            **{"languages": [], **fields},
        )
        session.add(user)
        session.flush()
    return user


def _listing(session: Session, seller: str, price: int = ONE_ETH, **fields: Any) -> Listing:
    values: dict[str, Any] = {
        "title": "Item",
        "description": "",
        "currency": "ETH",
        "category": "phones",
        "city": "Almaty",
        "status": "active",
        "photos": [],
    }
    values.update(fields)
    listing = Listing(
        ref="0x" + secrets.token_hex(32), seller_id=_user(session, seller).id, price=price, **values
    )
    session.add(listing)
    session.flush()
    return listing


def _trade(
    session: Session,
    buyer: str,
    seller: str,
    status: str = "Released",
    *,
    arbitrator: str = "0x" + "a" * 40,
    token: str = ZERO,
    amount: int = ONE_ETH,
    listing: Listing | None = None,
    disputed: bool = False,
) -> Trade:
    now = datetime.now(UTC)
    n = next(_ids)
    trade = Trade(
        chain_id=1,
        contract_address="0x" + "1" * 40,
        onchain_id=n,
        listing_id=listing.id if listing else None,
        listing_ref=listing.ref if listing else "0x" + "0" * 64,
        buyer=buyer.lower(),
        seller=seller.lower(),
        arbitrator=arbitrator.lower(),
        token=token.lower(),
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
        disputed_at=now if disputed or status == "Disputed" else None,
    )
    session.add(trade)
    session.flush()
    return trade


# ---------------------------------------------------------------------------- trust record


def test_seller_record_counts_finished_trades_volume_disputes_and_ratings(
    app: Flask, roles: Roles, stablecoin: str
) -> None:
    with _session(app) as session:
        seller, buyer = roles.seller, roles.buyer
        _user(session, seller, age_days=30, display_name="Dana")
        _trade(session, buyer, seller, "Released", amount=2 * ONE_ETH)
        t2 = _trade(
            session, buyer, seller, "Resolved", token=stablecoin, amount=150 * USD, disputed=True
        )
        _trade(session, buyer, seller, "Funded")  # not finished: not counted
        _trade(session, seller, buyer, "Refunded", amount=ONE_ETH)  # seller bought once
        t5 = _trade(session, buyer, seller, "Released")
        session.add_all(
            [
                Rating(
                    trade_id=t2.id,
                    rater_side="buyer",
                    rater=buyer.lower(),
                    ratee=seller.lower(),
                    score=4,
                ),
                Rating(
                    trade_id=t5.id,
                    rater_side="buyer",
                    rater=buyer.lower(),
                    ratee=seller.lower(),
                    score=5,
                ),
            ]
        )
        session.commit()
        record = trust.seller_record(
            session, seller.upper().replace("0X", "0x"), stablecoin=stablecoin
        )
    assert record.display_name == "Dana"
    assert record.completed_as_seller == 3 and record.completed_as_buyer == 1
    assert record.volume == {"ETH": 4 * ONE_ETH, "USD": 150 * USD}
    assert record.trades_total == 5 and record.disputes == 1
    assert record.dispute_rate == Decimal(1) / 5 and record.dispute_percent == "20%"
    assert record.rating_count == 2 and record.rating_average == Decimal("4.5")
    assert record.rating_text == "4.5 / 5 (2)"
    assert record.account_age_days == 30


def test_volume_currency_without_the_stablecoin_address(
    app: Flask, roles: Roles, stablecoin: str
) -> None:
    with _session(app) as session:
        listing = _listing(session, roles.seller, price=20 * USD, currency="USD")
        _trade(
            session,
            roles.buyer,
            roles.seller,
            "Released",
            token=stablecoin,
            amount=20 * USD,
            listing=listing,
        )
        _trade(session, roles.buyer, roles.seller, "Released", token="0x" + "e" * 40, amount=7)
        session.commit()
        record = trust.seller_record(session, roles.seller)
    assert record.volume == {"USD": 20 * USD, "0x" + "e" * 40: 7}


def test_record_of_a_stranger_is_empty(app: Flask, roles: Roles) -> None:
    with _session(app) as session:
        record = trust.seller_record(session, roles.stranger)
    assert record.completed == 0 and record.volume == {}
    assert record.dispute_rate is None and record.dispute_percent == "—"
    assert record.rating_average is None and record.member_since is None


def test_ratings_count_only_from_the_counterparty_of_a_finished_trade(
    app: Flask, roles: Roles
) -> None:
    with _session(app) as session:
        open_trade = _trade(session, roles.buyer, roles.seller, "Shipped")
        other = _trade(session, roles.buyer2, roles.stranger, "Released")
        session.add_all(
            [
                Rating(
                    trade_id=open_trade.id,
                    rater_side="buyer",
                    rater=roles.buyer.lower(),
                    ratee=roles.seller.lower(),
                    score=1,
                ),
                # Written into the table by hand: a rating from someone outside the trade.
                Rating(
                    trade_id=other.id,
                    rater_side="buyer",
                    rater=roles.buyer2.lower(),
                    ratee=roles.seller.lower(),
                    score=1,
                ),
            ]
        )
        session.commit()
        record = trust.seller_record(session, roles.seller)
    assert record.rating_count == 0


# ---------------------------------------------------------------------------- risk signals


def _codes(signals: list[trust.RiskSignal]) -> set[str]:
    return {s.code for s in signals}


def test_signal_new_account_by_age_and_by_no_finished_trades(app: Flask, roles: Roles) -> None:
    with _session(app) as session:
        young = _listing(session, roles.seller)
        session.get(User, young.seller_id).created_at = datetime.now(UTC) - timedelta(days=2)
        session.flush()
        signals = trust.risk_signals_for_listing(session, young)
        assert "new_account" in _codes(signals)
        assert "less than 7 days" in next(s for s in signals if s.code == "new_account").explanation
        # Old account without finished trades: not new, but no track record either.
        old = _listing(session, roles.stranger)
        signals = trust.risk_signals_for_listing(session, old)
        assert "new_account" not in _codes(signals)
        assert signals[-1].code == "no_finished_trades"
        assert "has not finished a trade" in signals[-1].explanation
        # Old account with a finished trade: no signal.
        _trade(session, roles.buyer, roles.stranger, "Released")
        assert "new_account" not in _codes(trust.risk_signals_for_listing(session, old))


def test_signal_price_far_below_similar_listings(app: Flask, roles: Roles) -> None:
    with _session(app) as session:
        _trade(session, roles.buyer, roles.seller, "Released")
        others = [100, 110, 120, 130]
        for price in others:
            _listing(session, roles.stranger, price=price * USD, currency="USD")
        cheap = _listing(session, roles.seller, price=50 * USD, currency="USD")
        # Only four similar listings: too few to judge.
        assert "price_far_below" not in _codes(trust.risk_signals_for_listing(session, cheap))
        _listing(session, roles.stranger, price=140 * USD, currency="USD")
        signals = trust.risk_signals_for_listing(session, cheap)
        assert "price_far_below" in _codes(signals)  # 50 < 120 / 2
        # Exactly half of the median is not "far below".
        fair = _listing(session, roles.seller, price=60 * USD, currency="USD")
        assert "price_far_below" not in _codes(trust.risk_signals_for_listing(session, fair))
        # Other category or currency is not similar.
        eth = _listing(session, roles.seller, price=1, currency="ETH")
        books = _listing(session, roles.seller, price=1, currency="USD", category="books")
        assert "price_far_below" not in _codes(trust.risk_signals_for_listing(session, eth))
        assert "price_far_below" not in _codes(trust.risk_signals_for_listing(session, books))


def test_similar_median_is_exact_for_an_even_count(app: Flask, roles: Roles) -> None:
    with _session(app) as session:
        for price in (1, 2, 3, 4, 5, 10**30):
            _listing(session, roles.stranger, price=price)
        assert trust.similar_median(session, "phones", "ETH") == 3  # (3 + 4) // 2
        assert trust.similar_median(session, None, "ETH") is None


def test_signal_open_disputes(app: Flask, roles: Roles) -> None:
    with _session(app) as session:
        _trade(session, roles.buyer, roles.seller, "Released")
        listing = _listing(session, roles.seller)
        assert "open_disputes" not in _codes(trust.risk_signals_for_listing(session, listing))
        dispute = _trade(session, roles.buyer2, roles.seller, "Disputed")
        assert "open_disputes" in _codes(trust.risk_signals_for_listing(session, listing))
        # On the disputed trade's own page, its own dispute is not held against the seller.
        assert "open_disputes" not in _codes(trust.risk_signals_for_trade(session, dispute))
        other = _trade(session, roles.buyer, roles.seller, "Shipped", listing=listing)
        assert "open_disputes" in _codes(trust.risk_signals_for_trade(session, other))
        # A dispute where they are the buyer is not a seller's open dispute.
        _trade(session, roles.seller, roles.stranger, "Disputed")
        assert trust.seller_record(session, roles.seller).open_disputes_as_seller == 1


def test_signal_low_rating(app: Flask, roles: Roles) -> None:
    with _session(app) as session:
        listing = _listing(session, roles.seller)
        first = _trade(session, roles.buyer, roles.seller, "Released")
        session.add(
            Rating(
                trade_id=first.id,
                rater_side="buyer",
                rater=roles.buyer.lower(),
                ratee=roles.seller.lower(),
                score=1,
            )
        )
        session.flush()
        # A single bad rating is not yet a pattern.
        assert "low_rating" not in _codes(trust.risk_signals_for_listing(session, listing))
        second = _trade(session, roles.buyer2, roles.seller, "Refunded")
        session.add(
            Rating(
                trade_id=second.id,
                rater_side="buyer",
                rater=roles.buyer2.lower(),
                ratee=roles.seller.lower(),
                score=2,
            )
        )
        session.flush()
        signals = trust.risk_signals_for_listing(session, listing)
        assert "low_rating" in _codes(signals)
        assert "1.5 / 5 (2)" in next(s for s in signals if s.code == "low_rating").explanation


def test_trade_signals_cover_the_price_and_the_seller(app: Flask, roles: Roles) -> None:
    with _session(app) as session:
        for price in (10, 11, 12, 13, 14):
            _listing(session, roles.stranger, price=price * ONE_ETH)
        listing = _listing(session, roles.seller, price=ONE_ETH)
        trade = _trade(
            session, roles.buyer, roles.seller, "Funded", listing=listing, amount=ONE_ETH
        )
        codes = _codes(trust.risk_signals_for_trade(session, trade))
    # The seller's account is 100 days old: not new, but without a finished trade.
    assert codes == {"price_far_below", "no_finished_trades"}


# ---------------------------------------------------------------------------- public profile


def test_profile_page(app: Flask, web: Any, roles: Roles) -> None:
    with _session(app) as session:
        _user(session, roles.seller, display_name="<b>Dana</b>", languages=["Kazakh", "Russian"])
        _listing(session, roles.seller, title="Phone on sale")
        _listing(session, roles.seller, title="Paused phone", status="withdrawn")
        trade = _trade(session, roles.buyer, roles.seller, "Released")
        session.add(
            Rating(
                trade_id=trade.id,
                rater_side="buyer",
                rater=roles.buyer.lower(),
                ratee=roles.seller.lower(),
                score=5,
                comment="<i>Great</i>",
            )
        )
        session.commit()
    for who in (None, "buyer", "seller"):
        user = web(who, roles) if who else web(None)
        page = user.client.get(f"/u/{roles.seller}").get_data(as_text=True)
        assert "&lt;b&gt;Dana&lt;/b&gt;" in page and "<b>Dana</b>" not in page
        assert "Kazakh, Russian" in page
        assert "Phone on sale" in page and "Paused phone" not in page
        assert "5 / 5" in page and "&lt;i&gt;Great&lt;/i&gt;" in page
        assert "1 as seller" in page
        assert ("Edit my profile" in page) == (who == "seller")
        buyer = roles.buyer.lower()
        assert f'<a class="party" href="/u/{buyer}" title="{buyer}">' in page  # the rater


def test_profile_cards_and_raters_read_as_plain_rows(app: Flask, web: Any, roles: Roles) -> None:
    """The profile reads its listings as plain rows (no ORM objects): each card is the one the
    market's index renders for the listing (photo, city, hold, seller's name), each rendered
    afresh. The raters' names come with the ratings, not one statement per rater."""
    held = datetime.now(UTC) + timedelta(minutes=20)
    with _session(app) as session:
        _user(session, roles.seller, display_name="Dana <b>")
        _user(session, roles.buyer, display_name="Bob")
        _listing(
            session,
            roles.seller,
            title="Held lamp",
            reserved_by=roles.buyer.lower(),
            reserved_until=held,
        )
        _listing(session, roles.seller, title="Photo lamp", photos=["p.jpg"], city=None)
        _listing(session, roles.seller, title="Plain lamp")
        for status in ("Released", "Refunded"):
            trade = _trade(session, roles.buyer, roles.seller, status)
            session.add(
                Rating(
                    trade_id=trade.id,
                    rater_side="buyer",
                    rater=roles.buyer.lower(),
                    ratee=roles.seller.lower(),
                    score=4,
                )
            )
        session.commit()
    client = web(None).client

    def cards(page: str) -> dict[str, str]:
        found = re.findall(r'<a class="card listing-card".*?</a>', page, re.S)
        return {re.search(r'card-title">([^<]*)<', c).group(1): c for c in found}  # type: ignore[union-attr]

    statements: list[str] = []
    engine = app.extensions["escrow_engine"]
    listen = event.listens_for(engine, "before_cursor_execute")
    listen(lambda *args: statements.append(args[2]))
    with app.app_context():
        fragments.clear()
    profile = client.get(f"/u/{roles.seller}").get_data(as_text=True)
    assert not any(
        "FROM users" in s and s.lstrip().startswith("SELECT users.display_name") for s in statements
    )
    with app.app_context():
        fragments.clear()
    index = client.get("/").get_data(as_text=True)
    on_profile = cards(profile)
    assert sorted(on_profile) == ["Held lamp", "Photo lamp", "Plain lamp"]
    assert "data-on-hold" in on_profile["Held lamp"]
    assert on_profile == {
        title: card for title, card in cards(index).items() if title in on_profile
    }
    assert "Dana &lt;b&gt;" in on_profile["Plain lamp"] and "p.jpg" in on_profile["Photo lamp"]
    buyer = roles.buyer.lower()
    assert profile.count(f'<a class="party" href="/u/{buyer}" title="{buyer}">Bob</a>') == 2


def test_profile_404s(app: Flask, web: Any, roles: Roles) -> None:
    client = web(None).client
    assert client.get("/u/not-an-address").status_code == 404
    assert client.get(f"/u/{roles.stranger}").status_code == 404  # never used the market
    with _session(app) as session:
        _trade(session, roles.buyer, roles.stranger, "Released")
        session.commit()
    # An address with trades has a profile even without a user row.
    assert client.get(f"/u/{roles.stranger}").status_code == 200


# ---------------------------------------------------------------------------- /me


def test_me_needs_sign_in(web: Any) -> None:
    anonymous = web(None)
    assert anonymous.client.get("/me").status_code == 302
    assert anonymous.post_form("/me", {"display_name": "x"}).status_code == 302


def test_me_edits_own_name_and_languages(app: Flask, web: Any, roles: Roles) -> None:
    buyer = web("buyer", roles)
    assert buyer.client.get("/me").status_code == 200
    response = buyer.post_form(
        "/me", {"display_name": "  Asel  ", "languages": "Kazakh, Russian ,English,"}
    )
    assert response.status_code == 302
    with _session(app) as session:
        user = session.scalar(select(User).where(User.address == roles.buyer.lower()))
        assert user is not None
        assert user.display_name == "Asel" and user.languages == ["Kazakh", "Russian", "English"]
    page = buyer.client.get("/me").get_data(as_text=True)
    assert 'value="Asel"' in page and 'value="Kazakh, Russian, English"' in page
    # Another user's profile is untouched.
    with _session(app) as session:
        assert (
            session.scalar(select(func.count(User.id)).where(User.display_name.is_not(None))) == 1
        )


def test_me_chooses_the_time_zone_times_are_shown_in(app: Flask, web: Any, roles: Roles) -> None:
    buyer = web("buyer", roles)
    page = buyer.client.get("/me").get_data(as_text=True)
    assert '<option selected value="Asia/Almaty">Almaty (GMT+05:00)</option>' in page
    assert buyer.post_form("/me", {"time_zone": "Pacific/Nowhere"}).status_code == 400
    assert buyer.post_form("/me", {"time_zone": "Europe/Moscow"}).status_code == 302
    with _session(app) as session:
        user = session.scalar(select(User).where(User.address == roles.buyer.lower()))
        assert user is not None and user.time_zone == "Europe/Moscow"
    # Every time on the pages is now in Moscow time, named after the time.
    body = buyer.client.get("/me").get_data(as_text=True)
    assert 'data-time-zone="Europe/Moscow"' in body and 'data-zone-label="Moscow"' in body
    # Back to Almaty (the default): stored as no choice.
    assert buyer.post_form("/me", {"time_zone": "Asia/Almaty"}).status_code == 302
    with _session(app) as session:
        user = session.scalar(select(User).where(User.address == roles.buyer.lower()))
        assert user is not None and user.time_zone is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"display_name": "x" * 65}, "at most 64"),
        ({"languages": ",".join(["Kazakh"] * 9)}, "at most 8"),
        ({"languages": "<script>"}, "as words"),
        ({"languages": "English1"}, "as words"),
    ],
)
def test_me_rejects_bad_input(
    app: Flask, web: Any, roles: Roles, data: dict[str, str], message: str
) -> None:
    response = web("buyer", roles).post_form("/me", data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_me_escapes_the_name(app: Flask, web: Any, roles: Roles) -> None:
    buyer = web("buyer", roles)
    buyer.post_form("/me", {"display_name": "<script>x</script>"})
    page = buyer.client.get(f"/u/{roles.buyer}").get_data(as_text=True)
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


# ---------------------------------------------------------------------------- arbitrators


def test_arbitrators_page_statistics(app: Flask, web: Any, roles: Roles) -> None:
    arb, arb2 = roles.arbitrator.lower(), roles.arbitrator2.lower()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    with _session(app) as session:
        _user(session, arb, display_name="Saule")
        session.add_all(
            [
                ArbitratorProfile(
                    address=arb,
                    onchain_registered=True,
                    onchain_max_fee_bps=500,
                    languages=["Kazakh"],
                    bio="Consumer lawyer",
                ),
                ArbitratorProfile(address=arb2, onchain_registered=False, languages=[]),
            ]
        )
        for hours, by_timeout, resolved in (
            (2, False, True),
            (10, False, True),
            (6, False, True),
            (200, True, True),
            (None, None, False),
        ):
            trade = _trade(
                session,
                roles.buyer,
                roles.seller,
                "Resolved" if resolved else "Disputed",
                arbitrator=arb,
            )
            session.add(
                Dispute(
                    trade_id=trade.id,
                    opened_by=roles.buyer.lower(),
                    opened_at=base,
                    opened_block=1,
                    ruling_deadline=base + timedelta(days=7),
                    resolved_at=base + timedelta(hours=hours) if hours else None,
                    by_timeout=by_timeout,
                )
            )
        session.commit()
    page = web(None).client.get("/arbitrators").get_data(as_text=True)
    assert "Saule" in page and "Consumer lawyer" in page
    assert "5 (1 open)" in page
    assert "6.0 h" in page  # median of 2, 6 and 10 hours (the timeout is not a ruling)
    assert "25%" in page  # one of four resolved cases by timeout
    assert "5.00%" in page
    assert "not registered" in page


def test_arbitrators_page_when_empty(web: Any) -> None:
    page = web(None).client.get("/arbitrators").get_data(as_text=True)
    assert "No arbitrators yet" in page


# ---------------------------------------------------------------------------- ratings


def _finished(app: Flask, roles: Roles, status: str = "Released") -> int:
    with _session(app) as session:
        trade = _trade(session, roles.buyer, roles.seller, status)
        session.commit()
        return int(trade.id)


def test_buyer_and_seller_rate_each_other_once(app: Flask, web: Any, roles: Roles) -> None:
    trade_id = _finished(app, roles)
    url = f"/trades/{trade_id}/rating"
    buyer, seller = web("buyer", roles), web("seller", roles)
    response = buyer.post_form(
        url, {"score": "5", "comment": "Fast shipping", "next": f"/trades/{trade_id}"}
    )
    assert response.status_code == 302 and response.headers["Location"] == f"/trades/{trade_id}"
    assert seller.post_json(url, {"score": 4}).status_code == 201
    again = buyer.post_json(url, {"score": 1})
    assert again.status_code == 400 and "already rated" in again.get_json()["error"]
    with _session(app) as session:
        rows = {r.rater_side: r for r in session.scalars(select(Rating))}
    assert rows["buyer"].ratee == roles.seller.lower() and rows["buyer"].score == 5
    assert rows["buyer"].comment == "Fast shipping"
    assert rows["seller"].ratee == roles.buyer.lower() and rows["seller"].score == 4


def test_rating_roles_and_states(app: Flask, web: Any, roles: Roles) -> None:
    trade_id = _finished(app, roles)
    url = f"/trades/{trade_id}/rating"
    assert web(None).post_form(url, {"score": "5"}).status_code == 302  # to sign-in
    assert web("stranger", roles).post_form(url, {"score": "5"}).status_code == 403
    assert web("arbitrator", roles).post_form(url, {"score": "5"}).status_code == 403
    assert web("buyer", roles).post_form("/trades/9999/rating", {"score": "5"}).status_code == 404
    with _session(app) as session:
        open_id = _trade(session, roles.buyer, roles.seller, "Shipped").id
        session.commit()
    response = web("buyer", roles).post_json(f"/trades/{open_id}/rating", {"score": 5})
    assert response.status_code == 400 and "finished" in response.get_json()["error"]
    with _session(app) as session:
        assert session.scalar(select(func.count(Rating.id))) == 0


@pytest.mark.parametrize("status", ["Released", "Refunded", "Settled", "Resolved"])
def test_every_final_status_can_be_rated(app: Flask, web: Any, roles: Roles, status: str) -> None:
    trade_id = _finished(app, roles, status)
    assert (
        web("seller", roles).post_json(f"/trades/{trade_id}/rating", {"score": 3}).status_code
        == 201
    )


@pytest.mark.parametrize(
    "data",
    [{"score": "0"}, {"score": "6"}, {"score": "five"}, {}, {"score": "3", "comment": "x" * 1001}],
)
def test_bad_rating_input(app: Flask, web: Any, roles: Roles, data: dict[str, str]) -> None:
    trade_id = _finished(app, roles)
    buyer = web("buyer", roles)
    response = buyer.post_form(f"/trades/{trade_id}/rating", data)
    assert response.status_code == 302  # back, with the reason flashed
    page = buyer.client.get("/").get_data(as_text=True)
    assert "1 to 5" in page or "1,000 characters" in page
    with _session(app) as session:
        assert session.scalar(select(func.count(Rating.id))) == 0


def test_rating_redirect_stays_on_site(app: Flask, web: Any, roles: Roles) -> None:
    trade_id = _finished(app, roles)
    response = web("buyer", roles).post_form(
        f"/trades/{trade_id}/rating", {"score": "4", "next": "//evil.example/x"}
    )
    assert response.headers["Location"] == f"/u/{roles.seller.lower()}"


def test_duplicate_rating_race_is_a_friendly_message(
    app: Flask, web: Any, roles: Roles, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webapp import profiles

    trade_id = _finished(app, roles)
    with _session(app) as session:
        session.add(
            Rating(
                trade_id=trade_id,
                rater_side="buyer",
                rater=roles.buyer.lower(),
                ratee=roles.seller.lower(),
                score=2,
            )
        )
        session.commit()
    real = profiles.rating_state

    def stale(trade: Trade) -> profiles.RatingState:  # as if read before the other request
        state = real(trade)
        return profiles.RatingState(state.side, True, None, state.ratee)

    monkeypatch.setattr(profiles, "rating_state", stale)
    response = web("buyer", roles).post_json(f"/trades/{trade_id}/rating", {"score": 5})
    assert response.status_code == 400
    assert "already rated" in response.get_json()["error"]


def _render_partial(app: Flask, user: Any, trade_id: int) -> str:
    with app.test_request_context():
        with user.client.session_transaction() as saved:
            stored = dict(saved)  # the address and the sign-in it belongs to
        from flask import session as flask_session

        flask_session.update(stored)
        with _session(app) as db_session:
            trade = db_session.get(Trade, trade_id)
            return render_template_string('{% include "profiles/_rating_form.html" %}', trade=trade)


def test_rating_partial(app: Flask, web: Any, roles: Roles) -> None:
    trade_id = _finished(app, roles)
    buyer = web("buyer", roles)
    form = _render_partial(app, buyer, trade_id)
    assert f'action="/trades/{trade_id}/rating"' in form and 'name="csrf_token"' in form
    assert "Rate the seller" in form
    assert "Rate the buyer" in _render_partial(app, web("seller", roles), trade_id)
    assert _render_partial(app, web("stranger", roles), trade_id).strip() == ""
    assert _render_partial(app, web(None), trade_id).strip() == ""
    buyer.post_form(f"/trades/{trade_id}/rating", {"score": "4", "comment": "<b>ok</b>"})
    given = _render_partial(app, buyer, trade_id)
    assert "Your rating" in given and "4 / 5" in given and "&lt;b&gt;ok" in given
    assert "<form" not in given
    with _session(app) as session:
        open_id = _trade(session, roles.buyer, roles.seller, "Funded").id
        session.commit()
    pending = _render_partial(app, buyer, open_id)
    assert "once the trade is finished" in pending and "<form" not in pending
