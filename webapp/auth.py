"""Sign-In with Ethereum (EIP-4361) and, on a local chain, the dev wallet.

Sign-in: the browser asks ``/auth/message`` for a message to sign (the server writes it with
a fresh single-use nonce, its own domain and the chain id), the wallet signs it with
``personal_sign``, and ``/auth/verify`` checks message, nonce, domain, chain and signature
before binding the session to the address.

Dev wallet: on a local chain the node holds unlocked demo accounts. ``/dev-wallet/rpc``
forwards the few signing calls a wallet makes to the node, so the same browser code runs
without an extension. It refuses to work on any other chain.
"""

from __future__ import annotations

import functools
import secrets
import string
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from eth_utils import is_address, to_checksum_address
from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

with warnings.catch_warnings():
    # siwe 4.4's ABNF grammar redefines RFC 5234 core rules; abnf 2.8 warns about it on import.
    warnings.simplefilter("ignore")
    from siwe import SiweMessage
    from siwe.siwe import VerificationError
from sqlalchemy import select, update
from werkzeug.wrappers import Response

from escrow.db.models import LoginNonce, User
from escrow.errors import ChainUnavailable
from webapp import db
from webapp.chain import gateway
from webapp.extensions import limiter

bp = Blueprint("auth", __name__)

F = TypeVar("F", bound=Callable[..., Any])
NONCE_ALPHABET = string.ascii_letters + string.digits
DEV_WALLET_METHODS = {"personal_sign", "eth_sendTransaction", "eth_signTypedData_v4"}


class SignInError(Exception):
    """A sign-in attempt that must be refused, with the reason shown to the user."""


# ------------------------------------------------------------------ session helpers


def current_address() -> str | None:
    """The signed-in wallet address (lower-case), or None."""
    address = session.get("address")
    return str(address) if address else None


def current_user() -> User | None:
    if "current_user" not in g:
        address = current_address()
        g.current_user = (
            db.session().scalar(select(User).where(User.address == address)) if address else None
        )
    return cast(User | None, g.current_user)


def wants_json() -> bool:
    return request.is_json or request.accept_mimetypes.best == "application/json"


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_address() is None:
            if wants_json():
                return jsonify(error="Sign in with your wallet first."), 401
            return redirect(url_for("auth.signin", next=request.full_path))
        return view(*args, **kwargs)

    return cast(F, wrapped)


# ------------------------------------------------------------------ pages and API


@bp.get("/auth/signin")
def signin() -> str:
    return render_template("auth/signin.html", next_url=_safe_next(request.args.get("next")))


@bp.get("/auth/message")
@limiter.limit(lambda: current_app.config["SIGNIN_RATE_LIMIT"])
def message() -> Response | tuple[Response, int]:
    """A fresh EIP-4361 message for ``address`` with a single-use nonce."""
    address = request.args.get("address", "")
    if not is_address(address):
        return jsonify(error="That is not a wallet address."), 400
    try:
        chain_id = gateway().chain().chain_id
    except ChainUnavailable as exc:
        return jsonify(error=f"The chain is not reachable right now: {exc}"), 503
    nonce = "".join(secrets.choice(NONCE_ALPHABET) for _ in range(20))
    now = datetime.now(UTC)
    ttl = timedelta(seconds=current_app.config["SIWE_NONCE_TTL_SECONDS"])
    db_session = db.session()
    db_session.add(
        LoginNonce(nonce=nonce, address=address.lower(), created_at=now, expires_at=now + ttl)
    )
    db_session.commit()
    text = SiweMessage(
        domain=request.host,
        address=to_checksum_address(address),
        statement=current_app.config["SIWE_STATEMENT"],
        uri=request.host_url.rstrip("/"),
        version="1",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        expiration_time=(now + ttl).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    ).prepare_message()
    return jsonify(message=text, nonce=nonce)


