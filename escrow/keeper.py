"""The keeper: makes the contract's timeouts happen without anybody's help.

Every open trade ends by a timeout that anyone may trigger: ``refundAfterDeadline`` when the
seller did not ship by the ship-by time, ``releaseAfterInspection`` when the inspection is over,
``resolveAfterRulingTimeout`` when the arbitrator did not rule in time. The keeper sends them
from a platform account.

One pass (:meth:`Keeper.run_once`):

1. Receipts of the transactions still in flight are collected. If the account has pending
   transactions (its ``pending`` nonce is above its ``latest`` one), nothing is sent: a
   transaction of an earlier pass, of this keeper before a restart or of another keeper sharing
   the account may be on its way, and sending now could send a timeout twice.
2. The candidates come from the database the indexer keeps: open trades of the deployment's
   escrows whose ship-by time (funded), inspection end (shipped; on v2 it already holds the
   delivery window, the buyer's receipt and a granted extension) or ruling deadline (disputed)
   is not after the latest block's time. The chain's time, never the wall clock.
3. Each candidate is checked again on chain (``tradeView`` on v2, ``tradeState`` on v1): its
   status there picks the function, its deadline there must have passed at the latest block.
   Then the gas is estimated: a revert means not due or already done (another keeper, a
   party), and the trade is skipped, never sent.
4. The transaction is sent with the account's next nonce and an EIP-1559 fee cap no higher than
   the configured maximum gas price, if the budget (per run and per rolling hour, counted at the
   worst case ``gas limit × fee cap`` until the receipt gives the real cost) covers it.
5. The pass waits for the receipts and logs what was done: trade, function, transaction, gas.

Never twice: a trade with a transaction in flight is not looked at; a pass does not start while
the account has pending transactions; nonces are explicit, so two keepers sharing an account
cannot both get a transaction for the same nonce mined, and the one that loses the race stops
its pass. A keeper on another account sees the trade final on chain (or its estimate reverts)
and skips it. One failing trade never stops the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
import sqlalchemy.exc
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.orm import Session
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import TransactionNotFound
from web3.types import TxParams, TxReceipt

from escrow.chain import Chain
from escrow.client import EscrowClient, Status, Terms
from escrow.db.models import Trade, TradeStatus
from escrow.deploy import Deployment
from escrow.errors import (
    ContractRevert,
    EscrowError,
    TermsMismatch,
    TransactionFailed,
    UnknownContractError,
    UnknownTrade,
)
from escrow.transactions import PreparedCall, Sender, sender_address

log = logging.getLogger(__name__)

GWEI = 10**9
ETHER = 10**18
HOUR = 3600.0
#: Fallback tip when the node does not answer ``eth_maxPriorityFeePerGas``.
DEFAULT_PRIORITY_FEE = GWEI
#: Candidates looked at in one pass at most (the rest wait for the next pass).
MAX_PER_PASS = 1_000

#: Errors that end when the node or the database is back: the pass stops and is tried again.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    ConnectionError,
    TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
)
MAX_RETRY_DELAY = 30.0
#: Seconds between two warnings that say the same (the budget is spent, the gas is too dear).
WARN_EVERY = 60.0


class KeeperError(EscrowError):
    """The keeper cannot work (no escrow to watch, a sender the node cannot sign for)."""


class NonceConflict(EscrowError):
    """Another sender used the keeper account's nonce: the pass stops."""


@dataclass(frozen=True)
class Timeout:
    """One kind of timeout: the status it ends and the contract function that ends it."""

    kind: str
    function: str
    method: str  # of EscrowCalls
    status: Status


TIMEOUTS: dict[Status, Timeout] = {
    Status.FUNDED: Timeout("refund", "refundAfterDeadline", "refund_after_deadline", Status.FUNDED),
    Status.SHIPPED: Timeout(
        "release", "releaseAfterInspection", "release_after_inspection", Status.SHIPPED
    ),
    Status.DISPUTED: Timeout(
        "resolve", "resolveAfterRulingTimeout", "resolve_after_ruling_timeout", Status.DISPUTED
    ),
}
KINDS = tuple(t.kind for t in TIMEOUTS.values())


