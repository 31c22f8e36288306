"""What escrow contract v2 fixes and adds, each fix shown against the frozen v1 contract.

Every defect test is parametrized over both versions: a P2PEscrowV1 is deployed beside the v2
escrow of the session's deployment and configured the same way (arbitrators, platform fee,
stablecoin). The v1 case asserts that v1 shows the defect; the v2 case asserts that v2 does
not, so the v2 assertions fail against v1. Then the new v2 functions: delivery window and
receipt, the one inspection extension, cancelSplit, withdrawTo and tradeView.

Time is moved with :func:`pin_next_block`, which fixes the timestamp of the next block (the
one the next transaction is mined in, and the one eth-tester's gas estimate runs in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from web3.contract import Contract

from escrow.chain import Chain
from escrow.client import ETH, EscrowClient, Funded, Party, Status, Terms, TxResult
from escrow.compiler import load_artifact
from escrow.deploy import Deployment, _deploy_contract
from escrow.errors import (
    ArbitratorNotRegistered,
    ContractRevert,
    DeadlineNotReached,
    DeadlinePassed,
    EscrowCannotBeParty,
    EscrowError,
    EvidenceUriTooLong,
    ExtensionAlreadyRequested,
    InspectionAlreadyStarted,
    InspectionPeriodTooLong,
    InspectionPeriodTooShort,
    InvalidExtension,
    InvalidStatus,
    NoExtensionRequested,
    NoMatchingProposal,
    NoProposalToCancel,
    NotArbitrator,
    NotBuyer,
    NothingToWithdraw,
    NotParty,
    NotSeller,
    PlatformFeeAboveLimit,
    TransferFailed,
    ZeroAddress,
)
from escrow.transactions import PreparedCall
from helpers import DAY, ONE_ETH, USD, Roles

BPS = 10_000
PLATFORM_FEE_BPS = 100  # the embedded deployment's fee
ARBITRATOR_MAX_FEE_BPS = 500  # the embedded deployment's arbitrators' cap
ARBITRATOR_FEE_BPS = 200
RULING_PERIOD = 7 * DAY
SHIP_WITHIN = 3 * DAY
INSPECTION = 2 * DAY
TOKEN_AMOUNT = 1_000 * USD


# ------------------------------------------------------------------ chain and contract helpers


def pin_next_block(chain: Chain, timestamp: int) -> None:
    """Makes ``timestamp`` the next block's: the next transaction is mined at it, and the gas
    estimate before it (eth-tester estimates in the pending block) sees it too.

    eth-tester's time travel to T mines a block at T - 1 and leaves the pending block at T.
    """
    pending = int(chain.w3.eth.get_block("pending")["timestamp"])
    assert timestamp >= pending, f"cannot pin {timestamp}: the pending block is at {pending}"
    if timestamp > pending:
        chain.w3.testing.timeTravel(timestamp)  # type: ignore[attr-defined]
    assert int(chain.w3.eth.get_block("pending")["timestamp"]) == timestamp


def read_at(chain: Chain, timestamp: int, read: Callable[[], object]) -> object:
    """A view read as of a block at ``timestamp`` (eth_call runs in the latest block)."""
    snapshot = chain.snapshot()
    try:
        pin_next_block(chain, timestamp + 1)  # mines a block at ``timestamp``
        assert chain.latest_timestamp() == timestamp
        return read()
    finally:
        chain.revert(snapshot)


def block_time(client: EscrowClient, result: TxResult) -> int:
    return int(client.w3.eth.get_block(result.block_number)["timestamp"])


def deploy_contract(chain: Chain, name: str, args: list[object], sender: str) -> Contract:
    artifact = load_artifact(name)
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = chain.wait_for_receipt(factory.constructor(*args).transact({"from": sender}))
    assert receipt["status"] == 1, f"{name} deployment reverted"
    return chain.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


def calldata(call: PreparedCall) -> bytes:
    return bytes.fromhex(call.function._encode_transaction_data()[2:])


def fund(
    client: EscrowClient,
    roles: Roles,
    *,
    window: int = 0,
    inspection: int = INSPECTION,
    ship_within: int = SHIP_WITHIN,
    token: str = ETH,
    amount: int = ONE_ETH,
    buyer: str | None = None,
    seller: str | None = None,
    max_fee: int | None = None,
) -> Funded:
    """A trade from ``buyer`` (default roles.buyer) to ``seller`` (default roles.seller), with
    a delivery window of ``window`` seconds (ignored by a v1 client)."""
    buyer = buyer or roles.buyer
    if token != ETH:
        client.approve(token, amount, sender=buyer)
    funded = client.fund(
        seller=seller or roles.seller,
        arbitrator=roles.arbitrator,
        token=token,
        amount=amount,
        ship_by=client.chain.latest_timestamp() + ship_within,
        inspection_period=inspection,
        delivery_window=window,
        arbitrator_fee_bps=ARBITRATOR_FEE_BPS,
        max_platform_fee_bps=max_fee,
        sender=buyer,
    )
    assert funded.terms is not None
    return funded


def terms_of(funded: Funded) -> Terms:
    assert funded.terms is not None
    return funded.terms


def shipped(client: EscrowClient, roles: Roles, **kwargs: object) -> tuple[Funded, int]:
    """A funded and shipped trade, and the time it was shipped."""
    funded = fund(client, roles, **kwargs)  # type: ignore[arg-type]
    result = client.mark_shipped(funded.trade_id, terms_of(funded), sender=roles.seller)
    return funded, block_time(client, result)


def names(result: TxResult) -> list[str]:
    return [e.name for e in result.events]


def split_cleared(result: TxResult) -> list[bool]:
    return [bool(e.args["byCancel"]) for e in result.events if e.name == "SplitCleared"]


def raises(error: type[ContractRevert], action: Callable[[], object], **args: object) -> None:
    with pytest.raises(error) as info:
        action()
    for key, value in args.items():
        assert info.value.args_by_name[key] == value, info.value.args_by_name


# ------------------------------------------------------------------ both versions side by side


@dataclass
class Escrow:
    version: int
    client: EscrowClient

    @property
    def fixed(self) -> bool:
        """True for the version that must not show the defect."""
        return self.version == 2


def deploy_v1(chain: Chain, deployment: Deployment, roles: Roles) -> EscrowClient:
    """A P2PEscrowV1 beside the v2 escrow, configured like the session's deployment."""
    assert deployment.stablecoin is not None
    record = _deploy_contract(chain, "P2PEscrowV1", [roles.owner, RULING_PERIOD], roles.owner)
    v1 = EscrowClient(chain, record.address, deployment.stablecoin.address, version=1)
    for arbitrator in deployment.arbitrators:
        v1.register_arbitrator(arbitrator, ARBITRATOR_MAX_FEE_BPS, sender=roles.owner)
    v1.set_platform_fee(roles.owner, PLATFORM_FEE_BPS, sender=roles.owner)
    v1.set_token_allowed(deployment.stablecoin.address, True, sender=roles.owner)
    return v1


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def escrow(
    request: pytest.FixtureRequest,
    chain: Chain,
    deployment: Deployment,
    client: EscrowClient,
    roles: Roles,
) -> Escrow:
    if request.param == 1:
        return Escrow(1, deploy_v1(chain, deployment, roles))
    assert client.version == 2
    return Escrow(2, client)


