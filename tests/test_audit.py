"""``escrow audit``: the books of every escrow from the chain alone (events, balances, views).

Most tests run the command through ``escrow.cli.main`` on the session's embedded chain (its
``_connect`` and ``_deployment`` pointed at the test chain); one runs it against anvil.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from web3.exceptions import Web3RPCError

from escrow import audit as audit_module
from escrow import cli
from escrow.anvil import AnvilNode
from escrow.audit import EscrowTarget, audit, format_report, targets_of
from escrow.chain import Chain, connect
from escrow.cli import main
from escrow.client import EscrowClient, Funded
from escrow.compiler import load_artifact
from escrow.deploy import (
    DEFAULT_RULING_PERIOD,
    Deployment,
    _deploy_contract,
    deploy,
    genesis_hash,
    upgrade,
)
from escrow.transactions import PreparedCall
from helpers import DAY, ONE_ETH, USD, Roles, open_trade

# ------------------------------------------------------------------ helpers


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ESCROW_RPC_URL", "ESCROW_PRIVATE_KEY", "ESCROW_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ESCROW_DATA_DIR", str(tmp_path / "data"))


def use(monkeypatch: pytest.MonkeyPatch, chain: Chain, deployment: Deployment) -> None:
    """The commands run on the test session's chain with ``deployment``."""
    monkeypatch.setattr(cli, "_connect", lambda args: chain)
    monkeypatch.setattr(cli, "_deployment", lambda args, chain: deployment)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(
    capsys: pytest.CaptureFixture[str], *argv: str, rpc_url: str | None = None
) -> tuple[int, dict[str, Any], str]:
    before = ["--rpc-url", rpc_url] if rpc_url else []
    code, out, err = run(capsys, *before, "audit", "--json", *argv)
    return code, json.loads(out), err


