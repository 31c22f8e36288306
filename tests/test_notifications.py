"""Notifications: the notifier (``webapp/notify.py``) on SQLite and PostgreSQL with trades and
events as the indexer writes them, and the notification centre's routes (``webapp/
notifications.py``) on the embedded chain: who is told what, reminders 72/24/1 hours before a
deadline, idempotency across passes and restarts, a reorganisation, access control and CSRF.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from db_fixtures import *  # noqa: F403  (fixtures)
from escrow.client import EscrowClient
from escrow.db.models import (
    Conversation,
    ConversationMessage,
    Listing,
    Message,
    Notification,
    NotificationSettings,
    NotifierCursor,
    Trade,
    TradeEvent,
    User,
)
from helpers import Roles
from web_fixtures import db_session, funded_trade, index_now, send
from webapp.notify import REMINDER_HOURS, reminder_step, run_once

BUYER = "0x" + "b1" * 20
SELLER = "0x" + "5e" * 20
ARBITRATOR = "0x" + "a7" * 20
STRANGER = "0x" + "99" * 20
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


# ---------------------------------------- rows as the indexer writes them


def add_trade(session: Session, n: int = 1, **values: Any) -> Trade:
    trade = Trade(
        chain_id=31337,
        contract_address="0x" + "c0" * 20,
        onchain_id=n,
        listing_id=values.pop("listing_id", None),
        listing_ref="0x" + "00" * 32,
        buyer=BUYER,
        seller=SELLER,
        arbitrator=ARBITRATOR,
        token="0x" + "00" * 20,
        amount=10**18,
        ship_by=values.pop("ship_by", NOW + 5 * 24 * HOUR),
        inspection_period=3 * 24 * 3600,
        arbitrator_fee_bps=200,
        platform_fee_bps=100,
        delivery_window=10 * 24 * 3600,
        terms_hash="0x" + "11" * 24,
        status=values.pop("status", "Funded"),
        funded_at=values.pop("funded_at", NOW - HOUR),
        funded_block=10 + n,
        funded_tx="0x" + f"{n:064x}",
        last_event_block=10 + n,
        **values,
    )
    session.add(trade)
    session.flush()
    return trade


def add_event(
    session: Session, trade: Trade, name: str, args: dict[str, Any], *, log: int, block: int = 20
) -> TradeEvent:
    event = TradeEvent(
        chain_id=31337,
        contract_address=trade.contract_address,
        block_number=block,
        block_hash="0x" + f"{block:064x}",
        block_time=NOW - HOUR,
        tx_hash="0x" + f"{block * 1000 + log:064x}",
        log_index=log,
        event=name,
        trade_id=trade.id,
        onchain_trade_id=trade.onchain_id,
        args=args,
    )
    session.add(event)
    session.flush()
    return event


def notices(session: Session) -> dict[str, list[str]]:
    """recipient -> kinds, in order."""
    out: dict[str, list[str]] = {}
    for n in session.scalars(select(Notification).order_by(Notification.id)):
        out.setdefault(n.recipient, []).append(n.kind)
    return out


def count(session: Session) -> int:
    return int(session.scalar(select(func.count(Notification.id))) or 0)


def user(session: Session, address: str) -> User:
    row = User(address=address, languages=[])
    session.add(row)
    session.flush()
    return row


# ---------------------------------------------------------------------------- the notifier


def test_each_event_tells_the_people_it_concerns_and_nobody_else(engine: Engine) -> None:
    with Session(engine) as session:
        seller = user(session, SELLER)
        listing = Listing(
            ref="0x" + "ab" * 32, seller_id=seller.id, title="Қызыл велосипед", price=1, photos=[]
        )
        session.add(listing)
        session.flush()
        trade = add_trade(session, listing_id=listing.id)
        add_event(session, trade, "TradeFunded", {}, log=0, block=20)
        session.commit()
        assert run_once(session, NOW) == 2
        assert notices(session) == {SELLER: ["sold"], BUYER: ["paid"]}
        sold = session.scalar(select(Notification).where(Notification.kind == "sold"))
        assert sold is not None and sold.params["title"] == "Қызыл велосипед"
        assert sold.trade_id == trade.id

        trade.status = "Shipped"
        add_event(session, trade, "TradeShipped", {}, log=0, block=21)
        add_event(session, trade, "TradeReceived", {}, log=1, block=21)
        add_event(
            session, trade, "SplitProposed", {"proposer": SELLER, "buyerBps": 2500}, log=2, block=21
        )
        add_event(session, trade, "DisputeOpened", {"openedBy": BUYER}, log=3, block=21)
        add_event(session, trade, "EvidenceSubmitted", {"submittedBy": SELLER}, log=4, block=21)
        session.add(Message(trade_id=trade.id, sender=ARBITRATOR, body="Send photos, please"))
        session.commit()
        run_once(session, NOW)
        assert notices(session) == {
            SELLER: ["sold", "delivered", "dispute_opened", "message"],
            BUYER: ["paid", "shipped", "split_proposed", "evidence", "message"],
            ARBITRATOR: ["dispute_opened", "evidence"],
        }
        add_event(
            session,
            trade,
            "DisputeResolved",
            {"byTimeout": False, "buyerBps": 10_000},
            log=0,
            block=22,
        )
        session.commit()
        run_once(session, NOW)
        mine = notices(session)
        assert mine[SELLER][-1] == mine[BUYER][-1] == "ruling"
        assert mine[ARBITRATOR] == ["dispute_opened", "evidence"]  # their own ruling: nothing
        assert STRANGER not in mine


def test_messages_reach_the_other_party_and_the_arbitrator_only_in_a_dispute(
    engine: Engine,
) -> None:
    with Session(engine) as session:
        trade = add_trade(session)
        session.add(Message(trade_id=trade.id, sender=BUYER, body="When will you ship?"))
        # The opener's statement comes with the dispute's own notification.
        session.add(Message(trade_id=trade.id, sender=BUYER, body="[Dispute statement] Broken"))
        buyer, seller = user(session, BUYER), user(session, SELLER)
        chat = Conversation(listing_title="Sofa", buyer_id=buyer.id, seller_id=seller.id)
        session.add(chat)
        session.flush()
        session.add(ConversationMessage(conversation_id=chat.id, sender_id=seller.id, body="Hi"))
        session.commit()
        assert run_once(session, NOW) == 2
        assert notices(session) == {SELLER: ["message"], BUYER: ["chat"]}
        answer = session.scalar(select(Notification).where(Notification.kind == "chat"))
        assert answer is not None and answer.conversation_id == chat.id


def test_passes_restarts_and_a_lost_cursor_never_repeat_a_notification(
    engine: Engine, db_url: str
) -> None:
    with Session(engine) as session:
        trade = add_trade(session)
        add_event(session, trade, "TradeFunded", {}, log=0)
        session.add(Message(trade_id=trade.id, sender=SELLER, body="Shipping tomorrow"))
        session.commit()
        assert run_once(session, NOW) == 3
        assert run_once(session, NOW) == 0
    # A restart: a new engine, the cursors read back from the database.
    from escrow.db.engine import make_engine

    restarted = make_engine(db_url)
    try:
        with Session(restarted) as session:
            assert run_once(session, NOW) == 0
            # Even without cursors every source is read again and nothing repeats.
            session.execute(delete(NotifierCursor))
            session.commit()
            assert run_once(session, NOW) == 0
            assert count(session) == 3
            rows = session.execute(select(NotifierCursor.name, NotifierCursor.last_id))
            cursors = {name: last for name, last in rows}
            assert cursors["events"] >= 1 and cursors["messages"] >= 1
    finally:
        restarted.dispose()


def test_the_database_refuses_a_second_notification_for_the_same_key(engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    with Session(engine) as session:
        session.add(Notification(recipient=SELLER, key="ev:1:0xab:0", kind="sold", params={}))
        session.commit()
        session.add(Notification(recipient=SELLER, key="ev:1:0xab:0", kind="sold", params={}))
        with pytest.raises(IntegrityError):
            session.commit()


def test_no_72_hour_reminder_for_a_sale_paid_with_72_hours_to_ship(engine: Engine) -> None:
    """The sale itself says when to ship by; the first reminder is the 24-hour one."""
    with Session(engine) as session:
        add_trade(session, 1, funded_at=NOW, ship_by=NOW + 72 * HOUR)
        session.commit()
        run_once(session, NOW + timedelta(seconds=5))
        run_once(session, NOW + 48 * HOUR + timedelta(seconds=5))
        kinds = session.execute(
            select(Notification.kind, Notification.params).where(
                Notification.kind.startswith("remind_")
            )
        ).all()
        assert [(kind, params["hours"]) for kind, params in kinds] == [("remind_ship_by", 24)]


def test_reminders_72_24_and_1_hour_before_each_deadline(engine: Engine) -> None:
    deadline = NOW + 100 * HOUR
    with Session(engine) as session:
        funded = add_trade(session, 1, ship_by=deadline)
        session.commit()

        def reminders_at(at: datetime) -> list[tuple[str, str, int]]:
            run_once(session, at)
            rows = session.scalars(
                select(Notification)
                .where(Notification.kind.startswith("remind_"))
                .order_by(Notification.id)
            )
            return [(n.recipient, n.kind, n.params["hours"]) for n in rows]

        assert reminders_at(deadline - 73 * HOUR) == []
        assert reminders_at(deadline - 72 * HOUR + 60 * 1000 * timedelta(microseconds=1)) == [
            (SELLER, "remind_ship_by", 72)
        ]
        assert len(reminders_at(deadline - 30 * HOUR)) == 1  # nothing new between steps
        assert reminders_at(deadline - 23 * HOUR)[-1] == (SELLER, "remind_ship_by", 24)
        assert reminders_at(deadline - HOUR / 2)[-1] == (SELLER, "remind_ship_by", 1)
        assert len(reminders_at(deadline + HOUR)) == 3  # past the deadline: no more
        assert len(reminders_at(deadline - HOUR / 4)) == 3  # the same step is not sent twice

        # First seen 20 hours before: only the 24-hour reminder, never the 72-hour one.
        inspection_end = NOW + 20 * HOUR
        shipped = add_trade(
            session,
            2,
            status="Shipped",
            shipped_at=NOW - 12 * 24 * HOUR,
            received_at=NOW - 2 * 24 * HOUR,
            inspection_ends_at=inspection_end,
            deadline=inspection_end,
        )
        ruling = NOW + 80 * HOUR
        add_trade(session, 3, status="Disputed", ruling_deadline=ruling, deadline=ruling)
        session.commit()
        run_once(session, NOW)
        for_buyer = session.scalars(
            select(Notification).where(Notification.recipient == BUYER)
        ).all()
        assert [(n.kind, n.params["hours"], n.trade_id) for n in for_buyer] == [
            ("remind_inspection_end", 24, shipped.id)
        ]
        assert run_once(session, ruling - 71 * HOUR) == 1
        last = session.scalars(select(Notification).order_by(Notification.id.desc())).first()
        assert last is not None and (last.recipient, last.kind) == (ARBITRATOR, "remind_ruling_by")

        # The seller grants more days: the new inspection end gets its own reminders.
        session.execute(
            update(Trade)
            .where(Trade.id == shipped.id)
            .values(inspection_ends_at=inspection_end + 48 * HOUR)
        )
        session.commit()
        assert run_once(session, NOW + 10 * HOUR) == 1
        assert funded.id != shipped.id


@pytest.mark.parametrize(
    ("hours_left", "step"),
    [(100, None), (72, 72), (71.9, 72), (24, 24), (1, 1), (0.01, 1), (0, None)],
)
def test_reminder_step(hours_left: float, step: int | None) -> None:
    assert REMINDER_HOURS == (72, 24, 1)
    assert reminder_step(NOW + timedelta(hours=hours_left), NOW) == step


def test_a_reorganisation_that_removes_events_does_not_stop_the_notifier(engine: Engine) -> None:
    with Session(engine) as session:
        trade = add_trade(session)
        for log in range(3):
            add_event(session, trade, "EvidenceSubmitted", {"submittedBy": SELLER}, log=log)
        session.commit()
        assert run_once(session, NOW) == 6
        # The indexer drops the block's events and the trade, then writes another branch's
        # events (SQLite hands out the deleted ids again).
        session.execute(delete(TradeEvent))
        session.execute(delete(Trade))
        session.commit()
        assert run_once(session, NOW) == 0
        orphans = session.scalars(select(Notification)).all()
        assert len(orphans) == 6 and all(n.trade_id is None for n in orphans)
        again = add_trade(session, 7)
        add_event(session, again, "TradeShipped", {}, log=0, block=30)
        session.commit()
        assert run_once(session, NOW) == 1
        assert notices(session)[BUYER][-1] == "shipped"


def test_old_history_is_not_announced(engine: Engine) -> None:
    with Session(engine) as session:
        trade = add_trade(session)
        add_event(session, trade, "TradeFunded", {}, log=0)
        session.commit()
        assert run_once(session, NOW + timedelta(days=30)) == 0


# ---------------------------------------------------------------------------- the routes


@pytest.fixture
def trade_pk(app: Flask, client: EscrowClient, roles: Roles) -> int:
    """A trade funded on the embedded chain, indexed, and the notifier's pass."""
    pk = funded_trade(app, client, roles)
    with db_session(app) as session:
        # At the chain's time of the payment: the embedded chain's clock is where earlier
        # tests left it, so the wall clock could already be within a reminder's 72 hours.
        trade = session.get(Trade, pk)
        assert trade is not None
        assert run_once(session, trade.funded_at) == 2
    return pk