def test_v1_and_v2_are_the_intended_contracts(
    chain: Chain, deployment: Deployment, client: EscrowClient, roles: Roles
) -> None:
    v1 = deploy_v1(chain, deployment, roles)
    v1_functions = {i["name"] for i in v1.contract.abi if i["type"] == "function"}
    v2_functions = {i["name"] for i in client.contract.abi if i["type"] == "function"}
    new = {"markReceived", "requestInspectionExtension", "grantInspectionExtension",
           "cancelSplit", "withdrawTo", "tradeView"}  # fmt: skip
    assert new <= v2_functions and not new & v1_functions
    assert v2_functions - v1_functions == new | {
        "MIN_INSPECTION_PERIOD", "MAX_DELIVERY_WINDOW", "MAX_EXTENSION_DAYS",
        "MAX_EVIDENCE_URI_BYTES",
    }  # fmt: skip
    assert client.contract.functions.MIN_INSPECTION_PERIOD().call() == DAY
    assert client.contract.functions.MAX_INSPECTION_PERIOD().call() == 60 * DAY
    assert client.contract.functions.MAX_EXTENSION_DAYS().call() == 7
    assert client.contract.functions.MAX_EVIDENCE_URI_BYTES().call() == 512


# ------------------------------------------------------------------ defect 1: stale split offers


def test_stale_offer_after_ship_by_cannot_be_accepted(escrow: Escrow, roles: Roles) -> None:
    """The buyer offers 50% while Funded; the seller does not ship. Once ship-by passes the
    buyer is owed a full refund: v1 still let the seller take half by accepting the old offer."""
    c = escrow.client
    funded = fund(c, roles)
    tid, terms = funded.trade_id, terms_of(funded)
    c.propose_split(tid, terms, 5_000, sender=roles.buyer)
    pin_next_block(c.chain, terms.ship_by)
    if not escrow.fixed:
        result = c.accept_split(tid, terms, 5_000, sender=roles.seller)
        assert result.has_event("TradeSettled")  # the defect: half of the money to the seller
        return
    raises(DeadlinePassed, lambda: c.accept_split(tid, terms, 5_000, sender=roles.seller),
           tradeId=tid, deadline=terms.ship_by)  # fmt: skip
    raises(DeadlinePassed, lambda: c.propose_split(tid, terms, 1, sender=roles.seller))
    lapsed = read_at(c.chain, terms.ship_by, lambda: c.trade_view(tid, terms))
    assert lapsed.split_proposer == Party.NONE  # type: ignore[attr-defined]
    before = c.token_balance(ETH, roles.buyer)
    result = c.refund_after_deadline(tid, terms, sender=roles.stranger)
    assert names(result) == ["SplitCleared", "TradeRefunded"]
    assert split_cleared(result) == [False]
    assert c.token_balance(ETH, roles.buyer) - before == ONE_ETH


def test_stale_offer_after_inspection_end_cannot_be_accepted(escrow: Escrow, roles: Roles) -> None:
    """The seller offers the buyer half during the inspection; once the inspection is over the
    seller is owed the release: v1 still let the buyer accept the old offer."""
    c = escrow.client
    funded, shipped_at = shipped(c, roles)
    tid, terms = funded.trade_id, terms_of(funded)
    c.propose_split(tid, terms, 5_000, sender=roles.seller)
    end = shipped_at + INSPECTION
    pin_next_block(c.chain, end)
    if not escrow.fixed:
        assert c.accept_split(tid, terms, 5_000, sender=roles.buyer).has_event("TradeSettled")
        return
    raises(DeadlinePassed, lambda: c.accept_split(tid, terms, 5_000, sender=roles.buyer),
           tradeId=tid, deadline=end)  # fmt: skip
    result = c.release_after_inspection(tid, terms, sender=roles.stranger)
    assert split_cleared(result) == [False]
    assert result.event("TradeReleased").args["sellerAmount"] == ONE_ETH - ONE_ETH // 100


def test_stale_offer_after_ruling_deadline_cannot_be_accepted(escrow: Escrow, roles: Roles) -> None:
    """In a dispute after shipping the seller offers the buyer 70%; nobody rules, so the
    timeout splits 50/50: v1 still let the buyer take 70% by accepting the old offer."""
    c = escrow.client
    funded, _ = shipped(c, roles)
    tid, terms = funded.trade_id, terms_of(funded)
    opened = c.open_dispute(tid, terms, sender=roles.buyer)
    deadline = opened.event("DisputeOpened").args["rulingDeadline"]
    c.propose_split(tid, terms, 7_000, sender=roles.seller)
    pin_next_block(c.chain, deadline)
    if not escrow.fixed:
        assert c.accept_split(tid, terms, 7_000, sender=roles.buyer).has_event("TradeSettled")
        return
    raises(DeadlinePassed, lambda: c.accept_split(tid, terms, 7_000, sender=roles.buyer),
           tradeId=tid, deadline=deadline)  # fmt: skip
    result = c.resolve_after_ruling_timeout(tid, terms, sender=roles.stranger)
    assert split_cleared(result) == [False]
    assert result.event("DisputeResolved").args["buyerBps"] == 5_000


