"""Bad input to the ``escrow`` command line: one line on stderr, a status, never a traceback.

Status 2 when what was typed is wrong (argparse's status too), 1 when a well-formed command is
refused or fails (node down, no deployment, a contract revert). ``--debug`` or ESCROW_DEBUG=1
adds the traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from escrow import cli
from escrow.anvil import AnvilNode
from escrow.chain import Chain
from escrow.cli import main
from escrow.client import EscrowClient, Funded
from escrow.deploy import Deployment

DAY = 24 * 3600
ADDRESS = "0x" + "11" * 20
DOWN = "http://127.0.0.1:1"  # nothing listens on port 1
HASH = "0x" + "ab" * 32
BEYOND_HEAD = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF000000000000000fffffff"  # block 2**28-1


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ESCROW_RPC_URL", "ESCROW_PRIVATE_KEY", "ESCROW_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ESCROW_DATA_DIR", str(tmp_path / "data"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str, status: int, code: int, *fragments: str) -> str:
    """Asserts the status, a single ``escrow <command>: error: …`` line and its fragments."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert re.match(r"escrow( [a-z-]+)?: error: \S", line), line
    assert code == status, line
    for fragment in fragments:
        assert fragment in line
    return line


def fund_argv(
    *extra: str, seller: str = "2", arbitrator: str = "9", amount: str = "1"
) -> list[str]:
    return ["fund", "--seller", seller, "--arbitrator", arbitrator, "--amount", amount, *extra]


@pytest.fixture
def shared(
    monkeypatch: pytest.MonkeyPatch, chain: Chain, deployment: Deployment
) -> Iterator[Chain]:
    """Commands run on the test session's chain, so a trade funded before them is there."""
    monkeypatch.setattr(cli, "_connect", lambda args: chain)
    monkeypatch.setattr(cli, "_deployment", lambda args, chain: deployment)
    yield chain


@pytest.fixture
def funded(shared: Chain, client: EscrowClient, deployment: Deployment) -> Funded:
    accounts = shared.accounts
    return client.fund(
        seller=accounts[2],
        arbitrator=deployment.arbitrators[-1],
        amount=10**17,
        ship_by=shared.latest_timestamp() + DAY,
        inspection_period=DAY,
        sender=accounts[1],
    )


# ------------------------------------------------------------------ accounts by index


def test_seller_and_arbitrator_take_a_dev_account_index(
    capsys: pytest.CaptureFixture[str], chain: Chain
) -> None:
    code, out, err = run(capsys, "--rpc-url", "", *fund_argv("--from", "1", amount="1,5"))
    assert code == 0, err
    assert re.search(r"trade id 0x[0-9a-f]+", out)


def test_an_index_names_the_nodes_account_and_both_id_forms_show_the_trade(
    capsys: pytest.CaptureFixture[str], shared: Chain, client: EscrowClient
) -> None:
    code, out, err = run(capsys, *fund_argv("--from", "1", seller="2", arbitrator="9"))
    assert code == 0, err
    match = re.search(r"trade id (0x[0-9a-f]+)", out)
    assert match
    trade_id = int(match[1], 16)
    terms = client.trade(trade_id).terms
    assert (terms.buyer, terms.seller, terms.arbitrator) == (
        shared.accounts[1],
        shared.accounts[2],
        shared.accounts[9],
    )
    shown = []
    for written in (match[1], str(trade_id)):
        code, out, err = run(capsys, "show", written)
        assert code == 0, err
        shown.append(out)
    assert shown[0] == shown[1] and match[1] in shown[0]


