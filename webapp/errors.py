"""Friendly error pages and JSON errors: no stack trace ever reaches a user."""

from __future__ import annotations

import logging
from typing import Any

import requests
import sqlalchemy.exc
from flask import Flask, g, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from escrow.errors import ChainUnavailable, ContractRevert, DeploymentError, EscrowError
from webapp import db
from webapp.urls import redact

log = logging.getLogger(__name__)

MESSAGES = {
    400: _l("The request was not understood."),
    401: _l("Sign in with your wallet first."),
    403: _l("You are not allowed to see or do this."),
    404: _l("There is nothing here."),
    405: _l("That action is not available here."),
    413: _l("The upload is too large."),
    429: _l("Too many attempts; wait a minute and try again."),
    500: _l("Something went wrong on our side. Nothing was changed."),
    503: _l("The blockchain node is not reachable right now. Try again in a moment."),
}
DATABASE_BUSY = _l(
    "The database is busy or not reachable right now; nothing was changed. Try again in a moment."
)


def _wants_json() -> bool:
    return (
        request.is_json
        or request.path.startswith(("/api/", "/dev-wallet/"))
        or request.accept_mimetypes.best == "application/json"
    )


def render_error(status: int, message: Any = None) -> tuple[Any, int]:
    """The error page (or JSON error) for ``status``; ``message`` is a text already translated
    or a lazy one (``_l``), the status's own message when it is empty."""
    text = str(message or MESSAGES.get(status, MESSAGES[500]))
    if _wants_json():
        return jsonify(error=text), status
    return render_template("errors/error.html", status=status, message=text), status


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> tuple[Any, int]:
        return render_error(
            400, _("The form expired or came from another site. Reload the page and try again.")
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Any, int]:
        status = exc.code or 500
        description = (
            exc.description
            if status in (400, 403, 404)
            and exc.description
            and not exc.description.startswith(
                ("The browser", "The server", "The requested URL", "You don't")
            )
            else None
        )
        return render_error(status, description)

    @app.errorhandler(ChainUnavailable)
    def chain_down(exc: ChainUnavailable) -> tuple[Any, int]:
        log.warning("chain unavailable: %s", redact(exc))
        return render_error(503)

    @app.errorhandler(requests.RequestException)
    def node_unreachable(exc: requests.RequestException) -> tuple[Any, int]:
        # Raised by web3's HTTP provider when a node that was up stops answering.
        log.warning("chain node unreachable: %s", redact(exc))
        return render_error(503)

    @app.errorhandler(sqlalchemy.exc.OperationalError)
    @app.errorhandler(sqlalchemy.exc.InterfaceError)
    def database_unavailable(exc: Exception) -> tuple[Any, int]:
        log.warning("database unavailable: %s", str(exc)[:200])
        g.database_down = True
        try:
            db.session().rollback()
        except Exception:  # the connection may be gone; the page must still render
            log.debug("rollback after a database error failed", exc_info=True)
        return render_error(503, DATABASE_BUSY)

    @app.errorhandler(DeploymentError)
    def not_deployed(exc: DeploymentError) -> tuple[Any, int]:
        return render_error(503, _("The escrow contract is not deployed on this chain yet."))

    @app.errorhandler(ContractRevert)
    def contract_refused(exc: ContractRevert) -> tuple[Any, int]:
        return render_error(409, describe_revert(exc))

    @app.errorhandler(EscrowError)
    def escrow_error(exc: EscrowError) -> tuple[Any, int]:
        log.warning("escrow error: %s", redact(exc))
        return render_error(400, redact(exc))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Any, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(500)


REVERT_TEXT = {
    "NotBuyer": _l("Only the buyer can do this."),
    "NotSeller": _l("Only the seller can do this."),
    "NotArbitrator": _l("Only the trade's arbitrator can do this."),
    "NotParty": _l("Only the buyer or the seller can do this."),
    "NotPartyOrArbitrator": _l("Only the buyer, the seller or the arbitrator can do this."),
    "InvalidStatus": _l("The trade has moved on; reload the page to see its current state."),
    "DeadlinePassed": _l("The time for this action is over."),
    "DeadlineNotReached": _l("It is too early for this; wait for the deadline."),
    "NoMatchingProposal": _l("The other party has not proposed that split."),
    "LaneBusy": _l("Your previous purchase is still being confirmed; try again in a moment."),
    "WrongPayment": _l("The amount sent does not match the price."),
    "FundingPaused": _l("New purchases are paused by the platform for now."),
    "TokenNotAllowed": _l("This token is not accepted."),
    "ArbitratorNotRegistered": _l("That arbitrator is not available."),
    "ERC20InsufficientBalance": _l("Your token balance is too low."),
    "ERC20InsufficientAllowance": _l("The escrow is not allowed to take that many tokens."),
    "PlatformFeeAboveLimit": _l(
        "The platform fee went up after you reviewed this purchase, so the escrow refused the "
        "payment: nothing was paid. Buy again to review the new fee."
    ),
    "InspectionPeriodTooShort": _l("The inspection period must be at least one day."),
    "DeliveryWindowTooLong": _l("The delivery time is longer than the escrow allows."),
    "InspectionAlreadyStarted": _l(
        "The inspection has already started (the item was marked received, or the delivery "
        "time is over)."
    ),
    "ExtensionAlreadyRequested": _l("You have already asked for more time in this trade."),
    "InvalidExtension": _l("You can ask for 1 to 7 more days."),
    "NoExtensionRequested": _l("The buyer has not asked for more time, or it was already given."),
    "NoProposalToCancel": _l("You have no open split offer to withdraw."),
    "EvidenceUriTooLong": _l("The evidence link is too long."),
}


def describe_revert(exc: ContractRevert) -> str:
    text = REVERT_TEXT.get(exc.error_name)
    if text is None:
        return _("The escrow contract refused: %(reason)s", reason=str(exc))
    return str(text)