def header_count(html: str) -> int | None:
    match = re.search(r"data-notifications-count[^>]*>(\d+)<", html)
    return int(match.group(1)) if match else None


def test_the_seller_sees_the_sale_in_the_header_and_the_centre(
    web: Any, roles: Roles, trade_pk: int
) -> None:
    seller = web("seller", roles)
    page = seller.client.get("/listings").get_data(as_text=True)
    assert header_count(page) == 1
    assert 'aria-label="Notifications, 1 unread"' in page
    centre = seller.client.get("/notifications").get_data(as_text=True)
    assert "You sold" in centre and "data-unread" in centre
    link = re.search(r'href="(/notifications/\d+)"', centre)
    assert link
    opened = seller.client.get(link.group(1))
    assert opened.status_code == 302 and opened.location.endswith(f"/trades/{trade_pk}")
    assert seller.client.get("/notifications/poll").get_json() == {"unread": 0}

    stranger = web("stranger", roles)
    assert "You sold" not in stranger.client.get("/notifications").get_data(as_text=True)
    assert stranger.client.get("/notifications/poll").get_json() == {"unread": 0}
    # Someone else's notification does not exist for them.
    assert stranger.client.get(link.group(1)).status_code == 404


def test_signed_out_visitors_get_nothing(web: Any, trade_pk: int) -> None:
    anonymous = web(None)
    assert anonymous.client.get("/notifications").status_code == 302
    assert anonymous.client.get("/notifications/settings").status_code == 302
    polled = anonymous.client.get(
        f"/notifications/poll?trade={trade_pk}", headers={"Accept": "application/json"}
    )
    assert polled.status_code == 401 and "unread" not in polled.get_json()


