"""Hostile and odd counterparties: they may hurt themselves, never anybody else.

* a seller contract that re-enters the escrow whenever it is paid ETH (or burns all the gas);
* a contract that refuses ETH, as seller, as buyer on a refund and as arbitrator on its fee
  (it takes its credit later with ``withdraw``, or at once to another address with
  ``withdrawTo``);
* a USDT-like token whose transfer/transferFrom/approve return nothing and that can block
  accounts (a blocked payee takes its credit to another address with ``withdrawTo``);
* a token that takes a fee on transfer, which funding must reject without changing anything.

The escrow's books (:class:`Ledger`) are checked after every step.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak
from web3.contract import Contract
from web3.logs import DISCARD

from escrow.client import ETH, EscrowClient, Status, Terms, TxResult
from escrow.errors import (
    FeeOnTransferToken,
    InvalidStatus,
    NotBuyer,
    NothingToWithdraw,
    ReentrancyGuardReentrantCall,
    TransferFailed,
    UnknownContractError,
)
from escrow.transactions import PreparedCall
from helpers import DAY, ONE_ETH, USD, Roles
from test_trade_paths import (
    BPS,
    PLATFORM_FEE_BPS,
    Ledger,
    Watch,
    calldata,
    deploy_contract,
    funded_from,
    raises,
    split_amounts,
)

AMOUNT = 3 * ONE_ETH + 7  # odd, so the fees round
FEE = AMOUNT * PLATFORM_FEE_BPS // BPS


def fund_eth(
    client: EscrowClient,
    roles: Roles,
    *,
    seller: str | None = None,
    arbitrator: str | None = None,
    arbitrator_fee_bps: int = 0,
    token: str = ETH,
    amount: int = AMOUNT,
) -> tuple[int, Terms]:
    """The buyer funds a trade (approving first for a token)."""
    if int(token, 16) != 0:
        client.approve(token, amount, sender=roles.buyer)
    funded = client.fund(
        seller=seller or roles.seller, arbitrator=arbitrator or roles.arbitrator, token=token,
        amount=amount, ship_by=client.chain.latest_timestamp() + 3 * DAY,
        inspection_period=2 * DAY, arbitrator_fee_bps=arbitrator_fee_bps, sender=roles.buyer,
    )  # fmt: skip
    assert funded.terms is not None
    return funded.trade_id, funded.terms


def custom_error(client: EscrowClient, return_data: bytes) -> Exception:
    """The typed exception for revert data returned to a contract."""
    return client.sender.decoder.decode(return_data)


# ------------------------------------------------------------------ re-entering seller


class Attacker:
    """A ReentrantSeller driven by its controller (the person behind it)."""

    def __init__(self, client: EscrowClient, controller: str) -> None:
        self.client = client
        self.controller = controller
        self.contract = deploy_contract(
            client.chain, "ReentrantSeller", [client.address], controller
        )
        self.address = self.contract.address

    def forward(self, call: PreparedCall) -> TxResult:
        fn = self.contract.functions.forward(calldata(call))
        return self.client.send(PreparedCall(fn), self.controller)

    def arm(
        self, call: PreparedCall | None, *, revert_on_failure: bool = False, burn_gas: bool = False
    ) -> None:
        data = calldata(call) if call is not None else b""
        fn = self.contract.functions.setAttack(data, revert_on_failure, burn_gas)
        self.client.send(PreparedCall(fn), self.controller)

    def attempts(self, result: TxResult) -> list[dict[str, Any]]:
        receipt = self.client.w3.eth.get_transaction_receipt(result.tx_hash)
        events = self.contract.events.ReentryAttempted().process_receipt(receipt, errors=DISCARD)
        return [dict(e.args) for e in events if e.address == self.address]


@pytest.fixture
def attacker(client: EscrowClient, roles: Roles) -> Attacker:
    return Attacker(client, roles.stranger)


@pytest.fixture
def ledger(client: EscrowClient, stablecoin: str) -> Ledger:
    return Ledger(client, [ETH, stablecoin])


REENTRY_TARGETS = [
    "withdraw",
    "refundBySeller",
    "acceptSplit",
    "releaseAfterInspection",
    "markShipped",
    "proposeSplit",
    "openDispute",
    # v2 actions
    "withdrawTo",
    "markReceived",
    "grantInspectionExtension",
    "cancelSplit",
]


def reentry_call(client: EscrowClient, name: str, trade_id: int, terms: Terms) -> PreparedCall:
    calls = client.calls
    return {
        "withdraw": lambda: calls.withdraw(ETH),
        "refundBySeller": lambda: calls.refund_by_seller(trade_id, terms),
        "acceptSplit": lambda: calls.accept_split(trade_id, terms, 0),
        "releaseAfterInspection": lambda: calls.release_after_inspection(trade_id, terms),
        "markShipped": lambda: calls.mark_shipped(trade_id, terms),
        "proposeSplit": lambda: calls.propose_split(trade_id, terms, 0),
        "openDispute": lambda: calls.open_dispute(trade_id, terms),
        "withdrawTo": lambda: calls.withdraw_to(terms.buyer, ETH),
        "markReceived": lambda: calls.mark_received(trade_id, terms),
        "grantInspectionExtension": lambda: calls.grant_inspection_extension(trade_id, terms),
        "cancelSplit": lambda: calls.cancel_split(trade_id, terms),
    }[name]()


@pytest.mark.parametrize("target", REENTRY_TARGETS)
def test_reentrant_seller_paid_once_and_reentry_fails(
    client: EscrowClient,
    roles: Roles,
    attacker: Attacker,
    ledger: Ledger,
    target: str,
) -> None:
    trade_id, terms = fund_eth(client, roles, seller=attacker.address)
    ledger.funded(trade_id, terms)
    attacker.forward(client.calls.mark_shipped(trade_id, terms))
    attacker.arm(reentry_call(client, target, trade_id, terms))
    watch = Watch(client, ETH, [roles.buyer, attacker.address, client.address])

    result = client.confirm_receipt(trade_id, terms, sender=roles.buyer)

    assert watch.moved(result) == {attacker.address: AMOUNT - FEE, client.address: -(AMOUNT - FEE)}
    assert [e.name for e in result.events] == ["TradeReleased"]  # nothing deferred, nothing more
    (attempt,) = attacker.attempts(result)
    assert not attempt["success"] and attempt["valueReceived"] == AMOUNT - FEE
    error = custom_error(client, attempt["returnData"])
    guarded = target in ("withdraw", "withdrawTo", "refundBySeller", "acceptSplit",
                         "releaseAfterInspection")  # fmt: skip
    if guarded:
        assert isinstance(error, ReentrancyGuardReentrantCall)
    elif target == "markReceived":  # the seller is not the buyer
        assert isinstance(error, NotBuyer)
    else:  # not guarded, but the trade is final before the payout goes out
        assert isinstance(error, InvalidStatus)
        assert error.args_by_name == {"tradeId": trade_id, "status": int(Status.RELEASED)}
    assert client.trade_state(trade_id, terms).status == Status.RELEASED
    ledger.closed(trade_id, fee=FEE)
    ledger.check()


def test_reentrant_seller_that_reverts_is_credited_and_withdraws_only_its_share(
    client: EscrowClient,
    roles: Roles,
    attacker: Attacker,
    ledger: Ledger,
) -> None:
    trade_id, terms = fund_eth(client, roles, seller=attacker.address, arbitrator_fee_bps=300)
    other_id, other_terms = fund_eth(client, roles, seller=attacker.address)  # stays open
    ledger.funded(trade_id, terms)
    ledger.funded(other_id, other_terms)
    client.open_dispute(trade_id, terms, sender=roles.buyer)
    # On payment it tries to refund the other trade (it is its seller) and reverts if that fails.
    attacker.arm(client.calls.refund_by_seller(other_id, other_terms), revert_on_failure=True)
    watch = Watch(client, ETH, [roles.buyer, roles.arbitrator, attacker.address, client.address])

    result = client.rule(trade_id, terms, 2_500, sender=roles.arbitrator)

    arbitrator_fee = AMOUNT * 300 // BPS
    buyer_part, seller_part, fee = split_amounts(AMOUNT - arbitrator_fee, 2_500)
    assert [e.name for e in result.events] == ["DisputeResolved", "PaymentDeferred"]
    assert result.event("PaymentDeferred").args == {
        "token": ETH,
        "payee": attacker.address,
        "amount": seller_part,
    }
    # The buyer and the arbitrator, paid before and after the seller, both got their share.
    assert watch.moved(result) == {
        roles.buyer: buyer_part,
        roles.arbitrator: arbitrator_fee,
        client.address: -(buyer_part + arbitrator_fee),
    }
    assert client.trade_state(other_id, other_terms).status == Status.FUNDED
    ledger.closed(trade_id, fee=fee, deferred={attacker.address: seller_part})
    ledger.check()

    # Withdrawing with full gas, it re-enters withdraw: the guard stops it, so it reverts.
    attacker.arm(client.calls.withdraw(ETH), revert_on_failure=True)
    raises(
        TransferFailed,
        lambda: attacker.forward(client.calls.withdraw(ETH)),
        token=ETH,
        to=attacker.address,
        amount=seller_part,
    )
    # Swallowing the failed re-entry, it gets its credit once and only once.
    attacker.arm(client.calls.withdraw(ETH))
    result = attacker.forward(client.calls.withdraw(ETH))
    assert [e.name for e in result.events] == ["Withdrawn"]
    (attempt,) = attacker.attempts(result)
    assert isinstance(custom_error(client, attempt["returnData"]), ReentrancyGuardReentrantCall)
    assert watch.moved(result) == {attacker.address: seller_part, client.address: -seller_part}
    ledger.withdrawn(ETH, attacker.address)
    ledger.check()
    raises(
        NothingToWithdraw,
        lambda: attacker.forward(client.calls.withdraw(ETH)),
        token=ETH,
        payee=attacker.address,
    )


def test_seller_burning_all_gas_costs_the_caller_only_the_stipend(
    client: EscrowClient,
    roles: Roles,
    attacker: Attacker,
    ledger: Ledger,
) -> None:
    trade_id, terms = fund_eth(client, roles, seller=attacker.address)
    ledger.funded(trade_id, terms)
    attacker.arm(None, burn_gas=True)
    client.propose_split(trade_id, terms, 4_000, sender=roles.buyer)
    watch = Watch(client, ETH, [roles.buyer, attacker.address, client.address])
    accept = PreparedCall(
        attacker.contract.functions.forward(
            calldata(client.calls.accept_split(trade_id, terms, 4_000))
        )
    )
    # Even with a generous gas limit, the receiver cannot take more than the payout stipend.
    params = client.sender.unsigned(accept, roles.stranger)
    params["gas"] = 2_000_000
    receipt = client.sender.send_params(params, roles.stranger)
    result = client._result(receipt)
    buyer_part, seller_part, fee = split_amounts(AMOUNT, 4_000)
    assert [e.name for e in result.events] == ["TradeSettled", "PaymentDeferred"]
    assert result.event("PaymentDeferred").args["amount"] == seller_part
    assert result.gas_used < 200_000
    assert watch.moved(result) == {roles.buyer: buyer_part, client.address: -buyer_part}
    ledger.closed(trade_id, fee=fee, deferred={attacker.address: seller_part})
    ledger.check()


# ------------------------------------------------------------------ reverting receiver


class Refuser:
    """A RevertingReceiver and the person who controls it."""

    def __init__(self, client: EscrowClient, controller: str) -> None:
        self.client = client
        self.controller = controller
        self.contract = deploy_contract(client.chain, "RevertingReceiver", [], controller)
        self.address = self.contract.address

    def forward(self, call: PreparedCall) -> TxResult:
        fn = self.contract.functions.forward(self.client.address, calldata(call))
        return self.client.send(PreparedCall(fn, value=call.value), self.controller)

    def set_reverting(self, on: bool) -> None:
        fn = self.contract.functions.setReverting(on)
        self.client.send(PreparedCall(fn), self.controller)


@pytest.fixture
def refuser(client: EscrowClient, roles: Roles) -> Refuser:
    return Refuser(client, roles.stranger)


def withdraw_after_switch(
    client: EscrowClient,
    refuser: Refuser,
    ledger: Ledger,
    credit: int,
    to: str | None = None,
) -> None:
    """While it refuses ETH its withdrawal fails; once it accepts, it gets exactly its credit.

    With ``to`` it does not wait: ``withdrawTo`` sends its credit to that address at once.
    """
    raises(
        TransferFailed,
        lambda: refuser.forward(client.calls.withdraw(ETH)),
        token=ETH,
        to=refuser.address,
        amount=credit,
    )
    if to is None:
        refuser.set_reverting(False)
        call, receiver = client.calls.withdraw(ETH), refuser.address
    else:
        # Sending it to itself fails the same way: the credit stays.
        raises(
            TransferFailed,
            lambda: refuser.forward(client.calls.withdraw_to(refuser.address, ETH)),
            token=ETH,
            to=refuser.address,
            amount=credit,
        )
        call, receiver = client.calls.withdraw_to(to, ETH), to
    watch = Watch(client, ETH, [refuser.address, receiver, client.address])
    result = refuser.forward(call)
    assert [(e.name, e.args) for e in result.events] == [
        ("Withdrawn", {"token": ETH, "payee": refuser.address, "amount": credit, "to": receiver})
    ]
    assert watch.moved(result) == {receiver: credit, client.address: -credit}
    assert ledger.withdrawn(ETH, refuser.address) == credit
    ledger.check()
    raises(
        NothingToWithdraw,
        lambda: refuser.forward(client.calls.withdraw_to(receiver, ETH)),
        token=ETH,
        payee=refuser.address,
    )


@pytest.mark.parametrize("path", ["confirm", "split"])
def test_reverting_seller_is_credited_buyer_still_paid(
    client: EscrowClient,
    roles: Roles,
    refuser: Refuser,
    ledger: Ledger,
    path: str,
) -> None:
    trade_id, terms = fund_eth(client, roles, seller=refuser.address)
    ledger.funded(trade_id, terms)
    refuser.forward(client.calls.mark_shipped(trade_id, terms))
    watch = Watch(client, ETH, [roles.buyer, refuser.address, client.address])
    if path == "confirm":
        result = client.confirm_receipt(trade_id, terms, sender=roles.buyer)
        buyer_part, seller_part, fee = 0, AMOUNT - FEE, FEE
    else:
        refuser.forward(client.calls.propose_split(trade_id, terms, 3_000))
        result = client.accept_split(trade_id, terms, 3_000, sender=roles.buyer)
        buyer_part, seller_part, fee = split_amounts(AMOUNT, 3_000)
    assert result.events[-1].name == "PaymentDeferred"
    assert result.event("PaymentDeferred").args == {
        "token": ETH,
        "payee": refuser.address,
        "amount": seller_part,
    }
    expected = {roles.buyer: buyer_part, client.address: -buyer_part}
    assert watch.moved(result) == {a: v for a, v in expected.items() if v}
    ledger.closed(trade_id, fee=fee, deferred={refuser.address: seller_part})
    ledger.check()
    assert client.credits(refuser.address) == seller_part
    # The split path's seller takes its credit to another address while it still refuses ETH.
    withdraw_after_switch(
        client, refuser, ledger, seller_part, to=roles.buyer2 if path == "split" else None
    )


@pytest.mark.parametrize("refund", ["by_seller", "after_deadline"])
def test_reverting_buyer_is_credited_on_refund(
    client: EscrowClient,
    roles: Roles,
    refuser: Refuser,
    ledger: Ledger,
    refund: str,
) -> None:
    ship_by = client.chain.latest_timestamp() + DAY
    result = refuser.forward(
        client.calls.fund(
            seller=roles.seller,
            arbitrator=roles.arbitrator,
            amount=AMOUNT,
            ship_by=ship_by,
            inspection_period=DAY,
            lane=0,
            max_platform_fee_bps=PLATFORM_FEE_BPS,
        )
    )
    trade_id, terms = funded_from(result)
    assert terms.buyer == refuser.address
    ledger.funded(trade_id, terms)
    if refund == "by_seller":
        result = client.refund_by_seller(trade_id, terms, sender=roles.seller)
    else:
        client.chain.increase_time(DAY)
        result = client.refund_after_deadline(trade_id, terms, sender=roles.stranger)
    assert [e.name for e in result.events] == ["TradeRefunded", "PaymentDeferred"]
    assert result.event("PaymentDeferred").args == {
        "token": ETH,
        "payee": refuser.address,
        "amount": AMOUNT,
    }
    assert client.trade_state(trade_id, terms).status == Status.REFUNDED
    ledger.closed(trade_id, deferred={refuser.address: AMOUNT})
    ledger.check()
    withdraw_after_switch(
        client, refuser, ledger, AMOUNT, to=roles.buyer2 if refund == "after_deadline" else None
    )


def test_reverting_arbitrator_fee_is_credited_parties_still_paid(
    client: EscrowClient,
    roles: Roles,
    refuser: Refuser,
    ledger: Ledger,
) -> None:
    client.register_arbitrator(refuser.address, 500, sender=roles.owner)
    trade_id, terms = fund_eth(client, roles, arbitrator=refuser.address, arbitrator_fee_bps=450)
    ledger.funded(trade_id, terms)
    client.open_dispute(trade_id, terms, sender=roles.seller)
    watch = Watch(client, ETH, [roles.buyer, roles.seller, refuser.address, client.address])
    result = refuser.forward(client.calls.rule(trade_id, terms, 6_000))
    arbitrator_fee = AMOUNT * 450 // BPS
    buyer_part, seller_part, fee = split_amounts(AMOUNT - arbitrator_fee, 6_000)
    assert [e.name for e in result.events] == ["DisputeResolved", "PaymentDeferred"]
    assert result.event("PaymentDeferred").args == {
        "token": ETH,
        "payee": refuser.address,
        "amount": arbitrator_fee,
    }
    assert watch.moved(result) == {
        roles.buyer: buyer_part,
        roles.seller: seller_part,
        client.address: -(buyer_part + seller_part),
    }
    ledger.closed(trade_id, fee=fee, deferred={refuser.address: arbitrator_fee})
    ledger.check()
    withdraw_after_switch(client, refuser, ledger, arbitrator_fee)


# ------------------------------------------------------------------ odd tokens


@pytest.fixture
def no_bool(client: EscrowClient, roles: Roles) -> Contract:
    token = deploy_contract(client.chain, "NoBoolToken", [], roles.owner)
    client.send(PreparedCall(token.functions.mint(roles.buyer, 10_000 * USD)), roles.owner)
    client.set_token_allowed(token.address, True, sender=roles.owner)
    return token


def test_no_bool_token_full_happy_path(
    client: EscrowClient,
    roles: Roles,
    no_bool: Contract,
) -> None:
    token = no_bool.address
    ledger = Ledger(client, [token])
    amount = 1_234 * USD + 5
    watch = Watch(client, token, [roles.buyer, roles.seller, roles.owner, client.address])
    trade_id, terms = fund_eth(client, roles, token=token, amount=amount)
    ledger.funded(trade_id, terms)
    ledger.check()
    client.mark_shipped(trade_id, terms, sender=roles.seller)
    result = client.confirm_receipt(trade_id, terms, sender=roles.buyer)
    fee = amount * PLATFORM_FEE_BPS // BPS
    assert [e.name for e in result.events] == ["TradeReleased"]
    ledger.closed(trade_id, fee=fee)
    ledger.check()
    result = client.withdraw_platform_fees(sender=roles.owner, token=token)
    ledger.fees_withdrawn(token)
    ledger.check()
    assert watch.moved(result) == {
        roles.buyer: -amount,
        roles.seller: amount - fee,
        roles.owner: fee,
    }


@pytest.mark.parametrize("unblock", [True, False], ids=["unblocked", "withdraw_to"])
def test_no_bool_token_blocked_payee_is_credited(
    client: EscrowClient,
    roles: Roles,
    no_bool: Contract,
    unblock: bool,
) -> None:
    token = no_bool.address
    ledger = Ledger(client, [token])
    amount = 500 * USD
    trade_id, terms = fund_eth(client, roles, token=token, amount=amount, arbitrator_fee_bps=200)
    ledger.funded(trade_id, terms)
    client.open_dispute(trade_id, terms, sender=roles.buyer)
    client.send(PreparedCall(no_bool.functions.setBlocked(roles.seller, True)), roles.owner)
    watch = Watch(client, token, [roles.buyer, roles.seller, roles.arbitrator, client.address])
    result = client.rule(trade_id, terms, 5_000, sender=roles.arbitrator)
    arbitrator_fee = amount * 200 // BPS
    buyer_part, seller_part, fee = split_amounts(amount - arbitrator_fee, 5_000)
    assert result.event("PaymentDeferred").args == {
        "token": token,
        "payee": roles.seller,
        "amount": seller_part,
    }
    assert watch.moved(result) == {
        roles.buyer: buyer_part,
        roles.arbitrator: arbitrator_fee,
        client.address: -(buyer_part + arbitrator_fee),
    }
    ledger.closed(trade_id, fee=fee, deferred={roles.seller: seller_part})
    ledger.check()
    # Still blocked: the withdrawal reverts with the token's own error, and nothing moves.
    with pytest.raises(UnknownContractError) as info:
        client.withdraw(sender=roles.seller, token=token)
    blocked = keccak(text="Blocked(address)")[:4].hex()
    assert info.value.data.startswith("0x" + blocked)
    if unblock:
        client.send(PreparedCall(no_bool.functions.setBlocked(roles.seller, False)), roles.owner)
        result = client.withdraw(sender=roles.seller, token=token)
        assert watch.moved(result) == {roles.seller: seller_part, client.address: -seller_part}
    else:  # v2: still blocked, the seller has its credit sent to another of its addresses
        watch = Watch(client, token, [roles.seller, roles.buyer2, client.address])
        result = client.withdraw_to(roles.buyer2, sender=roles.seller, token=token)
        assert result.event("Withdrawn").args == {
            "token": token,
            "payee": roles.seller,
            "amount": seller_part,
            "to": roles.buyer2,
        }
        assert watch.moved(result) == {roles.buyer2: seller_part, client.address: -seller_part}
    ledger.withdrawn(token, roles.seller)
    ledger.check()


def test_fee_on_transfer_token_is_rejected_and_nothing_changes(
    client: EscrowClient,
    roles: Roles,
    ledger: Ledger,
) -> None:
    fot = deploy_contract(client.chain, "FeeOnTransferToken", [], roles.owner)
    client.send(PreparedCall(fot.functions.mint(roles.buyer, 1_000 * USD)), roles.owner)
    client.set_token_allowed(fot.address, True, sender=roles.owner)
    amount = 100 * USD
    client.approve(fot.address, amount, sender=roles.buyer)
    before_block = client.w3.eth.block_number
    call = client.calls.fund(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        token=fot.address,
        amount=amount,
        ship_by=client.chain.latest_timestamp() + DAY,
        inspection_period=DAY,
        lane=0,
        max_platform_fee_bps=PLATFORM_FEE_BPS,
    )
    raises(
        FeeOnTransferToken,
        lambda: client.send(call, roles.buyer),
        token=fot.address,
        expected=amount,
        received=amount - amount // 100,
    )
    # Even mined (sent with a fixed gas limit, no estimate), the revert undoes everything.
    tx_hash = client.w3.eth.send_transaction(
        {"from": roles.buyer, "to": client.address, "data": calldata(call), "gas": 500_000}
    )
    assert client.chain.wait_for_receipt(tx_hash)["status"] == 0
    assert client.token_balance(fot.address, roles.buyer) == 1_000 * USD
    assert client.token_balance(fot.address, client.address) == 0
    token = client.token(fot.address)
    assert token.functions.allowance(roles.buyer, client.address).call() == amount
    assert client.lane_state(roles.buyer, 0).status == Status.NONE
    logs = client.w3.eth.get_logs(
        {"address": client.address, "fromBlock": before_block + 1, "toBlock": "latest"}
    )
    assert logs == []
    ledger.check()
