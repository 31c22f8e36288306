"""Sign-In with Ethereum (EIP-4361) and, on a local chain, the dev wallet.

Sign-in: the browser asks ``/auth/message`` for a message to sign. The server writes it for
its configured address (``SITE_URL``, never the request's Host header) with a fresh
single-use nonce and the chain id, and keeps the message's SHA-256 in this browser's signed
session. ``/auth/verify`` takes only that exact text back: it compares bytes first (junk costs
nothing), then checks the nonce and the signature before binding the session to the address.
The session names the sign-in it came from (the nonce's row): logging out deletes that row,
which ends the session for every copy of the cookie.

Dev wallet: on a local chain the node holds unlocked demo accounts. ``/dev-wallet/rpc``
forwards the few signing calls a wallet makes to the node, so the same browser code runs
without an extension. It is off unless the local stack turns it on, refuses every other chain,
answers only this computer (a loopback client naming one of the site's own host names), and
signs only as the signed-in account, or the sign-in message this browser was given.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import re
import secrets
import string
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import requests
from blinker import Namespace
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_address, to_checksum_address
from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

with warnings.catch_warnings():
    # siwe 4.4's ABNF grammar redefines RFC 5234 core rules; abnf 2.8 warns about it on import.
    warnings.simplefilter("ignore")
    from siwe import SiweMessage
from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.orm import Session
from werkzeug.exceptions import SecurityError
from werkzeug.wrappers import Response

from escrow.db.models import LoginNonce, User
from escrow.errors import ChainUnavailable
from webapp import db
from webapp.chain import gateway
from webapp.errors import MESSAGES
from webapp.extensions import limiter
from webapp.urls import redact, safe_next

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
NONCE_ALPHABET = string.ascii_letters + string.digits
NONCE_LINE = re.compile(r"^Nonce: ([A-Za-z0-9]{8,64})$", re.MULTILINE)
MAX_SIGNATURE_CHARS = 200  # 65 bytes as hex is 132
#: Session key: [nonce, SHA-256 of the message] of the last sign-in messages this browser got.
PENDING = "siwe_pending"
MAX_PENDING = 3
CHAIN_DOWN = MESSAGES[503]
DEV_WALLET_METHODS = {"personal_sign", "eth_sendTransaction", "eth_signTypedData_v4"}
LOOPBACK_NAMES = ("127.0.0.1", "localhost")

#: Sent with ``address=`` when a signed-in session signs out, so other modules can end what
#: it held (checkout holds).
signed_out = Namespace().signal("signed-out")


class SignInError(Exception):
    """A sign-in attempt that must be refused, with the reason shown to the user."""


@bp.before_app_request
def refuse_unknown_hosts() -> Response | None:
    """A request naming a host outside ``TRUSTED_HOSTS`` (a phishing site's or a DNS-rebound
    name) gets a plain 400: no page of this site is served under another name."""
    if isinstance(request.routing_exception, SecurityError):
        return Response(
            _("This site is not served under that host name.") + "\n", 400, mimetype="text/plain"
        )
    return None


# ------------------------------------------------------------------ session helpers


def current_address() -> str | None:
    """The signed-in wallet address (lower-case), or None.

    A session counts while the sign-in it names is on record and younger than the session
    lifetime: one primary-key read per request, kept in ``g``.
    """
    if "signed_in_address" not in g:
        g.signed_in_address = _session_address()
    return cast(str | None, g.signed_in_address)


#: The sign-in a session names, with the account of its address (None before its first
#: action): one statement for the session check and the header's name.
SIGNED_IN = (
    select(LoginNonce.used_at, LoginNonce.address, User)
    .outerjoin(User, User.address == LoginNonce.address)
    .where(LoginNonce.id == bindparam("login"))
)


def _session_address() -> str | None:
    address, login = session.get("address"), session.get("login")
    if not isinstance(address, str) or not isinstance(login, int) or g.get("database_down"):
        return None
    row = db.session().execute(SIGNED_IN, {"login": login}).one_or_none()
    if row is None or row.used_at is None or row.address != address:
        return None
    if _aware(row.used_at) + current_app.permanent_session_lifetime < datetime.now(UTC):
        return None
    g.current_user = row.User
    return address


def current_user() -> User | None:
    if "current_user" not in g:
        address = current_address()
        if "current_user" not in g:  # the session check loads the account with the sign-in
            g.current_user = (
                db.session().scalar(select(User).where(User.address == address))
                if address
                else None
            )
    return cast(User | None, g.current_user)


def wants_json() -> bool:
    return request.is_json or request.accept_mimetypes.best == "application/json"


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_address() is None:
            if wants_json():
                return jsonify(error=str(MESSAGES[401])), 401
            return redirect(url_for("auth.signin", next=request.full_path))
        return view(*args, **kwargs)

    return cast(F, wrapped)


def site_url() -> str:
    """The canonical origin sign-in messages are written for (``SITE_URL``)."""
    return str(current_app.config["SITE_URL"]).rstrip("/")


def site_domain() -> str:
    """The EIP-4361 domain: the site's host and port."""
    return urlsplit(site_url()).netloc


