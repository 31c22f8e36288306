"""Slither over the contracts: no untriaged high or medium finding, and it really analysed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]


check = load_script("check_slither")


def test_slither_finds_nothing_untriaged(capsys: pytest.CaptureFixture[str]) -> None:
    assert check.main([]) == 0
    out = capsys.readouterr().out
    analysed = int(out.split(" contracts analysed")[0].rsplit(" ", 1)[-1])
    assert analysed > 0
    assert "0 untriaged" in out


def _fake_report(
    monkeypatch: pytest.MonkeyPatch,
    results: list[dict[str, Any]],
    log: str = "contracts/ analyzed (3 contracts with 76 detectors)",
) -> None:
    monkeypatch.setattr(
        check, "run_slither", lambda out: ({"results": {"detectors": results}}, log)
    )


def _result(check_name: str, impact: str, function: str) -> dict[str, Any]:
    return {
        "check": check_name,
        "impact": impact,
        "description": f"{check_name} in {function}",
        "elements": [
            {
                "type": "function",
                "name": function,
                "type_specific_fields": {"parent": {"name": "P2PEscrow"}},
            }
        ],
    }


def test_an_untriaged_medium_finding_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_report(monkeypatch, [_result("reentrancy-no-eth", "Medium", "confirmReceipt")])
    assert check.main([]) == 1


def test_triaged_and_low_findings_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_report(
        monkeypatch,
        [
            _result("arbitrary-send-eth", "High", "_transferOut"),
            _result("timestamp", "Low", "rule"),
        ],
    )
    assert check.main([]) == 0


def test_zero_analysed_contracts_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_report(monkeypatch, [], log="contracts/ analyzed (0 contracts with 76 detectors)")
    assert check.main([]) == 1