def test_a_trades_version_only_for_its_people_and_it_changes_when_the_seller_ships(
    app: Flask, web: Any, roles: Roles, trade_pk: int, chain: Any
) -> None:
    buyer = web("buyer", roles)
    first = buyer.client.get(f"/notifications/poll?trade={trade_pk}").get_json()
    version = first["trade"]["version"]
    assert first["trade"]["changed"] is False
    page = buyer.client.get(f"/trades/{trade_pk}").get_data(as_text=True)
    assert f'data-live-version="{version}"' in page
    same = buyer.client.get(f"/notifications/poll?trade={trade_pk}&v={version}").get_json()
    assert same["trade"]["changed"] is False

    for name in ("stranger", "buyer2"):
        other = web(name, roles)
        refused = other.client.get(f"/notifications/poll?trade={trade_pk}&v={version}")
        assert refused.status_code == 404 and "trade" not in refused.get_json()
        assert "data-live-version" not in other.client.get(f"/trades/{trade_pk}").get_data(
            as_text=True
        )
    for bad in ("abc", "-1", "99999999", "1" * 40, ""):
        assert buyer.client.get(f"/notifications/poll?trade={bad}").status_code == 404

    seller = web("seller", roles)
    shipped = seller.post_json(f"/trades/{trade_pk}/actions/ship", {"tracking": "KZ123456789KZ"})
    assert shipped.status_code == 200, shipped.get_json()
    send(chain, shipped.get_json()["tx"])
    index_now(app)
    changed = buyer.client.get(f"/notifications/poll?trade={trade_pk}&v={version}").get_json()
    assert changed["trade"]["changed"] is True and changed["trade"]["version"] != version
    with db_session(app) as session:
        run_once(session)
        for_buyer = notices(session)[roles.buyer.lower()]
    # Paid, shipped, and the reminder of the inspection's end when it is near.
    assert for_buyer[:2] == ["paid", "shipped"]
    assert set(for_buyer[2:]) <= {"remind_inspection_end"}
    assert buyer.client.get("/notifications/poll").get_json()["unread"] == len(for_buyer)


