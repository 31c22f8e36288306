"""``/api/tx/<hash>``: whether a transaction is mined and whether the indexer has seen it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify
from flask_babel import gettext as _
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound

from escrow.indexer import scanner
from webapp import checkout, db
from webapp.chain import gateway

bp = Blueprint("tx", __name__)


@bp.get("/api/tx/<tx_hash>")
def tx_status(tx_hash: str) -> tuple[Any, int]:
    if not checkout.TX_HASH.match(tx_hash):
        abort(404)
    chain = gateway().chain()
    try:
        receipt = chain.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
    except TransactionNotFound:
        return jsonify(status="pending"), 200
    block = int(receipt["blockNumber"])
    if receipt["status"] != 1:
        checkout.transaction_failed(db.session(), tx_hash.lower())
        return jsonify(
            status="failed",
            block=block,
            error=_("The transaction was reverted on chain; nothing changed."),
        ), 200
    indexed = indexed_through(chain.chain_id) >= block
    return jsonify(status="mined", block=block, indexed=indexed), 200


def indexed_through(chain_id: int) -> int:
    """The last block the indexer has fully applied for every escrow the market follows (-1
    until each has a checkpoint): a transaction may go to an older escrow's trade."""
    last = scanner.indexed_through(db.session(), chain_id, gateway().escrow_addresses())
    return -1 if last is None else last
