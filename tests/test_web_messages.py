"""Chat before buying (webapp/messages.py) through the Flask test client: a buyer asks, the seller
replies, the inbox and the header count unread messages, only the two people see a conversation,
messages are shown through the phishing guard, rate limits, lengths, CSRF, listing states."""

from __future__ import annotations

import re
from typing import Any

from authz_cases import db_state, state_diff
from flask import Flask
from sqlalchemy import func, select

from escrow.db.models import Conversation, ConversationMessage, Listing
from helpers import Roles
from web_fixtures import WebUser, add_listing, db_session

SCAM = "Оплатите доставку по ссылке olx-kz.delivery-pay.com и скиньте номер карты"
HEADER_COUNT = re.compile(r"data-unread-total[^>]*>(\d+)<")


def _ask(user: WebUser, listing_id: int, body: str) -> Any:
    return user.post_form(f"/listings/{listing_id}/ask", {"body": body})


def _conversation_id(response: Any) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    match = re.search(r"/messages/(\d+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def _header_unread(user: WebUser) -> int:
    page = user.client.get("/messages").get_data(as_text=True)
    match = HEADER_COUNT.search(page)
    return int(match.group(1)) if match else 0


def _count(app: Flask, model: Any) -> int:
    with db_session(app) as session:
        return int(session.scalar(select(func.count(model.id))) or 0)


def _set_status(app: Flask, listing_id: int, status: str) -> None:
    with db_session(app) as session:
        session.get(Listing, listing_id).status = status
        session.commit()


def test_buyer_asks_seller_replies_with_unread_counts(app: Flask, web: Any, roles: Roles) -> None:
    listing, _ = add_listing(app, roles.seller, title="Велосипед Stels")
    buyer, seller = web("buyer", roles), web("seller", roles)
    page = buyer.client.get(f"/listings/{listing}").get_data(as_text=True)
    assert "data-ask-form" in page
    conversation = _conversation_id(_ask(buyer, listing, "Здравствуйте! Ещё продаётся?"))
    assert _header_unread(buyer) == 0
    assert _header_unread(seller) == 1
    inbox = seller.client.get("/messages").get_data(as_text=True)
    assert f'data-conversation="{conversation}" data-unread="1"' in inbox
    assert "Велосипед Stels" in inbox and "Ещё продаётся?" in inbox

    shown = seller.client.get(f"/messages/{conversation}").get_data(as_text=True)
    assert "Здравствуйте! Ещё продаётся?" in shown
    assert _header_unread(seller) == 0  # read by opening it

    reply = seller.post_form(f"/messages/{conversation}", {"body": "Да, приходите завтра"})
    assert reply.status_code == 302
    second = seller.post_form(f"/messages/{conversation}", {"body": "В 18:00 у Меги"})
    assert second.status_code == 302
    assert _header_unread(buyer) == 2 and _header_unread(seller) == 0
    buyer_inbox = buyer.client.get("/messages").get_data(as_text=True)
    assert f'data-conversation="{conversation}" data-unread="2"' in buyer_inbox

    # Asking again about the same listing continues the same conversation.
    again = _ask(buyer, listing, "Отлично, буду")
    assert _conversation_id(again) == conversation
    assert _count(app, Conversation) == 1 and _count(app, ConversationMessage) == 4
    # The listing page now links the buyer's conversation instead of a new form.
    page = buyer.client.get(f"/listings/{listing}").get_data(as_text=True)
    assert "data-conversation-link" in page and "data-ask-form" not in page


def test_only_the_two_people_see_a_conversation(app: Flask, web: Any, roles: Roles) -> None:
    listing, _ = add_listing(app, roles.seller)
    buyer = web("buyer", roles)
    conversation = _conversation_id(_ask(buyer, listing, "Is it available?"))
    stranger, arbitrator, anonymous = web("stranger", roles), web("arbitrator", roles), web(None)
    before = db_state(app)
    for other in (stranger, arbitrator):
        assert other.client.get(f"/messages/{conversation}").status_code == 404
        refused = other.post_form(f"/messages/{conversation}", {"body": "hello"})
        assert refused.status_code == 404
        assert "Is it available?" not in other.client.get("/messages").get_data(as_text=True)
    response = anonymous.client.get(f"/messages/{conversation}")
    assert response.status_code == 302 and "/auth/signin" in response.headers["Location"]
    assert anonymous.post_form(f"/messages/{conversation}", {"body": "x"}).status_code == 302
    assert buyer.client.get("/messages/999999").status_code == 404
    assert state_diff(before, db_state(app)) == []
    assert web("seller", roles).client.get(f"/messages/{conversation}").status_code == 200


def test_a_seller_cannot_message_themselves(app: Flask, web: Any, roles: Roles) -> None:
    listing, _ = add_listing(app, roles.seller)
    seller = web("seller", roles)
    assert "data-ask-form" not in seller.client.get(f"/listings/{listing}").get_data(as_text=True)
    response = _ask(seller, listing, "Hi me")
    assert response.status_code == 403
    assert "cannot message yourself" in response.get_data(as_text=True)
    assert _count(app, Conversation) == 0


def test_withdrawn_and_sold_listings_keep_history_but_start_nothing(
    app: Flask, web: Any, roles: Roles
) -> None:
    listing, _ = add_listing(app, roles.seller, title="Old sofa")
    buyer, buyer2 = web("buyer", roles), web("stranger", roles)
    conversation = _conversation_id(_ask(buyer, listing, "Still there?"))
    _set_status(app, listing, "sold")
    refused = _ask(buyer2, listing, "Can I buy it?")
    assert refused.status_code == 409
    assert "no longer for sale" in refused.get_data(as_text=True)
    assert "data-ask-form" not in buyer2.client.get(f"/listings/{listing}").get_data(as_text=True)
    # The existing conversation goes on, with its history.
    assert (
        buyer.post_form(f"/messages/{conversation}", {"body": "Thanks anyway"}).status_code == 302
    )
    page = buyer.client.get(f"/messages/{conversation}").get_data(as_text=True)
    assert "Still there?" in page and "Thanks anyway" in page

    _set_status(app, listing, "withdrawn")
    assert _ask(buyer2, listing, "Hello?").status_code == 404
    assert _count(app, Conversation) == 1
    seller_view = web("seller", roles).client.get(f"/messages/{conversation}")
    assert seller_view.status_code == 200
    assert f'href="/listings/{listing}"' in seller_view.get_data(as_text=True)
    # The buyer is not sent to a listing page that is a 404 for them.
    page = buyer.client.get(f"/messages/{conversation}").get_data(as_text=True)
    assert f'href="/listings/{listing}"' not in page and "Old sofa" in page

    # A deleted listing leaves the conversation, under the title it had.
    with db_session(app) as session:
        session.delete(session.get(Listing, listing))
        session.commit()
    page = buyer.client.get(f"/messages/{conversation}").get_data(as_text=True)
    assert "Old sofa" in page and "Thanks anyway" in page


def test_scam_links_are_masked_in_the_readers_language(app: Flask, web: Any, roles: Roles) -> None:
    listing, _ = add_listing(app, roles.seller)
    buyer, seller = web("buyer", roles), web("seller", roles)
    conversation = _conversation_id(_ask(buyer, listing, "Можно посмотреть?"))
    seller.post_form(f"/messages/{conversation}", {"body": SCAM})
    seller.post_form(
        f"/messages/{conversation}", {"body": "Моё другое объявление: http://localhost/listings/1"}
    )
    for lang, warning, label in (
        ("kk", "Абай болыңыз", "басқа сайтқа сілтеме"),
        ("ru", "Осторожно", "ссылка на другой сайт"),
        ("en", "Careful", "link to another site"),
    ):
        page = buyer.client.get(
            f"/messages/{conversation}", headers={"Accept-Language": lang}
        ).get_data(as_text=True)
        assert warning in page and label in page, lang
        assert 'data-masked="external_link"' in page
        assert 'href="http://olx' not in page and 'href="olx' not in page
        # The scam address is only in the attribute the Show button reads.
        assert page.count("olx-kz.delivery-pay.com") == 1
        assert 'data-original="olx-kz.delivery-pay.com"' in page
        # The site's own link is plain text, with no warning.
        assert "Моё другое объявление: http://localhost/listings/1" in page
        assert 'data-risky="card_details"' in page
    # The inbox's preview of the latest message masks the same way.
    seller.post_form(f"/messages/{conversation}", {"body": SCAM})
    inbox = buyer.client.get("/messages", headers={"Accept-Language": "ru"}).get_data(as_text=True)
    assert "delivery-pay" not in inbox and "[⚠ ссылка на другой сайт]" in inbox


def test_messages_are_escaped(app: Flask, web: Any, roles: Roles) -> None:
    listing, _ = add_listing(app, roles.seller)
    buyer = web("buyer", roles)
    conversation = _conversation_id(_ask(buyer, listing, '<script>alert(1)</script> "x" & y'))
    page = web("seller", roles).client.get(f"/messages/{conversation}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_rate_limit_refuses_with_a_message(app: Flask, web: Any, roles: Roles) -> None:
    app.config.update(CHAT_MESSAGES_PER_MINUTE=2, CHAT_MESSAGES_PER_HOUR=3)
    listing, _ = add_listing(app, roles.seller)
    other, _ = add_listing(app, roles.seller, title="Lamp")
    buyer = web("buyer", roles)
    conversation = _conversation_id(_ask(buyer, listing, "one"))
    assert buyer.post_form(f"/messages/{conversation}", {"body": "two"}).status_code == 302
    refused = buyer.post_form(f"/messages/{conversation}", {"body": "three, kept"})
    assert refused.status_code == 429
    body = refused.get_data(as_text=True)
    assert "You sent 2 messages in the last minute" in body
    assert "three, kept" in body  # what was typed is still in the box
    assert _ask(buyer, other, "about the lamp").status_code == 429
    assert _count(app, ConversationMessage) == 2 and _count(app, Conversation) == 1
    # Others are counted apart.
    seller = web("seller", roles)
    assert seller.post_form(f"/messages/{conversation}", {"body": "ok"}).status_code == 302


def test_new_conversations_per_day_are_limited(app: Flask, web: Any, roles: Roles) -> None:
    app.config.update(CHAT_CONVERSATIONS_PER_DAY=1)
    first, _ = add_listing(app, roles.seller, title="A")
    second, _ = add_listing(app, roles.seller, title="B")
    buyer = web("buyer", roles)
    _conversation_id(_ask(buyer, first, "hi"))
    refused = _ask(buyer, second, "hi")
    assert refused.status_code == 429
    assert "You asked about 1 listing in the last 24 hours" in refused.get_data(as_text=True)


def test_lengths_are_checked(app: Flask, web: Any, roles: Roles) -> None:
    listing, _ = add_listing(app, roles.seller)
    buyer = web("buyer", roles)
    for body in ("", "   \n ", "x" * 1001):
        response = _ask(buyer, listing, body)
        assert response.status_code == 400, body[:10]
        assert "Write a message of 1 to 1,000 characters." in response.get_data(as_text=True)
    conversation = _conversation_id(_ask(buyer, listing, "x" * 1000))
    too_long = buyer.post_form(f"/messages/{conversation}", {"body": "y" * 1001})
    assert too_long.status_code == 400
    assert "Write a message of 1 to 1,000 characters." in too_long.get_data(as_text=True)
    # Control characters are dropped; a message of nothing else is empty.
    assert _ask(buyer, listing, "\x00\x07").status_code == 400
    assert buyer.post_form(f"/messages/{conversation}", {"body": "a\x00b"}).status_code == 302
    assert "ab" in buyer.client.get(f"/messages/{conversation}").get_data(as_text=True)
    # One 200-character word is a message like any other.
    word = "Ә" * 200
    assert buyer.post_form(f"/messages/{conversation}", {"body": word}).status_code == 302
    assert word in buyer.client.get(f"/messages/{conversation}").get_data(as_text=True)


def test_forms_without_a_csrf_token_are_refused(app: Flask, web: Any, roles: Roles) -> None:
    listing, _ = add_listing(app, roles.seller)
    buyer = web("buyer", roles)
    conversation = _conversation_id(_ask(buyer, listing, "hello"))
    before = db_state(app)
    for url in (f"/listings/{listing}/ask", f"/messages/{conversation}"):
        response = buyer.client.post(url, data={"body": "no token"})
        assert response.status_code == 400
        assert "The form expired" in response.get_data(as_text=True)
        forged = buyer.client.post(url, data={"body": "bad", "csrf_token": "forged"})
        assert forged.status_code == 400
    assert state_diff(before, db_state(app)) == []


def test_inbox_needs_sign_in_and_starts_empty(app: Flask, web: Any, roles: Roles) -> None:
    response = web(None).client.get("/messages")
    assert response.status_code == 302 and "/auth/signin" in response.headers["Location"]
    page = web("buyer", roles).client.get("/messages").get_data(as_text=True)
    assert "No conversations yet" in page and "data-unread-total" not in page