def test_mark_all_read_needs_csrf_and_leaves_newer_ones_unread(
    app: Flask, web: Any, roles: Roles, trade_pk: int
) -> None:
    seller = web("seller", roles)
    refused = seller.client.post("/notifications/read", data={})
    assert refused.status_code == 400
    assert seller.client.get("/notifications/poll").get_json()["unread"] == 1
    newest = re.search(
        r'name="upto" value="(\d+)"', seller.client.get("/notifications").get_data(as_text=True)
    )
    assert newest
    # One more arrives after the page was drawn.
    with db_session(app) as session:
        session.add(Notification(recipient=roles.seller.lower(), key="test:1", kind="paid"))
        session.commit()
    done = seller.post_form("/notifications/read", {"upto": newest.group(1)})
    assert done.status_code == 302
    assert seller.client.get("/notifications/poll").get_json()["unread"] == 1
    assert seller.post_form("/notifications/read", {"upto": "x'; DROP"}).status_code == 302
    assert seller.client.get("/notifications/poll").get_json()["unread"] == 1
    seller.post_form("/notifications/read", {})
    assert seller.client.get("/notifications/poll").get_json()["unread"] == 0


@pytest.mark.parametrize(
    ("email", "enabled", "message"),
    [
        ("not-an-address", "1", "is not an e-mail address"),
        ("a@b.kz\r\nBcc: victim@example.kz", "1", "is not an e-mail address"),
        ("", "1", "Give an e-mail address"),
        ("x" * 250 + "@b.kz", "1", "at most 254 characters"),
        ("имя@почта", "", "is not an e-mail address"),
    ],
)
def test_settings_refuse_a_bad_address_with_a_clear_message(
    app: Flask, web: Any, roles: Roles, email: str, enabled: str, message: str
) -> None:
    seller = web("seller", roles)
    answer = seller.post_form("/notifications/settings", {"email": email, "email_enabled": enabled})
    assert answer.status_code == 400
    assert message in answer.get_data(as_text=True)
    with db_session(app) as session:
        assert session.get(NotificationSettings, roles.seller.lower()) is None


