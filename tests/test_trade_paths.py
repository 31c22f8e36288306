"""Every trade path, in ETH and in the test stablecoin.

Each path checks the money moved to the wei or token unit (fees included), the events with
their arguments, the final status, and the escrow's books after every step: what the escrow
holds of a token must equal the amounts of the open trades plus the credits plus the accrued
platform fees, as tracked here independently of the contract (:class:`Ledger`).

Also here: lane reuse and every bad-input revert the interface names, with its arguments.
The money helpers (:class:`Ledger`, :class:`Watch`, :func:`deploy_contract`) are imported by
the other escrow test modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract

from escrow.chain import Chain
from escrow.client import (
    ETH,
    EscrowClient,
    Funded,
    Party,
    Status,
    Terms,
    TxResult,
    split_trade_id,
    trade_id_of,
)
from escrow.compiler import load_artifact
from escrow.errors import (
    AmountTooLarge,
    ArbitratorFeeTooHigh,
    ArbitratorIsParty,
    ArbitratorNotRegistered,
    ContractRevert,
    DeadlineInPast,
    DeadlineNotReached,
    DeadlinePassed,
    DeadlineTooFar,
    DeliveryWindowTooLong,
    EscrowCannotBeParty,
    ExtensionAlreadyRequested,
    FeeOnTransferToken,
    FundingPaused,
    InspectionAlreadyStarted,
    InspectionPeriodTooLong,
    InspectionPeriodTooShort,
    InvalidBps,
    InvalidExtension,
    InvalidStatus,
    LaneBusy,
    NoExtensionRequested,
    NoMatchingProposal,
    NoProposalToCancel,
    NotBuyer,
    NothingToWithdraw,
    NotParty,
    NotSeller,
    PlatformFeeAboveLimit,
    PlatformFeeTooHigh,
    SellerIsBuyer,
    TermsMismatch,
    TokenNotAllowed,
    UnknownTrade,
    WrongPayment,
    ZeroAddress,
    ZeroAmount,
)
from escrow.transactions import PreparedCall
from helpers import DAY, ONE_ETH, USD, Roles, open_trade

BPS = 10_000
PLATFORM_FEE_BPS = 100  # the embedded deployment's fee
ARBITRATOR_FEE_BPS = 200
SHIP_WITHIN = 3 * DAY
INSPECTION = 2 * DAY
RULING_PERIOD = 7 * DAY
# Odd amounts, so that every division in the contract rounds.
AMOUNTS = {"eth": 1_234_567_890_123_456_789, "usd": 1_234_567_891}


# ------------------------------------------------------------------ money helpers


def deploy_contract(chain: Chain, name: str, args: list[Any], sender: str) -> Contract:
    """Deploys a contract compiled from contracts/ and returns it bound to its address."""
    artifact = load_artifact(name)
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx_hash = factory.constructor(*args).transact({"from": sender})
    receipt = chain.wait_for_receipt(tx_hash)
    assert receipt["status"] == 1, f"{name} deployment reverted"
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


def calldata(call: PreparedCall) -> bytes:
    """The ABI-encoded call data of a prepared call (to forward it through a contract)."""
    return bytes.fromhex(call.function._encode_transaction_data()[2:])


def funded_from(result: TxResult) -> tuple[int, Terms]:
    """Trade id and terms from the TradeFunded event of a transaction."""
    event = result.event("TradeFunded")
    return int(event.args["tradeId"]), Terms.from_event(event.args["terms"])


def gas_cost(chain: Chain, result: TxResult) -> tuple[str, int]:
    """(sender, wei paid for gas) of a mined transaction."""
    receipt = chain.w3.eth.get_transaction_receipt(result.tx_hash)
    return to_checksum_address(receipt["from"]), receipt["gasUsed"] * receipt["effectiveGasPrice"]


def block_time(chain: Chain, result: TxResult) -> int:
    return int(chain.w3.eth.get_block(result.block_number)["timestamp"])


class Watch:
    """Balances of one token for some accounts; :meth:`moved` gives the change since then.

    For ETH the gas the transaction's sender paid is added back, so the result is exactly what
    the escrow moved. Accounts whose balance did not change are left out.
    """

    def __init__(self, client: EscrowClient, token: str, accounts: list[str]) -> None:
        self.client = client
        self.token = token
        self.accounts = list(dict.fromkeys(to_checksum_address(a) for a in accounts))
        self.before = self._balances()

    def _balances(self) -> dict[str, int]:
        return {a: self.client.token_balance(self.token, a) for a in self.accounts}

    def moved(self, result: TxResult) -> dict[str, int]:
        after = self._balances()
        delta = {a: after[a] - self.before[a] for a in self.accounts}
        if int(self.token, 16) == 0:
            sender, cost = gas_cost(self.client.chain, result)
            if sender in delta:
                delta[sender] += cost
        self.before = after
        return {a: d for a, d in delta.items() if d != 0}


@dataclass
class Ledger:
    """What the escrow must hold of each token, tracked independently of the contract."""

    client: EscrowClient
    tokens: list[str]
    open: dict[int, tuple[str, int]] = field(default_factory=dict)
    credits: dict[tuple[str, str], int] = field(default_factory=dict)
    fees: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tokens = [to_checksum_address(t) for t in self.tokens]
        for token in self.tokens:
            self.fees[token] = self.client.accrued_platform_fees(token)
        self.check()

    def funded(self, trade_id: int, terms: Terms) -> None:
        assert trade_id not in self.open
        self.open[trade_id] = (terms.token, terms.amount)

    def closed(
        self, trade_id: int, *, fee: int = 0, deferred: dict[str, int] | None = None
    ) -> None:
        """A trade paid out: its amount leaves, except the fee and the payouts that failed."""
        token, _ = self.open.pop(trade_id)
        self.fees[token] += fee
        for payee, amount in (deferred or {}).items():
            key = (token, to_checksum_address(payee))
            self.credits[key] = self.credits.get(key, 0) + amount

    def withdrawn(self, token: str, payee: str) -> int:
        return self.credits.pop((to_checksum_address(token), to_checksum_address(payee)))

    def fees_withdrawn(self, token: str) -> int:
        token = to_checksum_address(token)
        amount, self.fees[token] = self.fees[token], 0
        return amount

    def held(self, token: str) -> int:
        token = to_checksum_address(token)
        return (
            sum(amount for t, amount in self.open.values() if t == token)
            + sum(amount for (t, _), amount in self.credits.items() if t == token)
            + self.fees[token]
        )

    def check(self) -> None:
        """The invariant: escrow balance == open amounts + credits + accrued fees, per token."""
        for token in self.tokens:
            assert self.client.accrued_platform_fees(token) == self.fees[token], token
            for (t, payee), amount in self.credits.items():
                assert self.client.credits(payee, t) == amount, (t, payee)
            assert self.client.token_balance(token, self.client.address) == self.held(token)


def raises(error: type[ContractRevert], action: Callable[[], object], **expected: Any) -> None:
    """Asserts that ``action`` reverts with ``error`` and exactly the arguments ``expected``."""
    with pytest.raises(error) as info:
        action()
    assert info.value.args_by_name == expected


def split_amounts(
    amount: int, buyer_bps: int, fee_bps: int = PLATFORM_FEE_BPS
) -> tuple[int, int, int]:
    """(buyer, seller, platform fee) as the contract computes them: fee on the seller's part."""
    buyer = amount * buyer_bps // BPS
    fee = (amount - buyer) * fee_bps // BPS
    return buyer, amount - buyer - fee, fee


# ------------------------------------------------------------------ fixtures


@pytest.fixture(params=["eth", "usd"])
def token(request: pytest.FixtureRequest, stablecoin: str) -> str:
    return ETH if request.param == "eth" else stablecoin


@pytest.fixture
def amount(token: str) -> int:
    return AMOUNTS["eth"] if int(token, 16) == 0 else AMOUNTS["usd"]


@pytest.fixture
def ledger(client: EscrowClient, stablecoin: str) -> Ledger:
    return Ledger(client, [ETH, stablecoin])


@pytest.fixture
def watch_all(client: EscrowClient, roles: Roles) -> Callable[[str], Watch]:
    accounts = [
        roles.buyer,
        roles.seller,
        roles.arbitrator,
        roles.owner,
        roles.stranger,
        client.address,
    ]
    return lambda token: Watch(client, token, accounts)


@dataclass
class Opened:
    trade_id: int
    terms: Terms
    result: Funded