# ------------------------------------------------------------------ usage errors (status 2)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (fund_argv("--from", "1", seller="zz"), "--seller"),
        (fund_argv("--from", "1", seller="0x1234"), "--seller"),
        (fund_argv("--from", "1", arbitrator="0x" + "g" * 40), "--arbitrator"),
        # an EIP-55 address with one letter's case flipped: a typo, not an address to pay
        (
            fund_argv("--from", "1", seller="0x3c44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
            "checksum",
        ),
        (fund_argv("--from", "0xzz"), "--from"),
        (["confirm", "0x1", "--from", "bob"], "--from"),
        (["deploy", "--from", "1.5"], "--from"),
        (["withdraw", "--from", "alice"], "--from"),
        (["withdraw", "--from", "1", "--token", "0x12"], "--token"),
        (fund_argv("--from", "1", "--token", "btc"), "--token"),
        (["withdraw", "--from", "1", "--to", "bob"], "--to"),
    ],
)
def test_bad_addresses_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code, _, err = run(capsys, "--rpc-url", "", *argv)
    error_line(err, 2, code, fragment)


@pytest.mark.parametrize(
    ("amount", "token", "fragment"),
    [
        ("-3", "eth", "must be more than zero"),
        ("0", "eth", "--amount"),
        ("abc", "eth", "--amount"),
        ("1,500", "eth", "1500 or 1,5"),
        ("1.5 ETH", "eth", "--amount"),
        ("1e3", "eth", "--amount"),
        ("1.0000001", "usd", "--amount"),
    ],
)
def test_bad_amounts_are_usage_errors_before_any_chain(
    capsys: pytest.CaptureFixture[str], amount: str, token: str, fragment: str
) -> None:
    # the node is down: the amount is refused before anything connects
    argv = fund_argv("--from", "1", "--token", token, amount=amount)
    code, _, err = run(capsys, "--rpc-url", DOWN, *argv)
    error_line(err, 2, code, fragment)


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "zz"],
        ["show", "0xzz"],
        ["confirm", "--from", "1", "--", "-5"],
        ["show", "0x" + "ff" * 33],  # more than 256 bits
        ["dispute", "0", "--from", "1"],
        ["rule", "1_000", "5000", "--from", "9"],
        ["show", "1.5"],
        ["show", "0o17"],
    ],
)
def test_malformed_trade_ids_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = run(capsys, "--rpc-url", "", *argv)
    error_line(err, 2, code, "trade_id")


@pytest.mark.parametrize(
    "argv",
    [
        ["confirm", "0x1", "--from", "10"],
        fund_argv("--from", "1", seller="10"),
        fund_argv("--from", "1", arbitrator="99"),
        ["deploy", "--from", "42"],
        ["withdraw", "--from", "11"],
    ],
)
def test_an_index_the_node_does_not_have_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = run(capsys, "--rpc-url", "", *argv)
    error_line(err, 2, code, "10 unlocked accounts, indexes 0 to 9")


def test_an_address_the_embedded_chain_cannot_sign_for_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "--rpc-url", "", *fund_argv("--from", ADDRESS))
    error_line(err, 2, code, "--from", "signs only for its own accounts")


@pytest.mark.parametrize(
    "argv",
    [
        fund_argv(),
        ["confirm", "0x1"],
        ["ship", "0x1", "--reference", "DHL 1"],
        ["withdraw"],
        ["propose-split", "0x1", "50%"],
        ["evidence", "0x1", "ipfs://x", "--content-hash", HASH],
        ["received", "0x1"],
        ["extend", "0x1", "--days", "2"],
        ["grant-extension", "0x1"],
        ["cancel-split", "0x1"],
        ["withdraw", "--to", "3"],
    ],
)
def test_no_sender_and_no_key_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = run(capsys, "--rpc-url", "", *argv)
    error_line(err, 2, code, "--from", "ESCROW_PRIVATE_KEY")