def one_error_line(err: str, fragment: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("escrow audit: error: "), lines[0]
    assert fragment in lines[0], lines[0]
    return lines[0]


def books(report: dict[str, Any], escrow: int, symbol: str) -> dict[str, Any]:
    (found,) = [b for b in report["escrows"][escrow]["tokens"] if b["symbol"] == symbol]
    return found


class Refuser:
    """A contract seller that refuses ETH: its payouts are credited (PaymentDeferred)."""

    def __init__(self, client: EscrowClient, controller: str) -> None:
        artifact = load_artifact("RevertingReceiver")
        chain = client.chain
        factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = chain.wait_for_receipt(factory.constructor().transact({"from": controller}))
        self.contract = chain.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
        self.address = self.contract.address
        self.client, self.controller = client, controller

    def forward(self, call: PreparedCall) -> None:
        data = bytes.fromhex(call.function._encode_transaction_data()[2:])
        fn = self.contract.functions.forward(self.client.address, data)
        self.client.send(PreparedCall(fn, value=call.value), self.controller)


def credit_a_refusing_seller(client: EscrowClient, roles: Roles) -> tuple[str, int]:
    """A released trade whose seller refused the payout: (seller, its credit)."""
    refuser = Refuser(client, roles.stranger)
    funded = client.fund(
        seller=refuser.address,
        arbitrator=roles.arbitrator,
        amount=ONE_ETH,
        ship_by=client.chain.latest_timestamp() + 3 * DAY,
        inspection_period=DAY,
        sender=roles.buyer2,
    )
    assert funded.terms is not None
    refuser.forward(client.calls.mark_shipped(funded.trade_id, funded.terms))
    result = client.confirm_receipt(funded.trade_id, funded.terms, sender=roles.buyer2)
    credit = int(result.event("PaymentDeferred").args["amount"])
    return refuser.address, credit


# ------------------------------------------------------------------ the books


def test_books_balance_with_open_trades_credits_fees_and_a_direct_transfer(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    chain: Chain,
    deployment: Deployment,
    client: EscrowClient,
    roles: Roles,
    stablecoin: str,
) -> None:
    use(monkeypatch, chain, deployment)
    eth_open = open_trade(client, roles)  # stays funded
    usd_open = open_trade(client, roles, token=stablecoin, amount=250 * USD)
    assert usd_open.terms is not None
    client.mark_shipped(usd_open.trade_id, usd_open.terms, sender=roles.seller)
    done = open_trade(client, roles, buyer=roles.buyer2)
    assert done.terms is not None
    client.confirm_receipt(done.trade_id, done.terms, sender=roles.buyer2)  # 1 % fee accrues
    _, credit = credit_a_refusing_seller(client, roles)
    # someone sends 7 tUSD to the escrow directly: a surplus that belongs to nobody
    assert client.stablecoin is not None
    gift = client.stablecoin.functions.transfer(client.address, 7 * USD)
    client.send(PreparedCall(gift), roles.stranger)

    code, report, err = run_json(capsys)
    assert code == 0, err
    assert report["ok"] is True
    eth = books(report, 0, "ETH")
    assert eth["open_trades"] == str(ONE_ETH) and eth["open_trade_count"] == 1
    assert eth["credits"] == eth["credits_on_chain"] == str(credit)
    assert eth["platform_fees"] == eth["platform_fees_on_chain"] == str(2 * ONE_ETH // 100)
    assert eth["surplus"] == eth["shortfall"] == "0"
    assert int(eth["balance"]) == ONE_ETH + credit + 2 * ONE_ETH // 100
    usd = books(report, 0, "tUSD")
    assert usd["open_trades"] == str(250 * USD) and usd["surplus"] == str(7 * USD)
    assert usd["shortfall"] == "0" and usd["ok"] is True

    escrow = report["escrows"][0]
    assert escrow["version"] == 2 and escrow["unknown_logs"] == 0
    assert escrow["undecodable_logs"] == 0 and escrow["trades_seen"] == 4
    opened = {t["trade_id"]: t for t in escrow["open_trades"]}
    assert set(opened) == {f"{eth_open.trade_id:#x}", f"{usd_open.trade_id:#x}"}
    funded = opened[f"{eth_open.trade_id:#x}"]
    assert funded["status"] == "funded" and funded["timeout_call"] == "refundAfterDeadline"
    assert funded["next_deadline"] == funded["terms"]["ship_by"]
    assert funded["timeout_command"] == f"escrow refund {eth_open.trade_id:#x}"
    assert funded["terms"]["delivery_window_seconds"] == 0
    assert funded["terms"]["buyer"] == roles.buyer and funded["terms"]["seller"] == roles.seller
    shipped = opened[f"{usd_open.trade_id:#x}"]
    assert shipped["status"] == "shipped" and shipped["timeout_call"] == "releaseAfterInspection"
    assert shipped["inspection_started"] is True  # no delivery window: it starts at shipping
    assert shipped["next_deadline_utc"].endswith("Z") and shipped["deadline_passed"] is False

    code, out, err = run(capsys, "audit")
    assert code == 0, err
    assert "surplus 7 tUSD (sent directly)" in out
    assert f"escrow release {usd_open.trade_id:#x}" in out
    assert "result: OK" in out


def test_a_shortfall_fails_and_a_surplus_does_not(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    chain: Chain,
    deployment: Deployment,
    client: EscrowClient,
    roles: Roles,
) -> None:
    use(monkeypatch, chain, deployment)
    open_trade(client, roles)
    real_balance = audit_module._balance

    def short(chain: Chain, escrow: str, token: str, head: int) -> int:
        return real_balance(chain, escrow, token, head) - (1 if int(token, 16) == 0 else 0)

    monkeypatch.setattr(audit_module, "_balance", short)
    code, out, err = run(capsys, "audit")
    assert code == 1
    assert "SHORTFALL 0.000000000000000001 ETH" in out and "result: FAILED" in out
    one_error_line(err, "do not balance")
    code, report, _ = run_json(capsys)
    assert code == 1 and books(report, 0, "ETH")["shortfall"] == "1"


def test_credits_and_fees_are_checked_against_the_contracts_views(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    chain: Chain,
    deployment: Deployment,
    client: EscrowClient,
    roles: Roles,
) -> None:
    use(monkeypatch, chain, deployment)
    _, credit = credit_a_refusing_seller(client, roles)
    start = chain.w3.eth.block_number + 1
    chain.mine()
    # a scan that starts after the credit and the fee were booked cannot explain them
    code, report, err = run_json(
        capsys, "--address", client.address, "--from-block", str(start), "--version", "2"
    )
    assert code == 1
    eth = books(report, 0, "ETH")
    assert eth["credits"] == "0" and eth["platform_fees"] == "0"
    assert any("accruedPlatformFees says 0.01 ETH" in p for p in eth["problems"])
    assert report["escrows"][0]["warnings"]  # the deployment was not in the scan
    one_error_line(err, client.address)

    code, report, err = run_json(capsys, "--address", client.address, "--from-block", "0")
    assert code == 0, err  # the version is told from the code
    assert report["escrows"][0]["version"] == 2
    assert books(report, 0, "ETH")["credits_on_chain"] == str(credit)


# ------------------------------------------------------------------ both contract versions


@pytest.fixture
def upgraded(chain: Chain, deployment: Deployment, roles: Roles) -> tuple[Deployment, Funded]:
    """A v1 escrow with an open trade, then upgraded: v2 is current, v1 is kept."""
    owner = deployment.owner
    record = _deploy_contract(chain, "P2PEscrowV1", [owner, DEFAULT_RULING_PERIOD], owner)
    assert record.version == 1
    old = Deployment(
        chain_id=chain.chain_id,
        genesis_hash=genesis_hash(chain),
        owner=owner,
        escrow=record,
        stablecoin=deployment.stablecoin,
        arbitrators=list(deployment.arbitrators),
    )
    v1 = old.client(chain)
    for arbitrator in deployment.arbitrators:
        v1.register_arbitrator(arbitrator, 500, sender=owner)
    v1.set_platform_fee(owner, 100, sender=owner)
    finished = open_trade(v1, roles, buyer=roles.buyer2)
    assert finished.terms is not None
    v1.refund_by_seller(finished.trade_id, finished.terms, sender=roles.seller)
    pending = open_trade(v1, roles)
    return upgrade(chain, old, deployer=owner, record=False), pending


def test_every_escrow_of_the_deployment_is_audited_with_its_own_abi(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    chain: Chain,
    roles: Roles,
    upgraded: tuple[Deployment, Funded],
) -> None:
    both, v1_trade = upgraded
    use(monkeypatch, chain, both)
    v2_trade = open_trade(both.client(chain), roles, amount=ONE_ETH // 2)
    code, report, err = run_json(capsys)
    assert code == 0, err
    assert [(e["address"], e["version"]) for e in report["escrows"]] == [
        (both.escrow.address, 2),
        (both.previous_escrows[0].address, 1),
    ]
    v2, v1 = report["escrows"]
    assert [t["trade_id"] for t in v2["open_trades"]] == [f"{v2_trade.trade_id:#x}"]
    assert [t["trade_id"] for t in v1["open_trades"]] == [f"{v1_trade.trade_id:#x}"]
    assert v1["open_trades"][0]["terms"]["delivery_window_seconds"] is None
    assert v1["events"]["TradeRefunded"] == 1 and v1["events"]["FundingPausedSet"] == 1
    assert books(report, 1, "ETH")["open_trades"] == str(ONE_ETH)
    assert books(report, 0, "ETH")["open_trades"] == str(ONE_ETH // 2)

    code, out, _ = run(capsys, "audit")
    assert code == 0
    assert f"escrow {both.previous_escrows[0].address} (v1)" in out
    assert "delivery window" in out  # the v2 trade's line; the v1 trade has none


def test_v1_trades_are_finished_in_their_own_escrow(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    chain: Chain,
    upgraded: tuple[Deployment, Funded],
) -> None:
    both, v1_trade = upgraded
    use(monkeypatch, chain, both)
    trade = f"{v1_trade.trade_id:#x}"
    code, out, err = run(capsys, "show", trade)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["escrow"] == both.previous_escrows[0].address and shown["escrow_version"] == 1
    code, _, err = run(capsys, "received", trade, "--from", "1")
    assert code == 1 and "lives in the version 1 escrow" in err and len(err.splitlines()) == 1
    code, out, err = run(capsys, "ship", trade, "--from", "2")
    assert code == 0 and "TradeShipped" in out, err
    code, out, err = run(capsys, "confirm", trade, "--from", "1")
    assert code == 0 and "TradeReleased" in out, err
    code, report, _ = run_json(capsys)
    assert code == 0 and report["escrows"][1]["open_trades"] == []


# ------------------------------------------------------------------ logs: chunks, junk, history


def test_chunked_reading_and_a_node_refusing_large_ranges_give_the_same_books(
    monkeypatch: pytest.MonkeyPatch,
    chain: Chain,
    deployment: Deployment,
    client: EscrowClient,
    roles: Roles,
) -> None:
    for _ in range(3):
        open_trade(client, roles)
    whole = audit(chain, targets_of(deployment))
    by_block = audit(chain, targets_of(deployment), chunk_blocks=1)
    real = chain.w3.eth.get_logs
    ranges: list[int] = []

    def picky(query: dict[str, Any]) -> Any:
        span = query["toBlock"] - query["fromBlock"] + 1
        ranges.append(span)
        if span > 4:
            raise Web3RPCError(
                "too many",
                rpc_response={"error": {"code": -32005, "message": "block range is too large"}},
            )
        return real(query)

    monkeypatch.setattr(chain.w3.eth, "get_logs", picky)
    halved = audit(chain, targets_of(deployment), chunk_blocks=50)
    assert max(ranges) > 4 and ranges[-1] <= 4  # refused, halved, then read
    for report in (by_block, halved):
        assert report.to_json() == whole.to_json()
    assert whole.ok and len(whole.escrows[0].open_trades) == 3


def test_unknown_and_undecodable_logs_are_counted_never_fatal(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    chain: Chain,
    deployment: Deployment,
    client: EscrowClient,
    roles: Roles,
) -> None:
    use(monkeypatch, chain, deployment)
    funded = open_trade(client, roles)
    real = chain.w3.eth.get_logs
    shipped = client.events.topic("TradeShipped")

    def with_junk(query: dict[str, Any]) -> Any:
        logs = list(real(query))
        if logs:
            base = dict(logs[-1])
            logs.append({**base, "logIndex": 90, "topics": ["0x" + "ee" * 32], "data": "0x"})
            logs.append({**base, "logIndex": 91, "topics": [], "data": "0x"})
            # a known topic whose data is cut short
            logs.append(
                {
                    **base,
                    "logIndex": 92,
                    "topics": [shipped, "0x" + funded.trade_id.to_bytes(32, "big").hex()],
                    "data": "0x1234",
                }
            )
        return logs

    monkeypatch.setattr(chain.w3.eth, "get_logs", with_junk)
    code, report, err = run_json(capsys, "--chunk-blocks", "100000")
    assert code == 0, err
    escrow = report["escrows"][0]
    assert escrow["unknown_logs"] == 2 and escrow["undecodable_logs"] == 1
    assert escrow["unknown_topics"] == {"0x" + "ee" * 32: 1, "(no topic)": 1}
    assert escrow["undecodable"][0]["log_index"] == 92
    assert len(escrow["open_trades"]) == 1
    code, out, _ = run(capsys, "audit", "--chunk-blocks", "100000")
    assert "undecodable log in block" in out and "unknown log topic 0xeeee" in out


@pytest.mark.parametrize(
    "message",
    [
        {"code": 4444, "message": "pruned history unavailable"},
        {"code": -32000, "message": "Receipt not available for From block 3."},
        {"code": -32000, "message": "history before block 100 is missing"},
    ],
)
def test_pruned_logs_exit_2_naming_the_first_block_not_read(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    chain: Chain,
    deployment: Deployment,
    client: EscrowClient,
    roles: Roles,
    message: dict[str, Any],
) -> None:
    use(monkeypatch, chain, deployment)
    open_trade(client, roles)
    cutoff = deployment.escrow.block_number + 5
    real = chain.w3.eth.get_logs

    def pruned(query: dict[str, Any]) -> Any:
        if query["fromBlock"] < cutoff:
            raise Web3RPCError(str(message), rpc_response={"error": message})
        return real(query)

    monkeypatch.setattr(chain.w3.eth, "get_logs", pruned)
    code, out, err = run(capsys, "audit", "--chunk-blocks", "2")
    assert code == 2 and out == ""
    start = deployment.escrow.block_number
    line = one_error_line(err, f"from block {start:,}")
    assert client.address in line and "archive node" in line


def test_a_node_that_silently_lost_the_deployment_blocks_logs_exits_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    chain: Chain,
    deployment: Deployment,
) -> None:
    use(monkeypatch, chain, deployment)
    real = chain.w3.eth.get_logs
    first = deployment.escrow.block_number

    def holey(query: dict[str, Any]) -> Any:
        return [log for log in real(query) if log["blockNumber"] != first]

    monkeypatch.setattr(chain.w3.eth, "get_logs", holey)
    code, _, err = run(capsys, "audit")
    assert code == 2
    one_error_line(err, f"from block {first:,}")
    assert "OwnershipTransferred" in err


def test_a_start_before_the_nodes_earliest_block_exits_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    chain: Chain,
    deployment: Deployment,
) -> None:
    use(monkeypatch, chain, deployment)
    monkeypatch.setattr(audit_module, "earliest_block", lambda chain: 1_000)
    code, _, err = run(capsys, "audit")
    assert code == 2
    one_error_line(err, f"from block {deployment.escrow.block_number:,}")
    assert "history starts at block 1,000" in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["audit", "--from-block", "3"], "go with --address"),
        (["audit", "--version", "2"], "go with --address"),
        (["audit", "--address", "0x" + "11" * 20], "needs --from-block"),
        (["audit", "--address", "3", "--from-block", "0"], "--address"),
        (["audit", "--address", "0x" + "11" * 20, "--from-block", "-1"], "--from-block"),
        (["audit", "--version", "3"], "--version"),
        (["audit", "--chunk-blocks", "0"], "--chunk-blocks"),
    ],
)
def test_bad_audit_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code, _, err = run(capsys, "--rpc-url", "", *argv)
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert fragment in err