def fund_checked(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    token: str,
    amount: int,
    lane: int | None = None,
    delivery_window: int = 0,
) -> Opened:
    """Funds a trade (approve + fund) and checks its money, its event and its state."""
    if int(token, 16) != 0:
        client.approve(token, amount, sender=roles.buyer)
    watch = Watch(client, token, [roles.buyer, client.address])
    ship_by = client.chain.latest_timestamp() + SHIP_WITHIN
    funded = client.fund(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        token=token,
        amount=amount,
        ship_by=ship_by,
        inspection_period=INSPECTION,
        arbitrator_fee_bps=ARBITRATOR_FEE_BPS,
        listing_ref=b"listing-1",
        lane=lane,
        delivery_window=delivery_window,
        max_platform_fee_bps=PLATFORM_FEE_BPS,
        sender=roles.buyer,
    )
    buyer, used_lane, block = split_trade_id(funded.trade_id)
    assert (buyer, block) == (roles.buyer, funded.block_number)
    assert used_lane == (lane if lane is not None else used_lane)
    assert funded.terms == Terms(
        roles.buyer,
        roles.seller,
        roles.arbitrator,
        to_checksum_address(token),
        amount,
        ship_by,
        INSPECTION,
        ARBITRATOR_FEE_BPS,
        PLATFORM_FEE_BPS,
        delivery_window,
    )
    assert funded.terms.version == 2
    assert [e.name for e in funded.events] == ["TradeFunded"]
    event = funded.event("TradeFunded")
    assert event.args["tradeId"] == funded.trade_id
    assert (event.args["buyer"], event.args["seller"]) == (roles.buyer, roles.seller)
    assert event.args["terms"] == {
        "buyer": roles.buyer,
        "seller": roles.seller,
        "arbitrator": roles.arbitrator,
        "token": to_checksum_address(token),
        "amount": amount,
        "shipBy": ship_by,
        "inspectionPeriod": INSPECTION,
        "arbitratorFeeBps": ARBITRATOR_FEE_BPS,
        "platformFeeBps": PLATFORM_FEE_BPS,
        "deliveryWindow": delivery_window,
    }
    assert event.args["listingRef"] == b"listing-1".ljust(32, b"\0")
    assert watch.moved(funded) == {roles.buyer: -amount, client.address: amount}
    state = client.trade_state(funded.trade_id, funded.terms)
    assert (state.status, state.deadline, state.split_proposer) == (Status.FUNDED, 0, Party.NONE)
    assert state.terms_hash == client.hash_terms(funded.trade_id, funded.terms)
    ledger.funded(funded.trade_id, funded.terms)
    ledger.check()
    return Opened(funded.trade_id, funded.terms, funded)


def cleared_events(client: EscrowClient, trade: Opened) -> list[tuple[str, dict[str, Any]]]:
    """The SplitCleared event a state change emits when a split proposal is open."""
    state = client.trade_state(trade.trade_id, trade.terms)
    if state.split_proposer == Party.NONE:
        return []
    return [("SplitCleared", {"tradeId": trade.trade_id, "byCancel": False})]


def ship_checked(client: EscrowClient, roles: Roles, trade: Opened) -> int:
    """Marks shipped; returns the latest end of the inspection period (delivery window end
    plus inspection period)."""
    cleared = cleared_events(client, trade)
    result = client.mark_shipped(
        trade.trade_id, trade.terms, sender=roles.seller, shipment_ref=b"parcel-42"
    )
    window = trade.terms.delivery_window or 0
    ends = block_time(client.chain, result) + window + INSPECTION
    assert [(e.name, e.args) for e in result.events] == cleared + [
        (
            "TradeShipped",
            {
                "tradeId": trade.trade_id,
                "shipmentRef": b"parcel-42".ljust(32, b"\0"),
                "inspectionEndsAt": ends,
            },
        )
    ]
    state = client.trade_state(trade.trade_id, trade.terms)
    assert (state.status, state.deadline) == (Status.SHIPPED, ends)
    assert (state.split_proposer, state.proposed_buyer_bps) == (Party.NONE, 0)
    view = client.trade_view(trade.trade_id, trade.terms)
    assert (view.status, view.deadline, view.inspection_started) == (
        Status.SHIPPED,
        ends,
        window == 0,
    )
    assert (view.extension_days, view.extension_granted) == (0, False)
    return ends


def dispute_checked(client: EscrowClient, roles: Roles, trade: Opened, opener: str) -> int:
    """Opens a dispute; returns the ruling deadline."""
    cleared = cleared_events(client, trade)
    result = client.open_dispute(trade.trade_id, trade.terms, sender=opener)
    deadline = block_time(client.chain, result) + RULING_PERIOD
    assert [(e.name, e.args) for e in result.events] == cleared + [
        (
            "DisputeOpened",
            {"tradeId": trade.trade_id, "openedBy": opener, "rulingDeadline": deadline},
        )
    ]
    state = client.trade_state(trade.trade_id, trade.terms)
    assert (state.status, state.deadline) == (Status.DISPUTED, deadline)
    return deadline


def assert_final(client: EscrowClient, trade: Opened, status: Status, result: TxResult) -> None:
    state = client.trade_state(trade.trade_id, trade.terms)
    assert state.status == status
    assert state.deadline == result.block_number  # a final trade keeps the block it ended in
    assert (state.split_proposer, state.proposed_buyer_bps) == (Party.NONE, 0)
    view = client.trade_view(trade.trade_id, trade.terms)
    assert (view.superseded, view.status, view.deadline, view.ended_in_block) == (
        False,
        status,
        0,
        result.block_number,
    )
    assert view.split_proposer == Party.NONE


def move_to(client: EscrowClient, roles: Roles, trade: Opened, status: str) -> None:
    if status in ("shipped", "disputed_after_shipping"):
        ship_checked(client, roles, trade)
    if status.startswith("disputed"):
        dispute_checked(client, roles, trade, roles.buyer)


# ------------------------------------------------------------------ happy paths


@pytest.mark.parametrize("shipped", [True, False], ids=["shipped", "in-person"])
def test_fund_ship_confirm_then_fees_withdrawn(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    token: str,
    amount: int,
    watch_all: Callable[[str], Watch],
    shipped: bool,
) -> None:
    trade = fund_checked(client, roles, ledger, token, amount)
    if shipped:
        ship_checked(client, roles, trade)
        ledger.check()
    watch = watch_all(token)
    result = client.confirm_receipt(trade.trade_id, trade.terms, sender=roles.buyer)

    fee = amount * PLATFORM_FEE_BPS // BPS
    assert [(e.name, e.args) for e in result.events] == [
        (
            "TradeReleased",
            {
                "tradeId": trade.trade_id,
                "byBuyer": True,
                "sellerAmount": amount - fee,
                "platformFee": fee,
            },
        )
    ]
    assert watch.moved(result) == {roles.seller: amount - fee, client.address: -(amount - fee)}
    assert_final(client, trade, Status.RELEASED, result)
    ledger.closed(trade.trade_id, fee=fee)
    ledger.check()

    result = client.withdraw_platform_fees(sender=roles.owner, token=token)
    assert [(e.name, e.args) for e in result.events] == [
        (
            "PlatformFeesWithdrawn",
            {"token": token, "recipient": roles.owner, "amount": fee},
        )
    ]
    assert watch.moved(result) == {roles.owner: fee, client.address: -fee}
    assert ledger.fees_withdrawn(token) == fee
    ledger.check()


def test_release_after_inspection_by_anyone(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    token: str,
    amount: int,
    keys: dict[str, LocalAccount],
    watch_all: Callable[[str], Watch],
) -> None:
    if int(token, 16) == 0:
        trade = fund_checked(client, roles, ledger, token, amount)
    else:  # the token trade is funded with a permit instead of an approval
        watch = watch_all(token)
        funded = client.fund_with_permit(
            seller=roles.seller,
            arbitrator=roles.arbitrator,
            token=token,
            amount=amount,
            ship_by=client.chain.latest_timestamp() + SHIP_WITHIN,
            inspection_period=INSPECTION,
            arbitrator_fee_bps=ARBITRATOR_FEE_BPS,
            sender=keys[roles.buyer],
        )
        assert funded.terms is not None and funded.terms.buyer == roles.buyer
        assert watch.moved(funded) == {roles.buyer: -amount, client.address: amount}
        assert client.token(token).functions.allowance(roles.buyer, client.address).call() == 0
        trade = Opened(funded.trade_id, funded.terms, funded)
        ledger.funded(trade.trade_id, trade.terms)
        ledger.check()
    ends = ship_checked(client, roles, trade)
    client.chain.increase_time(ends - client.chain.latest_timestamp() - 1)
    # The next block is the first one at the end of the inspection period.
    watch = watch_all(token)
    result = client.release_after_inspection(trade.trade_id, trade.terms, sender=roles.stranger)
    assert block_time(client.chain, result) == ends
    fee = amount * PLATFORM_FEE_BPS // BPS
    assert [(e.name, e.args) for e in result.events] == [
        (
            "TradeReleased",
            {
                "tradeId": trade.trade_id,
                "byBuyer": False,
                "sellerAmount": amount - fee,
                "platformFee": fee,
            },
        )
    ]
    assert watch.moved(result) == {roles.seller: amount - fee, client.address: -(amount - fee)}
    assert_final(client, trade, Status.RELEASED, result)
    ledger.closed(trade.trade_id, fee=fee)
    ledger.check()


def test_permit_already_submitted_by_someone_else_still_funds(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    stablecoin: str,
    keys: dict[str, LocalAccount],
) -> None:
    amount = 250 * USD
    deadline = client.chain.latest_timestamp() + 3600
    v, r, s = client.sign_permit(stablecoin, keys[roles.buyer], amount, deadline)
    # A front-runner copies the permit from the mempool and submits it first.
    permit = client.token(stablecoin).functions.permit(
        roles.buyer, client.address, amount, deadline, v, r, s
    )
    client.send(PreparedCall(permit), roles.stranger)
    call = client.calls.fund_with_permit(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        token=stablecoin,
        amount=amount,
        ship_by=client.chain.latest_timestamp() + SHIP_WITHIN,
        inspection_period=INSPECTION,
        permit_deadline=deadline,
        v=v,
        r=r,
        s=s,
        lane=0,
        max_platform_fee_bps=PLATFORM_FEE_BPS,
    )
    watch = Watch(client, stablecoin, [roles.buyer, client.address])
    result = client.send(call, roles.buyer)
    trade_id, terms = funded_from(result)
    assert watch.moved(result) == {roles.buyer: -amount, client.address: amount}
    assert client.trade_state(trade_id, terms).status == Status.FUNDED
    ledger.funded(trade_id, terms)
    ledger.check()


