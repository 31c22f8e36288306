"""The same client against a real node: anvil from npm, started by the tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from escrow.anvil import AnvilNode
from escrow.chain import Chain, connect
from escrow.client import ETH, Status
from escrow.deploy import Deployment, deploy, load_deployment
from escrow.errors import (
    DeadlineNotReached,
    DeadlinePassed,
    InspectionAlreadyStarted,
    NotArbitrator,
    NotBuyer,
)

pytestmark = pytest.mark.anvil

DAY = 24 * 3600


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


def test_happy_path_on_anvil(anvil_chain: Chain, anvil_deployment: Deployment) -> None:
    client = anvil_deployment.client(anvil_chain)
    buyer, seller, stranger = anvil_chain.accounts[1:4]
    arbitrator = anvil_deployment.arbitrators[-1]
    funded = client.fund(
        seller=seller,
        arbitrator=arbitrator,
        amount=10**18,
        ship_by=anvil_chain.latest_timestamp() + DAY,
        inspection_period=DAY,
        sender=buyer,
    )
    assert funded.terms is not None and funded.terms.platform_fee_bps == 100
    client.mark_shipped(funded.trade_id, funded.terms, sender=seller)
    seller_before = client.token_balance(ETH, seller)
    with pytest.raises(NotBuyer) as info:  # a custom error decoded from a real node
        client.confirm_receipt(funded.trade_id, funded.terms, sender=stranger)
    assert info.value.args_by_name == {"caller": stranger}
    result = client.confirm_receipt(funded.trade_id, funded.terms, sender=buyer)
    assert result.event("TradeReleased").args["sellerAmount"] == 10**18 - 10**16
    assert client.token_balance(ETH, seller) - seller_before == 10**18 - 10**16
    assert client.trade(funded.trade_id).state.status == Status.RELEASED


def test_dispute_with_permit_on_anvil(anvil_chain: Chain, anvil_deployment: Deployment) -> None:
    client = anvil_deployment.client(anvil_chain)
    assert anvil_deployment.stablecoin is not None
    usd = anvil_deployment.stablecoin.address
    buyer, seller = anvil_chain.accounts[4], anvil_chain.accounts[5]
    arbitrator = anvil_deployment.arbitrators[-1]
    amount = 300 * 10**6
    buyer_before = client.token_balance(usd, buyer)
    # the node signs the EIP-2612 permit for its unlocked account (eth_signTypedData_v4)
    funded = client.fund_with_permit(
        seller=seller,
        arbitrator=arbitrator,
        token=usd,
        amount=amount,
        ship_by=anvil_chain.latest_timestamp() + DAY,
        inspection_period=DAY,
        arbitrator_fee_bps=300,
        sender=buyer,
    )
    assert funded.terms is not None
    client.open_dispute(funded.trade_id, funded.terms, sender=buyer)
    client.submit_evidence(
        funded.trade_id, funded.terms, "ipfs://photo", b"\x02" * 32, sender=buyer
    )
    with pytest.raises(NotArbitrator):
        client.rule(funded.trade_id, funded.terms, 10_000, sender=seller)
    with pytest.raises(DeadlineNotReached):
        client.resolve_after_ruling_timeout(funded.trade_id, funded.terms, sender=seller)
    ruling = client.rule(funded.trade_id, funded.terms, 10_000, sender=arbitrator)
    resolved = ruling.event("DisputeResolved").args
    assert resolved["arbitratorFee"] == amount * 300 // 10_000
    assert resolved["buyerAmount"] == amount - resolved["arbitratorFee"]
    assert client.token_balance(usd, buyer) == buyer_before - resolved["arbitratorFee"]


def test_ruling_timeout_moves_anvil_time(anvil_chain: Chain, anvil_deployment: Deployment) -> None:
    client = anvil_deployment.client(anvil_chain)
    accounts = anvil_chain.accounts
    buyer, seller, keeper = accounts[6], accounts[7], accounts[3]
    funded = client.fund(
        seller=seller,
        arbitrator=anvil_deployment.arbitrators[0],
        amount=4 * 10**17,
        ship_by=anvil_chain.latest_timestamp() + DAY,
        inspection_period=DAY,
        sender=buyer,
    )
    assert funded.terms is not None
    client.mark_shipped(funded.trade_id, funded.terms, sender=seller)
    client.open_dispute(funded.trade_id, funded.terms, sender=seller)
    anvil_chain.increase_time(client.ruling_period() + 1)
    result = client.resolve_after_ruling_timeout(funded.trade_id, funded.terms, sender=keeper)
    args = result.event("DisputeResolved").args
    # shipped before the dispute: the fallback splits 50/50
    assert args["byTimeout"] and args["buyerAmount"] == 2 * 10**17


def test_delivery_receipt_and_extension_on_anvil(
    anvil_chain: Chain, anvil_deployment: Deployment
) -> None:
    """v2 on a real node: the delivery window, receipt, an extension and a lapsed offer
    (custom errors decoded from anvil's reverts, time moved with evm_increaseTime)."""
    client = anvil_deployment.client(anvil_chain)
    buyer, seller, keeper = (
        anvil_chain.accounts[1],
        anvil_chain.accounts[2],
        anvil_chain.accounts[3],
    )
    funded = client.fund(
        seller=seller,
        arbitrator=anvil_deployment.arbitrators[0],
        amount=10**17,
        ship_by=anvil_chain.latest_timestamp() + DAY,
        inspection_period=DAY,
        delivery_window=3 * DAY,
        sender=buyer,
    )
    t = funded.terms
    assert t is not None and t.delivery_window == 3 * DAY
    client.mark_shipped(funded.trade_id, t, sender=seller)
    assert not client.trade_view(funded.trade_id, t).inspection_started
    client.propose_split(funded.trade_id, t, 9_000, sender=buyer)
    anvil_chain.increase_time(DAY)
    received = client.mark_received(funded.trade_id, t, sender=buyer)
    ends = received.event("TradeReceived").args["inspectionEndsAt"]
    with pytest.raises(InspectionAlreadyStarted):
        client.mark_received(funded.trade_id, t, sender=buyer)
    client.request_inspection_extension(funded.trade_id, t, 2, sender=buyer)
    granted = client.grant_inspection_extension(funded.trade_id, t, sender=seller)
    assert granted.event("InspectionExtended").args["inspectionEndsAt"] == ends + 2 * DAY
    view = client.trade_view(funded.trade_id, t)
    assert (view.inspection_started, view.extension_days, view.extension_granted) == (True, 2, True)
    assert client.trade_state(funded.trade_id, t).deadline == ends + 2 * DAY
    anvil_chain.increase_time(ends + 2 * DAY - anvil_chain.latest_timestamp())
    with pytest.raises(DeadlinePassed):  # the buyer's offer lapsed with the inspection
        client.accept_split(funded.trade_id, t, 9_000, sender=seller)
    result = client.release_after_inspection(funded.trade_id, t, sender=keeper)
    assert [e.name for e in result.events] == ["SplitCleared", "TradeReleased"]
    assert client.trade_view(funded.trade_id, t).status == Status.RELEASED


def test_chain_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    registry = tmp_path / "registry"
    node = AnvilNode(state_file=state).start()
    try:
        chain = connect(node.url)
        deployment = deploy(chain, registry_dir=registry)
        client = deployment.client(chain)
        funded = client.fund(
            seller=chain.accounts[2],
            arbitrator=deployment.arbitrators[0],
            amount=10**17,
            ship_by=chain.latest_timestamp() + DAY,
            inspection_period=DAY,
            sender=chain.accounts[1],
        )
    finally:
        node.stop()
    assert state.is_file() and state.stat().st_size > 0

    node = AnvilNode(state_file=state, port=node.port).start()
    try:
        chain = connect(node.url)
        reloaded = load_deployment(chain, registry)
        assert reloaded is not None and reloaded.escrow.address == deployment.escrow.address
        client = reloaded.client(chain)
        assert funded.terms is not None
        assert client.trade_state(funded.trade_id, funded.terms).status == Status.FUNDED
        assert client.terms_of(funded.trade_id)[0] == funded.terms
    finally:
        node.stop()