# ------------------------------------------------------------------ pages and API


@bp.get("/auth/signin")
def signin() -> Response:
    """The sign-in page; asked for JSON, who this browser is signed in as (``address`` or
    null): a page loaded before a sign-out or an account switch in another tab asks when a
    request fails, to say so."""
    if request.accept_mimetypes.best == "application/json":
        response = jsonify(address=current_address())
        response.headers["Cache-Control"] = "no-store"
    else:
        response = make_response(
            render_template(
                "auth/signin.html",
                next_url=safe_next(request.args.get("next"), url_for("listings.index")),
            )
        )
    response.vary.add("Accept")  # one address, two answers
    return response


@bp.get("/auth/message")
@limiter.limit(lambda: current_app.config["SIGNIN_RATE_LIMIT"])
def message() -> Response | tuple[Response, int]:
    """A fresh EIP-4361 message for ``address`` with a single-use nonce."""
    address = request.args.get("address", "")
    if not is_address(address):
        return jsonify(error=_("That is not a wallet address.")), 400
    try:
        chain_id = gateway().chain().chain_id
    except ChainUnavailable as exc:
        log.warning("sign-in message: chain unavailable: %s", redact(exc))
        return jsonify(error=str(CHAIN_DOWN)), 503
    nonce = "".join(secrets.choice(NONCE_ALPHABET) for _ in range(20))
    now = datetime.now(UTC)
    ttl = timedelta(seconds=current_app.config["SIWE_NONCE_TTL_SECONDS"])
    db_session = db.session()
    purge_login_nonces(db_session, now)
    db_session.add(
        LoginNonce(nonce=nonce, address=address.lower(), created_at=now, expires_at=now + ttl)
    )
    db_session.commit()
    text = SiweMessage(
        domain=site_domain(),
        address=to_checksum_address(address),
        statement=current_app.config["SIWE_STATEMENT"],
        uri=site_url(),
        version="1",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        expiration_time=(now + ttl).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    ).prepare_message()
    pending = [entry for entry in _pending() if entry[0] != nonce]
    session[PENDING] = [*pending, [nonce, _digest(text)]][-MAX_PENDING:]
    return jsonify(message=text, nonce=nonce)


@bp.post("/auth/verify")
@limiter.limit(lambda: current_app.config["SIGNIN_RATE_LIMIT"])
def verify() -> Response | tuple[Response, int]:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return jsonify(error=_("Send the signed message as JSON.")), 400
    text, signature = payload.get("message"), payload.get("signature")
    if not isinstance(text, str) or not isinstance(signature, str):
        return jsonify(error=_("Both the message and its signature are needed.")), 400
    if len(text) > current_app.config["SIWE_MAX_MESSAGE_CHARS"]:
        return jsonify(error=_("The sign-in message is too long; ask for a new one.")), 400
    if len(signature) > MAX_SIGNATURE_CHARS:
        return jsonify(error=_("The signature is malformed.")), 400
    try:
        address, login = _check_signin(text, signature)
    except SignInError as exc:
        return jsonify(error=str(exc)), 400
    except ChainUnavailable as exc:
        log.warning("sign-in: chain unavailable: %s", redact(exc))
        return jsonify(error=str(CHAIN_DOWN)), 503
    db_session = db.session()
    if db_session.scalar(select(User).where(User.address == address)) is None:
        db_session.add(User(address=address))
    previous = session.get("login")
    previous_address = session.get("address")
    if isinstance(previous, int) and previous != login:
        # Signing in again (as another account) ends the sign-in this browser had.
        db_session.execute(delete(LoginNonce).where(LoginNonce.id == previous))
    db_session.commit()
    if isinstance(previous_address, str) and previous_address != address:
        # As at sign-out: what the previous account held in this browser is let go.
        signed_out.send(current_app._get_current_object(), address=previous_address)  # type: ignore[attr-defined]
    _clear_session_keeping_language()
    session.permanent = True
    session["address"] = address
    session["login"] = login
    g.pop("signed_in_address", None)
    g.pop("current_user", None)
    return jsonify(address=address, next=safe_next(payload.get("next"), url_for("listings.index")))


