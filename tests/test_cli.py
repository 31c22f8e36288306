"""The ``escrow`` command line on the embedded chain: it runs, and refuses with messages."""

from __future__ import annotations

import pytest

from escrow.cli import main


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
