"""Audit an escrow from the chain alone: replay its events and check its books.

For every escrow contract (the deployment's current one and the older ones it keeps), the
audit reads the contract's logs from its deployment block to the chain's head, decodes them
with that contract version's ABI and replays them:

* open trades: ``TradeFunded`` adds the amount, a final event (``TradeReleased``,
  ``TradeRefunded``, ``TradeSettled``, ``DisputeResolved``) removes it; the parts paid out by a
  final event must add up to the trade's amount;
* credits: ``PaymentDeferred`` minus ``Withdrawn``, per token and payee;
* platform fees: the fee of ``TradeReleased``, ``TradeSettled`` and ``DisputeResolved`` minus
  ``PlatformFeesWithdrawn``, per token.

Then, per token (ETH and every ERC-20 the events name), the contract's balance must equal
open trades + credits + fees. More is a *surplus* (tokens sent to the contract directly: they
belong to nobody and break nothing); less is a *shortfall*, a failure. Credits and fees are
also compared with the contract's own ``credits(token, payee)`` and
``accruedPlatformFees(token)``, and every open trade's state is read from the contract
(``tradeView`` for version 2, ``tradeState`` for version 1) with its next deadline and the
timeout call that ends it. Every read of state is made at the block the log scan ended in, so
the books are compared at one instant even while new blocks arrive.

Logs are read in block chunks. A log whose topic the ABI does not know, or that does not
decode, is counted and reported; it never stops the audit. A node that no longer has the logs
(EIP-4444 history expiry, pruned receipts) raises :class:`HistoryUnavailable` naming the first
block it could not read: a partial history would make the books look wrong, or worse, right.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes

from escrow.chain import Chain
from escrow.client import (
    CONTRACT_VERSIONS,
    ETH,
    EscrowClient,
    Status,
    Terms,
)
from escrow.compiler import load_artifact
from escrow.errors import EscrowError
from escrow.events import EventDecoder

#: Blocks per eth_getLogs request; halved (down to one block) when a node refuses a range as
#: too large or too many results.
DEFAULT_CHUNK_BLOCKS = 2_000
ZERO_ADDRESS = to_checksum_address("0x" + "00" * 20)
#: JSON-RPC error code of EIP-4444 ("pruned history unavailable": geth, reth, Nethermind).
PRUNED_HISTORY_CODE = 4444
_PRUNED_WORDS = (
    "prune",
    "history",
    "missing",
    "not available",
    "earliest",
    "failed to get logs for block",
)
_TOO_LARGE_WORDS = (
    "too large",
    "too many",
    "limit exceeded",
    "exceed",
    "range is too",
    "more than",
    "response size",
    "timeout",
    "timed out",
)

_BALANCE_OF_ABI = [
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "account", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "decimals",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    },
    {
        "type": "function",
        "name": "symbol",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    },
]

_FINAL_EVENTS = ("TradeReleased", "TradeRefunded", "TradeSettled", "DisputeResolved")


class HistoryUnavailable(EscrowError):
    """The node cannot give the logs the audit needs (pruned or missing history)."""

    def __init__(self, address: str, block: int, detail: str) -> None:
        self.address = address
        self.block = block
        self.detail = detail
        super().__init__(
            f"the node no longer has the logs of escrow {address} from block {block:,} "
            f"({detail}); audit against a node that keeps the full history (an archive node)"
        )


@dataclass(frozen=True)
class EscrowTarget:
    """One escrow contract to audit: where, which ABI, and from which block."""

    address: str
    version: int
    from_block: int
    #: True when ``from_block`` is the block the contract was deployed in: the constructor's
    #: OwnershipTransferred log must then be there, or the node's history has a hole.
    is_deployment_block: bool = False


# ------------------------------------------------------------------ results


@dataclass
class TradeRecord:
    """A trade as its events tell it."""

    trade_id: int
    terms: Terms
    listing_ref: bytes
    funded_block: int
    funded_tx: str
    open: bool = True
    shipped: bool = False
    shipped_before_dispute: bool | None = None
    disputed_by: str | None = None
    outcome: str | None = None


@dataclass
class OpenTrade:
    """An open trade with what the contract says about it now."""

    trade_id: int
    terms: Terms
    listing_ref: bytes
    funded_block: int
    status: str
    deadline: int | None
    deadline_passed: bool
    timeout_call: str | None
    timeout_command: str | None
    timeout_outcome: str | None
    inspection_started: bool | None = None
    extension_days: int = 0
    extension_granted: bool = False
    split_proposal: dict[str, Any] | None = None
    disputed_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        t = self.terms
        return {
            "trade_id": f"{self.trade_id:#x}",
            "funded_block": self.funded_block,
            "status": self.status,
            "terms": {
                "buyer": t.buyer,
                "seller": t.seller,
                "arbitrator": t.arbitrator,
                "token": t.token,
                "amount": str(t.amount),
                "ship_by": t.ship_by,
                "ship_by_utc": utc(t.ship_by),
                "inspection_period_seconds": t.inspection_period,
                "delivery_window_seconds": t.delivery_window,
                "arbitrator_fee_bps": t.arbitrator_fee_bps,
                "platform_fee_bps": t.platform_fee_bps,
            },
            "listing_ref": "0x" + self.listing_ref.hex(),
            "next_deadline": self.deadline,
            "next_deadline_utc": utc(self.deadline) if self.deadline else None,
            "deadline_passed": self.deadline_passed,
            "timeout_call": self.timeout_call,
            "timeout_command": self.timeout_command,
            "timeout_outcome": self.timeout_outcome,
            "inspection_started": self.inspection_started,
            "extension_days": self.extension_days,
            "extension_granted": self.extension_granted,
            "split_proposal": self.split_proposal,
            "disputed_by": self.disputed_by,
        }


@dataclass
class TokenBooks:
    """One token's books in one escrow: what the events say is owed, and what is held."""

    token: str
    symbol: str
    decimals: int | None
    open_trades: int = 0
    open_trade_count: int = 0
    credits: int = 0
    platform_fees: int = 0
    balance: int | None = None
    credits_on_chain: int | None = None
    platform_fees_on_chain: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def owed(self) -> int:
        return self.open_trades + self.credits + self.platform_fees

    @property
    def difference(self) -> int | None:
        return None if self.balance is None else self.balance - self.owed

    @property
    def surplus(self) -> int:
        diff = self.difference
        return diff if diff is not None and diff > 0 else 0

    @property
    def shortfall(self) -> int:
        diff = self.difference
        return -diff if diff is not None and diff < 0 else 0

    @property
    def ok(self) -> bool:
        return self.balance is not None and self.shortfall == 0 and not self.problems

    def amount(self, value: int) -> str:
        """``value`` in whole units with the symbol (raw units when the decimals are unknown)."""
        if self.decimals is None:
            return f"{value:,} units"
        whole = Decimal(value).scaleb(-self.decimals).normalize()
        shown = f"{whole:f}"
        return f"{shown} {self.symbol}"

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "symbol": self.symbol,
            "decimals": self.decimals,
            "balance": None if self.balance is None else str(self.balance),
            "open_trades": str(self.open_trades),
            "open_trade_count": self.open_trade_count,
            "credits": str(self.credits),
            "platform_fees": str(self.platform_fees),
            "owed": str(self.owed),
            "surplus": str(self.surplus),
            "shortfall": str(self.shortfall),
            "credits_on_chain": (
                None if self.credits_on_chain is None else str(self.credits_on_chain)
            ),
            "platform_fees_on_chain": (
                None if self.platform_fees_on_chain is None else str(self.platform_fees_on_chain)
            ),
            "problems": list(self.problems),
            "ok": self.ok,
        }