def test_cancel_split_withdraws_the_own_offer(client: EscrowClient, roles: Roles) -> None:
    funded = fund(client, roles)
    tid, terms = funded.trade_id, terms_of(funded)
    raises(NoProposalToCancel, lambda: client.cancel_split(tid, terms, sender=roles.buyer),
           tradeId=tid)  # fmt: skip
    client.propose_split(tid, terms, 6_000, sender=roles.buyer)
    # Only the proposer cancels: the seller has no offer of its own, strangers are no party.
    raises(NoProposalToCancel, lambda: client.cancel_split(tid, terms, sender=roles.seller))
    raises(NotParty, lambda: client.cancel_split(tid, terms, sender=roles.stranger))
    result = client.cancel_split(tid, terms, sender=roles.buyer)
    assert names(result) == ["SplitCleared"] and split_cleared(result) == [True]
    assert result.event("SplitCleared").args["tradeId"] == tid
    view = client.trade_view(tid, terms)
    assert (view.split_proposer, view.proposed_buyer_bps, view.status) == (
        Party.NONE, 0, Status.FUNDED)  # fmt: skip
    raises(NoMatchingProposal, lambda: client.accept_split(tid, terms, 6_000, sender=roles.seller))
    raises(NoProposalToCancel, lambda: client.cancel_split(tid, terms, sender=roles.buyer))
    # The seller's offer in a dispute is cancellable too; after the trade ends nothing is.
    client.open_dispute(tid, terms, sender=roles.seller)
    client.propose_split(tid, terms, 2_000, sender=roles.seller)
    assert split_cleared(client.cancel_split(tid, terms, sender=roles.seller)) == [True]
    client.propose_split(tid, terms, 2_000, sender=roles.seller)
    client.refund_by_seller(tid, terms, sender=roles.seller)
    raises(InvalidStatus, lambda: client.cancel_split(tid, terms, sender=roles.seller))


def test_v1_has_no_cancel_split(escrow: Escrow) -> None:
    abi_names = {i.get("name") for i in escrow.client.contract.abi}
    assert ("cancelSplit" in abi_names) is escrow.fixed
    assert ("SplitCleared" in abi_names) is escrow.fixed


# Each state change from a state with an open offer: (start, who offers, the action).
Transition = Callable[[EscrowClient, Roles, int, Terms], TxResult]
TRANSITIONS: dict[str, tuple[str, str, Transition]] = {
    "markShipped": ("funded", "buyer",
                    lambda c, r, t, x: c.mark_shipped(t, x, sender=r.seller)),
    "openDispute-funded": ("funded", "seller",
                           lambda c, r, t, x: c.open_dispute(t, x, sender=r.buyer)),
    "openDispute-shipped": ("shipped", "buyer",
                            lambda c, r, t, x: c.open_dispute(t, x, sender=r.seller)),
    "confirmReceipt": ("shipped", "seller",
                       lambda c, r, t, x: c.confirm_receipt(t, x, sender=r.buyer)),
    "refundBySeller": ("funded", "buyer",
                       lambda c, r, t, x: c.refund_by_seller(t, x, sender=r.seller)),
    "refundAfterDeadline": ("funded", "buyer", lambda c, r, t, x: (
        c.chain.increase_time(SHIP_WITHIN),
        c.refund_after_deadline(t, x, sender=r.stranger))[1]),
    "releaseAfterInspection": ("shipped", "seller", lambda c, r, t, x: (
        c.chain.increase_time(INSPECTION),
        c.release_after_inspection(t, x, sender=r.stranger))[1]),
    "rule": ("disputed", "buyer",
             lambda c, r, t, x: c.rule(t, x, 4_000, sender=r.arbitrator)),
    "resolveAfterRulingTimeout": ("disputed", "seller", lambda c, r, t, x: (
        c.chain.increase_time(RULING_PERIOD),
        c.resolve_after_ruling_timeout(t, x, sender=r.stranger))[1]),
}  # fmt: skip


@pytest.mark.parametrize("with_offer", [True, False], ids=["offer", "no-offer"])
@pytest.mark.parametrize("transition", list(TRANSITIONS))
def test_state_change_clears_the_open_offer_with_an_event(
    client: EscrowClient, roles: Roles, transition: str, with_offer: bool
) -> None:
    start, proposer, act = TRANSITIONS[transition]
    funded = fund(client, roles)
    tid, terms = funded.trade_id, terms_of(funded)
    if start in ("shipped", "disputed"):
        client.mark_shipped(tid, terms, sender=roles.seller)
    if start == "disputed":
        client.open_dispute(tid, terms, sender=roles.buyer)
    if with_offer:
        client.propose_split(tid, terms, 3_000, sender=roles.by_name(proposer))
    result = act(client, roles, tid, terms)
    assert split_cleared(result) == ([False] if with_offer else [])
    if with_offer:
        assert names(result)[0] == "SplitCleared"  # cleared before the state's own event
    state = client.trade_state(tid, terms)
    assert (state.split_proposer, state.proposed_buyer_bps) == (Party.NONE, 0)
    if state.status.is_open:  # the offer is gone, not only hidden: the other party cannot accept
        accepter = roles.seller if proposer == "buyer" else roles.buyer
        raises(NoMatchingProposal, lambda: client.accept_split(tid, terms, 3_000, sender=accepter))