def test_refund_after_ship_by_deadline_by_anyone(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    token: str,
    amount: int,
    watch_all: Callable[[str], Watch],
) -> None:
    trade = fund_checked(client, roles, ledger, token, amount)
    client.chain.increase_time(trade.terms.ship_by - client.chain.latest_timestamp() - 1)
    watch = watch_all(token)
    result = client.refund_after_deadline(trade.trade_id, trade.terms, sender=roles.stranger)
    assert block_time(client.chain, result) == trade.terms.ship_by
    assert [(e.name, e.args) for e in result.events] == [
        (
            "TradeRefunded",
            {"tradeId": trade.trade_id, "afterDeadline": True, "buyerAmount": amount},
        )
    ]
    assert watch.moved(result) == {roles.buyer: amount, client.address: -amount}
    assert_final(client, trade, Status.REFUNDED, result)
    ledger.closed(trade.trade_id)
    ledger.check()


@pytest.mark.parametrize("status", ["funded", "shipped", "disputed"])
def test_refund_by_seller_while_open(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    token: str,
    amount: int,
    watch_all: Callable[[str], Watch],
    status: str,
) -> None:
    trade = fund_checked(client, roles, ledger, token, amount)
    move_to(client, roles, trade, status)
    watch = watch_all(token)
    result = client.refund_by_seller(trade.trade_id, trade.terms, sender=roles.seller)
    assert [(e.name, e.args) for e in result.events] == [
        (
            "TradeRefunded",
            {"tradeId": trade.trade_id, "afterDeadline": False, "buyerAmount": amount},
        )
    ]
    assert watch.moved(result) == {roles.buyer: amount, client.address: -amount}
    assert_final(client, trade, Status.REFUNDED, result)
    ledger.closed(trade.trade_id)
    ledger.check()


@pytest.mark.parametrize(
    ("status", "first", "final_bps"),
    [
        ("funded", "buyer", 6_000),
        ("shipped", "seller", 3_333),
        ("disputed", "buyer", 10_000),
        ("disputed_after_shipping", "seller", 0),
    ],
)
def test_split_proposed_countered_and_accepted(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    token: str,
    amount: int,
    watch_all: Callable[[str], Watch],
    status: str,
    first: str,
    final_bps: int,
) -> None:
    trade = fund_checked(client, roles, ledger, token, amount)
    move_to(client, roles, trade, status)
    proposer, other = (
        (roles.buyer, roles.seller) if first == "buyer" else (roles.seller, roles.buyer)
    )
    # The first proposal is replaced by the counter-proposal; only that one can be accepted.
    result = client.propose_split(trade.trade_id, trade.terms, 5_000, sender=proposer)
    assert [(e.name, e.args) for e in result.events] == [
        (
            "SplitProposed",
            {"tradeId": trade.trade_id, "proposer": proposer, "buyerBps": 5_000},
        )
    ]
    result = client.propose_split(trade.trade_id, trade.terms, final_bps, sender=other)
    assert result.event("SplitProposed").args["proposer"] == other
    state = client.trade_state(trade.trade_id, trade.terms)
    expected_party = Party.SELLER if other == roles.seller else Party.BUYER
    assert (state.split_proposer, state.proposed_buyer_bps) == (expected_party, final_bps)
    raises(
        NoMatchingProposal,
        lambda: client.accept_split(trade.trade_id, trade.terms, 5_000, sender=other),
        tradeId=trade.trade_id,
        buyerBps=5_000,
    )

    watch = watch_all(token)
    result = client.accept_split(trade.trade_id, trade.terms, final_bps, sender=proposer)
    buyer_part, seller_part, fee = split_amounts(amount, final_bps)
    assert [(e.name, e.args) for e in result.events] == [
        (
            "TradeSettled",
            {
                "tradeId": trade.trade_id,
                "buyerBps": final_bps,
                "buyerAmount": buyer_part,
                "sellerAmount": seller_part,
                "platformFee": fee,
            },
        )
    ]
    expected = {
        roles.buyer: buyer_part,
        roles.seller: seller_part,
        client.address: -(buyer_part + seller_part),
    }
    assert watch.moved(result) == {a: v for a, v in expected.items() if v}
    assert_final(client, trade, Status.SETTLED, result)
    ledger.closed(trade.trade_id, fee=fee)
    ledger.check()


@pytest.mark.parametrize(
    ("opened_in", "opener", "buyer_bps"),
    [("funded", "buyer", 7_000), ("shipped", "seller", 2_500), ("shipped", "buyer", 10_000)],
)
def test_dispute_evidence_and_ruling(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    token: str,
    amount: int,
    watch_all: Callable[[str], Watch],
    opened_in: str,
    opener: str,
    buyer_bps: int,
) -> None:
    trade = fund_checked(client, roles, ledger, token, amount)
    if opened_in == "shipped":
        ship_checked(client, roles, trade)
    deadline = dispute_checked(client, roles, trade, roles.by_name(opener))
    for author in (roles.buyer, roles.seller, roles.arbitrator):
        uri = f"ipfs://evidence-from-{author[:8]}"
        digest = keccak(text=uri)
        result = client.submit_evidence(trade.trade_id, trade.terms, uri, digest, sender=author)
        assert [(e.name, e.args) for e in result.events] == [
            (
                "EvidenceSubmitted",
                {
                    "tradeId": trade.trade_id,
                    "submittedBy": author,
                    "uri": uri,
                    "contentHash": digest,
                },
            )
        ]
    assert client.trade_state(trade.trade_id, trade.terms).status == Status.DISPUTED
    ledger.check()

    # The last second before the ruling deadline is still in time.
    client.chain.increase_time(deadline - client.chain.latest_timestamp() - 2)
    watch = watch_all(token)
    result = client.rule(trade.trade_id, trade.terms, buyer_bps, sender=roles.arbitrator)
    assert block_time(client.chain, result) == deadline - 1
    arbitrator_fee = amount * ARBITRATOR_FEE_BPS // BPS
    buyer_part, seller_part, fee = split_amounts(amount - arbitrator_fee, buyer_bps)
    assert [(e.name, e.args) for e in result.events] == [
        (
            "DisputeResolved",
            {
                "tradeId": trade.trade_id,
                "byTimeout": False,
                "buyerBps": buyer_bps,
                "buyerAmount": buyer_part,
                "sellerAmount": seller_part,
                "arbitratorFee": arbitrator_fee,
                "platformFee": fee,
            },
        )
    ]
    assert buyer_part + seller_part + fee + arbitrator_fee == amount
    expected = {
        roles.buyer: buyer_part,
        roles.seller: seller_part,
        roles.arbitrator: arbitrator_fee,
        client.address: -(buyer_part + seller_part + arbitrator_fee),
    }
    assert watch.moved(result) == {a: v for a, v in expected.items() if v}
    assert_final(client, trade, Status.RESOLVED, result)
    ledger.closed(trade.trade_id, fee=fee)
    ledger.check()


def test_ruling_timeout_splits_half_without_arbitrator_fee(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    token: str,
    amount: int,
    watch_all: Callable[[str], Watch],
) -> None:
    trade = fund_checked(client, roles, ledger, token, amount)
    ship_checked(client, roles, trade)
    deadline = dispute_checked(client, roles, trade, roles.seller)
    client.chain.increase_time(deadline - client.chain.latest_timestamp() - 1)
    watch = watch_all(token)
    result = client.resolve_after_ruling_timeout(trade.trade_id, trade.terms, sender=roles.stranger)
    assert block_time(client.chain, result) == deadline
    buyer_part, seller_part, fee = split_amounts(amount, 5_000)
    assert [(e.name, e.args) for e in result.events] == [
        (
            "DisputeResolved",
            {
                "tradeId": trade.trade_id,
                "byTimeout": True,
                "buyerBps": 5_000,
                "buyerAmount": buyer_part,
                "sellerAmount": seller_part,
                "arbitratorFee": 0,
                "platformFee": fee,
            },
        )
    ]
    assert watch.moved(result) == {
        roles.buyer: buyer_part,
        roles.seller: seller_part,
        client.address: -(buyer_part + seller_part),
    }
    assert_final(client, trade, Status.RESOLVED, result)
    ledger.closed(trade.trade_id, fee=fee)
    ledger.check()


def test_ruling_timeout_refunds_the_buyer_when_never_shipped(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    token: str,
    amount: int,
    watch_all: Callable[[str], Watch],
) -> None:
    """A seller who disputes instead of shipping gains nothing from an absent arbitrator."""
    trade = fund_checked(client, roles, ledger, token, amount)
    deadline = dispute_checked(client, roles, trade, roles.seller)
    client.chain.increase_time(deadline - client.chain.latest_timestamp() - 1)
    watch = watch_all(token)
    result = client.resolve_after_ruling_timeout(trade.trade_id, trade.terms, sender=roles.stranger)
    assert [(e.name, e.args) for e in result.events] == [
        (
            "DisputeResolved",
            {
                "tradeId": trade.trade_id,
                "byTimeout": True,
                "buyerBps": 10_000,
                "buyerAmount": amount,
                "sellerAmount": 0,
                "arbitratorFee": 0,
                "platformFee": 0,
            },
        )
    ]
    assert watch.moved(result) == {roles.buyer: amount, client.address: -amount}
    assert_final(client, trade, Status.RESOLVED, result)
    ledger.closed(trade.trade_id, fee=0)
    ledger.check()