@pytest.mark.parametrize("key", ["zz", "0x1234", "0x" + "g" * 64])
def test_a_key_that_is_no_key_is_a_usage_error_that_does_not_echo_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("ESCROW_PRIVATE_KEY", key)
    code, _, err = run(capsys, "--rpc-url", "", "withdraw")
    line = error_line(err, 2, code, "ESCROW_PRIVATE_KEY is not a private key")
    assert key not in line


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["propose-split", "0x1", "20000", "--from", "1"], "more than 100 %"),
        (["propose-split", "0x1", "101%", "--from", "1"], "more than 100 %"),
        (["accept-split", "0x1", "abc", "--from", "2"], "not a share"),
        (["accept-split", "0x1", "12.5", "--from", "2"], "not a share"),
        (["rule", "0x1", "--from", "9", "--", "-1"], "not a share"),
        (["rule", "0x1", "1e4", "--from", "9"], "not a share"),
        (["propose-split", "0x1", "50.555%", "--from", "1"], "finer than"),
        (fund_argv("--from", "1", "--arbitrator-fee-bps", "10001"), "--arbitrator-fee-bps"),
    ],
)
def test_bad_shares_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code, _, err = run(capsys, "--rpc-url", "", *argv)
    error_line(err, 2, code, fragment)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["evidence", "0x1", "u", "--from", "1", "--content-hash", "zz"], "--content-hash"),
        (["evidence", "0x1", "u", "--from", "1", "--file", "/no/such/file"], "--file"),
        (fund_argv("--from", "1", "--listing-ref", "x" * 33), "--listing-ref"),
        (["ship", "0x1", "--from", "2", "--reference", "é" * 17], "--reference"),
        (fund_argv("--from", "1", "--ship-within-hours", "-5"), "--ship-within-hours"),
        (fund_argv("--from", "1", "--ship-within-hours", "0"), "--ship-within-hours"),
        (fund_argv("--from", "1", "--inspection-hours", "nan"), "--inspection-hours"),
        (fund_argv("--from", "1", "--inspection-hours", "inf"), "--inspection-hours"),
        # the contract's minimum inspection is one day
        (fund_argv("--from", "1", "--inspection-hours", "5"), "minimum of 24 hours"),
        (fund_argv("--from", "1", "--inspection-hours", "0"), "--inspection-hours"),
        (fund_argv("--from", "1", "--delivery-days", "61"), "--delivery-days"),
        (fund_argv("--from", "1", "--delivery-days", "2.5"), "--delivery-days"),
        (fund_argv("--from", "1", "--max-fee-bps", "101%"), "more than 100 %"),
        (["extend", "0x1", "--from", "1", "--days", "8"], "--days"),
        (["extend", "0x1", "--from", "1", "--days", "0"], "--days"),
        (["extend", "0x1", "--from", "1"], "required"),
        (["chain", "--port", "70000"], "--port"),
        (["chain", "--block-time", "0"], "--block-time"),
        (["deploy", "--ruling-period", "0"], "--ruling-period"),
        (["demo", "--token", "btc"], "--token"),
        (["fund", "--seller", "2"], "required"),
        (["no-such-command"], "invalid choice"),
        ([], "required"),
    ],
)
def test_other_bad_options_are_one_line_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code, _, err = run(capsys, "--rpc-url", "", *argv)
    error_line(err, 2, code, fragment)


def test_an_rpc_url_that_is_no_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--rpc-url", "localhost:8545", "show", "0x1")
    error_line(err, 2, code, "--rpc-url", "http://")


# ------------------------------------------------------------------ refused or failed (status 1)


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "0x1"],
        fund_argv("--from", "1"),
        ["deploy"],
        ["withdraw", "--from", "1"],
        ["confirm", "0x1", "--from", "1"],
    ],
)
def test_a_node_that_is_down_is_one_line_and_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    code, _, err = run(capsys, "--rpc-url", DOWN, *argv)
    line = error_line(err, 1, code, "cannot reach the chain node at http://127.0.0.1:1")

    code, _, err = run(capsys, "--rpc-url", DOWN, *argv, "--debug")
    assert code == 1 and "Traceback" in err and err.splitlines()[-1] == line

    monkeypatch.setenv("ESCROW_DEBUG", "1")
    code, _, err = run(capsys, "--rpc-url", DOWN, *argv)
    assert code == 1 and "Traceback" in err and err.splitlines()[-1] == line