def test_accepting_an_offer_settles_without_split_cleared(
    client: EscrowClient, roles: Roles
) -> None:
    funded = fund(client, roles)
    tid, terms = funded.trade_id, terms_of(funded)
    client.propose_split(tid, terms, 3_000, sender=roles.seller)
    result = client.accept_split(tid, terms, 3_000, sender=roles.buyer)
    assert names(result) == ["TradeSettled"]


# ------------------------------------------------------------------ defect 2: zero inspection


def test_zero_inspection_period_is_rejected(escrow: Escrow, roles: Roles) -> None:
    """With no inspection v1 let a seller ship and release before the buyer could dispute."""
    c = escrow.client
    if not escrow.fixed:
        funded = fund(c, roles, inspection=0)
        tid, terms = funded.trade_id, terms_of(funded)
        c.mark_shipped(tid, terms, sender=roles.seller)
        raises(DeadlinePassed, lambda: c.open_dispute(tid, terms, sender=roles.buyer))
        assert c.release_after_inspection(tid, terms, sender=roles.seller).has_event(
            "TradeReleased"
        )
        return
    for short in (0, 1, DAY - 1):
        raises(InspectionPeriodTooShort, lambda p=short: fund(c, roles, inspection=p),
               period=short, minPeriod=DAY)  # fmt: skip
    raises(InspectionPeriodTooLong, lambda: fund(c, roles, inspection=60 * DAY + 1),
           period=60 * DAY + 1, maxPeriod=60 * DAY)  # fmt: skip
    for ok in (DAY, 60 * DAY):
        assert terms_of(fund(c, roles, inspection=ok)).inspection_period == ok


# ------------------------------------------------------------------ defect 3: withdrawTo


class Refuser:
    """A RevertingReceiver (refuses ETH) acting as a seller, controlled by ``controller``."""

    def __init__(self, client: EscrowClient, controller: str) -> None:
        self.client = client
        self.controller = controller
        self.contract = deploy_contract(client.chain, "RevertingReceiver", [], controller)
        self.address = self.contract.address

    def forward(self, call: PreparedCall) -> TxResult:
        fn = self.contract.functions.forward(self.client.address, calldata(call))
        return self.client.send(PreparedCall(fn, value=call.value), self.controller)


def test_withdraw_to_pays_a_refusing_sellers_credit_elsewhere(escrow: Escrow, roles: Roles) -> None:
    """A seller contract that cannot take ETH has its payout credited; v1 could only pay the
    credit to the contract itself, so it stayed stuck for as long as the contract refused."""
    c = escrow.client
    refuser = Refuser(c, roles.seller)
    funded = fund(c, roles, seller=refuser.address)
    tid, terms = funded.trade_id, terms_of(funded)
    refuser.forward(c.calls.mark_shipped(tid, terms))
    result = c.confirm_receipt(tid, terms, sender=roles.buyer)
    credit = ONE_ETH - ONE_ETH * PLATFORM_FEE_BPS // BPS
    deferred = result.event("PaymentDeferred").args
    assert (deferred["payee"], deferred["amount"]) == (refuser.address, credit)
    assert c.credits(refuser.address) == credit
    raises(TransferFailed, lambda: refuser.forward(c.calls.withdraw(ETH)),
           to=refuser.address, amount=credit)  # fmt: skip
    if not escrow.fixed:
        assert not any(i.get("name") == "withdrawTo" for i in c.contract.abi)
        assert c.credits(refuser.address) == credit  # stuck while the contract refuses
        return
    beneficiary = roles.buyer2
    before = c.token_balance(ETH, beneficiary)
    escrow_before = c.token_balance(ETH, c.address)
    result = refuser.forward(c.calls.withdraw_to(beneficiary, ETH))
    withdrawn = result.event("Withdrawn").args
    assert (withdrawn["token"], withdrawn["payee"], withdrawn["amount"], withdrawn["to"]) == (
        ETH, refuser.address, credit, beneficiary)  # fmt: skip
    assert c.token_balance(ETH, beneficiary) - before == credit
    assert escrow_before - c.token_balance(ETH, c.address) == credit
    assert c.credits(refuser.address) == 0
    raises(NothingToWithdraw, lambda: refuser.forward(c.calls.withdraw_to(beneficiary, ETH)),
           payee=refuser.address)  # fmt: skip


def test_withdraw_to_pays_a_token_blacklisted_payee_elsewhere(escrow: Escrow, roles: Roles) -> None:
    """A seller blocked by the token (USDT's blacklist) is credited; v1's withdraw sends to the
    blocked address and reverts; v2's withdrawTo sends to another address of the seller's."""
    c = escrow.client
    token = deploy_contract(c.chain, "NoBoolToken", [], roles.owner)
    c.set_token_allowed(token.address, True, sender=roles.owner)
    c.send(PreparedCall(token.functions.mint(roles.buyer, TOKEN_AMOUNT)), roles.owner)
    funded = fund(c, roles, token=token.address, amount=TOKEN_AMOUNT)
    tid, terms = funded.trade_id, terms_of(funded)
    c.mark_shipped(tid, terms, sender=roles.seller)
    c.send(PreparedCall(token.functions.setBlocked(roles.seller, True)), roles.owner)
    c.confirm_receipt(tid, terms, sender=roles.buyer)
    credit = TOKEN_AMOUNT - TOKEN_AMOUNT * PLATFORM_FEE_BPS // BPS
    assert c.credits(roles.seller, token.address) == credit
    with pytest.raises(EscrowError):  # the token's Blocked(seller), bubbled up
        c.withdraw(sender=roles.seller, token=token.address)
    if not escrow.fixed:
        assert not any(i.get("name") == "withdrawTo" for i in c.contract.abi)
        return
    result = c.withdraw_to(roles.buyer2, sender=roles.seller, token=token.address)
    assert result.event("Withdrawn").args["to"] == roles.buyer2
    assert c.token_balance(token.address, roles.buyer2) == credit
    assert c.credits(roles.seller, token.address) == 0
    assert c.token_balance(token.address, c.address) == TOKEN_AMOUNT - credit  # the fee