def test_platform_fee_is_fixed_at_funding(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    stablecoin: str,
    watch_all: Callable[[str], Watch],
) -> None:
    old = fund_checked(client, roles, ledger, stablecoin, 1_000 * USD)
    result = client.set_platform_fee(roles.stranger, 300, sender=roles.owner)
    assert result.event("PlatformFeeUpdated").args == {"recipient": roles.stranger, "feeBps": 300}
    # A buyer who was shown the old 1% is protected against the raise (v2 fee cap).
    client.approve(stablecoin, 1_000 * USD, sender=roles.buyer)
    raises(
        PlatformFeeAboveLimit,
        lambda: client.fund(
            seller=roles.seller,
            arbitrator=roles.arbitrator,
            token=stablecoin,
            amount=1_000 * USD,
            ship_by=client.chain.latest_timestamp() + DAY,
            inspection_period=INSPECTION,
            max_platform_fee_bps=PLATFORM_FEE_BPS,
            sender=roles.buyer,
        ),
        feeBps=300,
        maxFeeBps=PLATFORM_FEE_BPS,
    )
    funded = open_trade(client, roles, token=stablecoin, amount=1_000 * USD)
    assert funded.terms is not None and funded.terms.platform_fee_bps == 300
    ledger.funded(funded.trade_id, funded.terms)

    watch = watch_all(stablecoin)
    result = client.confirm_receipt(old.trade_id, old.terms, sender=roles.buyer)
    assert watch.moved(result) == {roles.seller: 990 * USD, client.address: -990 * USD}
    ledger.closed(old.trade_id, fee=10 * USD)
    result = client.confirm_receipt(funded.trade_id, funded.terms, sender=roles.buyer)
    assert watch.moved(result) == {roles.seller: 970 * USD, client.address: -970 * USD}
    ledger.closed(funded.trade_id, fee=30 * USD)
    ledger.check()
    # Fees accrued under the old recipient go to the new one.
    result = client.withdraw_platform_fees(sender=roles.owner, token=stablecoin)
    assert watch.moved(result) == {roles.stranger: 40 * USD, client.address: -40 * USD}
    ledger.fees_withdrawn(stablecoin)
    ledger.check()


def test_paused_funding_keeps_every_exit_open(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    stablecoin: str,
    keys: dict[str, LocalAccount],
) -> None:
    trade = fund_checked(client, roles, ledger, ETH, ONE_ETH)
    result = client.set_funding_paused(True, sender=roles.owner)
    assert result.event("FundingPausedSet").args == {"paused": True}
    raises(FundingPaused, lambda: open_trade(client, roles))
    raises(
        FundingPaused,
        lambda: client.fund_with_permit(
            seller=roles.seller,
            arbitrator=roles.arbitrator,
            token=stablecoin,
            amount=USD,
            ship_by=client.chain.latest_timestamp() + DAY,
            inspection_period=INSPECTION,
            sender=keys[roles.buyer],
        ),
    )
    ship_checked(client, roles, trade)
    client.propose_split(trade.trade_id, trade.terms, 4_000, sender=roles.seller)
    client.accept_split(trade.trade_id, trade.terms, 4_000, sender=roles.buyer)
    ledger.closed(trade.trade_id, fee=split_amounts(ONE_ETH, 4_000)[2])
    ledger.check()
    client.set_funding_paused(False, sender=roles.owner)
    assert open_trade(client, roles).trade_id


def test_disallowed_token_still_pays_out_its_open_trades(
    client: EscrowClient, roles: Roles, ledger: Ledger, stablecoin: str
) -> None:
    trade = fund_checked(client, roles, ledger, stablecoin, 10 * USD)
    result = client.set_token_allowed(stablecoin, False, sender=roles.owner)
    assert result.event("TokenAllowanceUpdated").args == {"token": stablecoin, "allowed": False}
    watch = Watch(client, stablecoin, [roles.seller, client.address])
    result = client.confirm_receipt(trade.trade_id, trade.terms, sender=roles.buyer)
    fee = 10 * USD * PLATFORM_FEE_BPS // BPS
    assert watch.moved(result) == {roles.seller: 10 * USD - fee, client.address: fee - 10 * USD}
    ledger.closed(trade.trade_id, fee=fee)
    result = client.withdraw_platform_fees(sender=roles.owner, token=stablecoin)
    assert result.event("PlatformFeesWithdrawn").args["amount"] == fee
    ledger.fees_withdrawn(stablecoin)
    ledger.check()