@dataclass
class UndecodableLog:
    block_number: int
    log_index: int
    tx_hash: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "block": self.block_number,
            "log_index": self.log_index,
            "tx_hash": self.tx_hash,
            "reason": self.reason,
        }


@dataclass
class EscrowAudit:
    address: str
    version: int
    from_block: int
    to_block: int
    logs_read: int = 0
    events: Counter[str] = field(default_factory=Counter)
    unknown_topics: Counter[str] = field(default_factory=Counter)
    undecodable: list[UndecodableLog] = field(default_factory=list)
    tokens: list[TokenBooks] = field(default_factory=list)
    open_trades: list[OpenTrade] = field(default_factory=list)
    trades_seen: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def unknown_logs(self) -> int:
        return sum(self.unknown_topics.values())

    @property
    def ok(self) -> bool:
        return not self.problems and all(books.ok for books in self.tokens)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "version": self.version,
            "from_block": self.from_block,
            "to_block": self.to_block,
            "logs_read": self.logs_read,
            "events": dict(sorted(self.events.items())),
            "unknown_logs": self.unknown_logs,
            "unknown_topics": dict(self.unknown_topics),
            "undecodable_logs": len(self.undecodable),
            "undecodable": [u.to_json() for u in self.undecodable],
            "trades_seen": self.trades_seen,
            "tokens": [books.to_json() for books in self.tokens],
            "open_trades": [trade.to_json() for trade in self.open_trades],
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "ok": self.ok,
        }