@bp.post("/auth/verify")
@limiter.limit(lambda: current_app.config["SIGNIN_RATE_LIMIT"])
def verify() -> Response | tuple[Response, int]:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return jsonify(error="Send the signed message as JSON."), 400
    text, signature = payload.get("message"), payload.get("signature")
    if not isinstance(text, str) or not isinstance(signature, str) or len(text) > 4000:
        return jsonify(error="Both the message and its signature are needed."), 400
    try:
        address = _check_signin(text, signature)
    except SignInError as exc:
        return jsonify(error=str(exc)), 400
    except ChainUnavailable as exc:
        return jsonify(error=f"The chain is not reachable right now: {exc}"), 503
    db_session = db.session()
    if db_session.scalar(select(User).where(User.address == address)) is None:
        db_session.add(User(address=address))
    db_session.commit()
    session.clear()
    session.permanent = True
    session["address"] = address
    return jsonify(address=address, next=_safe_next(payload.get("next")))


@bp.post("/auth/logout")
def logout() -> Response:
    session.clear()
    if wants_json():
        return jsonify(ok=True)
    return redirect(url_for("listings.index"))


def _check_signin(text: str, signature: str) -> str:
    try:
        parsed = SiweMessage.from_message(text)
    except Exception as exc:  # the parser raises several types for malformed text
        raise SignInError("The sign-in message is malformed.") from exc
    if parsed.domain != request.host:
        raise SignInError(f"The message is for {parsed.domain}, not {request.host}.")
    if parsed.uri.rstrip("/") != request.host_url.rstrip("/"):
        raise SignInError("The message was written for another site address.")
    if int(parsed.chain_id) != gateway().chain().chain_id:
        raise SignInError("The message is for another chain.")
    db_session = db.session()
    row = db_session.scalar(select(LoginNonce).where(LoginNonce.nonce == parsed.nonce))
    now = datetime.now(UTC)
    if row is None:
        raise SignInError("Unknown sign-in request; ask for a new message.")
    if row.used_at is not None:
        raise SignInError("This sign-in message was already used; ask for a new one.")
    if _aware(row.expires_at) < now:
        raise SignInError("This sign-in message has expired; ask for a new one.")
    if row.address != parsed.address.lower():
        raise SignInError("The message was issued for another address.")
    # Every line must be the one this server wrote: nothing added, nothing changed.
    if (
        (parsed.statement or "") != current_app.config["SIWE_STATEMENT"]
        or parsed.resources
        or parsed.request_id
        or parsed.not_before
    ):
        raise SignInError("The sign-in message was changed; ask for a new one.")
    try:
        parsed.verify(signature, domain=request.host, nonce=row.nonce)
    except VerificationError as exc:
        raise SignInError(f"The signature does not check out ({exc.__class__.__name__}).") from exc
    except Exception as exc:  # malformed signature hex and the like
        raise SignInError("The signature is malformed.") from exc
    # Single use even under concurrent requests: only one UPDATE can claim the nonce.
    claimed = db_session.execute(
        update(LoginNonce)
        .where(LoginNonce.id == row.id, LoginNonce.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        db_session.rollback()
        raise SignInError("This sign-in message was already used; ask for a new one.")
    return parsed.address.lower()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _safe_next(value: Any) -> str:
    """Only same-site relative paths, so sign-in cannot redirect to another site."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//"):
        return value
    return url_for("listings.index")


# ------------------------------------------------------------------ dev wallet


def dev_wallet_enabled() -> bool:
    return bool(current_app.config["DEV_WALLET"]) and gateway().is_dev_chain()


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
    )


@bp.post("/dev-wallet/rpc")
def dev_rpc() -> Response | tuple[Response, int]:
    if not dev_wallet_enabled():
        abort(404)
    payload = request.get_json(silent=True)
    method, params = _dev_call(payload)
    if method is None:
        return jsonify(error="The dev wallet does not do that."), 400
    accounts = {a.lower() for a in gateway().chain().accounts}
    signer = _signer(method, params)
    if signer is None or signer.lower() not in accounts:
        return jsonify(error="That account is not one of the dev wallet's accounts."), 400
    try:
        result = gateway().chain().rpc(method, params)
    except ChainUnavailable as exc:
        return jsonify(error=str(exc)), 502
    except Exception as exc:  # the node refused the call's contents (bad hex, a revert...)
        return jsonify(error=f"The node refused the request: {exc}"[:300]), 400
    return jsonify(result=result)


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