def test_an_address_without_escrow_code_needs_a_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--rpc-url", "", "audit", "--address", "0x" + "11" * 20,
                       "--from-block", "0")  # fmt: skip
    assert code == 2 and "give --version 1 or 2" in err


def test_format_report_of_an_empty_escrow(chain: Chain, deployment: Deployment) -> None:
    report = audit(chain, [EscrowTarget(deployment.escrow.address, 2, 0)])
    text = format_report(report)
    assert re.search(r"ETH: balance 0 ETH = open trades 0 ETH \(0\)", text)
    assert "did not see the contract's deployment" not in text  # block 0 is before it
    assert report.ok


# ------------------------------------------------------------------ a real node


@pytest.mark.anvil
def test_audit_on_anvil_reports_a_surplus_and_fails_on_a_shortfall(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with AnvilNode() as node:
        chain = connect(node.url)
        deployment = deploy(chain)  # recorded under ESCROW_DATA_DIR, as `escrow deploy` does
        client = deployment.client(chain)
        buyer, seller = chain.accounts[1], chain.accounts[2]
        funded = client.fund(
            seller=seller,
            arbitrator=deployment.arbitrators[-1],
            amount=ONE_ETH,
            ship_by=chain.latest_timestamp() + DAY,
            inspection_period=DAY,
            delivery_window=3 * DAY,
            sender=buyer,
        )
        assert funded.terms is not None
        client.mark_shipped(funded.trade_id, funded.terms, sender=seller)
        code, report, err = run_json(capsys, rpc_url=node.url)
        assert code == 0, err
        (trade,) = report["escrows"][0]["open_trades"]
        assert trade["status"] == "shipped" and trade["inspection_started"] is False
        assert trade["terms"]["delivery_window_seconds"] == 3 * DAY

        balance = ONE_ETH
        chain.rpc("anvil_setBalance", [client.address, hex(balance + 5)])
        code, report, err = run_json(capsys, rpc_url=node.url)
        assert code == 0, err
        assert books(report, 0, "ETH")["surplus"] == "5"

        chain.rpc("anvil_setBalance", [client.address, hex(balance - 5)])
        code, out, err = run(capsys, "--rpc-url", node.url, "audit")
        assert code == 1 and "SHORTFALL" in out
        one_error_line(err, client.address)
