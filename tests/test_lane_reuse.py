"""A buyer whose trade has just ended can buy again at once, with no other block in between.

The contract reuses a lane from the block after its last trade ended. Before a purchase is
sent, its gas is estimated; anvil runs that estimate in the latest block, which on an
automining node is the very block in which the previous trade ended. ``free_lane`` must hand
out a lane that passes the estimate as well as the block that includes the purchase, and
still reuse lanes (a reused slot costs 5,000 gas, a fresh one 22,100).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from escrow.anvil import AnvilNode
from escrow.chain import Chain, connect
from escrow.client import ETH, EscrowClient, Funded, Status, split_trade_id
from escrow.deploy import Deployment, deploy
from escrow.errors import LaneBusy
from helpers import Roles

DAY = 24 * 3600
PRICE = 10**16


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilNode]:
    with AnvilNode() as node:
        yield node


@pytest.fixture(scope="module")
def anvil_chain(anvil: AnvilNode) -> Chain:
    return connect(anvil.url)


@pytest.fixture(scope="module")
def anvil_deployment(anvil_chain: Chain, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return deploy(anvil_chain, registry_dir=tmp_path_factory.mktemp("registry"))


@pytest.fixture
def on_anvil(anvil_chain: Chain, anvil_deployment: Deployment) -> Iterator[EscrowClient]:
    """A client on the automining anvil node, restored to the deployed state afterwards."""
    snapshot = anvil_chain.snapshot()
    yield anvil_deployment.client(anvil_chain)
    anvil_chain.revert(snapshot)


def parties(client: EscrowClient) -> tuple[str, str, str]:
    """(buyer, seller, arbitrator) on anvil: dev accounts; the last ones are arbitrators."""
    accounts = client.chain.accounts
    return accounts[1], accounts[2], accounts[-1]


def buy(client: EscrowClient, buyer: str, seller: str, arbitrator: str) -> Funded:
    """A purchase on the lane ``fund`` picks itself (``free_lane``)."""
    return client.fund(
        seller=seller,
        arbitrator=arbitrator,
        amount=PRICE,
        ship_by=client.chain.latest_timestamp() + DAY,
        inspection_period=DAY,
        sender=buyer,
    )


def end_a_trade(client: EscrowClient, buyer: str, seller: str, arbitrator: str) -> int:
    """Funds a trade and confirms receipt; returns the block in which the trade ended."""
    funded = buy(client, buyer, seller, arbitrator)
    assert funded.terms is not None
    ended = client.confirm_receipt(funded.trade_id, funded.terms, sender=buyer).block_number
    assert client.w3.eth.block_number == ended  # nothing was mined after it
    lane = split_trade_id(funded.trade_id)[1]
    assert client.lane_state(buyer, lane).deadline == ended
    return ended


def lane_of(funded: Funded) -> int:
    return split_trade_id(funded.trade_id)[1]


# ------------------------------------------------------------------ anvil, automine


@pytest.mark.anvil
def test_buyer_buys_again_right_after_a_trade_ends_on_anvil(on_anvil: EscrowClient) -> None:
    client = on_anvil
    buyer, seller, arbitrator = parties(client)
    ended = end_a_trade(client, buyer, seller, arbitrator)

    again = buy(client, buyer, seller, arbitrator)
    assert again.block_number == ended + 1  # the very next block: no other transaction between
    assert client.trade(again.trade_id).state.status == Status.FUNDED


@pytest.mark.anvil
def test_buyer_buys_twice_in_a_row_after_a_trade_ends_on_anvil(on_anvil: EscrowClient) -> None:
    client = on_anvil
    buyer, seller, arbitrator = parties(client)
    ended = end_a_trade(client, buyer, seller, arbitrator)

    first = buy(client, buyer, seller, arbitrator)
    second = buy(client, buyer, seller, arbitrator)
    assert (first.block_number, second.block_number) == (ended + 1, ended + 2)
    # The lane that ended in the latest block is skipped once; one block later it is reused,
    # which writes an existing slot and so costs less than the fresh lane before it.
    assert (lane_of(first), lane_of(second)) == (1, 0)
    assert second.gas_used < first.gas_used
    for funded in (first, second):
        assert client.trade(funded.trade_id).state.status == Status.FUNDED


@pytest.mark.anvil
def test_prepared_purchase_right_after_a_trade_ends_on_anvil(on_anvil: EscrowClient) -> None:
    """The web app's way: the server estimates the transaction, the wallet sends it."""
    client = on_anvil
    buyer, seller, arbitrator = parties(client)
    ended = end_a_trade(client, buyer, seller, arbitrator)

    def prepared(lane: int) -> dict[str, object]:
        call = client.calls.fund(
            seller=seller,
            arbitrator=arbitrator,
            token=ETH,
            amount=PRICE,
            ship_by=client.chain.latest_timestamp() + DAY,
            inspection_period=DAY,
            lane=lane,
            max_platform_fee_bps=client.platform_fee()[1],
        )
        return dict(client.unsigned(call, buyer))

    # Why the just-ended lane cannot be handed out: anvil estimates in the latest block.
    with pytest.raises(LaneBusy):
        prepared(0)
    tx = prepared(client.free_lane(buyer))
    receipt = client.chain.wait_for_receipt(client.w3.eth.send_transaction(tx))  # type: ignore[arg-type]
    assert (receipt["status"], receipt["blockNumber"]) == (1, ended + 1)


@pytest.mark.anvil
def test_lane_is_reused_once_a_block_has_passed_on_anvil(on_anvil: EscrowClient) -> None:
    client = on_anvil
    buyer, seller, arbitrator = parties(client)
    end_a_trade(client, buyer, seller, arbitrator)
    client.chain.mine()

    assert client.free_lane(buyer) == 0
    assert lane_of(buy(client, buyer, seller, arbitrator)) == 0


@pytest.mark.anvil
def test_buyer_buys_again_right_after_a_trade_ends_with_interval_mining(
    on_anvil: EscrowClient,
) -> None:
    client = on_anvil
    buyer, seller, arbitrator = parties(client)
    client.chain.rpc("evm_setAutomine", [False])
    client.chain.rpc("evm_setIntervalMining", [1])
    try:
        ended = end_a_trade(client, buyer, seller, arbitrator)
        again = buy(client, buyer, seller, arbitrator)
    finally:
        client.chain.rpc("evm_setIntervalMining", [0])
        client.chain.rpc("evm_setAutomine", [True])
    assert again.block_number > ended
    assert client.trade(again.trade_id).state.status == Status.FUNDED


# ------------------------------------------------------------------ embedded chain


def test_buyer_buys_again_right_after_a_trade_ends_on_the_embedded_chain(
    client: EscrowClient, roles: Roles
) -> None:
    """eth-tester estimates in the pending block, so the just-ended lane is reused at once."""
    ended = end_a_trade(client, roles.buyer, roles.seller, roles.arbitrator)
    assert client.free_lane(roles.buyer) == 0

    first = buy(client, roles.buyer, roles.seller, roles.arbitrator)
    second = buy(client, roles.buyer, roles.seller, roles.arbitrator)
    assert (first.block_number, second.block_number) == (ended + 1, ended + 2)
    assert (lane_of(first), lane_of(second)) == (0, 1)  # lane 0 holds the first one now
