"""E-mail for notifications: an outbox in the database, sent through SMTP at most once.

The notifier queues one :class:`~escrow.db.models.EmailOutbox` row per new notification of a
person who gave an address and turned e-mails on (unique per recipient and key, like the
notification). Sending a row:

1. claim it: ``queued -> sending`` by a conditional UPDATE, committed, so no other process or
   later pass takes it;
2. hand it to the SMTP server;
3. mark it ``sent``, committed.

A crash between 2 and 3 leaves the row ``sending``; after ``CLAIM_SECONDS`` it becomes
``unknown`` and is never sent again. We chose at most once: the server may or may not have
accepted the message, and a second copy of "you were paid" is worse than a missing one (the
notification centre has it either way). Each message carries a Message-ID made from its
recipient and key, so a copy sent by hand is recognisable as the same message.

Refusals before the server accepted the message are retried: a server that cannot be reached or
answers 4xx puts the row back to ``queued`` with a later ``next_attempt_at`` (up to
``MAX_ATTEMPTS``); a 5xx refusal makes it ``failed``.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, g
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from escrow.db.models import EmailOutbox, EmailState, Notification, NotificationSettings, User
from webapp.notices import describe, insert_ignoring, target_url

log = logging.getLogger("escrow.mailer")

MAX_ATTEMPTS = 5
#: A claim older than this was left by a sender that stopped: the row becomes ``unknown``.
CLAIM_SECONDS = 10 * 60
#: Rows sent per pass.
PASS_LIMIT = 100
LANGUAGES = ("kk", "ru", "en")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    user: str = ""
    password: str = ""
    #: 'starttls', 'ssl' or 'none'.
    security: str = "starttls"
    timeout: float = 20.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmtpSettings | None:
        """The app's SMTP settings; None when no SMTP host is set (no e-mails at all)."""
        host = str(config.get("SMTP_HOST") or "").strip()
        if not host:
            return None
        return cls(
            host=host,
            port=int(config.get("SMTP_PORT") or 587),
            sender=str(config.get("SMTP_FROM") or "market@localhost"),
            user=str(config.get("SMTP_USER") or ""),
            password=str(config.get("SMTP_PASSWORD") or ""),
            security=str(config.get("SMTP_SECURITY") or "starttls"),
            timeout=float(config.get("SMTP_TIMEOUT") or 20.0),
        )


# ---------------------------------------------------------------------------- queueing