@bp.post("/auth/logout")
def logout() -> Response:
    address, login = current_address(), session.get("login")
    if isinstance(login, int):
        db_session = db.session()
        db_session.execute(delete(LoginNonce).where(LoginNonce.id == login))
        db_session.commit()
    _clear_session_keeping_language()
    g.pop("signed_in_address", None)
    g.pop("current_user", None)
    if address:
        signed_out.send(current_app._get_current_object(), address=address)  # type: ignore[attr-defined]
    if wants_json():
        return jsonify(ok=True)
    return redirect(url_for("listings.index"))


def purge_login_nonces(db_session: Session, now: datetime) -> int:
    """Deletes sign-in nonces nobody can use any more: unused and expired, or used by a
    session that is older than the session lifetime. Returns how many it deleted."""
    too_old = now - current_app.permanent_session_lifetime
    result = db_session.execute(
        delete(LoginNonce).where(
            LoginNonce.expires_at < now,
            or_(LoginNonce.used_at.is_(None), LoginNonce.expires_at < too_old),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _check_signin(text: str, signature: str) -> tuple[str, int]:
    """(address, id of the nonce's row) for a message this server wrote for this browser and
    signed by its address; the nonce is claimed. Cheap checks first: the text is compared
    byte for byte with what was issued before anything parses it."""
    found = NONCE_LINE.search(text)
    if found is None:
        raise SignInError(_("The sign-in message is malformed."))
    db_session = db.session()
    row = db_session.scalar(select(LoginNonce).where(LoginNonce.nonce == found.group(1)))
    now = datetime.now(UTC)
    if row is None:
        raise SignInError(_("Unknown sign-in request; ask for a new message."))
    if row.used_at is not None:
        raise SignInError(_("This sign-in message was already used; ask for a new one."))
    if _aware(row.expires_at) < now:
        raise SignInError(_("This sign-in message has expired; ask for a new one."))
    if [row.nonce, _digest(text)] not in _pending():
        raise SignInError(_what_changed(text, row.nonce))
    try:
        signer = Account.recover_message(encode_defunct(text=text), signature=signature)
    except Exception as exc:  # malformed signature hex, wrong length, bad recovery id...
        raise SignInError(_("The signature is malformed.")) from exc
    if signer.lower() != row.address:
        raise SignInError(_("The signature does not check out: another key signed the message."))
    # Single use even under concurrent requests: only one UPDATE can claim the nonce.
    claimed = db_session.execute(
        update(LoginNonce)
        .where(LoginNonce.id == row.id, LoginNonce.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        db_session.rollback()
        raise SignInError(_("This sign-in message was already used; ask for a new one."))
    return row.address, row.id


def _what_changed(text: str, nonce: str) -> str:
    """Why a message is not the one issued, from a few string comparisons (no parsing)."""
    if nonce not in {entry[0] for entry in _pending()}:
        return _("This sign-in message was given to another browser; ask for a new one.")
    first, _sep, _rest = text.partition("\n")
    domain = first.removesuffix(" wants you to sign in with your Ethereum account:")
    if domain != first and domain != site_domain():
        return _(
            "The message is for %(domain)s, not %(site)s.", domain=domain[:100], site=site_domain()
        )
    fields = dict(
        (key, value)
        for key, sep, value in (line.partition(": ") for line in text.split("\n"))
        if sep
    )
    if fields.get("URI", "").rstrip("/") != site_url():
        return _("The message was written for another site address.")
    if fields.get("Chain ID") != str(gateway().chain().chain_id):
        return _("The message is for another chain.")
    return _("The sign-in message was changed; ask for a new one.")


def _pending() -> list[list[str]]:
    """[nonce, SHA-256] of the sign-in messages this browser was given, oldest first."""
    value = session.get(PENDING)
    if not isinstance(value, list):
        return []
    return [
        [str(entry[0]), str(entry[1])]
        for entry in value
        if isinstance(entry, list) and len(entry) == 2
    ]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ------------------------------------------------------------------ dev wallet


def dev_wallet_enabled() -> bool:
    """On when the settings turn it on (the local stack does), the chain is a local one and
    the request comes from this computer under one of the site's own host names."""
    return (
        bool(current_app.config["DEV_WALLET"])
        and _from_this_computer()
        and gateway().is_dev_chain()
    )


def _from_this_computer() -> bool:
    """A loopback client naming an allowed host: a web page elsewhere cannot reach the dev
    wallet, not even through DNS rebinding (its Host header names the attacker's domain)."""
    try:
        client = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    mapped = getattr(client, "ipv4_mapped", None)
    if not (client.is_loopback or (mapped is not None and mapped.is_loopback)):
        return False
    host = (urlsplit("//" + request.host).hostname or "").lower()
    allowed = current_app.config.get("TRUSTED_HOSTS") or LOOPBACK_NAMES
    return host in {name.lower() for name in allowed}


@bp.get("/dev-wallet/accounts")
def dev_accounts() -> Response | tuple[Response, int]:
    if not dev_wallet_enabled():
        abort(404)
    accounts = [a.lower() for a in gateway().chain().accounts]
    rows = (
        db.session()
        .execute(select(User.address, User.display_name).where(User.address.in_(accounts)))
        .all()
    )
    names = {address: name for address, name in rows}
    return jsonify(
        accounts=[{"address": a, "name": names.get(a)} for a in accounts],
        chainId=gateway().chain().chain_id,
        # The header's account list shows who is signed in (any wallet), or nobody.
        signedIn=current_address(),
    )


@bp.post("/dev-wallet/rpc")
def dev_rpc() -> Response | tuple[Response, int]:
    if not dev_wallet_enabled():
        abort(404)
    payload = request.get_json(silent=True)
    method, params = _dev_call(payload)
    if method is None:
        return jsonify(error=_("The dev wallet does not do that.")), 400
    accounts = {a.lower() for a in gateway().chain().accounts}
    signer = _signer(method, params)
    if signer is None or signer.lower() not in accounts:
        return jsonify(error=_("That account is not one of the dev wallet's accounts.")), 400
    if not _may_sign(method, params, signer.lower()):
        return jsonify(
            error=_(
                "The dev wallet signs only as the account you are signed in with "
                "(before signing in: only the sign-in message this page asked for)."
            )
        ), 403
    try:
        result = gateway().chain().rpc(method, params)
    except ChainUnavailable as exc:  # the node answered with an error (a revert, bad nonce...)
        log.warning("dev wallet %s refused: %s", method, redact(exc))
        return jsonify(error=redact(exc)[:300]), 502
    except (requests.RequestException, OSError) as exc:  # the node is gone
        log.warning("dev wallet %s: chain unavailable: %s", method, redact(exc))
        return jsonify(error=str(CHAIN_DOWN)), 503
    except Exception as exc:  # the node refused the call's contents (bad hex, a revert...)
        text = _("The node refused the request: %(error)s", error=str(exc))
        return jsonify(error=redact(text)[:300]), 400
    return jsonify(result=result)


def _may_sign(method: str, params: list[Any], signer: str) -> bool:
    """The signed-in account signs and sends as itself only; anyone (on this computer) may
    sign a sign-in message this browser was given, as the address it was written for."""
    if signer == current_address():
        return True
    if method != "personal_sign":
        return False
    text = _sign_text(params[0])
    return text is not None and _pending_signin_address(text) == signer


def _sign_text(value: Any) -> str | None:
    """The text of a ``personal_sign`` request (hex, as wallets send it, or plain)."""
    if (
        not isinstance(value, str)
        or len(value) > 2 + 8 * current_app.config["SIWE_MAX_MESSAGE_CHARS"]
    ):
        return None
    if value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:]).decode("utf-8")
        except ValueError:  # not hex, or not UTF-8
            return None
    return value


def _pending_signin_address(text: str) -> str | None:
    """The address a still-usable sign-in message given to this browser was written for."""
    digest = _digest(text)
    nonces = [nonce for nonce, pending in _pending() if pending == digest]
    if not nonces:
        return None
    row = db.session().scalar(select(LoginNonce).where(LoginNonce.nonce == nonces[0]))
    if row is None or row.used_at is not None or _aware(row.expires_at) < datetime.now(UTC):
        return None
    return row.address


def _dev_call(payload: Any) -> tuple[str | None, list[Any]]:
    """(method, params) of a well-formed wallet call, or (None, []) when it is not one."""
    if not isinstance(payload, dict):
        return None, []
    method, params = payload.get("method"), payload.get("params")
    if method not in DEV_WALLET_METHODS or not isinstance(params, list):
        return None, []
    needed = {"eth_sendTransaction": 1, "personal_sign": 2, "eth_signTypedData_v4": 2}[method]
    if len(params) < needed:
        return None, []
    return str(method), params


def _signer(method: str, params: list[Any]) -> str | None:
    if method == "eth_sendTransaction":
        tx = params[0]
        signer = tx.get("from") if isinstance(tx, dict) else None
    else:
        signer = params[1] if method == "personal_sign" else params[0]
    return signer if isinstance(signer, str) else None


def _clear_session_keeping_language() -> None:
    """Signing in or out starts a new session; the language the visitor chose stays."""
    lang = session.get("lang")
    session.clear()
    if lang is not None:
        session["lang"] = lang