@dataclass
class AuditReport:
    chain_id: int
    block: int
    timestamp: int
    escrows: list[EscrowAudit]

    @property
    def ok(self) -> bool:
        return all(escrow.ok for escrow in self.escrows)

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "block": self.block,
            "timestamp": self.timestamp,
            "time_utc": utc(self.timestamp),
            "ok": self.ok,
            "escrows": [escrow.to_json() for escrow in self.escrows],
        }


# ------------------------------------------------------------------ reading logs


def _rpc_error(exc: BaseException) -> tuple[int | None, str]:
    """(JSON-RPC error code, message) of a node's refusal, as far as it can be told."""
    response = getattr(exc, "rpc_response", None)
    if isinstance(response, Mapping):
        error = response.get("error")
        if isinstance(error, Mapping):
            code = error.get("code")
            return (code if isinstance(code, int) else None), str(error.get("message", exc))
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], Mapping):
        code = args[0].get("code")
        return (code if isinstance(code, int) else None), str(args[0].get("message", exc))
    return None, str(exc)


def is_pruned_history(exc: BaseException) -> bool:
    code, message = _rpc_error(exc)
    text = message.lower()
    return code == PRUNED_HISTORY_CODE or any(word in text for word in _PRUNED_WORDS)


def _is_too_large(exc: BaseException) -> bool:
    _, message = _rpc_error(exc)
    text = message.lower()
    return any(word in text for word in _TOO_LARGE_WORDS)