def test_withdraw_to_rejects_bad_targets(client: EscrowClient, roles: Roles) -> None:
    raises(ZeroAddress, lambda: client.withdraw_to(ETH, sender=roles.seller))
    raises(EscrowCannotBeParty, lambda: client.withdraw_to(client.address, sender=roles.seller))
    raises(NothingToWithdraw, lambda: client.withdraw_to(roles.buyer2, sender=roles.seller),
           token=ETH, payee=roles.seller)  # fmt: skip
    with pytest.raises(EscrowError, match="version 2"):
        EscrowClient(client.chain, client.address, version=1).calls.withdraw_to(roles.buyer2)


# ------------------------------------------------------------------ defect 4: fee raised


def test_platform_fee_raised_before_mining_is_refused(
    escrow: Escrow, roles: Roles, stablecoin: str
) -> None:
    """The buyer signs at the 1% fee it was shown; the owner raises it to 5% before the funding
    is mined. v1 fixed the new fee into the trade; v2 reverts and the buyer keeps its money."""
    c = escrow.client
    c.approve(stablecoin, TOKEN_AMOUNT, sender=roles.buyer)
    call = c.calls.fund(
        seller=roles.seller, arbitrator=roles.arbitrator, token=stablecoin, amount=TOKEN_AMOUNT,
        ship_by=c.chain.latest_timestamp() + SHIP_WITHIN, inspection_period=INSPECTION,
        lane=0, max_platform_fee_bps=PLATFORM_FEE_BPS,
    )  # fmt: skip
    signed = c.unsigned(call, roles.buyer)  # estimated at the fee shown: goes through
    c.set_platform_fee(roles.owner, 500, sender=roles.owner)
    buyer_before = c.token_balance(stablecoin, roles.buyer)
    escrow_before = c.token_balance(stablecoin, c.address)
    if not escrow.fixed:
        result = c._result(c.sender.send_params(signed, roles.buyer))
        terms = Terms.from_event(result.event("TradeFunded").args["terms"])
        assert terms.platform_fee_bps == 500  # the defect: 5%, not the 1% the buyer was shown
        return
    raises(PlatformFeeAboveLimit, lambda: c.sender.send_params(signed, roles.buyer),
           feeBps=500, maxFeeBps=PLATFORM_FEE_BPS)  # fmt: skip
    assert c.token_balance(stablecoin, roles.buyer) == buyer_before
    assert c.token_balance(stablecoin, c.address) == escrow_before
    assert c.lane_state(roles.buyer, 0).status == Status.NONE


def test_fee_cap_at_or_above_the_fee_in_force_funds_at_that_fee(
    client: EscrowClient, roles: Roles
) -> None:
    assert terms_of(fund(client, roles, max_fee=PLATFORM_FEE_BPS)).platform_fee_bps == 100
    # A higher cap does not raise the fee: the trade takes the fee in force.
    assert terms_of(fund(client, roles, max_fee=1_000)).platform_fee_bps == 100
    client.set_platform_fee(roles.owner, 40, sender=roles.owner)
    assert terms_of(fund(client, roles, max_fee=PLATFORM_FEE_BPS)).platform_fee_bps == 40
    raises(PlatformFeeAboveLimit, lambda: fund(client, roles, max_fee=39),
           feeBps=40, maxFeeBps=39)  # fmt: skip


# ------------------------------------------------------------------ defect 5: lying token


class Lying:
    """LyingToken's modes."""

    HONEST = 0
    FALSE_AFTER_MOVE = 1
    TRUE_WITHOUT_MOVE = 2


def lying_token(c: EscrowClient, roles: Roles) -> Contract:
    token = deploy_contract(c.chain, "LyingToken", [roles.owner], roles.owner)
    c.set_token_allowed(token.address, True, sender=roles.owner)
    for account in (roles.buyer, roles.buyer2):
        c.send(PreparedCall(token.functions.mint(account, TOKEN_AMOUNT)), roles.owner)
    return token


def set_mode(c: EscrowClient, token: Contract, mode: int, owner: str) -> None:
    c.send(PreparedCall(token.functions.setMode(mode)), owner)


def test_token_returning_false_after_moving_pays_once(escrow: Escrow, roles: Roles) -> None:
    """v1 trusted the return value: the refund moved and was credited too, so the buyer was paid
    twice and the escrow could no longer pay another trade's refund from its balance."""
    c = escrow.client
    token = lying_token(c, roles)
    first = fund(c, roles, token=token.address, amount=TOKEN_AMOUNT)
    second = fund(c, roles, token=token.address, amount=TOKEN_AMOUNT, buyer=roles.buyer2)
    assert c.token_balance(token.address, c.address) == 2 * TOKEN_AMOUNT
    set_mode(c, token, Lying.FALSE_AFTER_MOVE, roles.owner)
    result = c.refund_by_seller(first.trade_id, terms_of(first), sender=roles.seller)
    assert c.token_balance(token.address, roles.buyer) == TOKEN_AMOUNT  # it moved
    set_mode(c, token, Lying.HONEST, roles.owner)
    if not escrow.fixed:
        assert result.has_event("PaymentDeferred")
        assert c.credits(roles.buyer, token.address) == TOKEN_AMOUNT  # the defect: credited too
        c.withdraw(sender=roles.buyer, token=token.address)
        assert c.token_balance(token.address, roles.buyer) == 2 * TOKEN_AMOUNT  # paid twice
        c.refund_by_seller(second.trade_id, terms_of(second), sender=roles.seller)
        assert c.token_balance(token.address, roles.buyer2) == 0  # the other buyer is not paid
        with pytest.raises(EscrowError):
            c.withdraw(sender=roles.buyer2, token=token.address)
        return
    assert not result.has_event("PaymentDeferred")
    assert c.credits(roles.buyer, token.address) == 0
    assert c.token_balance(token.address, c.address) == TOKEN_AMOUNT
    result = c.refund_by_seller(second.trade_id, terms_of(second), sender=roles.seller)
    assert not result.has_event("PaymentDeferred")
    assert c.token_balance(token.address, roles.buyer2) == TOKEN_AMOUNT
    assert c.token_balance(token.address, roles.buyer) == TOKEN_AMOUNT
    assert c.token_balance(token.address, c.address) == 0