@dataclass(frozen=True)
class Budget:
    """What the keeper may spend on gas.

    ``max_gas_price`` (wei per gas) caps the fee per gas of every transaction: when the chain's
    price (base fee + tip) is above it, nothing is sent. ``per_hour`` caps the spending of any
    rolling hour, ``per_run`` that of this keeper's whole life (None: no cap).
    """

    max_gas_price: int
    per_hour: int
    per_run: int | None = None

    def __post_init__(self) -> None:
        if self.max_gas_price <= 0 or self.per_hour < 0 or (self.per_run or 0) < 0:
            raise ValueError("the gas price cap must be above 0 and the budgets 0 or more")


@dataclass
class Sent:
    """A timeout transaction the keeper sent."""

    trade_id: int
    escrow: str
    kind: str
    function: str
    tx_hash: str
    nonce: int
    gas_limit: int
    max_fee_per_gas: int
    row_id: int
    gas_used: int | None = None
    cost: int | None = None
    #: True once mined and successful, False if it reverted; None while pending
    ok: bool | None = None
    error: str | None = None

    @property
    def reserved(self) -> int:
        """The most this transaction can cost."""
        return self.gas_limit * self.max_fee_per_gas


@dataclass
class PassReport:
    """What one pass did."""

    chain_time: int = 0
    candidates: int = 0
    sent: list[Sent] = field(default_factory=list)
    #: (trade id, why): not due on chain, final already, estimate reverted, odd rows
    skipped: list[tuple[int, str]] = field(default_factory=list)
    #: (trade id, why): due but not sent because of the gas price cap, the budget or the balance
    refused: list[tuple[int, str]] = field(default_factory=list)
    #: (trade id, why): a send that failed or a transaction that reverted, an unexpected error
    failed: list[tuple[int, str]] = field(default_factory=list)
    #: the pass sent nothing because the account had pending transactions
    waited_for_pending: int = 0
    seconds: float = 0.0
    _ids: set[int] = field(default_factory=set, repr=False)

    def add(self, sent: Sent) -> None:
        if id(sent) not in self._ids:
            self._ids.add(id(sent))
            self.sent.append(sent)

    @property
    def confirmed(self) -> list[Sent]:
        return [s for s in self.sent if s.ok]

    @property
    def done(self) -> bool:
        """Nothing due was left undone (no refusal, failure or unmined transaction)."""
        return (
            not self.refused
            and not self.failed
            and not self.waited_for_pending
            and all(s.ok for s in self.sent)
        )

    def summary(self) -> str:
        by_kind = {k: sum(1 for s in self.confirmed if s.kind == k) for k in KINDS}
        kinds = ", ".join(f"{n} {k}" for k, n in by_kind.items() if n) or "none"
        gas = sum(s.gas_used or 0 for s in self.sent)
        cost = sum(s.cost or 0 for s in self.sent)
        text = (
            f"{self.candidates} due in the database, {len(self.confirmed)} timeouts done "
            f"({kinds}), {len(self.skipped)} skipped, {len(self.refused)} refused, "
            f"{len(self.failed)} failed; gas {gas:,}, spent {_eth(cost)} in {self.seconds:.2f} s"
        )
        if self.waited_for_pending:
            text += f"; waited: {self.waited_for_pending} transactions pending on the account"
        return text


def _eth(wei: int) -> str:
    return f"{wei / ETHER:.6f} ETH"


def _timestamp(value: datetime) -> int:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite: naive
    return int(aware.timestamp())


