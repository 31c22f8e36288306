"""Stateful property test of the escrow through the Python client on the embedded chain.

Hypothesis plays random sequences of every trade action by every role (buyers, sellers, a
seller contract that can refuse ETH, arbitrators, a stranger, the owner), with time moving,
in ETH and the test stablecoin, and checks after each step the same properties as the Foundry
suite in test/foundry (which runs the volume; this runs the real client code path):

* solvent: the escrow's balance of each token equals what it still owes (open trades,
  credits, accrued platform fees), by its own books and by this model;
* nobody overpaid: what each account received (balance change, gas and payments in added back)
  plus what the escrow still holds for it equals what the model says it is owed, never more;
* state machine: each call succeeds or reverts as the state machine says, and each trade's
  status and deadline on chain are the model's;
* timeouts finish everything: on a chain snapshot, moving time past every deadline and calling
  each open trade's timeout exit as a stranger ends all of them and leaves only credits and fees;
* a lapsed offer can never be accepted: a split proposal whose state's timeout has passed reads
  as none, and accepting it reverts, both at every step and after moving time past every
  deadline on a snapshot.

Contract v2 actions are in the mix: delivery windows (time steps cross them), the buyer marking
the item received, one inspection extension asked and granted, cancelled split offers,
``withdrawTo``, the fee cap at funding, the minimum inspection period, and arbitrators removed
(who can then no longer rule) and registered again.

Each example runs on a snapshot of the deployed chain, restored afterwards. The seed is
printed; replay a failure with ``pytest --hypothesis-seed=<seed>``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import hypothesis.core as hypothesis_core
import hypothesis.strategies as st
import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from test_attacks import Refuser

from escrow.chain import Chain
from escrow.client import ETH, EscrowClient, Party, Status, Terms, TxResult
from escrow.deploy import Deployment
from escrow.errors import ContractRevert, DeadlinePassed
from escrow.transactions import PreparedCall
from helpers import DAY, Roles

BPS = 10_000
HOUR = 3600
RULING_PERIOD = 7 * DAY
MAX_OPEN = 3  # open trades at a time: keeps each step's timeout check short
MIN_INSPECTION = DAY
MAX_EXTENSION_DAYS = 7
# A call whose outcome depends on a deadline this close to "now" is skipped: the embedded chain
# stamps the next block a little later than the latest one.
TIME_MARGIN = 60

OPEN = (Status.FUNDED, Status.SHIPPED, Status.DISPUTED)
ALLOWED = {
    Status.FUNDED: {
        Status.SHIPPED,
        Status.DISPUTED,
        Status.RELEASED,
        Status.REFUNDED,
        Status.SETTLED,
    },
    Status.SHIPPED: {Status.DISPUTED, Status.RELEASED, Status.REFUNDED, Status.SETTLED},
    Status.DISPUTED: {Status.RELEASED, Status.REFUNDED, Status.SETTLED, Status.RESOLVED},
}
ACTORS = ["buyer", "buyer2", "seller", "refuser", "stranger", "arbitrator", "arbitrator2", "owner"]
# A trade action's actor: mostly the trade's own parties (most random actors would only revert),
# sometimes anybody.
TRADE_ACTORS = ["its buyer", "its seller", "its buyer", "its seller", "its arbitrator", *ACTORS]
# withdrawTo destinations: the actors, plus the two an escrow must refuse
ZERO = "zero"
ESCROW = "escrow"


@dataclass
class ModelTrade:
    trade_id: int
    terms: Terms
    status: Status = Status.FUNDED
    deadline: int = 0
    shipped: bool = False
    proposer: int = 0  # 0 none, 1 buyer, 2 seller
    proposed_bps: int = 0
    # while Shipped: the inspection end without extension (delivery window end + inspection,
    # or receipt + inspection), and the buyer's one extension request
    stored_end: int = 0
    received: bool = False
    extension_days: int = 0
    extension_granted: bool = False

    def effective_end(self) -> int:
        extra = self.extension_days * DAY if self.extension_granted else 0
        return self.stored_end + extra

    def live_deadline(self) -> int:
        """The timeout of the current open state: a split offer lapses at it."""
        return self.terms.ship_by if self.status == Status.FUNDED else self.deadline


class EscrowMachine(RuleBasedStateMachine):
    # set by the test function below before the machine runs
    client: EscrowClient
    roles: Roles
    keys: dict[str, LocalAccount]
    refuser: Refuser
    coin: str
    #: (action, succeeded) -> count over the whole run, printed at the end (coverage check)
    outcomes: dict[tuple[str, bool], int] = {}

    def __init__(self) -> None:
        super().__init__()
        self.chain: Chain = self.client.chain
        self.snapshot = self.chain.snapshot()
        r = self.roles
        self.addr = {
            "buyer": r.buyer,
            "buyer2": r.buyer2,
            "seller": r.seller,
            "stranger": r.stranger,
            "arbitrator": r.arbitrator,
            "arbitrator2": r.arbitrator2,
            "owner": r.owner,
            "refuser": self.refuser.address,
        }
        self.tokens = [ETH, self.coin]
        self.refusing = True
        self.refuser.set_reverting(True)
        self.fee_bps = self.client.platform_fee()[1]
        self.max_fee = {
            a: self.client.arbitrator_info(a).max_fee_bps for a in (r.arbitrator, r.arbitrator2)
        }
        self.registered = {a: True for a in self.max_fee}
        self.trades: dict[int, ModelTrade] = {}  # by lane key: each lane's current trade
        self.open_amount = {t: 0 for t in self.tokens}
        self.fees = {t: self.client.accrued_platform_fees(t) for t in self.tokens}
        self.credits: dict[tuple[str, str], int] = {}
        self.entitled: dict[tuple[str, str], int] = {}
        self.spent: dict[tuple[str, str], int] = {}  # paid into the escrow, and ETH for gas
        self._books_cache: tuple[bytes, dict[tuple[str, str], int], dict[str, int]] | None = None
        self.start = {
            (t, a): self.client.token_balance(t, a) for t in self.tokens for a in self.addr.values()
        }

    def teardown(self) -> None:
        self.chain.revert(self.snapshot)

    # ------------------------------------------------------------ plumbing

    def now(self) -> int:
        return self.chain.latest_timestamp() + 1

    def near(self, *deadlines: int) -> bool:
        now = self.now()
        return any(-5 <= d - now <= TIME_MARGIN for d in deadlines)

    def act(self, actor: str, call: PreparedCall, predicted: bool, what: str) -> TxResult | None:
        """Sends ``call`` as ``actor``; asserts it succeeds exactly when ``predicted``."""
        if actor == "refuser":
            fn = self.refuser.contract.functions.forward(self.client.address, _calldata(call))
            call, payer = PreparedCall(fn, value=call.value), self.refuser.controller
        else:
            payer = self.addr[actor]
        try:
            result = self.client.send(call, payer)
        except ContractRevert as exc:
            self.outcomes[(what, False)] = self.outcomes.get((what, False), 0) + 1
            assert not predicted, f"{what} by {actor} reverted ({exc!r}); the model allows it"
            return None
        self.outcomes[(what, True)] = self.outcomes.get((what, True), 0) + 1
        assert predicted, f"{what} by {actor} succeeded; the state machine forbids it"
        self.paid_gas(result)
        return result

    def paid_gas(self, result: TxResult) -> None:
        receipt = self.chain.w3.eth.get_transaction_receipt(result.tx_hash)
        sender = receipt["from"]
        key = (ETH, sender)
        self.spent[key] = self.spent.get(key, 0) + receipt["gasUsed"] * receipt["effectiveGasPrice"]

    def block_time(self, result: TxResult) -> int:
        return int(self.chain.w3.eth.get_block(result.block_number)["timestamp"])

    def open_trades(self) -> list[ModelTrade]:
        return [t for t in self.trades.values() if t.status in OPEN]

    def pick(self, data: st.DataObject) -> ModelTrade:
        """A trade, open ones three times as likely as final ones (which only revert)."""
        trades = sorted(self.trades.values(), key=lambda t: t.trade_id)
        weighted = [t for t in trades for _ in range(3 if t.status in OPEN else 1)]
        return data.draw(st.sampled_from(weighted), label="trade")

    def move(self, trade: ModelTrade, to: Status, deadline: int) -> None:
        assert to in ALLOWED.get(trade.status, set()), f"{trade.status!r} -> {to!r}"
        trade.status, trade.deadline = to, deadline
        trade.proposer = trade.proposed_bps = 0

    def owe(self, token: str, payee: str, amount: int) -> None:
        if amount == 0:
            return
        key = (token, payee)
        self.entitled[key] = self.entitled.get(key, 0) + amount
        if token == ETH and payee == self.refuser.address and self.refusing:
            self.credits[key] = self.credits.get(key, 0) + amount

    def finish(self, trade: ModelTrade, result: TxResult, to: Status, fee: int) -> None:
        self.move(trade, to, result.block_number)
        self.open_amount[trade.terms.token] -= trade.terms.amount
        self.fees[trade.terms.token] += fee
        self.entitled[(trade.terms.token, self.roles.owner)] = (
            self.entitled.get((trade.terms.token, self.roles.owner), 0) + fee
        )

    def pay_split(
        self,
        trade: ModelTrade,
        result: TxResult,
        to: Status,
        pot: int,
        buyer_bps: int,
        arbitrator_fee: int,
    ) -> None:
        t = trade.terms
        buyer_amount = pot * buyer_bps // BPS
        seller_gross = pot - buyer_amount
        fee = seller_gross * t.platform_fee_bps // BPS
        self.finish(trade, result, to, fee)
        self.owe(t.token, t.buyer, buyer_amount)
        self.owe(t.token, t.seller, seller_gross - fee)
        self.owe(t.token, t.arbitrator, arbitrator_fee)

    def pay_release(self, trade: ModelTrade, result: TxResult) -> None:
        fee = trade.terms.amount * trade.terms.platform_fee_bps // BPS
        self.finish(trade, result, Status.RELEASED, fee)
        self.owe(trade.terms.token, trade.terms.seller, trade.terms.amount - fee)

    def pay_refund(self, trade: ModelTrade, result: TxResult) -> None:
        self.finish(trade, result, Status.REFUNDED, 0)
        self.owe(trade.terms.token, trade.terms.buyer, trade.terms.amount)

    def resolve(self, actor: str, trade: ModelTrade) -> str:
        """The actor's name, with "its buyer/seller/arbitrator" replaced by the trade's own."""
        if not actor.startswith("its "):
            return actor
        address = getattr(trade.terms, actor[4:])
        return next(name for name, a in self.addr.items() if a == address)

    def is_party(self, actor: str, trade: ModelTrade) -> bool:
        return self.addr[actor] in (trade.terms.buyer, trade.terms.seller)

    # ------------------------------------------------------------ funding

    @initialize(
        in_coin=st.booleans(),
        delivery_window=st.sampled_from([0, DAY, 3 * DAY]),
        ship=st.booleans(),
    )
    def first_trade(self, in_coin: bool, delivery_window: int, ship: bool) -> None:
        """Every run starts with a valid trade, shipped or not, so that the random steps after
        it act on a trade more often than they fund one."""
        self.fund(
            buyer="buyer",
            seller="seller",
            arbitrator="arbitrator",
            in_coin=in_coin,
            use_permit=False,
            amount=10**6,
            ship_within=3 * DAY,
            inspection=2 * DAY,
            delivery_window=delivery_window,
            arbitrator_fee=100,
            fee_cap=None,
        )
        (trade,) = self.trades.values()
        if ship:
            call = self.client.calls.mark_shipped(trade.trade_id, trade.terms)
            result = self.act("seller", call, True, "markShipped")
            assert result is not None
            t = trade.terms
            ends = self.block_time(result) + (t.delivery_window or 0) + t.inspection_period
            self.move(trade, Status.SHIPPED, ends)
            trade.shipped = True
            trade.stored_end = ends

    @precondition(lambda self: len(self.open_trades()) < MAX_OPEN)
    @rule(
        buyer=st.sampled_from(["buyer", "buyer2"]),
        seller=st.sampled_from(["seller", "refuser", "stranger"]),
        arbitrator=st.sampled_from(["arbitrator", "arbitrator2"]),
        in_coin=st.booleans(),
        use_permit=st.booleans(),
        amount=st.integers(1, 10**9),
        ship_within=st.sampled_from([DAY, 3 * DAY, 10 * DAY, HOUR]),
        # below a day is refused (v2); the others are valid
        inspection=st.sampled_from([DAY, 2 * DAY, DAY + HOUR, DAY, 2 * DAY, 0, HOUR]),
        delivery_window=st.sampled_from([0, HOUR, DAY, 3 * DAY]),
        arbitrator_fee=st.integers(0, 600),
        # None: the fee in force (the client's default); else the buyer's cap
        fee_cap=st.one_of(st.none(), st.none(), st.integers(0, 1_000)),
    )
    def fund(
        self,
        buyer: str,
        seller: str,
        arbitrator: str,
        in_coin: bool,
        use_permit: bool,
        amount: int,
        ship_within: int,
        inspection: int,
        delivery_window: int,
        arbitrator_fee: int,
        fee_cap: int | None,
    ) -> None:
        token = self.coin if in_coin else ETH
        amount = amount * (1 if in_coin else 10**9 + 7)  # odd wei amounts, every division rounds
        arb = self.addr[arbitrator]
        predicted = (
            self.registered[arb]
            and arbitrator_fee <= self.max_fee[arb]
            and inspection >= MIN_INSPECTION
            and (fee_cap is None or fee_cap >= self.fee_bps)
        )
        buyer_addr = self.addr[buyer]
        ship_by = self.now() + ship_within
        kwargs: dict[str, Any] = dict(
            seller=self.addr[seller],
            arbitrator=arb,
            token=token,
            amount=amount,
            ship_by=ship_by,
            inspection_period=inspection,
            delivery_window=delivery_window,
            max_platform_fee_bps=fee_cap,
            arbitrator_fee_bps=arbitrator_fee,
        )
        try:
            if in_coin and use_permit:
                result = self.client.fund_with_permit(sender=self.keys[buyer_addr], **kwargs)
            else:
                if in_coin:
                    self.paid_gas(self.client.approve(token, amount, sender=buyer_addr))
                result = self.client.fund(sender=buyer_addr, **kwargs)
        except ContractRevert as exc:
            self.outcomes[("fund", False)] = self.outcomes.get(("fund", False), 0) + 1
            assert not predicted, f"fund reverted ({exc!r}); the model allows it"
            if in_coin and not use_permit:
                self.paid_gas(self.client.approve(token, 0, sender=buyer_addr))
            return
        self.outcomes[("fund", True)] = self.outcomes.get(("fund", True), 0) + 1
        assert predicted, "fund succeeded; the model forbids it (fee, arbitrator or inspection)"
        self.paid_gas(result)
        assert result.terms is not None
        assert result.terms.platform_fee_bps == self.fee_bps  # the fee in force, not the cap
        assert result.terms.delivery_window == delivery_window
        self.spent[(token, buyer_addr)] = self.spent.get((token, buyer_addr), 0) + amount
        self.open_amount[token] += amount
        lane_key = result.trade_id >> 64
        previous = self.trades.get(lane_key)
        assert previous is None or previous.status not in OPEN, "fund reused a busy lane"
        self.trades[lane_key] = ModelTrade(result.trade_id, result.terms)

    # ------------------------------------------------------------ trade actions

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS))
    def mark_shipped(self, data: st.DataObject, actor: str) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        if self.near(trade.terms.ship_by):
            return
        predicted = (
            self.addr[actor] == trade.terms.seller
            and trade.status == Status.FUNDED
            and self.now() < trade.terms.ship_by
        )
        result = self.act(
            actor,
            self.client.calls.mark_shipped(trade.trade_id, trade.terms),
            predicted,
            "markShipped",
        )
        if result is not None:
            t = trade.terms
            ends = self.block_time(result) + (t.delivery_window or 0) + t.inspection_period
            self.move(trade, Status.SHIPPED, ends)
            trade.shipped = True
            trade.stored_end = ends

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS))
    def mark_received(self, data: st.DataObject, actor: str) -> None:
        """Inspection starts at receipt, unless the delivery window is already over."""
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        window_end = trade.stored_end - trade.terms.inspection_period
        if trade.status == Status.SHIPPED and self.near(window_end):
            return
        predicted = (
            self.addr[actor] == trade.terms.buyer
            and trade.status == Status.SHIPPED
            and self.now() < window_end
        )
        call = self.client.calls.mark_received(trade.trade_id, trade.terms)
        result = self.act(actor, call, predicted, "markReceived")
        if result is not None:
            trade.stored_end = self.block_time(result) + trade.terms.inspection_period
            trade.received = True
            trade.deadline = trade.effective_end()
            assert result.event("TradeReceived").args["inspectionEndsAt"] == trade.deadline

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS), days=st.integers(0, 8))
    def request_inspection_extension(self, data: st.DataObject, actor: str, days: int) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        if trade.status == Status.SHIPPED and self.near(trade.deadline):
            return
        predicted = (
            self.addr[actor] == trade.terms.buyer
            and trade.status == Status.SHIPPED
            and self.now() < trade.deadline
            and trade.extension_days == 0
            and 1 <= days <= MAX_EXTENSION_DAYS
        )
        call = self.client.calls.request_inspection_extension(trade.trade_id, trade.terms, days)
        if self.act(actor, call, predicted, "requestInspectionExtension") is not None:
            trade.extension_days = days

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS))
    def grant_inspection_extension(self, data: st.DataObject, actor: str) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        if trade.status == Status.SHIPPED and self.near(trade.deadline):
            return
        predicted = (
            self.addr[actor] == trade.terms.seller
            and trade.status == Status.SHIPPED
            and self.now() < trade.deadline
            and trade.extension_days != 0
            and not trade.extension_granted
        )
        call = self.client.calls.grant_inspection_extension(trade.trade_id, trade.terms)
        if self.act(actor, call, predicted, "grantInspectionExtension") is not None:
            trade.extension_granted = True
            trade.deadline = trade.effective_end()

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS))
    def confirm_receipt(self, data: st.DataObject, actor: str) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        predicted = self.addr[actor] == trade.terms.buyer and trade.status in OPEN
        result = self.act(
            actor,
            self.client.calls.confirm_receipt(trade.trade_id, trade.terms),
            predicted,
            "confirmReceipt",
        )
        if result is not None:
            self.pay_release(trade, result)

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS))
    def release_after_inspection(self, data: st.DataObject, actor: str) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        if self.near(trade.deadline):
            return
        predicted = trade.status == Status.SHIPPED and self.now() >= trade.deadline
        call = self.client.calls.release_after_inspection(trade.trade_id, trade.terms)
        result = self.act(actor, call, predicted, "releaseAfterInspection")
        if result is not None:
            self.pay_release(trade, result)

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS))
    def refund_after_deadline(self, data: st.DataObject, actor: str) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        if self.near(trade.terms.ship_by):
            return
        predicted = trade.status == Status.FUNDED and self.now() >= trade.terms.ship_by
        call = self.client.calls.refund_after_deadline(trade.trade_id, trade.terms)
        result = self.act(actor, call, predicted, "refundAfterDeadline")
        if result is not None:
            self.pay_refund(trade, result)

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS))
    def refund_by_seller(self, data: st.DataObject, actor: str) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        predicted = self.addr[actor] == trade.terms.seller and trade.status in OPEN
        call = self.client.calls.refund_by_seller(trade.trade_id, trade.terms)
        result = self.act(actor, call, predicted, "refundBySeller")
        if result is not None:
            self.pay_refund(trade, result)

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS), bps=st.integers(0, 10_050))
    def propose_split(self, data: st.DataObject, actor: str, bps: int) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        if trade.status in OPEN and self.near(trade.live_deadline()):
            return
        predicted = (
            self.is_party(actor, trade)
            and trade.status in OPEN
            and self.now() < trade.live_deadline()
            and bps <= BPS
        )
        call = self.client.calls.propose_split(trade.trade_id, trade.terms, bps)
        if self.act(actor, call, predicted, "proposeSplit") is not None:
            trade.proposer = 1 if self.addr[actor] == trade.terms.buyer else 2
            trade.proposed_bps = bps

    @precondition(lambda self: self.trades)
    @rule(
        data=st.data(),
        actor=st.sampled_from(TRADE_ACTORS),
        other_bps=st.none() | st.integers(0, BPS),
    )
    def accept_split(self, data: st.DataObject, actor: str, other_bps: int | None) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        if trade.status in OPEN and self.near(trade.live_deadline()):
            return
        bps = trade.proposed_bps if other_bps is None else other_bps
        side = 1 if self.addr[actor] == trade.terms.buyer else 2
        predicted = (
            self.is_party(actor, trade)
            and trade.status in OPEN
            and self.now() < trade.live_deadline()  # a lapsed offer cannot be accepted
            and trade.proposer not in (0, side)
            and trade.proposed_bps == bps
        )
        call = self.client.calls.accept_split(trade.trade_id, trade.terms, bps)
        result = self.act(actor, call, predicted, "acceptSplit")
        if result is not None:
            self.pay_split(trade, result, Status.SETTLED, trade.terms.amount, bps, 0)

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS))
    def cancel_split(self, data: st.DataObject, actor: str) -> None:
        """Only the proposer withdraws its offer, lapsed or not, while the trade is open."""
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        side = 1 if self.addr[actor] == trade.terms.buyer else 2
        predicted = self.is_party(actor, trade) and trade.status in OPEN and trade.proposer == side
        call = self.client.calls.cancel_split(trade.trade_id, trade.terms)
        result = self.act(actor, call, predicted, "cancelSplit")
        if result is not None:
            assert result.event("SplitCleared").args["byCancel"] is True
            trade.proposer = trade.proposed_bps = 0

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS))
    def open_dispute(self, data: st.DataObject, actor: str) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        if self.near(trade.terms.ship_by, trade.deadline):
            return
        now = self.now()
        in_time = (trade.status == Status.FUNDED and now < trade.terms.ship_by) or (
            trade.status == Status.SHIPPED and now < trade.deadline
        )
        predicted = self.is_party(actor, trade) and in_time
        call = self.client.calls.open_dispute(trade.trade_id, trade.terms)
        result = self.act(actor, call, predicted, "openDispute")
        if result is not None:
            self.move(trade, Status.DISPUTED, self.block_time(result) + RULING_PERIOD)

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS))
    def submit_evidence(self, data: st.DataObject, actor: str) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        t = trade.terms
        predicted = self.addr[actor] in (t.buyer, t.seller, t.arbitrator) and trade.status in OPEN
        call = self.client.calls.submit_evidence(trade.trade_id, t, "ipfs://evidence", b"\x01")
        self.act(actor, call, predicted, "submitEvidence")

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS), bps=st.integers(0, 10_050))
    def rule_dispute(self, data: st.DataObject, actor: str, bps: int) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        if self.near(trade.deadline):
            return
        t = trade.terms
        predicted = (
            self.addr[actor] == t.arbitrator
            and self.registered.get(t.arbitrator, False)  # a removed arbitrator cannot rule
            and trade.status == Status.DISPUTED
            and self.now() < trade.deadline
            and bps <= BPS
        )
        result = self.act(actor, self.client.calls.rule(trade.trade_id, t, bps), predicted, "rule")
        if result is not None:
            arbitrator_fee = t.amount * t.arbitrator_fee_bps // BPS
            self.pay_split(
                trade, result, Status.RESOLVED, t.amount - arbitrator_fee, bps, arbitrator_fee
            )

    @precondition(lambda self: self.trades)
    @rule(data=st.data(), actor=st.sampled_from(TRADE_ACTORS))
    def resolve_after_ruling_timeout(self, data: st.DataObject, actor: str) -> None:
        trade = self.pick(data)
        actor = self.resolve(actor, trade)
        if self.near(trade.deadline):
            return
        predicted = trade.status == Status.DISPUTED and self.now() >= trade.deadline
        call = self.client.calls.resolve_after_ruling_timeout(trade.trade_id, trade.terms)
        result = self.act(actor, call, predicted, "resolveAfterRulingTimeout")
        if result is not None:
            # a seller who never shipped gets nothing from an absent arbitrator
            bps = 5_000 if trade.shipped else BPS
            self.pay_split(trade, result, Status.RESOLVED, trade.terms.amount, bps, 0)

    # ------------------------------------------------------------ money out, time, receivers

    # Money-out and owner rules wait for the first trade: before it they can only revert, and
    # every step spent on them is one less for the trade actions.
    @precondition(lambda self: self.trades)
    @rule(actor=st.sampled_from(ACTORS), in_coin=st.booleans())
    def withdraw(self, actor: str, in_coin: bool) -> None:
        token = self.coin if in_coin else ETH
        payee = self.addr[actor]
        owed = self.credits.get((token, payee), 0)
        refuses = token == ETH and actor == "refuser" and self.refusing
        predicted = owed > 0 and not refuses
        if self.act(actor, self.client.calls.withdraw(token), predicted, "withdraw") is not None:
            self.credits[(token, payee)] = 0

    @precondition(lambda self: self.trades)
    @rule(
        actor=st.sampled_from(ACTORS),
        to=st.sampled_from([*ACTORS, ZERO, ESCROW]),
        in_coin=st.booleans(),
    )
    def withdraw_to(self, actor: str, to: str, in_coin: bool) -> None:
        """A payee sends its credit elsewhere: the receiver gets what the payee was owed."""
        token = self.coin if in_coin else ETH
        payee = self.addr[actor]
        owed = self.credits.get((token, payee), 0)
        receiver = {ZERO: ETH, ESCROW: self.client.address}.get(to) or self.addr[to]
        refuses = token == ETH and to == "refuser" and self.refusing
        predicted = owed > 0 and to not in (ZERO, ESCROW) and not refuses
        call = self.client.calls.withdraw_to(receiver, token)
        result = self.act(actor, call, predicted, "withdrawTo")
        if result is not None:
            assert result.event("Withdrawn").args["to"] == receiver
            self.credits[(token, payee)] = 0
            self.entitled[(token, payee)] -= owed
            self.entitled[(token, receiver)] = self.entitled.get((token, receiver), 0) + owed

    @precondition(lambda self: self.trades)
    @rule(actor=st.sampled_from(["owner", "stranger", "seller"]), in_coin=st.booleans())
    def withdraw_platform_fees(self, actor: str, in_coin: bool) -> None:
        token = self.coin if in_coin else ETH
        predicted = actor == "owner" and self.fees[token] > 0
        call = self.client.calls.withdraw_platform_fees(token)
        if self.act(actor, call, predicted, "withdrawPlatformFees") is not None:
            self.fees[token] = 0

    @precondition(lambda self: self.trades)
    @rule(arbitrator=st.sampled_from(["arbitrator", "arbitrator2"]))
    def remove_or_register_arbitrator(self, arbitrator: str) -> None:
        """The owner removes an arbitrator (it can no longer rule nor be chosen), or registers
        it again with its old fee cap."""
        owner, arb = self.roles.owner, self.addr[arbitrator]
        if self.registered[arb]:
            result = self.client.remove_arbitrator(arb, sender=owner)
        else:
            result = self.client.register_arbitrator(arb, self.max_fee[arb], sender=owner)
        self.paid_gas(result)
        self.registered[arb] = not self.registered[arb]

    # time steps below, across and beyond the delivery windows and inspection periods
    @precondition(lambda self: self.trades)
    @rule(seconds=st.sampled_from([10 * 60, 3 * HOUR, 20 * HOUR, 2 * DAY, 4 * DAY, 8 * DAY]))
    def warp(self, seconds: int) -> None:
        self.chain.increase_time(seconds)

    @precondition(lambda self: self.trades)
    @rule(refusing=st.booleans())
    def switch_refuser(self, refusing: bool) -> None:
        self.refuser.set_reverting(refusing)
        self.refusing = refusing

    @precondition(lambda self: self.trades)
    @rule(fee_bps=st.integers(0, 1_000))
    def set_platform_fee(self, fee_bps: int) -> None:
        """New trades take the new fee; open trades keep the one fixed at funding."""
        owner = self.roles.owner
        self.paid_gas(self.client.set_platform_fee(owner, fee_bps, sender=owner))
        self.fee_bps = fee_bps

    # ------------------------------------------------------------ properties

    def escrow_books(self) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
        """The escrow's credits and accrued fees, read once per block (reads are slow here)."""
        head = bytes(self.chain.w3.eth.get_block("latest")["hash"])
        if self._books_cache is None or self._books_cache[0] != head:
            credits = {
                (t, a): self.client.credits(a, t) for t in self.tokens for a in self.addr.values()
            }
            fees = {t: self.client.accrued_platform_fees(t) for t in self.tokens}
            self._books_cache = (head, credits, fees)
        return self._books_cache[1], self._books_cache[2]

    def received(self, token: str, account: str) -> int:
        balance = self.client.token_balance(token, account)
        return balance - self.start[(token, account)] + self.spent.get((token, account), 0)

    @invariant()
    def solvent(self) -> None:
        credits, fees = self.escrow_books()
        for token in self.tokens:
            assert fees[token] == self.fees[token], "accrued fees differ from the model"
            for account in self.addr.values():
                assert credits[(token, account)] == self.credits.get((token, account), 0), (
                    f"credit of {account} differs from the model"
                )
            credit_sum = sum(v for (t, _), v in credits.items() if t == token)
            balance = self.client.token_balance(token, self.client.address)
            assert balance == self.open_amount[token] + credit_sum + fees[token], "balance != owed"

    @invariant()
    def nobody_overpaid(self) -> None:
        credits, fees = self.escrow_books()
        for token in self.tokens:
            for account in self.addr.values():
                entitled = self.entitled.get((token, account), 0)
                held = credits[(token, account)]
                if account == self.roles.owner:
                    held += fees[token]
                got = self.received(token, account)
                assert got <= entitled, f"{account} received more than was escrowed for it"
                assert got + held == entitled, f"{account}: received + held != entitled"

    @invariant()
    def states_follow_the_model(self) -> None:
        latest = self.chain.latest_timestamp()  # reads run in the latest block
        for trade in self.trades.values():
            state = self.client.trade_state(trade.trade_id, trade.terms)
            assert state.status == trade.status
            assert state.deadline == trade.deadline
            assert (int(state.split_proposer), state.proposed_buyer_bps) == (
                trade.proposer,
                trade.proposed_bps,
            )
            view = self.client.trade_view(trade.trade_id, trade.terms)
            assert (view.superseded, view.status) == (False, trade.status)
            if trade.status not in OPEN:
                assert (view.deadline, view.ended_in_block) == (0, trade.deadline)
                continue
            assert view.deadline == trade.live_deadline()
            if trade.status == Status.SHIPPED:
                started = latest + trade.terms.inspection_period >= trade.stored_end
                assert view.inspection_started == started
                assert (view.extension_days, view.extension_granted) == (
                    trade.extension_days,
                    trade.extension_granted,
                )

    @invariant()
    def lapsed_offers_cannot_be_accepted(self) -> None:
        """An offer whose state timeout has passed reads as none and cannot be accepted."""
        latest = self.chain.latest_timestamp()
        for trade in self.open_trades():
            if trade.proposer == 0 or latest < trade.live_deadline():
                continue
            view = self.client.trade_view(trade.trade_id, trade.terms)
            assert (view.split_proposer, view.proposed_buyer_bps) == (Party.NONE, 0)
            self.assert_cannot_accept(trade)

    def assert_cannot_accept(self, trade: ModelTrade) -> None:
        """Accepting the trade's (lapsed) offer as the other party reverts with DeadlinePassed
        (checked by a gas estimate in the pending block, so nothing is sent)."""
        t = trade.terms
        other = t.seller if trade.proposer == int(Party.BUYER) else t.buyer
        call = self.client.calls.accept_split(trade.trade_id, t, trade.proposed_bps)
        if other == self.refuser.address:
            fn = self.refuser.contract.functions.forward(self.client.address, _calldata(call))
            call, other = PreparedCall(fn), self.refuser.controller
        with pytest.raises(DeadlinePassed) as info:
            self.client.unsigned(call, other)
        assert info.value.args_by_name == {
            "tradeId": trade.trade_id,
            "deadline": trade.live_deadline(),
        }

    @invariant()
    def timeouts_finish_every_trade(self) -> None:
        open_trades = self.open_trades()
        if not open_trades:
            return
        snapshot = self.chain.snapshot()
        try:
            exits = [
                t.terms.ship_by if t.status == Status.FUNDED else t.deadline for t in open_trades
            ]
            self.chain.increase_time(max(max(exits) - self.chain.latest_timestamp(), 0) + 1)
            for t in open_trades:  # every open offer has lapsed now
                if t.proposer:
                    self.assert_cannot_accept(t)
            calls = self.client.calls
            for t in open_trades:
                exit_call = {
                    Status.FUNDED: calls.refund_after_deadline,
                    Status.SHIPPED: calls.release_after_inspection,
                    Status.DISPUTED: calls.resolve_after_ruling_timeout,
                }[t.status](t.trade_id, t.terms)
                self.client.send(exit_call, self.roles.stranger)
                assert not self.client.trade_state(t.trade_id, t.terms).status.is_open
            for token in self.tokens:
                credits = sum(self.client.credits(a, token) for a in self.addr.values())
                assert self.client.token_balance(token, self.client.address) == (
                    credits + self.client.accrued_platform_fees(token)
                ), "money left behind"
        finally:
            self.chain.revert(snapshot)


