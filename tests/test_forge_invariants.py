"""The Foundry suites (test/foundry) pass: the v2 invariant campaigns make at least 100,000
random calls, and the deadline-boundary unit tests run.

It runs ``scripts/run_forge_tests.sh``: forge from npm, offline, with the npm solc. A cold run
compiles with viaIR through the wasm compiler (one and a half to two minutes); the campaigns
then take a few minutes on two cores.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "run_forge_tests.sh"
FORGE = ROOT / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"
MIN_CALLS = 100_000


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_forge_invariant_suite_passes_with_enough_calls() -> None:
    if not FORGE.is_file():
        pytest.fail(f"forge is missing at {FORGE}: run `npm ci`")
    run = subprocess.run(
        ["bash", str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=880
    )
    output = run.stdout + run.stderr
    tail = output[-4000:]
    assert run.returncode == 0, f"forge test failed:\n{tail}"

    campaigns = re.findall(r"\(runs: (\d+), calls: (\d+), reverts: (\d+)\)", output)
    assert campaigns, f"no invariant campaign in the output:\n{tail}"
    calls = sum(int(c) for _, c, _ in campaigns)
    assert calls >= MIN_CALLS, f"only {calls} invariant calls:\n{tail}"
    # the handler never reverts (fail_on_revert), so every call reached the escrow's logic
    assert all(int(r) == 0 for _, _, r in campaigns), tail
    assert re.search(rf"invariant calls: {calls}\b", output), tail
    assert "[FAIL" not in output, tail
    # the deadline-boundary tests ran, one per deadline
    for test in (
        "test_shipBy",
        "test_inspectionEndAfterDeliveryWindow",
        "test_inspectionEndAfterReceipt",
        "test_inspectionEndWithGrantedExtension",
        "test_grantExtensionBeforeInspectionEnd",
        "test_rulingDeadlineAfterShipping",
        "test_deliveryWindowEnd",
    ):
        assert re.search(rf"\[PASS\] {test}\(", output), f"{test} did not pass:\n{tail}"
    # both invariant suites ran (every account accepting ETH, and the refusing ones)
    assert len(campaigns) >= 2, tail