def test_removed_arbitrator_cannot_rule_its_open_trades(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    """v2: a removed (e.g. compromised) arbitrator moves no money; the ruling timeout applies,
    and the parties can still settle or the seller refund."""
    trade = fund_checked(client, roles, ledger, ETH, ONE_ETH)
    ship_checked(client, roles, trade)
    deadline = dispute_checked(client, roles, trade, roles.buyer)
    result = client.remove_arbitrator(roles.arbitrator, sender=roles.owner)
    assert result.event("ArbitratorRemoved").args == {"arbitrator": roles.arbitrator}
    raises(ArbitratorNotRegistered, lambda: open_trade(client, roles), arbitrator=roles.arbitrator)
    raises(
        ArbitratorNotRegistered,
        lambda: client.rule(trade.trade_id, trade.terms, 0, sender=roles.arbitrator),
        arbitrator=roles.arbitrator,
    )
    # Evidence can still be recorded; the dispute ends by the timeout (50/50 after shipping).
    client.submit_evidence(trade.trade_id, trade.terms, "ipfs://x", b"\1", sender=roles.buyer)
    client.chain.increase_time(deadline - client.chain.latest_timestamp() - 1)
    result = client.resolve_after_ruling_timeout(trade.trade_id, trade.terms, sender=roles.stranger)
    args = result.event("DisputeResolved").args
    assert (args["byTimeout"], args["buyerBps"], args["arbitratorFee"]) == (True, 5_000, 0)
    ledger.closed(trade.trade_id, fee=args["platformFee"])
    ledger.check()


def test_reregistered_arbitrator_can_rule_again(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    trade = fund_checked(client, roles, ledger, ETH, ONE_ETH)
    dispute_checked(client, roles, trade, roles.seller)
    client.remove_arbitrator(roles.arbitrator, sender=roles.owner)
    client.register_arbitrator(roles.arbitrator, 500, sender=roles.owner)
    result = client.rule(trade.trade_id, trade.terms, 10_000, sender=roles.arbitrator)
    args = result.event("DisputeResolved").args
    assert args["arbitratorFee"] == ONE_ETH * ARBITRATOR_FEE_BPS // BPS
    ledger.closed(trade.trade_id, fee=args["platformFee"])
    ledger.check()


# ------------------------------------------------------------------ lanes


def test_lane_reuse_gives_a_new_id_and_retires_the_old_terms(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    first = fund_checked(client, roles, ledger, ETH, ONE_ETH, lane=7)
    assert split_trade_id(first.trade_id)[1] == 7
    raises(
        LaneBusy,
        lambda: fund_checked(client, roles, ledger, ETH, ONE_ETH, lane=7),
        buyer=roles.buyer,
        lane=7,
    )
    assert client.free_lane(roles.buyer) == 0
    assert client.free_lane(roles.buyer, start=7) == 8

    result = client.refund_by_seller(first.trade_id, first.terms, sender=roles.seller)
    ledger.closed(first.trade_id)
    assert client.free_lane(roles.buyer, start=7) == 7

    second = fund_checked(client, roles, ledger, ETH, 2 * ONE_ETH, lane=7)
    assert second.trade_id == trade_id_of(roles.buyer, 7, second.result.block_number)
    assert second.trade_id != first.trade_id and second.result.block_number > result.block_number
    lane = client.lane_state(roles.buyer, 7)
    assert (lane.status, lane.terms_hash) == (
        Status.FUNDED,
        client.hash_terms(second.trade_id, second.terms),
    )
    # The old id with its old terms no longer matches what the lane holds.
    raises(
        TermsMismatch,
        lambda: client.trade_state(first.trade_id, first.terms),
        tradeId=first.trade_id,
    )
    raises(
        TermsMismatch,
        lambda: client.refund_by_seller(first.trade_id, first.terms, sender=roles.seller),
        tradeId=first.trade_id,
    )
    # Nor does the old id with the new terms, or the new id with the old terms.
    raises(
        TermsMismatch,
        lambda: client.trade_state(first.trade_id, second.terms),
        tradeId=first.trade_id,
    )
    raises(
        TermsMismatch,
        lambda: client.trade_state(second.trade_id, first.terms),
        tradeId=second.trade_id,
    )
    raises(
        LaneBusy,
        lambda: fund_checked(client, roles, ledger, ETH, ONE_ETH, lane=7),
        buyer=roles.buyer,
        lane=7,
    )
    ledger.check()


def test_lane_cannot_be_reused_in_the_block_its_trade_ended(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    """A contract wallet funds, confirms and funds again in one transaction (one block)."""
    wallet = deploy_contract(client.chain, "RevertingReceiver", [], roles.buyer2)
    client.send(PreparedCall(wallet.functions.setReverting(False)), roles.buyer2)
    ship_by = client.chain.latest_timestamp() + DAY
    fund = calldata(
        client.calls.fund(
            seller=roles.seller,
            arbitrator=roles.arbitrator,
            amount=ONE_ETH,
            ship_by=ship_by,
            inspection_period=DAY,
            lane=0,
            max_platform_fee_bps=PLATFORM_FEE_BPS,
        )
    )
    pending_block = client.w3.eth.block_number + 1
    trade_id = trade_id_of(wallet.address, 0, pending_block)
    terms = Terms(
        wallet.address,
        roles.seller,
        roles.arbitrator,
        ETH,
        ONE_ETH,
        ship_by,
        DAY,
        0,
        PLATFORM_FEE_BPS,
        0,
    )
    confirm = calldata(client.calls.confirm_receipt(trade_id, terms))
    batch = wallet.functions.forwardAll(
        client.address, [fund, confirm, fund], [ONE_ETH, 0, ONE_ETH]
    )
    raises(
        LaneBusy,
        lambda: client.send(PreparedCall(batch, value=2 * ONE_ETH), roles.buyer2),
        buyer=wallet.address,
        lane=0,
    )
    # Without the second funding the same batch goes through, and lane 0 is free one block on.
    batch = wallet.functions.forwardAll(client.address, [fund, confirm], [ONE_ETH, 0])
    result = client.send(PreparedCall(batch, value=ONE_ETH), roles.buyer2)
    assert result.block_number == pending_block
    assert [e.name for e in result.events] == ["TradeFunded", "TradeReleased"]
    assert client.free_lane(wallet.address) == 0
    ledger.fees[ETH] += ONE_ETH * PLATFORM_FEE_BPS // BPS
    ledger.check()


# ------------------------------------------------------------------ bad inputs


def test_funding_rejects_bad_terms(
    client: EscrowClient,
    roles: Roles,
    stablecoin: str,
    keys: dict[str, LocalAccount],
    ledger: Ledger,
) -> None:
    chain = client.chain
    chain.increase_time(DAY)  # chain time ahead of the wall clock: next block is latest + 1
    now = chain.latest_timestamp()
    next_time = now + 1
    good: dict[str, Any] = dict(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        amount=ONE_ETH,
        ship_by=now + DAY,
        inspection_period=INSPECTION,
        arbitrator_fee_bps=ARBITRATOR_FEE_BPS,
        sender=roles.buyer,
    )

    def fund(**changes: Any) -> Callable[[], object]:
        return lambda: client.fund(**{**good, **changes})

    raises(ZeroAmount, fund(amount=0))
    raises(ZeroAddress, fund(seller=ETH))
    raises(ZeroAddress, fund(arbitrator=ETH))
    raises(SellerIsBuyer, fund(seller=roles.buyer), account=roles.buyer)
    raises(ArbitratorIsParty, fund(arbitrator=roles.buyer), arbitrator=roles.buyer)
    raises(ArbitratorIsParty, fund(arbitrator=roles.seller), arbitrator=roles.seller)
    raises(DeadlineInPast, fund(ship_by=now), deadline=now, nowTime=next_time)
    raises(DeadlineInPast, fund(ship_by=next_time), deadline=next_time, nowTime=next_time)
    latest = next_time + 180 * DAY
    raises(DeadlineTooFar, fund(ship_by=latest + 1), deadline=latest + 1, latest=latest)
    raises(
        InspectionPeriodTooLong,
        fund(inspection_period=60 * DAY + 1),
        period=60 * DAY + 1,
        maxPeriod=60 * DAY,
    )
    # v2: an inspection of at least a day (a zero one let a seller ship and release at once).
    for short in (0, DAY - 1):
        raises(
            InspectionPeriodTooShort,
            fund(inspection_period=short),
            period=short,
            minPeriod=DAY,
        )
    raises(
        DeliveryWindowTooLong,
        fund(delivery_window=60 * DAY + 1),
        window=60 * DAY + 1,
        maxWindow=60 * DAY,
    )
    # The fee in force (1%) is above what the buyer accepted.
    raises(
        PlatformFeeAboveLimit, fund(max_platform_fee_bps=99), feeBps=PLATFORM_FEE_BPS, maxFeeBps=99
    )
    raises(ArbitratorNotRegistered, fund(arbitrator=roles.stranger), arbitrator=roles.stranger)
    raises(ArbitratorFeeTooHigh, fund(arbitrator_fee_bps=501), feeBps=501, maxFeeBps=500)
    raises(TokenNotAllowed, fund(token=roles.stranger, amount=USD), token=roles.stranger)
    max_amount = 2**128 - 1
    raises(
        AmountTooLarge,
        fund(token=stablecoin, amount=max_amount + 1),
        amount=max_amount + 1,
        maxAmount=max_amount,
    )

    def send_with_value(token: str, value: int) -> Callable[[], object]:
        call = client.calls.fund(
            seller=roles.seller,
            arbitrator=roles.arbitrator,
            token=token,
            amount=ONE_ETH,
            ship_by=now + DAY,
            inspection_period=INSPECTION,
            lane=0,
            max_platform_fee_bps=PLATFORM_FEE_BPS,
        )
        return lambda: client.send(PreparedCall(call.function, value=value), roles.buyer)

    raises(WrongPayment, send_with_value(ETH, ONE_ETH - 1), sent=ONE_ETH - 1, expected=ONE_ETH)
    raises(WrongPayment, send_with_value(ETH, 0), sent=0, expected=ONE_ETH)
    raises(WrongPayment, send_with_value(stablecoin, 1), sent=1, expected=0)
    permit: dict[str, Any] = dict(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        amount=USD,
        ship_by=now + DAY,
        inspection_period=INSPECTION,
        sender=keys[roles.buyer],
    )
    eth_permit = client.calls.fund_with_permit(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        token=ETH,
        amount=USD,
        ship_by=now + DAY,
        inspection_period=INSPECTION,
        permit_deadline=now + DAY,
        v=27,
        r=b"\1",
        s=b"\1",
        lane=0,
        max_platform_fee_bps=PLATFORM_FEE_BPS,
    )
    raises(TokenNotAllowed, lambda: client.send(eth_permit, roles.buyer), token=ETH)
    raises(ZeroAmount, lambda: client.fund_with_permit(token=stablecoin, **{**permit, "amount": 0}))
    client.set_token_allowed(stablecoin, False, sender=roles.owner)
    raises(TokenNotAllowed, fund(token=stablecoin, amount=USD), token=stablecoin)
    raises(
        TokenNotAllowed,
        lambda: client.fund_with_permit(token=stablecoin, **permit),
        token=stablecoin,
    )
    client.set_token_allowed(stablecoin, True, sender=roles.owner)
    assert client.w3.eth.get_balance(client.address) == 0
    # The limits themselves are accepted; a cap above the fee in force fixes the fee in force.
    for changes in (
        dict(inspection_period=DAY, max_platform_fee_bps=1_000),
        dict(inspection_period=60 * DAY, delivery_window=60 * DAY),
    ):
        funded = fund(**changes)()
        assert isinstance(funded, Funded) and funded.terms is not None
        assert funded.terms.platform_fee_bps == PLATFORM_FEE_BPS
        assert funded.terms.delivery_window == changes.get("delivery_window", 0)
        ledger.funded(funded.trade_id, funded.terms)
    client.set_funding_paused(True, sender=roles.owner)
    raises(FundingPaused, fund())
    ledger.check()


def test_funding_rejects_fee_on_transfer_token(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    fot = deploy_contract(client.chain, "FeeOnTransferToken", [], roles.owner)
    client.send(PreparedCall(fot.functions.mint(roles.buyer, 1_000 * USD)), roles.owner)
    client.set_token_allowed(fot.address, True, sender=roles.owner)
    raises(
        FeeOnTransferToken,
        lambda: open_trade(client, roles, token=fot.address, amount=USD),
        token=fot.address,
        expected=USD,
        received=USD - USD // 100,
    )
    assert client.token_balance(fot.address, client.address) == 0
    ledger.check()


def test_admin_actions_reject_bad_values(client: EscrowClient, roles: Roles) -> None:
    owner = roles.owner
    raises(
        PlatformFeeTooHigh,
        lambda: client.set_platform_fee(owner, 1_001, sender=owner),
        feeBps=1_001,
        maxFeeBps=1_000,
    )
    raises(ZeroAddress, lambda: client.set_platform_fee(ETH, 1, sender=owner))
    raises(
        ArbitratorFeeTooHigh,
        lambda: client.register_arbitrator(roles.stranger, 2_001, sender=owner),
        feeBps=2_001,
        maxFeeBps=2_000,
    )
    raises(ZeroAddress, lambda: client.register_arbitrator(ETH, 100, sender=owner))
    raises(
        ArbitratorNotRegistered,
        lambda: client.remove_arbitrator(roles.stranger, sender=owner),
        arbitrator=roles.stranger,
    )
    raises(ZeroAddress, lambda: client.set_token_allowed(ETH, True, sender=owner))
    # The limits themselves are accepted.
    client.set_platform_fee(owner, 1_000, sender=owner)
    client.register_arbitrator(roles.stranger, 2_000, sender=owner)
    assert client.arbitrator_info(roles.stranger).max_fee_bps == 2_000
    client.set_platform_fee(ETH, 0, sender=owner)
    assert client.platform_fee() == (ETH, 0)


def test_trade_reference_errors(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    trade = fund_checked(client, roles, ledger, ETH, ONE_ETH)
    unknown = trade_id_of(roles.stranger, 3, 1)
    raises(UnknownTrade, lambda: client.trade_state(unknown, trade.terms), tradeId=unknown)
    raises(
        UnknownTrade,
        lambda: client.confirm_receipt(unknown, trade.terms, sender=roles.buyer),
        tradeId=unknown,
    )
    other_block = trade.trade_id + 1
    raises(TermsMismatch, lambda: client.trade_state(other_block, trade.terms), tradeId=other_block)
    for field_name, value in [
        ("amount", 2 * ONE_ETH),
        ("platform_fee_bps", 0),
        ("arbitrator_fee_bps", 0),
        ("ship_by", trade.terms.ship_by + 1),
        ("seller", roles.stranger),
        ("inspection_period", INSPECTION + 1),
        ("delivery_window", 1),
    ]:
        tampered = replace(trade.terms, **{field_name: value})
        raises(
            TermsMismatch,
            lambda t=tampered: client.refund_by_seller(trade.trade_id, t, sender=roles.seller),
            tradeId=trade.trade_id,
        )
        assert client.trade_view(trade.trade_id, tampered).superseded
    raises(
        InvalidBps,
        lambda: client.propose_split(trade.trade_id, trade.terms, 10_001, sender=roles.buyer),
        bps=10_001,
    )
    dispute_checked(client, roles, trade, roles.seller)
    raises(
        InvalidBps,
        lambda: client.rule(trade.trade_id, trade.terms, 10_001, sender=roles.arbitrator),
        bps=10_001,
    )
    ledger.check()


def test_status_and_deadline_errors(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    funded = fund_checked(client, roles, ledger, ETH, ONE_ETH)
    shipped = fund_checked(client, roles, ledger, ETH, ONE_ETH)
    inspection_ends = ship_checked(client, roles, shipped)
    disputed = fund_checked(client, roles, ledger, ETH, ONE_ETH)
    ruling_deadline = dispute_checked(client, roles, disputed, roles.buyer)
    released = fund_checked(client, roles, ledger, ETH, ONE_ETH)
    client.confirm_receipt(released.trade_id, released.terms, sender=roles.buyer)
    ledger.closed(released.trade_id, fee=ONE_ETH // 100)
    b, s, a, x = roles.buyer, roles.seller, roles.arbitrator, roles.stranger

    def status_error(trade: Opened, action: Callable[[], object], status: Status) -> None:
        raises(InvalidStatus, action, tradeId=trade.trade_id, status=int(status))

    f, sh, d, r = funded, shipped, disputed, released
    status_error(sh, lambda: client.mark_shipped(sh.trade_id, sh.terms, sender=s), Status.SHIPPED)
    status_error(d, lambda: client.mark_shipped(d.trade_id, d.terms, sender=s), Status.DISPUTED)
    status_error(
        f, lambda: client.release_after_inspection(f.trade_id, f.terms, sender=x), Status.FUNDED
    )
    status_error(
        sh, lambda: client.refund_after_deadline(sh.trade_id, sh.terms, sender=x), Status.SHIPPED
    )
    status_error(d, lambda: client.open_dispute(d.trade_id, d.terms, sender=s), Status.DISPUTED)
    status_error(sh, lambda: client.rule(sh.trade_id, sh.terms, 0, sender=a), Status.SHIPPED)
    status_error(
        f, lambda: client.resolve_after_ruling_timeout(f.trade_id, f.terms, sender=x), Status.FUNDED
    )
    for action in (
        lambda: client.confirm_receipt(r.trade_id, r.terms, sender=b),
        lambda: client.refund_by_seller(r.trade_id, r.terms, sender=s),
        lambda: client.propose_split(r.trade_id, r.terms, 1, sender=b),
        lambda: client.accept_split(r.trade_id, r.terms, 0, sender=b),
        lambda: client.open_dispute(r.trade_id, r.terms, sender=b),
        lambda: client.submit_evidence(r.trade_id, r.terms, "u", b"\1", sender=b),
        lambda: client.mark_shipped(r.trade_id, r.terms, sender=s),
        lambda: client.mark_received(r.trade_id, r.terms, sender=b),
        lambda: client.request_inspection_extension(r.trade_id, r.terms, 1, sender=b),
        lambda: client.grant_inspection_extension(r.trade_id, r.terms, sender=s),
        lambda: client.cancel_split(r.trade_id, r.terms, sender=b),
    ):
        status_error(r, action, Status.RELEASED)
    for trade, status in ((f, Status.FUNDED), (d, Status.DISPUTED)):
        for action in (
            lambda t=trade: client.mark_received(t.trade_id, t.terms, sender=b),
            lambda t=trade: client.request_inspection_extension(t.trade_id, t.terms, 2, sender=b),
            lambda t=trade: client.grant_inspection_extension(t.trade_id, t.terms, sender=s),
        ):
            status_error(trade, action, status)

    raises(
        DeadlineNotReached,
        lambda: client.refund_after_deadline(f.trade_id, f.terms, sender=x),
        tradeId=f.trade_id,
        deadline=f.terms.ship_by,
    )
    raises(
        DeadlineNotReached,
        lambda: client.release_after_inspection(sh.trade_id, sh.terms, sender=x),
        tradeId=sh.trade_id,
        deadline=inspection_ends,
    )
    raises(
        DeadlineNotReached,
        lambda: client.resolve_after_ruling_timeout(d.trade_id, d.terms, sender=x),
        tradeId=d.trade_id,
        deadline=ruling_deadline,
    )

    client.chain.increase_time(SHIP_WITHIN)  # past ship-by and past the inspection period
    raises(
        DeadlinePassed,
        lambda: client.mark_shipped(f.trade_id, f.terms, sender=s),
        tradeId=f.trade_id,
        deadline=f.terms.ship_by,
    )
    # v2: no split can be proposed or accepted once the state's timeout has passed.
    for trade, deadline, proposer in ((f, f.terms.ship_by, b), (sh, inspection_ends, s)):
        raises(
            DeadlinePassed,
            lambda t=trade, p=proposer: client.propose_split(t.trade_id, t.terms, 1, sender=p),
            tradeId=trade.trade_id,
            deadline=deadline,
        )
    for action in (
        lambda: client.request_inspection_extension(sh.trade_id, sh.terms, 1, sender=b),
        lambda: client.grant_inspection_extension(sh.trade_id, sh.terms, sender=s),
    ):
        raises(DeadlinePassed, action, tradeId=sh.trade_id, deadline=inspection_ends)
    raises(
        DeadlinePassed,
        lambda: client.open_dispute(f.trade_id, f.terms, sender=b),
        tradeId=f.trade_id,
        deadline=f.terms.ship_by,
    )
    raises(
        DeadlinePassed,
        lambda: client.open_dispute(sh.trade_id, sh.terms, sender=b),
        tradeId=sh.trade_id,
        deadline=inspection_ends,
    )
    client.chain.increase_time(RULING_PERIOD)
    raises(
        DeadlinePassed,
        lambda: client.rule(d.trade_id, d.terms, 5_000, sender=a),
        tradeId=d.trade_id,
        deadline=ruling_deadline,
    )
    raises(
        DeadlinePassed,
        lambda: client.propose_split(d.trade_id, d.terms, 5_000, sender=s),
        tradeId=d.trade_id,
        deadline=ruling_deadline,
    )
    ledger.check()


def test_split_without_matching_proposal(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    t = fund_checked(client, roles, ledger, ETH, ONE_ETH)
    b, s = roles.buyer, roles.seller

    def no_match(sender: str, bps: int) -> None:
        raises(
            NoMatchingProposal,
            lambda: client.accept_split(t.trade_id, t.terms, bps, sender=sender),
            tradeId=t.trade_id,
            buyerBps=bps,
        )

    no_match(s, 0)  # nothing proposed: not even a zero share matches
    no_match(b, 0)
    client.propose_split(t.trade_id, t.terms, 4_000, sender=b)
    no_match(b, 4_000)  # one's own proposal
    no_match(s, 4_001)  # another share
    no_match(s, 4_000 + 16_384)  # the same share modulo the packed field width
    ship_checked(client, roles, t)  # a status change clears the proposal
    no_match(s, 4_000)
    ledger.check()


def test_nothing_to_withdraw(client: EscrowClient, roles: Roles, stablecoin: str) -> None:
    for token in (ETH, stablecoin):
        raises(
            NothingToWithdraw,
            lambda t=token: client.withdraw(sender=roles.seller, token=t),
            token=token,
            payee=roles.seller,
        )
        raises(
            NothingToWithdraw,
            lambda t=token: client.withdraw_platform_fees(sender=roles.owner, token=t),
            token=token,
            payee=roles.owner,
        )


def test_unsigned_transactions_for_a_browser_wallet(
    client: EscrowClient, roles: Roles, ledger: Ledger, keys: dict[str, LocalAccount]
) -> None:
    ship_by = client.chain.latest_timestamp() + DAY
    fund = client.calls.fund(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        amount=ONE_ETH,
        ship_by=ship_by,
        inspection_period=INSPECTION,
        lane=3,
        max_platform_fee_bps=PLATFORM_FEE_BPS,
    )
    tx = client.unsigned(fund, roles.buyer)
    assert (tx["from"], tx["to"], tx["value"], tx["chainId"]) == (
        roles.buyer,
        client.address,
        ONE_ETH,
        client.chain.chain_id,
    )
    # The wallet signs with its own key; the client only prepared the transaction.
    result = client._result(client.sender.send_params(tx, keys[roles.buyer]))
    trade_id, terms = funded_from(result)
    assert split_trade_id(trade_id) == (roles.buyer, 3, result.block_number)
    ledger.funded(trade_id, terms)
    confirm = client.calls.confirm_receipt(trade_id, terms)
    raises(NotBuyer, lambda: client.unsigned(confirm, roles.stranger), caller=roles.stranger)
    tx = client.unsigned(confirm, roles.buyer)
    assert tx["value"] == 0 and tx["gas"] > 0
    client.sender.send_params(tx, keys[roles.buyer])
    assert client.trade_state(trade_id, terms).status == Status.RELEASED
    ledger.closed(trade_id, fee=ONE_ETH * PLATFORM_FEE_BPS // BPS)
    ledger.check()


def test_escrow_itself_cannot_be_the_seller(
    client: EscrowClient, roles: Roles, ledger: Ledger
) -> None:
    """Money paid to the escrow's own address could never be withdrawn: funding must refuse.

    The escrow cannot receive ETH, so a release to it is credited to the escrow itself, which
    never calls withdraw; in a token, the transfer to itself succeeds and the amount is no
    longer accounted for anywhere. Either way the seller's part is stuck for ever.
    """
    raises(
        EscrowCannotBeParty,
        lambda: client.fund(
            seller=client.address,
            arbitrator=roles.arbitrator,
            amount=ONE_ETH,
            ship_by=client.chain.latest_timestamp() + DAY,
            inspection_period=INSPECTION,
            sender=roles.buyer,
        ),
    )
    raises(
        EscrowCannotBeParty,
        lambda: client.withdraw_to(client.address, sender=roles.seller),
    )
    raises(ZeroAddress, lambda: client.withdraw_to(ETH, sender=roles.seller))
    assert client.credits(client.address) == 0


# ------------------------------------------------------------------ v2: delivery and receipt

DELIVERY_WINDOW = 5 * DAY


def test_delivery_window_then_received_starts_the_inspection(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    token: str,
    amount: int,
    watch_all: Callable[[str], Watch],
) -> None:
    """fund → ship → (parcel travels) → buyer marks received → inspection → released."""
    trade = fund_checked(client, roles, ledger, token, amount, delivery_window=DELIVERY_WINDOW)
    latest_end = ship_checked(client, roles, trade)
    raises(
        NotBuyer,
        lambda: client.mark_received(trade.trade_id, trade.terms, sender=roles.seller),
        caller=roles.seller,
    )
    client.chain.increase_time(2 * DAY)
    result = client.mark_received(trade.trade_id, trade.terms, sender=roles.buyer)
    ends = block_time(client.chain, result) + INSPECTION
    assert ends < latest_end
    assert [(e.name, e.args) for e in result.events] == [
        ("TradeReceived", {"tradeId": trade.trade_id, "inspectionEndsAt": ends})
    ]
    state = client.trade_state(trade.trade_id, trade.terms)
    assert (state.status, state.deadline) == (Status.SHIPPED, ends)
    view = client.trade_view(trade.trade_id, trade.terms)
    assert (view.deadline, view.inspection_started) == (ends, True)
    # Receipt is marked once; a second one would move the inspection end.
    raises(
        InspectionAlreadyStarted,
        lambda: client.mark_received(trade.trade_id, trade.terms, sender=roles.buyer),
        tradeId=trade.trade_id,
    )
    client.chain.increase_time(ends - client.chain.latest_timestamp() - 2)
    raises(
        DeadlineNotReached,
        lambda: client.release_after_inspection(trade.trade_id, trade.terms, sender=roles.stranger),
        tradeId=trade.trade_id,
        deadline=ends,
    )
    client.chain.mine()  # the next block is at the inspection end
    watch = watch_all(token)
    result = client.release_after_inspection(trade.trade_id, trade.terms, sender=roles.stranger)
    assert block_time(client.chain, result) == ends
    fee = amount * PLATFORM_FEE_BPS // BPS
    assert result.event("TradeReleased").args == {
        "tradeId": trade.trade_id,
        "byBuyer": False,
        "sellerAmount": amount - fee,
        "platformFee": fee,
    }
    assert watch.moved(result) == {roles.seller: amount - fee, client.address: -(amount - fee)}
    assert_final(client, trade, Status.RELEASED, result)
    ledger.closed(trade.trade_id, fee=fee)
    ledger.check()


def test_inspection_starts_when_the_delivery_window_ends(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    """A buyer who never marks receipt: inspection runs from the window's end."""
    trade = fund_checked(client, roles, ledger, ETH, ONE_ETH, delivery_window=DELIVERY_WINDOW)
    ends = ship_checked(client, roles, trade)
    window_end = ends - INSPECTION
    client.chain.increase_time(window_end - client.chain.latest_timestamp() - 2)
    # One second before the window ends: still in transit; the buyer can still dispute.
    assert not client.trade_view(trade.trade_id, trade.terms).inspection_started
    client.chain.increase_time(1)
    # From the window's end on (the next block is at it) receipt changes nothing.
    raises(
        InspectionAlreadyStarted,
        lambda: client.mark_received(trade.trade_id, trade.terms, sender=roles.buyer),
        tradeId=trade.trade_id,
    )
    client.chain.mine()  # reads run in the latest block: now at the window's end
    assert client.trade_view(trade.trade_id, trade.terms).inspection_started
    assert client.trade_state(trade.trade_id, trade.terms).deadline == ends
    client.chain.increase_time(ends - client.chain.latest_timestamp() - 1)
    result = client.release_after_inspection(trade.trade_id, trade.terms, sender=roles.stranger)
    assert block_time(client.chain, result) == ends
    ledger.closed(trade.trade_id, fee=ONE_ETH * PLATFORM_FEE_BPS // BPS)
    ledger.check()


def test_received_then_confirmed_pays_the_seller(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    stablecoin: str,
    watch_all: Callable[[str], Watch],
) -> None:
    trade = fund_checked(client, roles, ledger, stablecoin, 40 * USD, delivery_window=DAY)
    ship_checked(client, roles, trade)
    client.mark_received(trade.trade_id, trade.terms, sender=roles.buyer)
    watch = watch_all(stablecoin)
    result = client.confirm_receipt(trade.trade_id, trade.terms, sender=roles.buyer)
    fee = 40 * USD * PLATFORM_FEE_BPS // BPS
    assert watch.moved(result) == {roles.seller: 40 * USD - fee, client.address: fee - 40 * USD}
    assert_final(client, trade, Status.RELEASED, result)
    ledger.closed(trade.trade_id, fee=fee)
    ledger.check()


def test_buyer_can_dispute_while_the_parcel_travels(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    trade = fund_checked(client, roles, ledger, ETH, ONE_ETH, delivery_window=DELIVERY_WINDOW)
    ends = ship_checked(client, roles, trade)
    client.chain.increase_time(DELIVERY_WINDOW - DAY)  # lost in the post, window not over
    deadline = dispute_checked(client, roles, trade, roles.buyer)
    assert deadline < ends + RULING_PERIOD
    client.chain.increase_time(RULING_PERIOD)
    result = client.resolve_after_ruling_timeout(trade.trade_id, trade.terms, sender=roles.stranger)
    assert result.event("DisputeResolved").args["buyerBps"] == 5_000  # it had shipped
    ledger.closed(trade.trade_id, fee=result.event("DisputeResolved").args["platformFee"])
    ledger.check()


# ------------------------------------------------------------------ v2: inspection extension


def test_inspection_extension_requested_granted_and_honoured(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    trade = fund_checked(client, roles, ledger, ETH, ONE_ETH)
    t, b, s = trade, roles.buyer, roles.seller
    ends = ship_checked(client, roles, trade)
    raises(
        NoExtensionRequested,
        lambda: client.grant_inspection_extension(t.trade_id, t.terms, sender=s),
        tradeId=t.trade_id,
    )
    raises(
        NotBuyer,
        lambda: client.request_inspection_extension(t.trade_id, t.terms, 3, sender=s),
        caller=s,
    )
    for days in (0, 8):
        raises(
            InvalidExtension,
            lambda d=days: client.request_inspection_extension(t.trade_id, t.terms, d, sender=b),
            extraDays=days,
            maxDays=7,
        )
    result = client.request_inspection_extension(t.trade_id, t.terms, 3, sender=b)
    assert [(e.name, e.args) for e in result.events] == [
        ("InspectionExtensionRequested", {"tradeId": t.trade_id, "extraDays": 3})
    ]
    view = client.trade_view(t.trade_id, t.terms)
    assert (view.extension_days, view.extension_granted, view.deadline) == (3, False, ends)
    assert client.trade_state(t.trade_id, t.terms).deadline == ends  # not granted yet
    raises(
        ExtensionAlreadyRequested,
        lambda: client.request_inspection_extension(t.trade_id, t.terms, 1, sender=b),
        tradeId=t.trade_id,
    )
    raises(
        NotSeller,
        lambda: client.grant_inspection_extension(t.trade_id, t.terms, sender=b),
        caller=b,
    )
    result = client.grant_inspection_extension(t.trade_id, t.terms, sender=s)
    new_end = ends + 3 * DAY
    assert [(e.name, e.args) for e in result.events] == [
        ("InspectionExtended", {"tradeId": t.trade_id, "extraDays": 3, "inspectionEndsAt": new_end})
    ]
    assert client.trade_state(t.trade_id, t.terms).deadline == new_end
    view = client.trade_view(t.trade_id, t.terms)
    assert (view.extension_days, view.extension_granted, view.deadline) == (3, True, new_end)
    raises(
        NoExtensionRequested,
        lambda: client.grant_inspection_extension(t.trade_id, t.terms, sender=s),
        tradeId=t.trade_id,
    )
    raises(
        ExtensionAlreadyRequested,
        lambda: client.request_inspection_extension(t.trade_id, t.terms, 1, sender=b),
        tradeId=t.trade_id,
    )
    # Past the original end the buyer can still dispute and nobody can release.
    client.chain.increase_time(ends - client.chain.latest_timestamp() + DAY)
    raises(
        DeadlineNotReached,
        lambda: client.release_after_inspection(t.trade_id, t.terms, sender=roles.stranger),
        tradeId=t.trade_id,
        deadline=new_end,
    )
    client.propose_split(t.trade_id, t.terms, 2_000, sender=b)  # still live
    client.chain.increase_time(new_end - client.chain.latest_timestamp() - 1)
    raises(
        DeadlinePassed,
        lambda: client.open_dispute(t.trade_id, t.terms, sender=b),
        tradeId=t.trade_id,
        deadline=new_end,
    )
    result = client.release_after_inspection(t.trade_id, t.terms, sender=roles.stranger)
    assert block_time(client.chain, result) >= new_end
    assert [e.name for e in result.events] == ["SplitCleared", "TradeReleased"]
    ledger.closed(t.trade_id, fee=ONE_ETH * PLATFORM_FEE_BPS // BPS)
    ledger.check()


def test_extension_not_granted_changes_nothing(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    trade = fund_checked(client, roles, ledger, ETH, ONE_ETH, delivery_window=DAY)
    t = trade
    ends = ship_checked(client, roles, trade)
    client.mark_received(t.trade_id, t.terms, sender=roles.buyer)
    received_end = client.trade_state(t.trade_id, t.terms).deadline
    assert received_end < ends
    client.request_inspection_extension(t.trade_id, t.terms, 7, sender=roles.buyer)
    client.chain.increase_time(received_end - client.chain.latest_timestamp() - 1)
    # The seller cannot grant once the inspection is over, and the release goes through.
    raises(
        DeadlinePassed,
        lambda: client.grant_inspection_extension(t.trade_id, t.terms, sender=roles.seller),
        tradeId=t.trade_id,
        deadline=received_end,
    )
    result = client.release_after_inspection(t.trade_id, t.terms, sender=roles.stranger)
    ledger.closed(t.trade_id, fee=result.event("TradeReleased").args["platformFee"])
    ledger.check()


def test_extension_after_receipt_extends_the_received_end(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    """Receipt and extension combine: the end is receipt + inspection + granted days."""
    t = fund_checked(client, roles, ledger, ETH, ONE_ETH, delivery_window=DELIVERY_WINDOW)
    ship_checked(client, roles, t)
    client.request_inspection_extension(t.trade_id, t.terms, 2, sender=roles.buyer)
    client.grant_inspection_extension(t.trade_id, t.terms, sender=roles.seller)
    result = client.mark_received(t.trade_id, t.terms, sender=roles.buyer)
    ends = block_time(client.chain, result) + INSPECTION + 2 * DAY
    assert result.event("TradeReceived").args["inspectionEndsAt"] == ends
    assert client.trade_state(t.trade_id, t.terms).deadline == ends
    client.chain.increase_time(ends - client.chain.latest_timestamp() - 1)
    result = client.release_after_inspection(t.trade_id, t.terms, sender=roles.stranger)
    assert block_time(client.chain, result) == ends
    ledger.closed(t.trade_id, fee=result.event("TradeReleased").args["platformFee"])
    ledger.check()


# ------------------------------------------------------------------ v2: split offers


def test_proposer_cancels_its_split_offer(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    t = fund_checked(client, roles, ledger, ETH, ONE_ETH)
    b, s = roles.buyer, roles.seller
    raises(
        NoProposalToCancel,
        lambda: client.cancel_split(t.trade_id, t.terms, sender=b),
        tradeId=t.trade_id,
    )
    raises(
        NotParty,
        lambda: client.cancel_split(t.trade_id, t.terms, sender=roles.stranger),
        caller=roles.stranger,
    )
    client.propose_split(t.trade_id, t.terms, 7_000, sender=b)
    raises(
        NoProposalToCancel,
        lambda: client.cancel_split(t.trade_id, t.terms, sender=s),
        tradeId=t.trade_id,
    )
    result = client.cancel_split(t.trade_id, t.terms, sender=b)
    assert [(e.name, e.args) for e in result.events] == [
        ("SplitCleared", {"tradeId": t.trade_id, "byCancel": True})
    ]
    state = client.trade_state(t.trade_id, t.terms)
    assert (state.status, state.split_proposer, state.proposed_buyer_bps) == (
        Status.FUNDED,
        Party.NONE,
        0,
    )
    raises(
        NoMatchingProposal,
        lambda: client.accept_split(t.trade_id, t.terms, 7_000, sender=s),
        tradeId=t.trade_id,
        buyerBps=7_000,
    )
    # A cancelled offer can be replaced by a new one, which the other party accepts.
    client.propose_split(t.trade_id, t.terms, 6_000, sender=s)
    result = client.accept_split(t.trade_id, t.terms, 6_000, sender=b)
    ledger.closed(t.trade_id, fee=split_amounts(ONE_ETH, 6_000)[2])
    ledger.check()


@pytest.mark.parametrize("status", ["funded", "shipped", "disputed"])
def test_lapsed_split_offer_cannot_be_accepted(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
    status: str,
) -> None:
    """An offer made before a timeout cannot be accepted after it: only the timeout exit."""
    t = fund_checked(client, roles, ledger, ETH, ONE_ETH)
    if status == "shipped":
        deadline = ship_checked(client, roles, t)
    elif status == "disputed":
        deadline = dispute_checked(client, roles, t, roles.buyer)
    else:
        deadline = t.terms.ship_by
    client.propose_split(t.trade_id, t.terms, 8_000, sender=roles.buyer)
    client.chain.increase_time(deadline - client.chain.latest_timestamp() - 2)
    view = client.trade_view(t.trade_id, t.terms)
    assert (view.split_proposer, view.proposed_buyer_bps) == (Party.BUYER, 8_000)
    client.chain.increase_time(1)  # the next block is at the deadline
    raises(
        DeadlinePassed,
        lambda: client.accept_split(t.trade_id, t.terms, 8_000, sender=roles.seller),
        tradeId=t.trade_id,
        deadline=deadline,
    )
    raises(
        DeadlinePassed,
        lambda: client.propose_split(t.trade_id, t.terms, 9_000, sender=roles.seller),
        tradeId=t.trade_id,
        deadline=deadline,
    )
    client.chain.mine()
    view = client.trade_view(t.trade_id, t.terms)  # a lapsed offer reads as none
    assert (view.split_proposer, view.proposed_buyer_bps) == (Party.NONE, 0)
    # The proposer can still withdraw its dead offer; the timeout exit stays open.
    client.cancel_split(t.trade_id, t.terms, sender=roles.buyer)
    if status == "funded":
        result = client.refund_after_deadline(t.trade_id, t.terms, sender=roles.stranger)
        fee = 0
    elif status == "shipped":
        result = client.release_after_inspection(t.trade_id, t.terms, sender=roles.stranger)
        fee = result.event("TradeReleased").args["platformFee"]
    else:
        result = client.resolve_after_ruling_timeout(t.trade_id, t.terms, sender=roles.stranger)
        fee = result.event("DisputeResolved").args["platformFee"]
    ledger.closed(t.trade_id, fee=fee)
    ledger.check()


def test_trade_view_of_superseded_and_unknown_trades(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    first = fund_checked(client, roles, ledger, ETH, ONE_ETH, lane=2)
    result = client.refund_by_seller(first.trade_id, first.terms, sender=roles.seller)
    ledger.closed(first.trade_id)
    assert client.trade_view(first.trade_id, first.terms).ended_in_block == result.block_number
    second = fund_checked(client, roles, ledger, ETH, ONE_ETH, lane=2)
    old = client.trade_view(first.trade_id, first.terms)
    assert old.superseded and old.status == Status.NONE
    new = client.trade_view(second.trade_id, second.terms)
    assert (new.superseded, new.status, new.deadline) == (
        False,
        Status.FUNDED,
        second.terms.ship_by,
    )
    unknown = trade_id_of(roles.stranger, 0, 1)
    view = client.trade_view(unknown, first.terms)
    assert (view.superseded, view.status) == (False, Status.NONE)
    ledger.check()