def _short(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def earliest_block(chain: Chain) -> int:
    """The oldest block the node serves (0 unless it expired part of its history)."""
    try:
        block = chain.w3.eth.get_block("earliest")
    except Exception:  # a node without the tag, or one that refuses it
        return 0
    if block is None:
        return 0
    number = block.get("number") if isinstance(block, Mapping) else None
    return int(number) if number is not None else 0


def read_logs(
    chain: Chain,
    address: str,
    first: int,
    last: int,
    chunk_blocks: int = DEFAULT_CHUNK_BLOCKS,
) -> Iterator[Mapping[str, Any]]:
    """Every log of ``address`` from block ``first`` to ``last``, in order, read in chunks.

    Raises :class:`HistoryUnavailable` with the first block that could not be read when the
    node answers that its history is pruned or missing.
    """
    address = to_checksum_address(address)
    size = max(1, chunk_blocks)
    start = first
    while start <= last:
        end = min(last, start + size - 1)
        try:
            logs = chain.w3.eth.get_logs({"address": address, "fromBlock": start, "toBlock": end})
        except Exception as exc:
            if is_pruned_history(exc):
                _, message = _rpc_error(exc)
                raise HistoryUnavailable(address, start, f"eth_getLogs: {_short(message)}") from exc
            if end > start and _is_too_large(exc):
                size = max(1, (end - start + 1) // 2)
                continue
            raise
        yield from sorted(logs, key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))
        start = end + 1


# ------------------------------------------------------------------ replay


class _Replay:
    """Applies one escrow's decoded events, in order, to its books."""

    def __init__(self, audit: EscrowAudit) -> None:
        self.audit = audit
        self.trades: dict[int, TradeRecord] = {}
        self.open_amount: Counter[str] = Counter()
        self.open_count: Counter[str] = Counter()
        self.credits: dict[tuple[str, str], int] = {}
        self.fees: Counter[str] = Counter()
        self.tokens: set[str] = {ETH}
        self.constructor_seen = False

    def problem(self, text: str) -> None:
        self.audit.problems.append(text)

    def apply(self, name: str, args: dict[str, Any], block: int, tx_hash: str) -> None:
        handler = getattr(self, f"_on_{name}", None)
        if handler is not None:
            handler(args, block, tx_hash)

    def _on_OwnershipTransferred(self, args: dict[str, Any], block: int, tx: str) -> None:
        if int(args["previousOwner"], 16) == 0:
            self.constructor_seen = True

    def _on_TokenAllowanceUpdated(self, args: dict[str, Any], block: int, tx: str) -> None:
        self.tokens.add(to_checksum_address(args["token"]))

    def _on_TradeFunded(self, args: dict[str, Any], block: int, tx: str) -> None:
        trade_id = int(args["tradeId"])
        terms = Terms.from_event(args["terms"])
        if trade_id in self.trades:
            self.problem(
                f"trade {trade_id:#x} was funded twice (blocks "
                f"{self.trades[trade_id].funded_block} and {block})"
            )
            return
        self.trades[trade_id] = TradeRecord(trade_id, terms, bytes(args["listingRef"]), block, tx)
        self.tokens.add(terms.token)
        self.open_amount[terms.token] += terms.amount
        self.open_count[terms.token] += 1

    def _trade(self, args: dict[str, Any], event: str, block: int) -> TradeRecord | None:
        trade_id = int(args["tradeId"])
        trade = self.trades.get(trade_id)
        if trade is None:
            self.problem(
                f"{event} in block {block} for trade {trade_id:#x}, whose funding was not "
                "seen (the scan starts after it, or the history has a hole)"
            )
        return trade

    def _on_TradeShipped(self, args: dict[str, Any], block: int, tx: str) -> None:
        trade = self._trade(args, "TradeShipped", block)
        if trade is not None:
            trade.shipped = True

    def _on_DisputeOpened(self, args: dict[str, Any], block: int, tx: str) -> None:
        trade = self._trade(args, "DisputeOpened", block)
        if trade is not None:
            trade.shipped_before_dispute = trade.shipped
            trade.disputed_by = to_checksum_address(args["openedBy"])

    def _close(
        self, args: dict[str, Any], event: str, block: int, parts: Iterable[int], fee: int
    ) -> None:
        trade = self._trade(args, event, block)
        if trade is None:
            return
        if not trade.open:
            self.problem(
                f"{event} in block {block} for trade {trade.trade_id:#x}, which had "
                f"already ended ({trade.outcome})"
            )
            return
        paid = sum(parts)
        token, amount = trade.terms.token, trade.terms.amount
        if paid != amount:
            self.problem(
                f"{event} of trade {trade.trade_id:#x} in block {block} pays out {paid:,} "
                f"units in all, but the trade holds {amount:,}"
            )
        trade.open = False
        trade.outcome = event
        self.open_amount[token] -= amount
        self.open_count[token] -= 1
        self.fees[token] += fee

    def _on_TradeReleased(self, args: dict[str, Any], block: int, tx: str) -> None:
        fee = int(args["platformFee"])
        self._close(args, "TradeReleased", block, (int(args["sellerAmount"]), fee), fee)

    def _on_TradeRefunded(self, args: dict[str, Any], block: int, tx: str) -> None:
        self._close(args, "TradeRefunded", block, (int(args["buyerAmount"]),), 0)

    def _on_TradeSettled(self, args: dict[str, Any], block: int, tx: str) -> None:
        fee = int(args["platformFee"])
        parts = (int(args["buyerAmount"]), int(args["sellerAmount"]), fee)
        self._close(args, "TradeSettled", block, parts, fee)

    def _on_DisputeResolved(self, args: dict[str, Any], block: int, tx: str) -> None:
        fee = int(args["platformFee"])
        parts = (
            int(args["buyerAmount"]),
            int(args["sellerAmount"]),
            int(args["arbitratorFee"]),
            fee,
        )
        self._close(args, "DisputeResolved", block, parts, fee)

    def _on_PaymentDeferred(self, args: dict[str, Any], block: int, tx: str) -> None:
        key = (to_checksum_address(args["token"]), to_checksum_address(args["payee"]))
        self.tokens.add(key[0])
        self.credits[key] = self.credits.get(key, 0) + int(args["amount"])

    def _on_Withdrawn(self, args: dict[str, Any], block: int, tx: str) -> None:
        key = (to_checksum_address(args["token"]), to_checksum_address(args["payee"]))
        self.tokens.add(key[0])
        left = self.credits.get(key, 0) - int(args["amount"])
        if left < 0:
            self.problem(
                f"Withdrawn in block {block}: {key[1]} took {int(args['amount']):,} units of "
                f"{_token_name(key[0])}, more than the events credited to it"
            )
        self.credits[key] = left

    def _on_PlatformFeesWithdrawn(self, args: dict[str, Any], block: int, tx: str) -> None:
        token = to_checksum_address(args["token"])
        self.tokens.add(token)
        self.fees[token] -= int(args["amount"])
        if self.fees[token] < 0:
            self.problem(
                f"PlatformFeesWithdrawn in block {block} took {int(args['amount']):,} units of "
                f"{_token_name(token)}, more than the fees the events accrued"
            )


def _token_name(token: str) -> str:
    return "ETH" if int(token, 16) == 0 else f"token {token}"


# ------------------------------------------------------------------ the audit


def audit_escrow(
    chain: Chain,
    target: EscrowTarget,
    *,
    head: int,
    head_time: int,
    extra_tokens: Iterable[str] = (),
    chunk_blocks: int = DEFAULT_CHUNK_BLOCKS,
) -> EscrowAudit:
    """Replays one escrow's events up to block ``head`` and checks its books there."""
    if target.version not in CONTRACT_VERSIONS:
        raise EscrowError(
            f"unknown escrow contract version {target.version}; "
            f"known: {', '.join(map(str, sorted(CONTRACT_VERSIONS)))}"
        )
    address = to_checksum_address(target.address)
    audit = EscrowAudit(address, target.version, target.from_block, head)
    if target.from_block > head:
        audit.problems.append(
            f"the scan would start at block {target.from_block:,}, after the chain's head {head:,}"
        )
        return audit
    earliest = earliest_block(chain)
    if target.from_block < earliest:
        raise HistoryUnavailable(
            address, target.from_block, f"the node's history starts at block {earliest:,}"
        )

    decoder = EventDecoder(load_artifact(CONTRACT_VERSIONS[target.version]).abi)
    known_topics = {bytes(HexBytes(decoder.topic(n))) for n in decoder.names}
    replay = _Replay(audit)
    for log in read_logs(chain, address, target.from_block, head, chunk_blocks):
        if log.get("removed"):
            continue
        audit.logs_read += 1
        topics = list(log.get("topics") or [])
        topic0 = bytes(HexBytes(topics[0])) if topics else b""
        if topic0 not in known_topics:
            audit.unknown_topics["0x" + topic0.hex() if topic0 else "(no topic)"] += 1
            continue
        try:
            event = decoder.decode_log(log)
        except Exception as exc:  # malformed data under a known topic: count, never crash
            audit.undecodable.append(
                UndecodableLog(
                    int(log["blockNumber"]),
                    int(log["logIndex"]),
                    HexBytes(log["transactionHash"]).to_0x_hex(),
                    _short(f"{exc.__class__.__name__}: {exc}"),
                )
            )
            continue
        audit.events[event.name] += 1
        try:
            replay.apply(event.name, event.args, event.block_number, event.tx_hash)
        except (KeyError, TypeError, ValueError) as exc:
            audit.undecodable.append(
                UndecodableLog(
                    event.block_number,
                    event.log_index,
                    event.tx_hash,
                    _short(f"{event.name} with unexpected arguments: {exc}"),
                )
            )
    if target.is_deployment_block and not replay.constructor_seen:
        raise HistoryUnavailable(
            address,
            target.from_block,
            "its deployment block returned no OwnershipTransferred log from the constructor",
        )
    if not target.is_deployment_block and not replay.constructor_seen:
        audit.warnings.append(
            f"the scan from block {target.from_block:,} did not see the contract's deployment: "
            "trades funded before it are not counted"
        )
    if audit.undecodable:
        audit.warnings.append(
            f"{len(audit.undecodable)} log(s) under a known topic did not decode; the books "
            "below leave them out"
        )
    if audit.unknown_logs:
        audit.warnings.append(
            f"{audit.unknown_logs} log(s) with a topic this contract version does not emit"
        )
    audit.trades_seen = len(replay.trades)

    client = EscrowClient(chain, address, version=target.version)
    replay.tokens.update(to_checksum_address(t) for t in extra_tokens)
    audit.tokens = _check_books(chain, client, replay, head)
    audit.open_trades = _open_trades(client, replay, audit, head, head_time)
    return audit


def _token_info(chain: Chain, token: str, head: int) -> tuple[str, int | None]:
    if int(token, 16) == 0:
        return "ETH", 18
    contract = chain.w3.eth.contract(address=to_checksum_address(token), abi=_BALANCE_OF_ABI)
    try:
        decimals: int | None = int(contract.functions.decimals().call(block_identifier=head))
    except Exception:
        decimals = None
    try:
        symbol = str(contract.functions.symbol().call(block_identifier=head))[:16] or token
    except Exception:
        symbol = token
    return symbol, decimals


def _balance(chain: Chain, escrow: str, token: str, head: int) -> int:
    if int(token, 16) == 0:
        return int(chain.w3.eth.get_balance(to_checksum_address(escrow), block_identifier=head))
    contract = chain.w3.eth.contract(address=to_checksum_address(token), abi=_BALANCE_OF_ABI)
    return int(contract.functions.balanceOf(escrow).call(block_identifier=head))


def _check_books(
    chain: Chain, client: EscrowClient, replay: _Replay, head: int
) -> list[TokenBooks]:
    views = client.contract.functions
    result = []
    for token in sorted(replay.tokens, key=lambda t: (int(t, 16) != 0, t.lower())):
        symbol, decimals = _token_info(chain, token, head)
        books = TokenBooks(token, symbol, decimals)
        books.open_trades = replay.open_amount[token]
        books.open_trade_count = replay.open_count[token]
        payees = {payee: v for (t, payee), v in replay.credits.items() if t == token}
        books.credits = sum(payees.values())
        books.platform_fees = replay.fees[token]
        try:
            books.balance = _balance(chain, client.address, token, head)
        except Exception as exc:
            books.problems.append(
                f"the balance of {_token_name(token)} cannot be read: "
                f"{_short(f'{exc.__class__.__name__}: {exc}')}"
            )
        on_chain_credits = 0
        for payee, replayed in sorted(payees.items()):
            try:
                held = int(views.credits(token, payee).call(block_identifier=head))
            except Exception as exc:
                books.problems.append(f"credits({symbol}, {payee}) cannot be read: {exc}")
                continue
            on_chain_credits += held
            if held != replayed:
                books.problems.append(
                    f"credits of {payee}: the contract holds {books.amount(held)}, the events "
                    f"say {books.amount(replayed)}"
                )
        books.credits_on_chain = on_chain_credits
        try:
            accrued = int(views.accruedPlatformFees(token).call(block_identifier=head))
            books.platform_fees_on_chain = accrued
            if accrued != books.platform_fees:
                books.problems.append(
                    f"platform fees: accruedPlatformFees says {books.amount(accrued)}, the "
                    f"events say {books.amount(books.platform_fees)}"
                )
        except Exception as exc:
            books.problems.append(f"accruedPlatformFees({symbol}) cannot be read: {exc}")
        if books.shortfall:
            books.problems.append(
                f"shortfall: the contract holds {books.amount(books.balance or 0)} but owes "
                f"{books.amount(books.owed)}, {books.amount(books.shortfall)} less"
            )
        result.append(books)
    return result


_TIMEOUTS = {
    Status.FUNDED: (
        "refundAfterDeadline",
        "escrow refund {id}",
        "the buyer is refunded in full (the seller did not ship by the ship-by time)",
    ),
    Status.SHIPPED: (
        "releaseAfterInspection",
        "escrow release {id}",
        "the seller is paid, minus the platform fee (the inspection ended)",
    ),
}


def _open_trades(
    client: EscrowClient, replay: _Replay, audit: EscrowAudit, head: int, head_time: int
) -> list[OpenTrade]:
    fn = client.contract.functions
    result = []
    for trade in sorted(
        (t for t in replay.trades.values() if t.open), key=lambda t: (t.funded_block, t.trade_id)
    ):
        terms = trade.terms
        inspection_started: bool | None = None
        extension_days, granted = 0, False
        try:
            if client.version >= 2:
                raw = fn.tradeView(trade.trade_id, terms.as_tuple()).call(block_identifier=head)
                superseded, status, deadline, started, proposer, bps, days, granted, _ = raw
                if superseded:
                    audit.problems.append(
                        f"trade {trade.trade_id:#x}: the events show it open, but its lane "
                        "holds another trade (tradeView: superseded)"
                    )
                    continue
                inspection_started = bool(started) if Status(status) == Status.SHIPPED else None
                extension_days, granted = int(days), bool(granted)
            else:
                raw = fn.tradeState(trade.trade_id, terms.as_tuple()).call(block_identifier=head)
                _, status, deadline, proposer, bps = raw
        except Exception as exc:
            audit.problems.append(
                f"trade {trade.trade_id:#x}: its state cannot be read "
                f"({_short(f'{exc.__class__.__name__}: {exc}')})"
            )
            continue
        state = Status(int(status))
        if not state.is_open:
            audit.problems.append(
                f"trade {trade.trade_id:#x}: the events show it open, but the contract says "
                f"{state.name.lower()}"
            )
            continue
        if state == Status.FUNDED:
            deadline = terms.ship_by
        if state == Status.DISPUTED:
            shipped = bool(trade.shipped_before_dispute)
            call, command = "resolveAfterRulingTimeout", "escrow resolve-timeout {id}"
            outcome = (
                "split 50/50 without arbitrator fee (the seller had shipped)"
                if shipped
                else "the buyer is refunded in full (the seller had not shipped)"
            )
        else:
            call, command, outcome = _TIMEOUTS[state]
        proposal = None
        if int(proposer) != 0:
            proposal = {"by": "buyer" if int(proposer) == 1 else "seller", "buyer_bps": int(bps)}
        result.append(
            OpenTrade(
                trade_id=trade.trade_id,
                terms=terms,
                listing_ref=trade.listing_ref,
                funded_block=trade.funded_block,
                status=state.name.lower(),
                deadline=int(deadline) or None,
                deadline_passed=bool(deadline) and head_time >= int(deadline),
                timeout_call=call,
                timeout_command=command.format(id=f"{trade.trade_id:#x}"),
                timeout_outcome=outcome,
                inspection_started=inspection_started,
                extension_days=extension_days,
                extension_granted=bool(granted),
                split_proposal=proposal,
                disputed_by=trade.disputed_by,
            )
        )
    return result


def audit(
    chain: Chain,
    targets: Iterable[EscrowTarget],
    *,
    extra_tokens: Iterable[str] = (),
    chunk_blocks: int = DEFAULT_CHUNK_BLOCKS,
    head: int | None = None,
) -> AuditReport:
    """Audits every target at one block (the chain's head when the audit starts)."""
    if head is None:
        head = int(chain.w3.eth.block_number)
    head_time = int(chain.w3.eth.get_block(head)["timestamp"])
    tokens = list(extra_tokens)
    escrows = [
        audit_escrow(
            chain,
            target,
            head=head,
            head_time=head_time,
            extra_tokens=tokens,
            chunk_blocks=chunk_blocks,
        )
        for target in targets
    ]
    return AuditReport(chain.chain_id, head, head_time, escrows)


def targets_of(deployment: Any) -> list[EscrowTarget]:
    """Every escrow of a recorded deployment, the current one first."""
    return [
        EscrowTarget(r.address, int(r.version), int(r.block_number), is_deployment_block=True)
        for r in deployment.escrows
    ]


# ------------------------------------------------------------------ text


def utc(timestamp: int | None) -> str:
    if timestamp is None:
        return "-"
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"timestamp {timestamp}"


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    days, rest = divmod(int(seconds), 86_400)
    if rest == 0:
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{seconds / 3600:g} hours"


def format_report(report: AuditReport) -> str:
    lines = [
        f"escrow audit of chain {report.chain_id} at block {report.block:,} "
        f"({utc(report.timestamp)}), from the chain alone"
    ]
    for escrow in report.escrows:
        lines.append("")
        lines.append(
            f"escrow {escrow.address} (v{escrow.version}): logs of blocks "
            f"{escrow.from_block:,}-{escrow.to_block:,}: {escrow.logs_read} read, "
            f"{escrow.unknown_logs} unknown, {len(escrow.undecodable)} undecodable; "
            f"{escrow.trades_seen} trade(s) funded, {len(escrow.open_trades)} open"
        )
        for books in escrow.tokens:
            verdict = "OK" if books.ok else "FAILED"
            if books.balance is None:
                lines.append(f"  {books.symbol}: balance unreadable  {verdict}")
            else:
                lines.append(
                    f"  {books.symbol}: balance {books.amount(books.balance)} = open trades "
                    f"{books.amount(books.open_trades)} ({books.open_trade_count}) + credits "
                    f"{books.amount(books.credits)} + platform fees "
                    f"{books.amount(books.platform_fees)}"
                    + (
                        f" + surplus {books.amount(books.surplus)} (sent directly)"
                        if books.surplus
                        else ""
                    )
                    + (f" - SHORTFALL {books.amount(books.shortfall)}" if books.shortfall else "")
                    + f"  {verdict}"
                )
            if int(books.token, 16) != 0:
                lines.append(f"      token {books.token}")
            for problem in books.problems:
                lines.append(f"      problem: {problem}")
        for warning in escrow.warnings:
            lines.append(f"  warning: {warning}")
        for topic, count in escrow.unknown_topics.items():
            lines.append(f"  unknown log topic {topic}: {count}")
        for log in escrow.undecodable:
            lines.append(
                f"  undecodable log in block {log.block_number}, index {log.log_index} "
                f"(tx {log.tx_hash}): {log.reason}"
            )
        for problem in escrow.problems:
            lines.append(f"  problem: {problem}")
        if escrow.open_trades:
            lines.append(f"  open trades ({len(escrow.open_trades)}):")
        books_by_token = {b.token: b for b in escrow.tokens}
        for trade in escrow.open_trades:
            t = trade.terms
            token_books = books_by_token.get(t.token)
            amount = token_books.amount(t.amount) if token_books else f"{t.amount:,} units"
            lines.append(
                f"    {trade.trade_id:#x}  {trade.status}, funded in block {trade.funded_block:,}"
            )
            lines.append(f"      buyer {t.buyer}  seller {t.seller}")
            lines.append(
                f"      arbitrator {t.arbitrator} (fee {t.arbitrator_fee_bps / 100:g} %), "
                f"platform fee {t.platform_fee_bps / 100:g} %"
            )
            window = (
                ""
                if t.delivery_window is None
                else f", delivery window {_duration(t.delivery_window)}"
            )
            lines.append(
                f"      {amount}, ship by {utc(t.ship_by)}, inspection "
                f"{_duration(t.inspection_period)}{window}"
            )
            extras = []
            if trade.inspection_started is not None:
                extras.append(
                    "inspection running"
                    if trade.inspection_started
                    else "in delivery (inspection not started)"
                )
            if trade.extension_days:
                extras.append(
                    f"extension of {trade.extension_days} day(s) "
                    + ("granted" if trade.extension_granted else "asked")
                )
            if trade.split_proposal:
                p = trade.split_proposal
                extras.append(f"split offer by the {p['by']}: {p['buyer_bps'] / 100:g} % to buyer")
            if trade.disputed_by:
                extras.append(f"dispute opened by {trade.disputed_by}")
            if extras:
                lines.append(f"      {'; '.join(extras)}")
            when = "passed: anyone can call it now" if trade.deadline_passed else "then"
            lines.append(
                f"      next deadline {utc(trade.deadline)} ({when}): {trade.timeout_call} "
                f"(`{trade.timeout_command}`): {trade.timeout_outcome}"
            )
    lines.append("")
    if report.ok:
        lines.append("result: OK, every escrow's balance covers its open trades, credits and fees")
    else:
        failed = [e.address for e in report.escrows if not e.ok]
        lines.append(f"result: FAILED for {', '.join(failed)}")
    return "\n".join(lines)