def test_token_returning_true_without_moving_credits_the_payee(
    escrow: Escrow, roles: Roles
) -> None:
    """v1 trusted a true that moved nothing: the buyer got nothing and no credit, and the tokens
    stayed in the escrow with nobody able to take them. v2 credits what did not leave."""
    c = escrow.client
    token = lying_token(c, roles)
    funded = fund(c, roles, token=token.address, amount=TOKEN_AMOUNT)
    set_mode(c, token, Lying.TRUE_WITHOUT_MOVE, roles.owner)
    result = c.refund_by_seller(funded.trade_id, terms_of(funded), sender=roles.seller)
    assert c.token_balance(token.address, roles.buyer) == 0
    assert c.token_balance(token.address, c.address) == TOKEN_AMOUNT
    if not escrow.fixed:
        assert not result.has_event("PaymentDeferred")
        assert c.credits(roles.buyer, token.address) == 0  # the defect: lost to the buyer
        return
    deferred = result.event("PaymentDeferred").args
    assert (deferred["token"], deferred["payee"], deferred["amount"]) == (
        token.address, roles.buyer, TOKEN_AMOUNT)  # fmt: skip
    assert c.credits(roles.buyer, token.address) == TOKEN_AMOUNT
    # A withdrawal must move exactly the credit out, or it reverts and the credit stays.
    raises(TransferFailed, lambda: c.withdraw(sender=roles.buyer, token=token.address),
           amount=TOKEN_AMOUNT)  # fmt: skip
    assert c.credits(roles.buyer, token.address) == TOKEN_AMOUNT
    set_mode(c, token, Lying.HONEST, roles.owner)
    c.withdraw(sender=roles.buyer, token=token.address)
    assert c.token_balance(token.address, roles.buyer) == TOKEN_AMOUNT
    assert c.token_balance(token.address, c.address) == 0
    assert c.credits(roles.buyer, token.address) == 0


# ------------------------------------------------------------------ defect 6: evidence URI cap


def test_evidence_uri_is_capped_at_512_bytes(escrow: Escrow, roles: Roles) -> None:
    c = escrow.client
    funded = fund(c, roles)
    tid, terms = funded.trade_id, terms_of(funded)

    def submit(uri: str) -> TxResult:
        return c.submit_evidence(tid, terms, uri, b"\x01" * 32, sender=roles.buyer)

    assert submit("u" * 512).event("EvidenceSubmitted").args["uri"] == "u" * 512
    assert submit("é" * 256).has_event("EvidenceSubmitted")  # 512 bytes in UTF-8
    if not escrow.fixed:
        assert submit("u" * 513).has_event("EvidenceSubmitted")  # the defect: no cap
        return
    raises(EvidenceUriTooLong, lambda: submit("u" * 513), length=513, maxLength=512)
    raises(EvidenceUriTooLong, lambda: submit("é" * 257), length=514, maxLength=512)


# ------------------------------------------------------------------ defect 7: removed arbitrator


def test_removed_arbitrator_cannot_rule_and_the_timeout_resolves(
    escrow: Escrow, roles: Roles
) -> None:
    c = escrow.client
    funded, _ = shipped(c, roles)
    tid, terms = funded.trade_id, terms_of(funded)
    opened = c.open_dispute(tid, terms, sender=roles.buyer)
    deadline = opened.event("DisputeOpened").args["rulingDeadline"]
    c.remove_arbitrator(roles.arbitrator, sender=roles.owner)
    if not escrow.fixed:
        assert c.rule(tid, terms, 0, sender=roles.arbitrator).has_event("DisputeResolved")
        return
    raises(ArbitratorNotRegistered, lambda: c.rule(tid, terms, 0, sender=roles.arbitrator),
           arbitrator=roles.arbitrator)  # fmt: skip
    raises(NotArbitrator, lambda: c.rule(tid, terms, 0, sender=roles.stranger))
    raises(DeadlineNotReached, lambda: c.resolve_after_ruling_timeout(
        tid, terms, sender=roles.stranger))  # fmt: skip
    pin_next_block(c.chain, deadline)
    result = c.resolve_after_ruling_timeout(tid, terms, sender=roles.stranger)
    resolved = result.event("DisputeResolved").args
    assert (resolved["byTimeout"], resolved["buyerBps"], resolved["arbitratorFee"]) == (
        True, 5_000, 0)  # fmt: skip


def test_re_registered_arbitrator_rules_again(client: EscrowClient, roles: Roles) -> None:
    funded = fund(client, roles)
    tid, terms = funded.trade_id, terms_of(funded)
    client.open_dispute(tid, terms, sender=roles.buyer)
    client.remove_arbitrator(roles.arbitrator, sender=roles.owner)
    raises(ArbitratorNotRegistered, lambda: client.rule(tid, terms, 0, sender=roles.arbitrator))
    client.register_arbitrator(roles.arbitrator, ARBITRATOR_MAX_FEE_BPS, sender=roles.owner)
    assert client.rule(tid, terms, 0, sender=roles.arbitrator).has_event("DisputeResolved")


# ------------------------------------------------------------------ delivery window and receipt