def test_settings_are_saved_for_the_signed_in_person_only(
    app: Flask, web: Any, roles: Roles
) -> None:
    seller = web("seller", roles)
    assert (
        seller.client.post("/notifications/settings", data={"email": "s@example.kz"}).status_code
        == 400
    )
    saved = seller.post_form(
        "/notifications/settings", {"email": " seller@example.kz ", "email_enabled": "1"}
    )
    assert saved.status_code == 302
    page = seller.client.get("/notifications/settings").get_data(as_text=True)
    assert 'value="seller@example.kz"' in page and "checked" in page
    with db_session(app) as session:
        row = session.get(NotificationSettings, roles.seller.lower())
        assert row is not None and row.email_enabled and row.email == "seller@example.kz"
        assert row.locale == "en"
    other = web("buyer", roles).client.get("/notifications/settings").get_data(as_text=True)
    assert "seller@example.kz" not in other
    # Turning e-mails off keeps the address.
    seller.post_form("/notifications/settings", {"email": "seller@example.kz"})
    with db_session(app) as session:
        row = session.get(NotificationSettings, roles.seller.lower())
        assert row is not None and not row.email_enabled


@pytest.mark.parametrize(
    ("lang", "zone", "month"),
    [("kk", "(Алматы)", "жел."), ("ru", "(Алматы)", "дек."), ("en", "(Almaty)", "Dec")],
)
def test_texts_are_written_in_the_readers_language_and_almaty_time(
    web: Any, roles: Roles, trade_pk: int, lang: str, zone: str, month: str
) -> None:
    """The text is written when it is read: the same notification in each reader's language,
    its ship-by time in Almaty time (the trade is funded with five days to ship)."""
    seller = web("seller", roles)
    seller.post_form("/lang", {"lang": lang, "next": "/notifications"})
    page = seller.client.get("/notifications").get_data(as_text=True)
    assert f'<html lang="{lang}"' in page
    item = re.search(r'<li class="card inbox-row notification[^"]*"[^>]*>(.*?)</li>', page, re.S)
    assert item
    assert zone in item.group(1)
    if lang == "en":
        assert "You sold" in item.group(1)
