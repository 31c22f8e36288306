"""The same client against a real node: anvil from npm, started by the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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
    TransactionStuck,
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


# ---------------------------------------------------------------------------- stuck transactions


def test_a_nonce_gap_is_named_instead_of_a_timeout(anvil_chain: Chain) -> None:
    """A transaction sent with a nonce ahead of the account's next one (as two programs sending
    for one account can do) is never mined: the wait says so within seconds."""
    sender, to = anvil_chain.accounts[8], anvil_chain.accounts[9]
    latest = anvil_chain.w3.eth.get_transaction_count(sender, "latest")
    tx_hash = anvil_chain.rpc(
        "eth_sendTransaction",
        [{"from": sender, "to": to, "value": hex(1), "gas": hex(21_000), "nonce": hex(latest + 2)}],
    )
    started = time.monotonic()
    with pytest.raises(TransactionStuck) as info:
        anvil_chain.wait_for_receipt(tx_hash, timeout=60, stall_seconds=1)
    assert time.monotonic() - started < 10
    assert info.value.reason == "nonce_gap"
    assert f"nonce {latest + 2}" in str(info.value) and f"{latest}..{latest + 1}" in str(info.value)
    # Filling the gap mines it: the wait was right that only the gap held it.
    for nonce in (latest, latest + 1):
        anvil_chain.rpc(
            "eth_sendTransaction",
            [{"from": sender, "to": to, "value": hex(1), "gas": hex(21_000), "nonce": hex(nonce)}],
        )
    assert anvil_chain.wait_for_receipt(tx_hash, timeout=30)["status"] == 1


def test_a_replaced_transaction_is_named_instead_of_a_timeout(anvil_chain: Chain) -> None:
    """A pending transaction replaced by another with its nonce (a higher fee) will never be
    mined: the node forgets it and the wait says it was dropped."""
    sender, to = anvil_chain.accounts[8], anvil_chain.accounts[9]
    anvil_chain.rpc("evm_setAutomine", [False])
    try:
        nonce = anvil_chain.w3.eth.get_transaction_count(sender, "latest")
        base = int(anvil_chain.w3.eth.get_block("latest")["baseFeePerGas"])
        params = {"from": sender, "to": to, "gas": hex(21_000), "nonce": hex(nonce)}
        first = anvil_chain.rpc(
            "eth_sendTransaction",
            [
                {
                    **params,
                    "value": hex(1),
                    "maxFeePerGas": hex(4 * base + 10**9),
                    "maxPriorityFeePerGas": hex(10**9),
                }
            ],
        )
        anvil_chain.rpc(
            "eth_sendTransaction",
            [
                {
                    **params,
                    "value": hex(2),
                    "maxFeePerGas": hex(8 * base + 4 * 10**9),
                    "maxPriorityFeePerGas": hex(4 * 10**9),
                }
            ],
        )
        anvil_chain.rpc("evm_mine", [])
    finally:
        anvil_chain.rpc("evm_setAutomine", [True])
    with pytest.raises(TransactionStuck) as info:
        anvil_chain.wait_for_receipt(first, timeout=60, stall_seconds=1)
    assert info.value.reason in {"dropped", "replaced"}
    assert "will never be mined" in str(info.value) or "will not be mined" in str(info.value)


def test_a_killed_parent_leaves_no_node_running(tmp_path: Path) -> None:
    """A program that started anvil and is then killed (SIGKILL: no cleanup runs) takes the
    node with it, instead of leaving it mining on."""
    script = tmp_path / "starter.py"
    script.write_text(
        "import sys, time\n"
        "from escrow.anvil import AnvilNode\n"
        "node = AnvilNode().start()\n"
        "print(node.process.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    starter = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        node_pid = int(starter.stdout.readline())
        os.kill(node_pid, 0)  # running
        starter.kill()
        starter.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(node_pid, 0)
            except ProcessLookupError:
                break
            _reap(node_pid)
            time.sleep(0.1)
        else:
            os.kill(node_pid, signal.SIGKILL)
            pytest.fail("anvil outlived the killed program that started it")
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()
        if starter.stdout is not None:
            starter.stdout.close()


def _reap(pid: int) -> None:
    """A node whose parent died is re-parented; it may linger as a zombie of ours briefly."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def test_a_killed_stack_owner_leaves_no_process_running(tmp_path: Path) -> None:
    """``make run``, a benchmark or a test that started the whole stack and is then killed
    (SIGKILL) takes anvil, the indexer, the keeper and gunicorn with it."""
    script = tmp_path / "owner.py"
    script.write_text(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from webapp.stack import LocalStack\n"
        f"stack = LocalStack(Path({str(tmp_path / 'stack')!r}), workers=1, quiet=True, "
        "seed=False).start()\n"
        "pids = [stack.node.process.pid, stack.indexer.pid, stack.keeper.pid, stack.web.pid]\n"
        "print(' '.join(map(str, pids)), flush=True)\n"
        "time.sleep(300)\n"
    )
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 4
        owner.kill()
        owner.wait(timeout=10)
        deadline = time.monotonic() + 20
        alive = pids
        while alive and time.monotonic() < deadline:
            for pid in alive:
                _reap(pid)
            alive = [pid for pid in alive if _running(pid)]
            time.sleep(0.2)
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
        assert not alive, f"still running after their owner was killed: {alive}"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