def test_inspection_starts_when_the_delivery_window_ends(
    client: EscrowClient, roles: Roles
) -> None:
    window = 3 * DAY
    funded, shipped_at = shipped(client, roles, window=window)
    tid, terms = funded.trade_id, terms_of(funded)
    assert terms.delivery_window == window
    ends = shipped_at + window + INSPECTION
    view = client.trade_view(tid, terms)
    assert (view.status, view.deadline, view.inspection_started) == (Status.SHIPPED, ends, False)
    assert client.trade_state(tid, terms).deadline == ends
    late = read_at(client.chain, shipped_at + window, lambda: client.trade_view(tid, terms))
    assert late.inspection_started and late.deadline == ends  # type: ignore[attr-defined]
    pin_next_block(client.chain, shipped_at + window)
    raises(InspectionAlreadyStarted, lambda: client.mark_received(tid, terms, sender=roles.buyer),
           tradeId=tid)  # fmt: skip
    pin_next_block(client.chain, ends)
    result = client.release_after_inspection(tid, terms, sender=roles.stranger)
    assert result.event("TradeReleased").args["byBuyer"] is False


def test_shipped_event_names_the_latest_inspection_end(client: EscrowClient, roles: Roles) -> None:
    funded = fund(client, roles, window=5 * DAY, inspection=3 * DAY)
    result = client.mark_shipped(funded.trade_id, terms_of(funded), sender=roles.seller)
    ends = result.event("TradeShipped").args["inspectionEndsAt"]
    assert ends == block_time(client, result) + 8 * DAY


def test_receipt_starts_the_inspection_early(client: EscrowClient, roles: Roles) -> None:
    window = 5 * DAY
    funded, shipped_at = shipped(client, roles, window=window)
    tid, terms = funded.trade_id, terms_of(funded)
    received_at = shipped_at + DAY
    raises(NotBuyer, lambda: client.mark_received(tid, terms, sender=roles.seller))
    pin_next_block(client.chain, received_at)
    result = client.mark_received(tid, terms, sender=roles.buyer)
    assert names(result) == ["TradeReceived"]
    args = result.event("TradeReceived").args
    assert (args["tradeId"], args["inspectionEndsAt"]) == (tid, received_at + INSPECTION)
    view = client.trade_view(tid, terms)
    assert (view.deadline, view.inspection_started) == (received_at + INSPECTION, True)
    raises(InspectionAlreadyStarted, lambda: client.mark_received(tid, terms, sender=roles.buyer))
    pin_next_block(client.chain, received_at + INSPECTION)
    assert client.release_after_inspection(tid, terms, sender=roles.stranger).has_event(
        "TradeReleased"
    )


def test_receipt_needs_a_shipped_trade_inside_its_window(
    client: EscrowClient, roles: Roles
) -> None:
    funded = fund(client, roles, window=2 * DAY)
    tid, terms = funded.trade_id, terms_of(funded)
    raises(InvalidStatus, lambda: client.mark_received(tid, terms, sender=roles.buyer),
           status=Status.FUNDED)  # fmt: skip
    # Without a delivery window the inspection starts at shipping: receipt changes nothing.
    no_window, _ = shipped(client, roles, window=0)
    raises(InspectionAlreadyStarted, lambda: client.mark_received(
        no_window.trade_id, terms_of(no_window), sender=roles.buyer))  # fmt: skip


# ------------------------------------------------------------------ the inspection extension


def test_extension_request_and_grant_rules(client: EscrowClient, roles: Roles) -> None:
    funded, shipped_at = shipped(client, roles)
    tid, terms = funded.trade_id, terms_of(funded)
    ends = shipped_at + INSPECTION
    raises(NoExtensionRequested, lambda: client.grant_inspection_extension(
        tid, terms, sender=roles.seller), tradeId=tid)  # fmt: skip
    raises(NotBuyer, lambda: client.request_inspection_extension(
        tid, terms, 3, sender=roles.seller))  # fmt: skip
    for bad in (0, 8, 255):
        raises(InvalidExtension, lambda d=bad: client.request_inspection_extension(
            tid, terms, d, sender=roles.buyer), extraDays=bad, maxDays=7)  # fmt: skip
    result = client.request_inspection_extension(tid, terms, 7, sender=roles.buyer)
    assert names(result) == ["InspectionExtensionRequested"]
    assert result.event("InspectionExtensionRequested").args["extraDays"] == 7
    view = client.trade_view(tid, terms)
    assert (view.extension_days, view.extension_granted, view.deadline) == (7, False, ends)
    # Once per trade, whatever the days.
    for again in (1, 7):
        raises(ExtensionAlreadyRequested, lambda d=again: client.request_inspection_extension(
            tid, terms, d, sender=roles.buyer), tradeId=tid)  # fmt: skip
    for who in (roles.buyer, roles.arbitrator, roles.stranger):
        raises(NotSeller, lambda w=who: client.grant_inspection_extension(tid, terms, sender=w),
               caller=who)  # fmt: skip
    result = client.grant_inspection_extension(tid, terms, sender=roles.seller)
    assert names(result) == ["InspectionExtended"]
    args = result.event("InspectionExtended").args
    assert (args["extraDays"], args["inspectionEndsAt"]) == (7, ends + 7 * DAY)
    view = client.trade_view(tid, terms)
    assert (view.extension_days, view.extension_granted, view.deadline) == (7, True, ends + 7 * DAY)
    assert client.trade_state(tid, terms).deadline == ends + 7 * DAY
    raises(NoExtensionRequested, lambda: client.grant_inspection_extension(
        tid, terms, sender=roles.seller))  # fmt: skip
    raises(ExtensionAlreadyRequested, lambda: client.request_inspection_extension(
        tid, terms, 1, sender=roles.buyer))  # fmt: skip


def test_extension_needs_a_shipped_trade(client: EscrowClient, roles: Roles) -> None:
    funded = fund(client, roles)
    tid, terms = funded.trade_id, terms_of(funded)
    raises(InvalidStatus, lambda: client.request_inspection_extension(
        tid, terms, 2, sender=roles.buyer))  # fmt: skip
    raises(InvalidStatus, lambda: client.grant_inspection_extension(
        tid, terms, sender=roles.seller))  # fmt: skip
    client.mark_shipped(tid, terms, sender=roles.seller)
    client.request_inspection_extension(tid, terms, 2, sender=roles.buyer)
    client.open_dispute(tid, terms, sender=roles.buyer)
    raises(InvalidStatus, lambda: client.grant_inspection_extension(
        tid, terms, sender=roles.seller), status=Status.DISPUTED)  # fmt: skip


