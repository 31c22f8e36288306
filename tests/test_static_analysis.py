"""Slither over the contracts (v2 and the frozen v1): no untriaged high or medium finding, and it
really analysed both escrows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]


check = load_script("check_slither")


def test_slither_finds_nothing_untriaged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "slither.json"
    assert check.main(["--json", str(report)]) == 0
    out = capsys.readouterr().out
    analysed = int(out.split(" contracts analysed")[0].rsplit(" ", 1)[-1])
    assert analysed > 0
    assert "0 untriaged" in out
    # both escrows were analysed: each has its own findings
    text = report.read_text()
    assert "P2PEscrowV1._transferOut" in text
    assert "P2PEscrow._transferOut" in text


def _fake_report(
    monkeypatch: pytest.MonkeyPatch,
    results: list[dict[str, Any]],
    log: str = "P2PEscrow P2PEscrowV1\ncontracts/ analyzed (33 contracts with 76 detectors)",
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


def test_v2_triage_is_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_report(
        monkeypatch,
        [
            _result("unused-return", "Medium", "_pay"),
            _result("incorrect-equality", "Medium", "grantInspectionExtension"),
        ],
    )
    assert check.main([]) == 0


def test_a_missing_v1_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_report(
        monkeypatch, [], log="P2PEscrow\ncontracts/ analyzed (20 contracts with 76 detectors)"
    )
    assert check.main([]) == 1


def test_zero_analysed_contracts_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_report(monkeypatch, [], log="contracts/ analyzed (0 contracts with 76 detectors)")
    assert check.main([]) == 1