def test_a_missing_or_unreadable_deployment_is_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    chain: Chain,
) -> None:
    # the test chain seen as a node (not the embedded chain that deploys for each command)
    node = Chain(w3=chain.w3, is_tester=False, url="http://node.test")
    monkeypatch.setattr(cli, "_connect", lambda args: node)
    for argv in (["show", "0x1"], fund_argv("--from", "1"), ["withdraw", "--from", "1"]):
        code, _, err = run(capsys, *argv)
        error_line(err, 1, code, f"no live deployment on chain {chain.chain_id}", "escrow deploy")

    record = tmp_path / "data" / "deployments" / f"{chain.chain_id}.json"
    record.parent.mkdir(parents=True)
    for content in ("{not json", '{"chain_id": 1}', "[]"):
        record.write_text(content)
        for argv in (["show", "0x1"], ["deploy"], ["confirm", "0x1", "--from", "1"]):
            code, _, err = run(capsys, *argv)
            error_line(err, 1, code, "cannot be read", "escrow deploy --force")


def test_no_such_trade_is_refused_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--rpc-url", "", "show", "0x1")
    error_line(err, 1, code, "UnknownTrade", "there is no trade 0x1")
    code, _, err = run(capsys, "--rpc-url", "", "confirm", BEYOND_HEAD, "--from", "1")
    error_line(err, 1, code, "there is no trade", "after the chain's latest block")


@pytest.mark.parametrize(
    ("argv", "name", "words"),
    [
        (["confirm", "{id}", "--from", "3"], "NotBuyer", "only the trade's buyer may do this"),
        (["ship", "{id}", "--from", "1"], "NotSeller", "only the trade's seller may do this"),
        (["rule", "{id}", "50%", "--from", "1"], "NotArbitrator", "only the trade's arbitrator"),
        (["release", "{id}", "--from", "1"], "InvalidStatus", "is funded, which does not allow"),
        (["refund", "{id}", "--from", "1"], "DeadlineNotReached", "allowed only after 20"),
        (
            ["accept-split", "{id}", "50%", "--from", "2"],
            "NoMatchingProposal",
            "has not proposed 50 % (5000 basis points) for the buyer",
        ),
        (fund_argv("--from", "1", seller="1"), "SellerIsBuyer", "is also the buyer"),
        (fund_argv("--from", "1", arbitrator="3"), "ArbitratorNotRegistered", "not a registered"),
        (
            fund_argv("--from", "1", "--arbitrator-fee-bps", "25%"),
            "ArbitratorFeeTooHigh",
            "an arbitrator fee of 25 % (2500 basis points) is above the cap",
        ),
        (fund_argv("--from", "1", "--ship-within-hours", "100000"), "DeadlineTooFar", "UTC"),
        (["withdraw", "--from", "4"], "NothingToWithdraw", "no ETH is credited to"),
        (["withdraw", "--from", "4", "--to", "5"], "NothingToWithdraw", "no ETH is credited"),
        (["received", "{id}", "--from", "1"], "InvalidStatus", "is funded, which does not"),
        (["received", "{id}", "--from", "2"], "NotBuyer", "only the trade's buyer"),
        (["extend", "{id}", "--days", "2", "--from", "2"], "NotBuyer", "only the trade's buyer"),
        (["extend", "{id}", "--days", "2", "--from", "1"], "InvalidStatus", "is funded"),
        (["grant-extension", "{id}", "--from", "2"], "InvalidStatus", "is funded"),
        (["cancel-split", "{id}", "--from", "1"], "NoProposalToCancel", "no open split proposal"),
        (["cancel-split", "{id}", "--from", "3"], "NotParty", "neither"),
        (
            fund_argv("--from", "1", "--max-fee-bps", "50"),
            "PlatformFeeAboveLimit",
            "the platform fee in force, 1 % (100 basis points), is above the 0.5 % (50 basis "
            "points) you accepted",
        ),
    ],
)
def test_contract_reverts_are_named_and_put_in_words(
    capsys: pytest.CaptureFixture[str],
    funded: Funded,
    argv: list[str],
    name: str,
    words: str,
) -> None:
    argv = [a.replace("{id}", f"{funded.trade_id:#x}") for a in argv]
    code, _, err = run(capsys, *argv)
    error_line(err, 1, code, f"the contract refused ({name}): ", words)