@pytest.mark.parametrize("order", ["grant-then-receive", "receive-then-grant", "no-receipt"])
def test_granted_days_add_exactly_to_the_inspection_end(
    client: EscrowClient, roles: Roles, order: str
) -> None:
    window, days = 4 * DAY, 3
    funded, shipped_at = shipped(client, roles, window=window)
    tid, terms = funded.trade_id, terms_of(funded)
    received_at = shipped_at + DAY
    client.request_inspection_extension(tid, terms, days, sender=roles.buyer)
    ends_events: list[int] = []
    if order == "receive-then-grant":
        pin_next_block(client.chain, received_at)
        result = client.mark_received(tid, terms, sender=roles.buyer)
        ends_events.append(result.event("TradeReceived").args["inspectionEndsAt"])
    result = client.grant_inspection_extension(tid, terms, sender=roles.seller)
    ends_events.append(result.event("InspectionExtended").args["inspectionEndsAt"])
    if order == "grant-then-receive":
        pin_next_block(client.chain, received_at)
        result = client.mark_received(tid, terms, sender=roles.buyer)
        ends_events.append(result.event("TradeReceived").args["inspectionEndsAt"])
    base = shipped_at + window + INSPECTION if order == "no-receipt" else received_at + INSPECTION
    expected = base + days * DAY
    assert ends_events[-1] == expected
    if order == "receive-then-grant":
        assert ends_events[0] == received_at + INSPECTION
    if order == "grant-then-receive":
        assert ends_events[0] == shipped_at + window + INSPECTION + days * DAY
    assert client.trade_view(tid, terms).deadline == expected
    pin_next_block(client.chain, expected - 1)
    raises(DeadlineNotReached, lambda: client.release_after_inspection(
        tid, terms, sender=roles.stranger), deadline=expected)  # fmt: skip
    pin_next_block(client.chain, expected)
    assert client.release_after_inspection(tid, terms, sender=roles.stranger).has_event(
        "TradeReleased"
    )


# ------------------------------------------------------------------ tradeView


def test_trade_view_through_a_trades_life(client: EscrowClient, roles: Roles) -> None:
    funded = fund(client, roles)
    tid, terms = funded.trade_id, terms_of(funded)
    view = client.trade_view(tid, terms)
    assert (view.superseded, view.status, view.deadline, view.inspection_started,
            view.split_proposer, view.extension_days, view.ended_in_block) == (
        False, Status.FUNDED, terms.ship_by, False, Party.NONE, 0, 0)  # fmt: skip
    client.propose_split(tid, terms, 2_500, sender=roles.seller)
    view = client.trade_view(tid, terms)
    assert (view.split_proposer, view.proposed_buyer_bps) == (Party.SELLER, 2_500)
    # The offer lapses with ship-by: the view reads none, the raw state still holds it.
    lapsed = read_at(client.chain, terms.ship_by, lambda: client.trade_view(tid, terms))
    assert (lapsed.split_proposer, lapsed.proposed_buyer_bps) == (Party.NONE, 0)  # type: ignore[attr-defined]
    live = read_at(client.chain, terms.ship_by - 1, lambda: client.trade_view(tid, terms))
    assert live.split_proposer == Party.SELLER  # type: ignore[attr-defined]
    opened = client.open_dispute(tid, terms, sender=roles.buyer)
    view = client.trade_view(tid, terms)
    assert (view.status, view.deadline) == (
        Status.DISPUTED, opened.event("DisputeOpened").args["rulingDeadline"])  # fmt: skip
    result = client.rule(tid, terms, 5_000, sender=roles.arbitrator)
    view = client.trade_view(tid, terms)
    assert (view.status, view.deadline, view.ended_in_block, view.split_proposer) == (
        Status.RESOLVED, 0, result.block_number, Party.NONE)  # fmt: skip


def test_trade_view_of_a_reused_lane_reads_superseded(client: EscrowClient, roles: Roles) -> None:
    first = fund(client, roles)
    tid, terms = first.trade_id, terms_of(first)
    ended = client.confirm_receipt(tid, terms, sender=roles.buyer)
    assert client.trade_view(tid, terms).ended_in_block == ended.block_number
    client.chain.mine()
    second = fund(client, roles)
    assert second.trade_id >> 64 == tid >> 64  # the same lane
    old = client.trade_view(tid, terms)
    assert (old.superseded, old.status, old.deadline, old.ended_in_block) == (
        True, Status.NONE, 0, 0)  # fmt: skip
    new = client.trade_view(second.trade_id, terms_of(second))
    assert (new.superseded, new.status) == (False, Status.FUNDED)
    # Wrong terms read as superseded too; a lane never used reads as an empty None.
    wrong = client.trade_view(second.trade_id, replace(terms_of(second), amount=1))
    assert wrong.superseded
    never = client.trade_view(tid + (7 << 64), terms)
    assert (never.superseded, never.status) == (False, Status.NONE)
    with pytest.raises(EscrowError, match="version 2"):
        EscrowClient(client.chain, client.address, version=1).trade_view(tid, terms)


def test_trade_view_reads_the_same_for_everyone(client: EscrowClient, roles: Roles) -> None:
    """A view: no caller check, nothing changes, any account (or none) reads the same."""
    funded, _ = shipped(client, roles, window=DAY)
    tid, terms = funded.trade_id, terms_of(funded)
    fn = client.contract.functions.tradeView(tid, terms.as_tuple())
    block = client.w3.eth.block_number
    reads = {fn.call({"from": roles.by_name(r)}) for r in
             ("buyer", "seller", "arbitrator", "owner", "stranger")}  # fmt: skip
    reads.add(fn.call())
    assert len(reads) == 1
    assert client.w3.eth.block_number == block
    view_item = next(i for i in client.contract.abi if i.get("name") == "tradeView")
    assert view_item["stateMutability"] == "view"
