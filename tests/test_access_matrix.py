"""Who may call what: every state-changing function of P2PEscrow (v2) for every role.

The table below is the access policy as data. Each cell is either None (the role may call the
function: the transaction goes through and emits the function's event) or the custom error the
call reverts with, whose address argument is the caller. Every case starts from the same scene
(trades in each open status, accrued fees, credits) restored from a snapshot. A test checks that
the table has a row for every non-view function in the ABI, so a new function needs a row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from escrow.chain import Chain
from escrow.client import ETH, EscrowClient, Party, Status, Terms, TxResult
from escrow.compiler import load_artifact
from escrow.deploy import Deployment
from escrow.errors import (
    ArbitratorIsParty,
    ContractRevert,
    NotArbitrator,
    NotBuyer,
    NotFeeRecipient,
    NothingToWithdraw,
    NotParty,
    NotPartyOrArbitrator,
    NotSeller,
    OwnableUnauthorizedAccount,
    SellerIsBuyer,
)
from escrow.transactions import PreparedCall
from helpers import DAY, ONE_ETH, USD, Roles, open_trade
from test_trade_paths import deploy_contract

ROLES = ("buyer", "seller", "arbitrator", "owner", "stranger")
Cell = type[ContractRevert] | None
OWNER_ONLY: dict[str, Cell] = {
    "buyer": OwnableUnauthorizedAccount, "seller": OwnableUnauthorizedAccount,
    "arbitrator": OwnableUnauthorizedAccount, "owner": None,
    "stranger": OwnableUnauthorizedAccount,
}  # fmt: skip

# function -> role -> None (allowed) or the error the call reverts with
ACCESS: dict[str, dict[str, Cell]] = {
    # Whoever funds is the buyer; the seller and the arbitrator cannot fund their own trade.
    "fund": {"buyer": None, "seller": SellerIsBuyer, "arbitrator": ArbitratorIsParty,
             "owner": None, "stranger": None},
    "fundWithPermit": {"buyer": None, "seller": SellerIsBuyer, "arbitrator": ArbitratorIsParty,
                       "owner": None, "stranger": None},
    "markShipped": {"buyer": NotSeller, "seller": None, "arbitrator": NotSeller,
                    "owner": NotSeller, "stranger": NotSeller},
    "confirmReceipt": {"buyer": None, "seller": NotBuyer, "arbitrator": NotBuyer,
                       "owner": NotBuyer, "stranger": NotBuyer},
    # v2: the buyer marks the parcel received (inspection starts), asks for more days once;
    # only the seller grants them.
    "markReceived": {"buyer": None, "seller": NotBuyer, "arbitrator": NotBuyer,
                     "owner": NotBuyer, "stranger": NotBuyer},
    "requestInspectionExtension": {"buyer": None, "seller": NotBuyer, "arbitrator": NotBuyer,
                                   "owner": NotBuyer, "stranger": NotBuyer},
    "grantInspectionExtension": {"buyer": NotSeller, "seller": None, "arbitrator": NotSeller,
                                 "owner": NotSeller, "stranger": NotSeller},
    # Timeout exits: anyone, once the timeout has passed.
    "releaseAfterInspection": {"buyer": None, "seller": None, "arbitrator": None,
                               "owner": None, "stranger": None},
    "refundAfterDeadline": {"buyer": None, "seller": None, "arbitrator": None,
                            "owner": None, "stranger": None},
    "resolveAfterRulingTimeout": {"buyer": None, "seller": None, "arbitrator": None,
                                  "owner": None, "stranger": None},
    "refundBySeller": {"buyer": NotSeller, "seller": None, "arbitrator": NotSeller,
                       "owner": NotSeller, "stranger": NotSeller},
    "proposeSplit": {"buyer": None, "seller": None, "arbitrator": NotParty,
                     "owner": NotParty, "stranger": NotParty},
    "acceptSplit": {"buyer": None, "seller": None, "arbitrator": NotParty,
                    "owner": NotParty, "stranger": NotParty},
    # v2: a party withdraws its own open offer.
    "cancelSplit": {"buyer": None, "seller": None, "arbitrator": NotParty,
                    "owner": NotParty, "stranger": NotParty},
    "openDispute": {"buyer": None, "seller": None, "arbitrator": NotParty,
                    "owner": NotParty, "stranger": NotParty},
    "submitEvidence": {"buyer": None, "seller": None, "arbitrator": None,
                       "owner": NotPartyOrArbitrator, "stranger": NotPartyOrArbitrator},
    "rule": {"buyer": NotArbitrator, "seller": NotArbitrator, "arbitrator": None,
             "owner": NotArbitrator, "stranger": NotArbitrator},
    # Anyone may withdraw what is credited to them; in the scene the buyer, the seller and the
    # arbitrator have credits, the others have none.
    "withdraw": {"buyer": None, "seller": None, "arbitrator": None,
                 "owner": NothingToWithdraw, "stranger": NothingToWithdraw},
    # v2: the same credits, paid to another address (buyer2 here); nobody reaches another's.
    "withdrawTo": {"buyer": None, "seller": None, "arbitrator": None,
                   "owner": NothingToWithdraw, "stranger": NothingToWithdraw},
    # The owner or the fee recipient (the stranger in this case's scene).
    "withdrawPlatformFees": {"buyer": NotFeeRecipient, "seller": NotFeeRecipient,
                             "arbitrator": NotFeeRecipient, "owner": None, "stranger": None},
    "registerArbitrator": OWNER_ONLY,
    "removeArbitrator": OWNER_ONLY,
    "setPlatformFee": OWNER_ONLY,
    "setTokenAllowed": OWNER_ONLY,
    "setFundingPaused": OWNER_ONLY,
    "transferOwnership": OWNER_ONLY,
    "renounceOwnership": OWNER_ONLY,
    # Only the pending owner (the stranger, after the owner started a transfer to it).
    "acceptOwnership": {"buyer": OwnableUnauthorizedAccount,
                        "seller": OwnableUnauthorizedAccount,
                        "arbitrator": OwnableUnauthorizedAccount,
                        "owner": OwnableUnauthorizedAccount, "stranger": None},
}  # fmt: skip


@dataclass
class Trade:
    trade_id: int
    terms: Terms


@dataclass
class Scene:
    """What the cases act on, all set up once per module."""

    client: EscrowClient
    roles: Roles
    stablecoin: str
    no_bool: Contract
    funded: Trade
    shipped: Trade
    disputed: Trade
    in_transit: Trade  # shipped, inside its delivery window: not yet marked received
    credited: dict[str, int] = field(default_factory=dict)


def _open(client: EscrowClient, roles: Roles) -> Trade:
    funded = open_trade(client, roles)
    assert funded.terms is not None
    return Trade(funded.trade_id, funded.terms)


@pytest.fixture(scope="module")
def scene(tester_chain: Chain, tester_deployment: Deployment, roles: Roles) -> Iterator[Scene]:
    start = tester_chain.snapshot()
    client = tester_deployment.client(tester_chain)
    assert tester_deployment.stablecoin is not None
    funded, shipped, disputed = (_open(client, roles) for _ in range(3))
    client.mark_shipped(shipped.trade_id, shipped.terms, sender=roles.seller)
    client.open_dispute(disputed.trade_id, disputed.terms, sender=roles.buyer)
    in_transit_funded = client.fund(
        seller=roles.seller, arbitrator=roles.arbitrator, amount=ONE_ETH,
        ship_by=client.chain.latest_timestamp() + 3 * DAY, inspection_period=2 * DAY,
        delivery_window=3 * DAY, sender=roles.buyer,
    )  # fmt: skip
    assert in_transit_funded.terms is not None
    in_transit = Trade(in_transit_funded.trade_id, in_transit_funded.terms)
    client.mark_shipped(in_transit.trade_id, in_transit.terms, sender=roles.seller)
    released = _open(client, roles)
    client.confirm_receipt(released.trade_id, released.terms, sender=roles.buyer)  # fees accrue

    # Credits for the buyer, the seller and the arbitrator: a USDT-like token blocks them
    # while the arbitrator rules, so their payouts are deferred.
    no_bool = deploy_contract(tester_chain, "NoBoolToken", [], roles.owner)
    client.set_token_allowed(no_bool.address, True, sender=roles.owner)
    client.send(PreparedCall(no_bool.functions.mint(roles.buyer, 1_000 * USD)), roles.owner)
    in_token = open_trade(client, roles, token=no_bool.address, amount=1_000 * USD)
    assert in_token.terms is not None
    client.open_dispute(in_token.trade_id, in_token.terms, sender=roles.seller)
    block = [roles.buyer, roles.seller, roles.arbitrator]
    for account in block:
        client.send(PreparedCall(no_bool.functions.setBlocked(account, True)), roles.owner)
    client.rule(in_token.trade_id, in_token.terms, 5_000, sender=roles.arbitrator)
    for account in block:
        client.send(PreparedCall(no_bool.functions.setBlocked(account, False)), roles.owner)
    credited = {a: client.credits(a, no_bool.address) for a in block}
    assert all(credited.values())

    yield Scene(client, roles, tester_deployment.stablecoin.address, no_bool,
                funded, shipped, disputed, in_transit, credited)  # fmt: skip
    tester_chain.revert(start)


# ------------------------------------------------------------------ how each function is called

Action = Callable[[Scene, str, dict[str, LocalAccount]], TxResult]


@dataclass(frozen=True)
class Case:
    call: Action
    event: str  # what an allowed call emits
    setup: Callable[[Scene, str], object] = lambda scene, caller: None


def _fund(s: Scene, caller: str, keys: dict[str, LocalAccount]) -> TxResult:
    return s.client.fund(seller=s.roles.seller, arbitrator=s.roles.arbitrator, amount=ONE_ETH,
                         ship_by=s.client.chain.latest_timestamp() + DAY, inspection_period=DAY,
                         sender=caller)  # fmt: skip


def _fund_with_permit(s: Scene, caller: str, keys: dict[str, LocalAccount]) -> TxResult:
    return s.client.fund_with_permit(
        seller=s.roles.seller, arbitrator=s.roles.arbitrator, token=s.stablecoin,
        amount=100 * USD, ship_by=s.client.chain.latest_timestamp() + DAY,
        inspection_period=DAY, sender=keys[caller],
    )  # fmt: skip


def _owner_call(fn: Callable[[Scene], object]) -> Action:
    return lambda s, caller, keys: s.client.send(PreparedCall(fn(s)), caller)  # type: ignore[arg-type]


def _after(seconds: int) -> Callable[[Scene, str], object]:
    return lambda s, caller: s.client.chain.increase_time(seconds)


def _counter_proposal(s: Scene, caller: str) -> None:
    """The other party proposes, so that the caller (if a party) has something to accept."""
    proposer = s.roles.seller if caller == s.roles.buyer else s.roles.buyer
    s.client.propose_split(s.funded.trade_id, s.funded.terms, 3_000, sender=proposer)


def _own_proposal(s: Scene, caller: str) -> None:
    """The caller (if a party) has an open offer of its own to cancel."""
    if caller in (s.roles.buyer, s.roles.seller):
        s.client.propose_split(s.funded.trade_id, s.funded.terms, 3_000, sender=caller)


def _extension_requested(s: Scene, caller: str) -> None:
    s.client.request_inspection_extension(s.shipped.trade_id, s.shipped.terms, 3,
                                          sender=s.roles.buyer)  # fmt: skip


def _fee_recipient_is_stranger(s: Scene, caller: str) -> None:
    s.client.set_platform_fee(s.roles.stranger, 100, sender=s.roles.owner)


def _transfer_started(s: Scene, caller: str) -> None:
    transfer = s.client.contract.functions.transferOwnership(s.roles.stranger)
    s.client.send(PreparedCall(transfer), s.roles.owner)


CASES: dict[str, Case] = {
    "fund": Case(_fund, "TradeFunded"),
    "fundWithPermit": Case(_fund_with_permit, "TradeFunded"),
    "markShipped": Case(lambda s, c, k: s.client.mark_shipped(
        s.funded.trade_id, s.funded.terms, sender=c), "TradeShipped"),
    "confirmReceipt": Case(lambda s, c, k: s.client.confirm_receipt(
        s.shipped.trade_id, s.shipped.terms, sender=c), "TradeReleased"),
    "markReceived": Case(lambda s, c, k: s.client.mark_received(
        s.in_transit.trade_id, s.in_transit.terms, sender=c), "TradeReceived"),
    "requestInspectionExtension": Case(lambda s, c, k: s.client.request_inspection_extension(
        s.shipped.trade_id, s.shipped.terms, 3, sender=c), "InspectionExtensionRequested"),
    "grantInspectionExtension": Case(lambda s, c, k: s.client.grant_inspection_extension(
        s.shipped.trade_id, s.shipped.terms, sender=c), "InspectionExtended",
        _extension_requested),
    "cancelSplit": Case(lambda s, c, k: s.client.cancel_split(
        s.funded.trade_id, s.funded.terms, sender=c), "SplitCleared", _own_proposal),
    "releaseAfterInspection": Case(lambda s, c, k: s.client.release_after_inspection(
        s.shipped.trade_id, s.shipped.terms, sender=c), "TradeReleased", _after(2 * DAY)),
    "refundAfterDeadline": Case(lambda s, c, k: s.client.refund_after_deadline(
        s.funded.trade_id, s.funded.terms, sender=c), "TradeRefunded", _after(3 * DAY)),
    "resolveAfterRulingTimeout": Case(lambda s, c, k: s.client.resolve_after_ruling_timeout(
        s.disputed.trade_id, s.disputed.terms, sender=c), "DisputeResolved", _after(7 * DAY)),
    "refundBySeller": Case(lambda s, c, k: s.client.refund_by_seller(
        s.shipped.trade_id, s.shipped.terms, sender=c), "TradeRefunded"),
    "proposeSplit": Case(lambda s, c, k: s.client.propose_split(
        s.funded.trade_id, s.funded.terms, 4_000, sender=c), "SplitProposed"),
    "acceptSplit": Case(lambda s, c, k: s.client.accept_split(
        s.funded.trade_id, s.funded.terms, 3_000, sender=c), "TradeSettled", _counter_proposal),
    "openDispute": Case(lambda s, c, k: s.client.open_dispute(
        s.shipped.trade_id, s.shipped.terms, sender=c), "DisputeOpened"),
    "submitEvidence": Case(lambda s, c, k: s.client.submit_evidence(
        s.disputed.trade_id, s.disputed.terms, "ipfs://x", b"\x01" * 32, sender=c),
        "EvidenceSubmitted"),
    "rule": Case(lambda s, c, k: s.client.rule(
        s.disputed.trade_id, s.disputed.terms, 6_000, sender=c), "DisputeResolved"),
    "withdraw": Case(lambda s, c, k: s.client.withdraw(sender=c, token=s.no_bool.address),
                     "Withdrawn"),
    "withdrawTo": Case(lambda s, c, k: s.client.withdraw_to(
        s.roles.buyer2, sender=c, token=s.no_bool.address), "Withdrawn"),
    "withdrawPlatformFees": Case(lambda s, c, k: s.client.withdraw_platform_fees(sender=c),
                                 "PlatformFeesWithdrawn", _fee_recipient_is_stranger),
    "registerArbitrator": Case(lambda s, c, k: s.client.register_arbitrator(
        s.roles.buyer2, 300, sender=c), "ArbitratorRegistered"),
    "removeArbitrator": Case(lambda s, c, k: s.client.remove_arbitrator(
        s.roles.arbitrator2, sender=c), "ArbitratorRemoved"),
    "setPlatformFee": Case(lambda s, c, k: s.client.set_platform_fee(
        s.roles.owner, 50, sender=c), "PlatformFeeUpdated"),
    "setTokenAllowed": Case(lambda s, c, k: s.client.set_token_allowed(
        s.stablecoin, False, sender=c), "TokenAllowanceUpdated"),
    "setFundingPaused": Case(lambda s, c, k: s.client.set_funding_paused(True, sender=c),
                             "FundingPausedSet"),
    "transferOwnership": Case(_owner_call(
        lambda s: s.client.contract.functions.transferOwnership(s.roles.buyer2)),
        "OwnershipTransferStarted"),
    "renounceOwnership": Case(_owner_call(
        lambda s: s.client.contract.functions.renounceOwnership()), "OwnershipTransferred"),
    "acceptOwnership": Case(_owner_call(
        lambda s: s.client.contract.functions.acceptOwnership()), "OwnershipTransferred",
        _transfer_started),
}  # fmt: skip


def test_table_covers_every_state_changing_function() -> None:
    abi = load_artifact("P2PEscrow").abi
    state_changing = {
        item["name"]
        for item in abi
        if item["type"] == "function" and item["stateMutability"] not in ("view", "pure")
    }
    assert set(ACCESS) == state_changing
    assert set(CASES) == state_changing
    for function, row in ACCESS.items():
        assert tuple(row) == ROLES, function


@pytest.mark.parametrize(
    ("function", "role"),
    [(function, role) for function in ACCESS for role in ROLES],
    ids=[f"{function}-{role}" for function in ACCESS for role in ROLES],
)
def test_access(
    scene: Scene, chain: Chain, keys: dict[str, LocalAccount], function: str, role: str
) -> None:
    caller = scene.roles.by_name(role)
    case = CASES[function]
    expected = ACCESS[function][role]
    case.setup(scene, caller)
    if expected is None:
        result = case.call(scene, caller, keys)
        assert result.has_event(case.event), [e.name for e in result.events]
        _check_allowed_effect(scene, function, caller)
    else:
        with pytest.raises(expected) as info:
            case.call(scene, caller, keys)
        assert caller in info.value.args_by_name.values(), info.value.args_by_name


def _check_allowed_effect(scene: Scene, function: str, caller: str) -> None:
    """A few effects that the event alone would not prove."""
    client, roles = scene.client, scene.roles
    if function == "withdraw":
        assert client.credits(caller, scene.no_bool.address) == 0
        assert client.token_balance(scene.no_bool.address, caller) == scene.credited[caller]
    elif function == "withdrawTo":
        assert client.credits(caller, scene.no_bool.address) == 0
        assert client.token_balance(scene.no_bool.address, caller) == 0
        assert client.token_balance(scene.no_bool.address, roles.buyer2) == scene.credited[caller]
    elif function == "markReceived":
        view = client.trade_view(scene.in_transit.trade_id, scene.in_transit.terms)
        assert view.inspection_started and view.status == Status.SHIPPED
    elif function in ("requestInspectionExtension", "grantInspectionExtension"):
        view = client.trade_view(scene.shipped.trade_id, scene.shipped.terms)
        assert view.extension_days == 3
        assert view.extension_granted is (function == "grantInspectionExtension")
    elif function == "cancelSplit":
        view = client.trade_view(scene.funded.trade_id, scene.funded.terms)
        assert view.split_proposer == Party.NONE and view.status == Status.FUNDED
    elif function == "withdrawPlatformFees":
        assert client.accrued_platform_fees(ETH) == 0
    elif function == "acceptOwnership":
        assert client.contract.functions.owner().call() == roles.stranger
    elif function == "renounceOwnership":
        assert int(client.contract.functions.owner().call(), 16) == 0
    elif function in STATUS_AFTER:
        trade_name, status = STATUS_AFTER[function]
        trade = getattr(scene, trade_name)
        assert client.trade_state(trade.trade_id, trade.terms).status == status


# function -> (the scene's trade it acts on, that trade's status after an allowed call)
STATUS_AFTER: dict[str, tuple[str, Status]] = {
    "markShipped": ("funded", Status.SHIPPED),
    "confirmReceipt": ("shipped", Status.RELEASED),
    "releaseAfterInspection": ("shipped", Status.RELEASED),
    "refundAfterDeadline": ("funded", Status.REFUNDED),
    "resolveAfterRulingTimeout": ("disputed", Status.RESOLVED),
    "refundBySeller": ("shipped", Status.REFUNDED),
    "acceptSplit": ("funded", Status.SETTLED),
    "openDispute": ("shipped", Status.DISPUTED),
    "rule": ("disputed", Status.RESOLVED),
}


VIEW_ROLES = ("buyer", "seller", "arbitrator", "owner", "stranger")


def test_trade_view_is_a_view_open_to_every_role(scene: Scene, chain: Chain) -> None:
    """tradeView (v2) has no access rule: every role, and a call without a sender, reads the
    same full state of a trade it names by id and terms, and nothing changes."""
    abi = {i["name"]: i for i in load_artifact("P2PEscrow").abi if i["type"] == "function"}
    assert abi["tradeView"]["stateMutability"] == "view"
    block = chain.w3.eth.block_number
    for trade in (scene.funded, scene.shipped, scene.disputed, scene.in_transit):
        fn = scene.client.contract.functions.tradeView(trade.trade_id, trade.terms.as_tuple())
        reads = [fn.call({"from": scene.roles.by_name(r)}) for r in VIEW_ROLES] + [fn.call()]
        assert all(r == reads[0] for r in reads), trade
        assert reads[0][1] != 0  # a live trade, not an empty answer
    assert chain.w3.eth.block_number == block