def test_a_split_can_be_given_as_a_percentage(
    capsys: pytest.CaptureFixture[str], funded: Funded, client: EscrowClient
) -> None:
    code, _, err = run(capsys, "propose-split", f"{funded.trade_id:#x}", "62.5%", "--from", "1")
    assert code == 0, err
    assert client.trade(funded.trade_id).state.proposed_buyer_bps == 6250


def test_an_unexpected_exception_is_one_line_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(args: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(cli, "_connect", broken)
    code, _, err = run(capsys, "show", "0x1")
    error_line(err, 1, code, "unexpected RuntimeError: boom", "--debug")
    code, _, err = run(capsys, "--debug", "show", "0x1")
    assert code == 1 and "Traceback" in err and "second line" in err


# ------------------------------------------------------------------ as a process


def escrow_process(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ESCROW_RPC_URL", "ESCROW_PRIVATE_KEY", "ESCROW_DEBUG")
    }
    return subprocess.run(
        [sys.executable, "-m", "escrow.cli", *argv],
        env={**clean, "ESCROW_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.parametrize(
    ("argv", "env", "status", "fragment"),
    [
        (fund_argv("--from", "1", seller="2x"), {}, 2, "--seller"),
        (["show", "--", "-5"], {}, 2, "trade_id"),
        (["show", BEYOND_HEAD], {}, 1, "after the chain's latest block"),
        (["withdraw"], {"ESCROW_PRIVATE_KEY": "zz"}, 2, "ESCROW_PRIVATE_KEY"),
    ],
)
def test_no_traceback_reaches_stderr_of_the_process(
    tmp_path: Path, argv: list[str], env: dict[str, str], status: int, fragment: str
) -> None:
    done = escrow_process(tmp_path, *argv, **env)
    error_line(done.stderr, status, done.returncode, fragment)


def test_the_process_runs_fund_with_indexes_and_shows_a_traceback_when_debugging(
    tmp_path: Path,
) -> None:
    done = escrow_process(tmp_path, *fund_argv("--from", "1", amount="0,5"))
    assert done.returncode == 0, done.stderr
    assert "trade id 0x" in done.stdout and "Traceback" not in done.stderr
    done = escrow_process(tmp_path, "--rpc-url", DOWN, "show", "0x1", ESCROW_DEBUG="1")
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("escrow show: error: cannot reach")


@pytest.mark.anvil
def test_on_anvil_indexes_resolve_to_its_dev_accounts_and_errors_are_one_line(
    tmp_path: Path,
) -> None:
    with AnvilNode() as node:
        url = ["--rpc-url", node.url]
        done = escrow_process(tmp_path, *url, "show", "0x1")
        error_line(done.stderr, 1, done.returncode, "no live deployment", "escrow deploy")
        assert escrow_process(tmp_path, *url, "deploy").returncode == 0

        done = escrow_process(tmp_path, *url, *fund_argv("--from", "1", amount="0,5"))
        assert done.returncode == 0, done.stderr
        match = re.search(r"trade id (0x[0-9a-f]+)", done.stdout)
        assert match
        done = escrow_process(tmp_path, *url, "show", match[1])
        assert done.returncode == 0, done.stderr
        # anvil's dev accounts 1, 2 and 9 (the mnemonic's; 8 and 9 are the demo arbitrators)
        for address in (
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
        ):
            assert address in done.stdout

        done = escrow_process(tmp_path, *url, "confirm", match[1], "--from", "3")
        error_line(done.stderr, 1, done.returncode, "(NotBuyer): only the trade's buyer")
        done = escrow_process(tmp_path, *url, *fund_argv("--from", ADDRESS, amount="0,5"))
        error_line(done.stderr, 1, done.returncode, "the chain node refused")
        done = escrow_process(tmp_path, *url, *fund_argv("--from", "1", seller="10"))
        error_line(done.stderr, 2, done.returncode, "--seller 10", "indexes 0 to 9")


def test_a_key_whose_account_cannot_pay_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCROW_PRIVATE_KEY", "0x" + "11" * 32)  # a valid key, no ETH
    code, _, err = run(capsys, "--rpc-url", "", *fund_argv())
    error_line(err, 1, code, "the embedded chain refused", "cannot afford")