def queue(session: Session, created: list[Any], now: datetime) -> int:
    """Outbox rows for the new notifications (``notify.Draft``s) of people who turned e-mails
    on. Idempotent: unique per (recipient, key)."""
    recipients = sorted({d.recipient for d in created})
    if not recipients:
        return 0
    wanted = dict(
        session.execute(
            select(NotificationSettings.address, NotificationSettings.email).where(
                NotificationSettings.address.in_(recipients),
                NotificationSettings.email_enabled.is_(True),
                NotificationSettings.email.is_not(None),
            )
        ).all()
    )
    drafts = [d for d in created if d.recipient in wanted]
    if not drafts:
        return 0
    ids = {
        (str(r), str(k)): int(i)
        for i, r, k in session.execute(
            select(Notification.id, Notification.recipient, Notification.key).where(
                Notification.recipient.in_(sorted(wanted)),
                Notification.key.in_(sorted({d.key for d in drafts})),
            )
        )
    }
    rows = [
        {
            "recipient": d.recipient,
            "key": d.key,
            "notification_id": ids.get((d.recipient, d.key)),
            "to_email": wanted[d.recipient],
            "state": EmailState.QUEUED.value,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for d in drafts
    ]
    session.execute(insert_ignoring(session, EmailOutbox, ["recipient", "key"]).values(rows))
    return len(rows)


# ---------------------------------------------------------------------------- sending


def message_id(recipient: str, key: str, site_url: str) -> str:
    digest = hashlib.sha256(f"{recipient}|{key}".encode()).hexdigest()[:40]
    return f"<{digest}@{urlsplit(site_url).hostname or 'localhost'}>"


def compose(app: Flask, session: Session, row: EmailOutbox, smtp: SmtpSettings) -> EmailMessage:
    """The e-mail for an outbox row, in the recipient's language and time zone."""
    user = session.scalar(select(User).where(User.address == row.recipient))
    settings = session.get(NotificationSettings, row.recipient)
    lang = (user.locale if user is not None else None) or (settings.locale if settings else None)
    if lang not in LANGUAGES:
        lang = "ru"
    notification = session.get(Notification, row.notification_id) if row.notification_id else None
    site = str(app.config.get("SITE_URL") or "").rstrip("/")
    # A request of the site's own for url_for and the language and zone selectors; the links
    # are the site's address plus the path.
    hosts = app.config.get("TRUSTED_HOSTS") or ["localhost"]
    with app.test_request_context(base_url=f"http://{hosts[0]}"):
        # The time zone selector reads the signed-in user (webapp.i18n.select_timezone).
        g.current_user = user
        g.signed_in_address = row.recipient
        with force_locale(lang):
            if notification is not None:
                text = describe(notification.kind, dict(notification.params or {}))
                link = site + target_url(notification)
            else:
                text, link = _("Something happened in one of your trades."), site + "/trades"
            subject = _("Escrow market: %(text)s", text=text)
            footer = _(
                "You get these e-mails because you turned them on. Turn them off here: %(url)s",
                url=site + "/notifications/settings",
            )
    message = EmailMessage()
    message["Subject"] = subject if len(subject) <= 200 else subject[:199] + "…"
    message["From"] = formataddr(("P2P Escrow", smtp.sender))
    message["To"] = row.to_email
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id(row.recipient, row.key, site)
    message.set_content(f"{text}\n\n{link}\n\n-- \n{footer}\n")
    message["Content-Language"] = lang  # after set_content, which replaces Content-* headers
    return message


def send_due(app: Flask, engine: Engine, smtp: SmtpSettings | None, now: datetime) -> int:
    """Sends the queued e-mails that are due; returns how many the server accepted."""
    if smtp is None:
        return 0
    with Session(engine, expire_on_commit=False) as session:
        _give_up_stale_claims(session, now)
        due = list(
            session.scalars(
                select(EmailOutbox.id)
                .where(
                    EmailOutbox.state == EmailState.QUEUED.value,
                    EmailOutbox.next_attempt_at <= now,
                )
                .order_by(EmailOutbox.id)
                .limit(PASS_LIMIT)
            )
        )
    if not due:
        return 0
    sent = 0
    connection: smtplib.SMTP | None = None
    try:
        for outbox_id in due:
            with Session(engine, expire_on_commit=False) as session:
                row = _claim(session, outbox_id, now)
                if row is None:
                    continue  # another sender took it
                try:
                    message = compose(app, session, row, smtp)
                    if connection is None:
                        connection = _connect(smtp)
                except (OSError, smtplib.SMTPException) as exc:
                    # Nothing was handed over: try again later.
                    _release(session, row, now, exc)
                    break
                try:
                    connection.send_message(message)
                except smtplib.SMTPResponseException as exc:
                    if 400 <= exc.smtp_code < 500:
                        _release(session, row, now, exc)
                    else:
                        _finish(session, row, EmailState.FAILED, now, exc)
                    continue
                except smtplib.SMTPRecipientsRefused as exc:
                    codes = [code for code, _text in exc.recipients.values()]
                    if codes and all(400 <= code < 500 for code in codes):
                        _release(session, row, now, exc)
                    else:
                        _finish(session, row, EmailState.FAILED, now, exc)
                    continue
                except (OSError, smtplib.SMTPException) as exc:
                    # Cut off while sending: the server may have the message. At most once.
                    _finish(session, row, EmailState.UNKNOWN, now, exc)
                    connection = None
                    continue
                _finish(session, row, EmailState.SENT, now, None)
                sent += 1
    finally:
        if connection is not None:
            try:
                connection.quit()
            except (OSError, smtplib.SMTPException):
                pass
    return sent


def _connect(smtp: SmtpSettings) -> smtplib.SMTP:
    connection: smtplib.SMTP
    if smtp.security == "ssl":
        connection = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout)
    else:
        connection = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        if smtp.security == "starttls":
            connection.starttls()
    if smtp.user:
        connection.login(smtp.user, smtp.password)
    return connection


def _give_up_stale_claims(session: Session, now: datetime) -> None:
    stale = EmailOutbox.claimed_at < now - timedelta(seconds=CLAIM_SECONDS)
    mine = EmailOutbox.state == EmailState.SENDING.value
    if session.scalar(select(EmailOutbox.id).where(mine, stale).limit(1)) is None:
        session.rollback()  # nothing to change: no write on an idle pass
        return
    session.execute(
        update(EmailOutbox)
        .where(
            EmailOutbox.state == EmailState.SENDING.value,
            EmailOutbox.claimed_at < now - timedelta(seconds=CLAIM_SECONDS),
        )
        .values(
            state=EmailState.UNKNOWN.value,
            last_error="the sender stopped between claiming and marking; not sent again",
        )
    )
    session.commit()


def _claim(session: Session, outbox_id: int, now: datetime) -> EmailOutbox | None:
    claimed = session.execute(
        update(EmailOutbox)
        .where(EmailOutbox.id == outbox_id, EmailOutbox.state == EmailState.QUEUED.value)
        .values(
            state=EmailState.SENDING.value,
            claimed_at=now,
            attempts=EmailOutbox.attempts + 1,
        )
    )
    session.commit()
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    return session.get(EmailOutbox, outbox_id)


def _release(session: Session, row: EmailOutbox, now: datetime, exc: BaseException) -> None:
    """Back to the queue (nothing was accepted), or failed after the last attempt."""
    if row.attempts >= MAX_ATTEMPTS:
        _finish(session, row, EmailState.FAILED, now, exc)
        return
    row.state = EmailState.QUEUED.value
    row.next_attempt_at = now + timedelta(minutes=2 ** max(0, row.attempts - 1))
    row.last_error = _error_text(exc)
    session.commit()
    log.warning("e-mail %d not sent, trying again later: %s", row.id, row.last_error)


def _finish(
    session: Session, row: EmailOutbox, state: EmailState, now: datetime, exc: BaseException | None
) -> None:
    row.state = state.value
    if state is EmailState.SENT:
        row.sent_at = now
    if exc is not None:
        row.last_error = _error_text(exc)
        log.warning("e-mail %d %s: %s", row.id, state.value, row.last_error)
    session.commit()


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
