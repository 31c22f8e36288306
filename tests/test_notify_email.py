"""Notification e-mails through a real SMTP server (aiosmtpd, started here): in the reader's
language and Almaty time, at most once across passes, restarts and a crash between sending
and marking, retried when the server is away, given up when it refuses; SQLite and PostgreSQL.
Also ``python -m webapp.notify --once`` as its own process.
"""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session
from test_notifications import BUYER, NOW, SELLER, STRANGER, add_event, add_trade

from db_fixtures import *  # noqa: F403  (fixtures)
from escrow.anvil import free_port
from escrow.db.engine import make_engine
from escrow.db.models import EmailOutbox, Listing, NotificationSettings, TradeEvent, User
from web_fixtures import app_settings
from webapp import create_app
from webapp.mailer import SmtpSettings, send_due
from webapp.notify import run_once

ROOT = Path(__file__).resolve().parents[1]


class Inbox:
    """An aiosmtpd handler that keeps what it accepts; ``refuse`` answers RCPT with it."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: str | None = None

    async def handle_RCPT(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_port() -> int:
    return int(free_port())


class Server:
    """A real SMTP server on 127.0.0.1 that can be stopped and started again."""

    def __init__(self, handler: Inbox, port: int) -> None:
        self.handler, self.port = handler, port
        self.controller: Controller | None = None

    def start(self) -> None:
        # A stopped Controller's event loop is closed: a new one serves the same inbox.
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def inbox(smtp_port: int) -> Iterator[tuple[Inbox, Server]]:
    server = Server(Inbox(), smtp_port)
    server.start()
    yield server.handler, server
    server.stop()


@pytest.fixture
def mail_app(db_url: str, engine: Engine, tmp_path: Path, smtp_port: int) -> Iterator[Flask]:
    app = create_app(
        app_settings(
            db_url,
            tmp_path,
            SITE_URL="https://market.example.kz",
            SMTP_HOST="127.0.0.1",
            SMTP_PORT=smtp_port,
            SMTP_SECURITY="none",
            SMTP_FROM="market@example.kz",
        )
    )
    yield app
    app.extensions["escrow_engine"].dispose()


def smtp_of(app: Flask) -> SmtpSettings:
    settings = SmtpSettings.from_config(app.config)
    assert settings is not None
    return settings


def a_sale(engine: Engine, *, seller_lang: str = "kk", buyer_lang: str = "ru") -> int:
    """A funded trade whose seller (Kazakh, from the settings) and buyer (Russian, from the
    user row; the settings say English) want e-mails, and a stranger who wants them too."""
    with Session(engine) as session:
        seller = User(address=SELLER, languages=[])
        session.add_all([seller, User(address=BUYER, languages=[], locale=buyer_lang)])
        session.flush()
        listing = Listing(
            ref="0x" + "cd" * 32, seller_id=seller.id, title="Домбыра", price=1, photos=[]
        )
        session.add(listing)
        session.flush()
        trade = add_trade(session, listing_id=listing.id)
        add_event(session, trade, "TradeFunded", {}, log=0)
        session.add_all(
            [
                NotificationSettings(
                    address=SELLER,
                    email="seller@example.kz",
                    email_enabled=True,
                    locale=seller_lang,
                ),
                NotificationSettings(
                    address=BUYER, email="buyer@example.kz", email_enabled=True, locale="en"
                ),
                NotificationSettings(
                    address=STRANGER, email="stranger@example.kz", email_enabled=True, locale="en"
                ),
            ]
        )
        session.commit()
        return trade.id


def outbox(engine: Engine) -> list[EmailOutbox]:
    with Session(engine) as session:
        return list(session.scalars(select(EmailOutbox).order_by(EmailOutbox.id)))


def test_each_party_gets_one_email_in_their_language(
    mail_app: Flask, engine: Engine, inbox: tuple[Inbox, Server]
) -> None:
    server, _controller = inbox
    trade_id = a_sale(engine)
    with Session(engine) as session:
        assert run_once(session, NOW) == 2
    assert send_due(mail_app, engine, smtp_of(mail_app), NOW) == 2
    by_address = {str(m["To"]): m for m in server.messages}
    assert set(by_address) == {"seller@example.kz", "buyer@example.kz"}  # never the stranger

    seller = by_address["seller@example.kz"]
    assert seller["Content-Language"] == "kk"
    body = seller.get_content()
    assert "Домбыра" in seller["Subject"] and "Домбыра" in body
    # Ship by 5 Dec 14:00 in Almaty (09:00 UTC + 5 days), written in Kazakh.
    assert "14:00 (Алматы)" in body and "жел." in body
    assert f"https://market.example.kz/trades/{trade_id}" in body
    assert "https://market.example.kz/notifications/settings" in body
    assert seller["From"] == "P2P Escrow <market@example.kz>"
    assert seller["Message-ID"].endswith("@market.example.kz>")

    buyer = by_address["buyer@example.kz"]
    assert buyer["Content-Language"] == "ru"  # the user's own language wins over the settings'
    assert [row.state for row in outbox(engine)] == ["sent", "sent"]


def test_no_second_email_after_more_passes_or_a_restart(
    mail_app: Flask, engine: Engine, db_url: str, inbox: tuple[Inbox, Server], tmp_path: Path
) -> None:
    server, _controller = inbox
    a_sale(engine)
    with Session(engine) as session:
        run_once(session, NOW)
    assert send_due(mail_app, engine, smtp_of(mail_app), NOW) == 2
    with Session(engine) as session:
        assert run_once(session, NOW) == 0
    assert send_due(mail_app, engine, smtp_of(mail_app), NOW + timedelta(hours=1)) == 0
    # A restart: a new app and engine on the same database.
    again = create_app({**mail_app.config, "TESTING": True})
    fresh = make_engine(db_url)
    try:
        with Session(fresh) as session:
            assert run_once(session, NOW) == 0
        assert send_due(again, fresh, smtp_of(again), NOW + timedelta(days=1)) == 0
    finally:
        fresh.dispose()
        again.extensions["escrow_engine"].dispose()
    assert len(server.messages) == 2
    with Session(engine) as session:
        assert session.scalar(select(func.count(EmailOutbox.id))) == 2


def test_a_crash_between_sending_and_marking_never_sends_again(
    mail_app: Flask, engine: Engine, inbox: tuple[Inbox, Server]
) -> None:
    server, _controller = inbox
    a_sale(engine)
    with Session(engine) as session:
        run_once(session, NOW)
        # Claimed by a sender that stopped: one an hour ago, one a moment ago (still working).
        first, second = session.scalars(select(EmailOutbox).order_by(EmailOutbox.id)).all()
        first.state, first.claimed_at = "sending", NOW - timedelta(hours=1)
        second.state, second.claimed_at = "sending", NOW - timedelta(seconds=5)
        session.commit()
    assert send_due(mail_app, engine, smtp_of(mail_app), NOW) == 0
    assert [row.state for row in outbox(engine)] == ["unknown", "sending"]
    assert send_due(mail_app, engine, smtp_of(mail_app), NOW + timedelta(hours=1)) == 0
    assert [row.state for row in outbox(engine)] == ["unknown", "unknown"]
    assert server.messages == []


def test_a_server_that_is_away_is_tried_again_later(
    mail_app: Flask, engine: Engine, inbox: tuple[Inbox, Server], smtp_port: int
) -> None:
    server, controller = inbox
    controller.stop()
    a_sale(engine)
    with Session(engine) as session:
        run_once(session, NOW)
    # The first e-mail finds no server: it waits, and the pass stops there.
    assert send_due(mail_app, engine, smtp_of(mail_app), NOW) == 0
    first, second = outbox(engine)
    assert (first.state, first.attempts) == ("queued", 1) and "refused" in (first.last_error or "")
    assert first.next_attempt_at is not None and second.attempts == 0
    controller.start()
    assert send_due(mail_app, engine, smtp_of(mail_app), NOW) == 1  # the one not tried yet
    assert send_due(mail_app, engine, smtp_of(mail_app), NOW + timedelta(minutes=2)) == 1
    assert [(r.state, r.attempts) for r in outbox(engine)] == [("sent", 2), ("sent", 1)]
    assert len(server.messages) == 2


@pytest.mark.parametrize(
    ("answer", "state"), [("550 No such user", "failed"), ("451 Later", "queued")]
)
def test_refusals(
    mail_app: Flask, engine: Engine, inbox: tuple[Inbox, Server], answer: str, state: str
) -> None:
    server, _controller = inbox
    server.refuse = answer
    a_sale(engine)
    with Session(engine) as session:
        run_once(session, NOW)
    assert send_due(mail_app, engine, smtp_of(mail_app), NOW) == 0
    assert {r.state for r in outbox(engine)} == {state}
    assert all(answer.split()[0] in (r.last_error or "") for r in outbox(engine))


def test_no_email_for_people_who_turned_them_off_or_without_smtp(
    db_url: str, engine: Engine, tmp_path: Path, inbox: tuple[Inbox, Server]
) -> None:
    a_sale(engine)
    with Session(engine) as session:
        session.execute(update(NotificationSettings).values(email_enabled=False))
        session.commit()
        assert run_once(session, NOW) == 2
    assert outbox(engine) == []
    no_smtp = create_app(app_settings(db_url, tmp_path, SMTP_HOST=""))
    try:
        assert SmtpSettings.from_config(no_smtp.config) is None
        assert send_due(no_smtp, engine, None, NOW) == 0
    finally:
        no_smtp.extensions["escrow_engine"].dispose()


def test_the_notifier_process_runs_once(
    db_url: str, engine: Engine, tmp_path: Path, smtp_port: int, inbox: tuple[Inbox, Server]
) -> None:
    server, _controller = inbox
    a_sale(engine)
    # The notifier reads the clock: the event must be recent (within a week of now).
    with Session(engine) as session:
        session.execute(update(TradeEvent).values(block_time=None))
        session.commit()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "ESCROW_DATA_DIR": str(tmp_path),
        "ESCROW_SMTP_HOST": "127.0.0.1",
        "ESCROW_SMTP_PORT": str(smtp_port),
        "ESCROW_SMTP_SECURITY": "none",
        "ESCROW_SMTP_FROM": "market@example.kz",
    }
    env.pop("ESCROW_ENV", None)
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "webapp.notify", "--once"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    # Each outbox row went exactly once (a reminder may join the sale if the clock is near).
    assert {str(m["To"]) for m in server.messages} == {"buyer@example.kz", "seller@example.kz"}
    assert len(server.messages) == len(outbox(engine))
    assert {r.state for r in outbox(engine)} == {"sent"}


def test_the_notifier_loop_works_on_its_own_and_stops_cleanly_on_sigterm(
    db_url: str, engine: Engine, tmp_path: Path, smtp_port: int, inbox: tuple[Inbox, Server]
) -> None:
    server, _controller = inbox
    a_sale(engine)
    with Session(engine) as session:
        session.execute(update(TradeEvent).values(block_time=None))
        session.commit()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "ESCROW_DATA_DIR": str(tmp_path),
        "ESCROW_SMTP_HOST": "127.0.0.1",
        "ESCROW_SMTP_PORT": str(smtp_port),
        "ESCROW_SMTP_SECURITY": "none",
    }
    env.pop("ESCROW_ENV", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "webapp.notify", "--interval", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(server.messages) < 2 and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.1)
        assert len(server.messages) >= 2
        time.sleep(1)  # a few more passes: nothing is sent twice
        assert len(server.messages) == len(outbox(engine))
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
        assert process.returncode == 0, output
        assert "stopping after this pass" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
