"""The ``escrow`` command line on the embedded chain: it runs, and refuses with messages."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from escrow import cli
from escrow.chain import Chain
from escrow.cli import main
from escrow.client import EscrowClient, Party
from escrow.compiler import load_artifact
from escrow.deploy import Deployment
from escrow.transactions import PreparedCall


def test_compile_reports_the_artifacts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile"]) == 0
    assert "P2PEscrow" in capsys.readouterr().out


def test_demo_runs_every_eth_path(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ESCROW_RPC_URL", raising=False)
    assert main(["--rpc-url", "", "demo", "--token", "eth"]) == 0
    out = capsys.readouterr().out
    assert "8 trade paths completed" in out
    for outcome in ("released", "refunded", "settled", "resolved"):
        assert f"[ETH] {outcome}" in out


def test_bad_amount_is_a_message_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--rpc-url",
            "",
            "fund",
            "--from",
            "1",
            "--seller",
            "0x" + "11" * 20,
            "--arbitrator",
            "0x" + "22" * 20,
            "--amount",
            "-3",
        ]
    )
    assert code == 2  # what was typed is wrong: a usage error, as argparse's own
    err = capsys.readouterr().err
    assert "must be more than zero" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_contract_refusal_names_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--rpc-url", "", "show", "0x1"])
    assert code == 1
    assert "UnknownTrade" in capsys.readouterr().err


def test_missing_sender_is_explained(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ESCROW_PRIVATE_KEY", raising=False)
    code = main(
        [
            "--rpc-url",
            "",
            "fund",
            "--seller",
            "0x" + "11" * 20,
            "--arbitrator",
            "0x" + "22" * 20,
            "--amount",
            "1",
        ]
    )
    assert code == 2
    assert "--from" in capsys.readouterr().err


# ------------------------------------------------------------------ version 2 actions

DAY = 24 * 3600


@pytest.fixture
def shared(
    monkeypatch: pytest.MonkeyPatch, chain: Chain, deployment: Deployment
) -> Iterator[Chain]:
    """Commands run on the test session's chain, so what one command did the next one sees."""
    for name in ("ESCROW_RPC_URL", "ESCROW_PRIVATE_KEY", "ESCROW_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli, "_connect", lambda args: chain)
    monkeypatch.setattr(cli, "_deployment", lambda args, chain: deployment)
    yield chain


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Runs a command that must succeed; returns its output."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def fund(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    out = run(
        capsys, "fund", "--from", "1", "--seller", "2", "--arbitrator", "9", "--amount", "1",
        *extra,
    )  # fmt: skip
    match = re.search(r"trade id (0x[0-9a-f]+)", out)
    assert match, out
    return int(match[1], 16), out


def test_fund_shows_the_fee_in_force_and_takes_the_delivery_window(
    capsys: pytest.CaptureFixture[str], shared: Chain, client: EscrowClient
) -> None:
    trade_id, out = fund(capsys)
    assert "platform fee in force 1 % (100 basis points); accepting at most 1 %" in out
    terms = client.trade(trade_id).terms
    assert terms.delivery_window == 10 * DAY  # the default
    assert terms.inspection_period == 2 * DAY and terms.platform_fee_bps == 100

    trade_id, out = fund(capsys, "--delivery-days", "0", "--max-fee-bps", "2%")
    assert "accepting at most 2 % (200 basis points)" in out
    terms = client.trade(trade_id).terms
    assert terms.delivery_window == 0 and terms.platform_fee_bps == 100  # the fee in force


def test_received_extension_and_cancelled_split_from_the_command_line(
    capsys: pytest.CaptureFixture[str], shared: Chain, client: EscrowClient
) -> None:
    trade_id, _ = fund(capsys, "--delivery-days", "5", "--inspection-hours", "24")
    tid = f"{trade_id:#x}"
    assert "TradeShipped" in run(capsys, "ship", tid, "--from", "2")
    shown = json.loads(run(capsys, "show", tid))
    assert shown["status"] == "shipped" and shown["inspection_started"] is False
    assert shown["escrow_version"] == 2 and shown["terms"]["delivery_window"] == 5 * DAY

    assert "TradeReceived" in run(capsys, "received", tid, "--from", "1")
    assert "InspectionExtensionRequested" in run(
        capsys, "extend", tid, "--days", "3", "--from", "1"
    )
    assert "InspectionExtended" in run(capsys, "grant-extension", tid, "--from", "2")
    shown = json.loads(run(capsys, "show", tid))
    assert shown["inspection_started"] is True
    assert shown["extension"] == {"days": 3, "granted": True}
    # the inspection now ends one day (the period) plus three days after receipt
    received_at = shared.w3.eth.get_block(shared.w3.eth.block_number - 2)["timestamp"]
    assert shown["deadline"] == received_at + DAY + 3 * DAY

    assert "SplitProposed" in run(capsys, "propose-split", tid, "40%", "--from", "1")
    assert "SplitCleared" in run(capsys, "cancel-split", tid, "--from", "1")
    assert client.trade(trade_id).state.split_proposer == Party.NONE


def test_withdraw_to_sends_a_credit_to_another_address(
    capsys: pytest.CaptureFixture[str],
    shared: Chain,
    client: EscrowClient,
    deployment: Deployment,
) -> None:
    """A token payout that moved nothing is credited; the payee sends it elsewhere."""
    owner, buyer, seller, elsewhere = (shared.accounts[i] for i in (0, 1, 2, 5))
    artifact = load_artifact("LyingToken")
    factory = shared.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = shared.wait_for_receipt(factory.constructor(owner).transact({"from": owner}))
    token = shared.w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
    client.set_token_allowed(token.address, True, sender=owner)
    client.send(PreparedCall(token.functions.mint(buyer, 10**9)), owner)
    client.approve(token.address, 10**9, sender=buyer)
    funded = client.fund(
        seller=seller,
        arbitrator=deployment.arbitrators[-1],
        token=token.address,
        amount=10**9,
        ship_by=shared.latest_timestamp() + DAY,
        inspection_period=DAY,
        sender=buyer,
    )
    assert funded.terms is not None
    client.mark_shipped(funded.trade_id, funded.terms, sender=seller)
    client.send(PreparedCall(token.functions.setMode(2)), owner)  # transfers move nothing
    client.confirm_receipt(funded.trade_id, funded.terms, sender=buyer)
    credit = client.credits(seller, token.address)
    assert credit == 10**9 - 10**7
    client.send(PreparedCall(token.functions.setMode(0)), owner)

    out = run(capsys, "withdraw", "--token", token.address, "--to", "5", "--from", "2")
    assert f"withdraw to {elsewhere}" in out and "Withdrawn" in out
    assert client.token_balance(token.address, elsewhere) == credit
    assert client.token_balance(token.address, seller) == 0
    assert client.credits(seller, token.address) == 0
    report = json.loads(run(capsys, "audit", "--json"))
    assert report["ok"] is True
    (lie,) = [b for b in report["escrows"][0]["tokens"] if b["symbol"] == "LIE"]
    assert lie["credits"] == "0" and lie["platform_fees"] == str(10**7)