def terms_of_row(row: Trade) -> Terms:
    """A trade's terms as the indexer stored them (the chain checks them against its hash)."""
    return Terms(
        buyer=to_checksum_address(row.buyer),
        seller=to_checksum_address(row.seller),
        arbitrator=to_checksum_address(row.arbitrator),
        token=to_checksum_address(row.token),
        amount=int(row.amount),
        ship_by=_timestamp(row.ship_by),
        inspection_period=int(row.inspection_period),
        arbitrator_fee_bps=int(row.arbitrator_fee_bps),
        platform_fee_bps=int(row.platform_fee_bps),
        delivery_window=None if row.delivery_window is None else int(row.delivery_window),
    )


class _Spending:
    """Spent and reserved wei: per rolling hour and over the keeper's life."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._spent: deque[tuple[float, int]] = deque()
        self.total = 0
        self.reserved: dict[str, int] = {}

    def last_hour(self) -> int:
        cutoff = self.clock() - HOUR
        while self._spent and self._spent[0][0] <= cutoff:
            self._spent.popleft()
        return sum(wei for _, wei in self._spent)

    def refusal(self, budget: Budget, cost: int) -> str | None:
        """Why ``cost`` more may not be spent now, or None."""
        held = sum(self.reserved.values())
        hour = self.last_hour() + held
        if hour + cost > budget.per_hour:
            return (
                f"the hourly budget {_eth(budget.per_hour)} would be exceeded: "
                f"{_eth(hour)} spent or reserved in the last hour, this one may cost "
                f"up to {_eth(cost)}"
            )
        if budget.per_run is not None and self.total + held + cost > budget.per_run:
            return (
                f"the budget of this run {_eth(budget.per_run)} would be exceeded: "
                f"{_eth(self.total + held)} spent or reserved, this one may cost up to "
                f"{_eth(cost)}"
            )
        return None

    def reserve(self, tx_hash: str, wei: int) -> None:
        self.reserved[tx_hash] = wei

    def settle(self, tx_hash: str, wei: int) -> None:
        self.reserved.pop(tx_hash, None)
        self._spent.append((self.clock(), wei))
        self.total += wei

    def drop(self, tx_hash: str) -> None:
        self.reserved.pop(tx_hash, None)


def _lean(chain: Chain) -> Chain:
    """The same node through a Web3 of the keeper's own without web3's validation middleware,
    which asks the node for its chain id before every call, estimate and send (three times per
    timeout). The keeper sets the chain id of its transactions itself."""
    if chain.is_tester:
        return chain
    w3 = Web3(chain.w3.provider)
    try:
        w3.middleware_onion.remove("validation")
    except ValueError:  # a web3 without it
        pass
    return Chain(w3=w3, is_tester=False, url=chain.url, _chain_id=chain.chain_id)


class Keeper:
    """Finds due timeouts in the indexer's database and sends them from ``sender``.

    ``sender`` is an address the node signs for or a ``LocalAccount``; nonces and fees are
    always set by the keeper. ``clock`` (monotonic seconds) measures the budget's hour.
    """

    def __init__(
        self,
        chain: Chain,
        deployment: Deployment,
        engine: Engine,
        sender: Sender,
        budget: Budget,
        *,
        receipt_timeout: float = 60.0,
        max_per_pass: int = MAX_PER_PASS,
        retry_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        chain = _lean(chain)
        self.chain = chain
        self.w3 = chain.w3
        self.deployment = deployment
        self.engine = engine
        self.sender = sender
        self.address: ChecksumAddress = sender_address(sender)
        self.budget = budget
        self.receipt_timeout = receipt_timeout
        self.max_per_pass = max_per_pass
        self.retry_after = retry_after
        self.clock = clock
        self.clients: dict[str, EscrowClient] = {
            record.address.lower(): deployment.client_for(chain, record.address)
            for record in deployment.escrows
        }
        if not self.clients:
            raise KeeperError("the deployment has no escrow to keep")
        if isinstance(sender, str) and not chain.is_tester and self.address not in chain.accounts:
            raise KeeperError(
                f"the node does not sign for {self.address}: give one of its unlocked accounts "
                "or a private key (ESCROW_PRIVATE_KEY)"
            )
        #: trades (by database row id) with a transaction in flight
        self.inflight: dict[int, Sent] = {}
        #: trades (by database row id) left alone until a monotonic time, with the reason
        self._resting: dict[int, tuple[float, str]] = {}
        self.spending = _Spending(clock)
        self._pending_logged = 0
        self._warned: dict[str, float] = {}

    # ------------------------------------------------------------------ loop

    def run(
        self,
        stop: threading.Event,
        poll_interval: float = 2.0,
        before_pass: Callable[[], None] | None = None,
    ) -> None:
        """Passes every ``poll_interval`` seconds until ``stop`` is set. A node or database
        that is down is waited out with a growing pause; nothing else stops the loop but an
        exception of ``before_pass`` (called before each pass: the leader lock's check)."""
        delay = poll_interval
        while not stop.is_set():
            if before_pass is not None:
                before_pass()
            try:
                report = self.run_once(stop)
            except TRANSIENT_ERRORS as exc:
                log.warning(
                    "keeper waiting %.1f s after %s: %s",
                    delay,
                    exc.__class__.__name__,
                    str(exc)[:200],
                )
                stop.wait(delay)
                delay = min(max(delay * 2, 0.5), MAX_RETRY_DELAY)
                continue
            except Exception:  # a bug must not end the keeper: log it, try again later
                log.exception("keeper pass failed")
                stop.wait(max(poll_interval, 1.0))
                continue
            delay = poll_interval
            if report.sent or report.refused or report.failed:
                log.info("pass: %s", report.summary())
            stop.wait(poll_interval)

    def pending_count(self) -> int:
        """Transactions of the keeper account that the node has not mined yet."""
        pending = int(self.w3.eth.get_transaction_count(self.address, "pending"))
        latest = int(self.w3.eth.get_transaction_count(self.address, "latest"))
        return max(0, pending - latest)

    def wait_until_idle(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Waits until the account has no pending transaction (after a restart, the keeper's
        own from before may still be on their way); True when it has none."""
        deadline = time.monotonic() + timeout
        logged = False
        while True:
            pending = self.pending_count()
            if pending == 0:
                return True
            if not logged:
                log.warning(
                    "account %s has %d pending transactions: waiting for them before scanning",
                    self.address,
                    pending,
                )
                logged = True
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                return False
            time.sleep(0.2)

    # ------------------------------------------------------------------ one pass

    def run_once(self, stop: threading.Event | None = None) -> PassReport:
        started = time.perf_counter()
        report = PassReport()
        self._collect(report, wait=0.0)
        pending = self.pending_count()
        if pending:
            if pending != self._pending_logged:  # once per change, not on every poll
                log.warning(
                    "account %s has %d pending transactions (%d of this keeper in flight): "
                    "sending nothing until they are mined",
                    self.address,
                    pending,
                    len(self.inflight),
                )
            self._pending_logged = pending
            report.waited_for_pending = pending
            report.seconds = time.perf_counter() - started
            return report
        self._pending_logged = 0
        latest = self.w3.eth.get_block("latest")
        now = int(latest["timestamp"])
        report.chain_time = now
        rows = self._due_rows(now)
        report.candidates = len(rows)
        if rows:
            self._send_due(rows, latest, now, report, stop)
            self._collect(report, wait=self.receipt_timeout, stop=stop)
        report.seconds = time.perf_counter() - started
        return report

    def _due_rows(self, now: int) -> list[Trade]:
        """Open trades whose deadline the database puts at or before ``now`` (chain time)."""
        moment = datetime.fromtimestamp(now, UTC)
        clock = self.clock()
        self._resting = {k: v for k, v in self._resting.items() if v[0] > clock}
        excluded = set(self.inflight) | set(self._resting)
        query = (
            select(Trade)
            .where(
                Trade.chain_id == self.chain.chain_id,
                Trade.contract_address.in_(list(self.clients)),
                or_(
                    and_(Trade.status == TradeStatus.FUNDED.value, Trade.ship_by <= moment),
                    and_(
                        Trade.status == TradeStatus.SHIPPED.value,
                        Trade.inspection_ends_at <= moment,
                    ),
                    and_(
                        Trade.status == TradeStatus.DISPUTED.value,
                        Trade.ruling_deadline <= moment,
                    ),
                ),
            )
            .order_by(Trade.id)
            .limit(self.max_per_pass + len(excluded))
        )
        with Session(self.engine, expire_on_commit=False) as session:
            rows = [row for row in session.scalars(query) if row.id not in excluded]
            session.expunge_all()
        return rows[: self.max_per_pass]

    def _send_due(
        self,
        rows: Sequence[Trade],
        latest: Any,
        now: int,
        report: PassReport,
        stop: threading.Event | None,
    ) -> None:
        base_fee = int(latest.get("baseFeePerGas") or 0)
        tip = self._priority_fee()
        price = base_fee + tip
        if price > self.budget.max_gas_price:
            reason = (
                f"gas price {price / GWEI:.3f} gwei (base fee {base_fee / GWEI:.3f} + tip "
                f"{tip / GWEI:.3f}) is above the limit of "
                f"{self.budget.max_gas_price / GWEI:.3f} gwei"
            )
            self._warn_now_and_then(
                "gas price", "not sending %d due timeouts: %s", len(rows), reason
            )
            report.refused.extend((row.onchain_id, reason) for row in rows)
            return
        fee_cap = min(2 * base_fee + tip, self.budget.max_gas_price)
        balance = int(self.w3.eth.get_balance(self.address))
        nonce = int(self.w3.eth.get_transaction_count(self.address, "latest"))
        budget_reason: str | None = None
        for row in rows:
            if stop is not None and stop.is_set():
                break
            if budget_reason is not None:
                report.refused.append((row.onchain_id, budget_reason))
                continue
            try:
                sent = self._handle(row, now, nonce, tip, fee_cap, balance, report)
            except NonceConflict as exc:
                log.warning("stopping this pass: %s", exc)
                report.failed.append((row.onchain_id, str(exc)))
                return
            except _Refused as exc:
                budget_reason = str(exc)
                self._warn_now_and_then(
                    exc.key,
                    "refusing to send the timeout of trade %#x and those after it: %s",
                    row.onchain_id,
                    budget_reason,
                )
                report.refused.append((row.onchain_id, budget_reason))
                continue
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # one odd trade never stops the others
                reason = f"{exc.__class__.__name__}: {str(exc)[:300]}"
                log.error("trade %#x (row %d): %s", row.onchain_id, row.id, reason)
                report.failed.append((row.onchain_id, reason))
                self._rest(row.id, reason, 10 * self.retry_after)
                continue
            if sent is not None:
                nonce += 1
                balance -= sent.reserved
                report.add(sent)

    def _handle(
        self,
        row: Trade,
        now: int,
        nonce: int,
        tip: int,
        fee_cap: int,
        balance: int,
        report: PassReport,
    ) -> Sent | None:
        """Checks one candidate on chain and sends its timeout; None when skipped."""
        client = self.clients[row.contract_address.lower()]
        trade_id = int(row.onchain_id)
        terms = terms_of_row(row)
        due = self._due_on_chain(client, trade_id, terms, now)
        if isinstance(due, str):
            self._skip(row, due, report)
            return None
        call: PreparedCall = getattr(client.calls, due.method)(trade_id, terms)
        assert isinstance(call.function, ContractFunction)
        data = call.function._encode_transaction_data()  # the calldata, no node asked
        params: TxParams = {
            "from": self.address,
            "to": client.address,
            "data": data,
            "value": 0,  # type: ignore[typeddict-item]
            "chainId": self.chain.chain_id,
        }
        try:
            gas = client.sender.estimate_gas(params)
        except (ContractRevert, TransactionFailed, UnknownContractError) as exc:
            self._skip(row, f"the estimate of {due.function} reverted: {exc}", report)
            return None
        cost = gas * fee_cap
        refusal = self.spending.refusal(self.budget, cost)
        if refusal is not None:
            raise _Refused("budget", refusal)
        if cost > balance:
            raise _Refused(
                "balance",
                f"the keeper account {self.address} has {_eth(balance)}, needs {_eth(cost)}",
            )
        tx: dict[str, Any] = {
            **params,
            "gas": gas,
            "nonce": nonce,
            "maxFeePerGas": fee_cap,
            "maxPriorityFeePerGas": min(tip, fee_cap),
            "type": 2,
        }
        tx_hash = self._send(tx, nonce)
        sent = Sent(
            trade_id=trade_id,
            escrow=client.address,
            kind=due.kind,
            function=due.function,
            tx_hash=tx_hash,
            nonce=nonce,
            gas_limit=gas,
            max_fee_per_gas=fee_cap,
            row_id=row.id,
        )
        self.inflight[row.id] = sent
        self.spending.reserve(tx_hash, sent.reserved)
        log.info(
            "sent %s of trade %#x (escrow v%d %s): tx %s nonce %d gas limit %s",
            due.function,
            trade_id,
            client.version,
            client.address,
            tx_hash,
            nonce,
            f"{gas:,}",
        )
        return sent

    def _due_on_chain(
        self, client: EscrowClient, trade_id: int, terms: Terms, now: int
    ) -> Timeout | str:
        """The timeout the chain allows now, or why there is none."""
        if client.version >= 2:
            view = client.trade_view(trade_id, terms)
            if view.superseded:
                return "the chain holds a later trade in its lane, or the stored terms differ"
            status, deadline = view.status, view.deadline
        else:
            try:
                state = client.trade_state(trade_id, terms)
            except (TermsMismatch, UnknownTrade) as exc:
                return f"the chain does not know it with the stored terms ({exc})"
            status = state.status
            deadline = terms.ship_by if status == Status.FUNDED else state.deadline
        if status == Status.NONE:
            return "the chain has no such trade"
        if not status.is_open:
            return f"already {status.name.lower()} on chain"
        if now < deadline:
            return f"{status.name.lower()} on chain and due only at {deadline} (now {now})"
        return TIMEOUTS[status]

    def _send(self, tx: dict[str, Any], nonce: int) -> str:
        try:
            if isinstance(self.sender, LocalAccount):
                unsigned = {k: v for k, v in tx.items() if k != "from"}
                signed = self.sender.sign_transaction(unsigned)
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            else:
                tx_hash = self.w3.eth.send_transaction(tx)  # type: ignore[arg-type]
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            text = str(exc).lower()
            if any(
                word in text
                for word in ("nonce", "already known", "already imported", "underpriced")
            ):
                raise NonceConflict(
                    f"nonce {nonce} of {self.address} was taken by another transaction "
                    f"({str(exc)[:200]})"
                ) from exc
            raise
        return HexBytes(tx_hash).to_0x_hex()

    def _priority_fee(self) -> int:
        try:
            return int(self.w3.eth.max_priority_fee)
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            return DEFAULT_PRIORITY_FEE

    def _warn_now_and_then(self, key: str, message: str, *args: Any) -> None:
        """A warning the first time, then at most once a minute while it lasts (a budget spent
        for the hour would otherwise be logged on every pass)."""
        clock = self.clock()
        last = self._warned.get(key)
        if last is None or clock - last >= WARN_EVERY:
            self._warned[key] = clock
            log.warning(message, *args)
        else:
            log.debug(message, *args)

    def _skip(self, row: Trade, reason: str, report: PassReport) -> None:
        log.info("skipping trade %#x: %s", row.onchain_id, reason)
        report.skipped.append((row.onchain_id, reason))
        self._rest(row.id, reason, self.retry_after)

    def _rest(self, row_id: int, reason: str, seconds: float) -> None:
        self._resting[row_id] = (self.clock() + seconds, reason)

    # ------------------------------------------------------------------ receipts

    def _collect(
        self, report: PassReport, *, wait: float, stop: threading.Event | None = None
    ) -> None:
        """Reads the receipts of the transactions in flight, waiting up to ``wait`` seconds."""
        deadline = time.monotonic() + wait
        delay = 0.002
        while self.inflight:
            for row_id, sent in list(self.inflight.items()):
                try:
                    receipt = self.w3.eth.get_transaction_receipt(HexBytes(sent.tx_hash))
                except TransactionNotFound:
                    continue
                del self.inflight[row_id]
                self._finish(sent, receipt, report)
            if not self.inflight:
                return
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        self._forget_replaced(report)

    def _forget_replaced(self, report: PassReport) -> None:
        """Transactions whose nonce is used while they have no receipt were replaced."""
        if not self.inflight:
            return
        latest = int(self.w3.eth.get_transaction_count(self.address, "latest"))
        for row_id, sent in list(self.inflight.items()):
            if sent.nonce >= latest:
                log.warning(
                    "tx %s (%s of trade %#x) is not mined yet; the trade waits for it",
                    sent.tx_hash,
                    sent.function,
                    sent.trade_id,
                )
                continue
            try:
                receipt = self.w3.eth.get_transaction_receipt(HexBytes(sent.tx_hash))
            except TransactionNotFound:
                del self.inflight[row_id]
                self.spending.drop(sent.tx_hash)
                sent.ok, sent.error = False, "replaced by another transaction with its nonce"
                log.warning(
                    "tx %s (%s of trade %#x) was replaced: nonce %d is used by another",
                    sent.tx_hash,
                    sent.function,
                    sent.trade_id,
                    sent.nonce,
                )
                report.failed.append((sent.trade_id, sent.error))
                continue
            del self.inflight[row_id]
            self._finish(sent, receipt, report)

    def _finish(self, sent: Sent, receipt: TxReceipt, report: PassReport) -> None:
        sent.gas_used = int(receipt["gasUsed"])
        price = int(receipt.get("effectiveGasPrice") or sent.max_fee_per_gas)
        sent.cost = sent.gas_used * price
        self.spending.settle(sent.tx_hash, sent.cost)
        report.add(sent)
        if receipt["status"] == 1:
            sent.ok = True
            # Final on chain now; the database says so once the indexer has read the block.
            self._rest(sent.row_id, "done", self.retry_after)
            client = self.clients[sent.escrow.lower()]
            events = ", ".join(e.name for e in client.events.decode_receipt(receipt, sent.escrow))
            log.info(
                "%s trade %#x: %s tx %s block %d gas %s cost %s (%s)",
                {"refund": "refunded", "release": "released", "resolve": "resolved"}[sent.kind],
                sent.trade_id,
                sent.function,
                sent.tx_hash,
                int(receipt["blockNumber"]),
                f"{sent.gas_used:,}",
                _eth(sent.cost),
                events or "no events",
            )
            return
        sent.ok = False
        sent.error = self._revert_reason(sent, receipt)
        log.error(
            "%s of trade %#x reverted on chain: tx %s gas %s: %s",
            sent.function,
            sent.trade_id,
            sent.tx_hash,
            f"{sent.gas_used:,}",
            sent.error,
        )
        report.failed.append((sent.trade_id, sent.error))

    def _revert_reason(self, sent: Sent, receipt: TxReceipt) -> str:
        client = self.clients[sent.escrow.lower()]
        try:
            tx = self.w3.eth.get_transaction(HexBytes(sent.tx_hash))
            self.w3.eth.call(
                {"from": self.address, "to": client.address, "data": tx["input"]},
                int(receipt["blockNumber"]) - 1,
            )
        except Exception as exc:
            typed = client.sender.decoder.from_exception(exc)
            if typed is not None:
                return str(typed)
            return f"{exc.__class__.__name__}: {str(exc)[:200]}"
        return "reverted (the replay in the block before does not revert)"


class _Refused(Exception):
    """The budget or the balance does not allow a transaction."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