def _calldata(call: PreparedCall) -> bytes:
    return bytes.fromhex(call.function._encode_transaction_data()[2:])


@pytest.mark.slow
def test_escrow_state_machine(
    chain: Chain,
    deployment: Deployment,
    roles: Roles,
    keys: dict[str, LocalAccount],
    stablecoin: str,
) -> None:
    client = deployment.client(chain)
    EscrowMachine.client = client
    EscrowMachine.roles = roles
    EscrowMachine.keys = keys
    EscrowMachine.coin = stablecoin
    EscrowMachine.refuser = Refuser(client, chain.accounts[5])
    # A fresh seed each run unless pytest's --hypothesis-seed gives one; printed for replay.
    forced = hypothesis_core.global_force_seed
    seed = forced if forced is not None else random.randrange(2**32)
    print(f"hypothesis seed: {seed} (replay with --hypothesis-seed={seed})")
    hypothesis_core.global_force_seed = seed
    try:
        run_state_machine_as_test(
            EscrowMachine,
            settings=settings(
                max_examples=int(os.environ.get("ESCROW_HYPOTHESIS_EXAMPLES", "6")),
                stateful_step_count=int(os.environ.get("ESCROW_HYPOTHESIS_STEPS", "15")),
                deadline=None,
                derandomize=False,
                database=None,
                print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        hypothesis_core.global_force_seed = forced
        names = sorted({what for what, _ in EscrowMachine.outcomes})
        print(
            "calls (succeeded/reverted): "
            + ", ".join(
                f"{n} {EscrowMachine.outcomes.get((n, True), 0)}/"
                f"{EscrowMachine.outcomes.get((n, False), 0)}"
                for n in names
            )
        )
        EscrowMachine.outcomes = {}
