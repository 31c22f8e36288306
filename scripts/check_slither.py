"""Static analysis of the contracts with Slither; fails on an untriaged high or medium finding.

    python scripts/check_slither.py [--json build/slither.json]

Analyses the current escrow (contracts/*.sol: P2PEscrow v2, its interface, the test
stablecoin) and the frozen v1 (contracts/v1: P2PEscrowV1). Every High or Medium result must
either be fixed or be explained, matched by detector and the function it is about, in
security/slither-triage.json or in SCRIPT_TRIAGE below (which takes precedence: it holds the
v2 and v1 entries). The check also fails when Slither analysed no contract at all (a silent
misconfiguration) or when one of the escrows is missing from the analysis.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRIAGE = ROOT / "security" / "slither-triage.json"
SHIM = ROOT / "escrow" / "solc_shim" / "solc-shim"
FAILING_IMPACTS = {"High", "Medium"}
# Folders under contracts/ that are analysed, beside contracts/ itself (test and bench helpers
# are not product code).
SUBDIRS = ("v1",)
# Contracts that must be among those analysed.
REQUIRED_CONTRACTS = ("P2PEscrow", "P2PEscrowV1")

# Reviewed High/Medium findings, (detector, Contract.function) -> one-line reason.
SCRIPT_TRIAGE: dict[tuple[str, str], str] = {
    ("arbitrary-send-eth", "P2PEscrow._transferOut"): (
        "v2: withdraw/withdrawTo send the caller's own credit (zeroed first) to the caller or the "
        "address it names, withdrawPlatformFees sends accrued fees to the owner-set recipient; "
        "all nonReentrant."
    ),
    ("arbitrary-send-eth", "P2PEscrowV1._transferOut"): (
        "v1 (frozen): withdraw pays msg.sender its own zeroed credit, withdrawPlatformFees the "
        "owner-set recipient; both nonReentrant."
    ),
    ("incorrect-equality", "P2PEscrowV1._open"): (
        "v1 (frozen): strict equalities on the lane's status enum and a zero (unused) slot, not "
        "on a balance."
    ),
    ("incorrect-equality", "P2PEscrowV1.openDispute"): (
        "v1 (frozen): strict equality on the status enum to choose the deadline that applies."
    ),
    ("incorrect-equality", "P2PEscrow._liveDeadline"): (
        "v2: strict equality on the status enum to choose the state's timeout."
    ),
    ("incorrect-equality", "P2PEscrow.tradeView"): (
        "v2 view: a zero slot means an unused lane, and status enum comparisons; no balance."
    ),
    ("incorrect-equality", "P2PEscrow._unpack"): (
        "v2 view helper: equality on the status enum to pick the deadline to report."
    ),
    ("incorrect-equality", "P2PEscrow.grantInspectionExtension"): (
        "v2: tests the extension bits of the trade's packed slot (requested, granted), "
        "not a balance."
    ),
    ("unused-return", "P2PEscrow._pay"): (
        "v2: trySafeTransfer's bool is ignored on purpose: the payout counts the escrow's "
        "balance delta and credits whatever did not leave, so a lying token cannot get the "
        "payee paid twice."
    ),
}


def run_slither(out: Path) -> tuple[dict[str, Any], str]:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    modules = ROOT / "node_modules"
    # Slither treats any folder below foundry.toml as a Foundry project and ignores
    # --solc-standard-json there, so the product contracts are analysed from a copy.
    with tempfile.TemporaryDirectory(prefix="slither.") as tmp:
        sources = Path(tmp) / "contracts"
        sources.mkdir()
        for path in (ROOT / "contracts").glob("*.sol"):
            shutil.copy(path, sources / path.name)
        # Slither's standard-JSON directory target reads the top folder only, so the v1 files
        # join the others (their imports are "./..." and their names differ).
        for sub in SUBDIRS:
            for path in (ROOT / "contracts" / sub).glob("*.sol"):
                if (sources / path.name).exists():
                    raise SystemExit(f"{path} clashes with a contract of the same file name")
                shutil.copy(path, sources / path.name)
        command = [
            str(Path(sys.executable).parent / "slither"),
            "contracts/",
            "--solc",
            str(SHIM),
            "--solc-standard-json",
            "--solc-remaps",
            f"@openzeppelin/contracts/={modules}/@openzeppelin/contracts/",
            "--filter-paths",
            "node_modules",
            "--exclude-informational",
            "--exclude-optimization",
            "--json",
            str(out),
        ]
        # The contracts need viaIR, which Slither's standard JSON cannot ask for; the shim
        # adds it when SOLC_SHIM_VIA_IR is set.
        env = {**os.environ, "SOLC_SHIM_VIA_IR": "1"}
        proc = subprocess.run(
            command, cwd=tmp, env=env, capture_output=True, text=True, timeout=600
        )
    if not out.is_file():
        raise SystemExit(f"slither produced no report (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(out.read_text()), proc.stderr


def analysed_contracts(log: str) -> int:
    match = re.search(r"analyzed \((\d+) contracts", log)
    return int(match.group(1)) if match else 0


def contract_analysed(report: dict[str, Any], log: str, name: str) -> bool:
    """Whether Slither's findings (any impact) or its log name the contract `name`: each escrow
    always has some (at least the Low timestamp ones), so silence means it was not analysed."""
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    if pattern.search(log):
        return True
    return any(
        pattern.search(r.get("description", ""))
        for r in report.get("results", {}).get("detectors", [])
    )


def finding_key(result: dict[str, Any]) -> tuple[str, str]:
    element = result["elements"][0] if result.get("elements") else {}
    parent = element.get("type_specific_fields", {}).get("parent", {})
    name = element.get("name", "")
    if element.get("type") == "function":
        contract = parent.get("name", "")
        return result["check"], f"{contract}.{name}" if contract else name
    return result["check"], name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=ROOT / "build" / "slither.json")
    args = parser.parse_args(argv)

    report, log = run_slither(args.json)
    count = analysed_contracts(log)
    if count == 0:
        print("slither analysed 0 contracts: the check is misconfigured", file=sys.stderr)
        return 1
    triage = {
        (t["check"], t["target"]): t["reason"] for t in json.loads(TRIAGE.read_text())["accepted"]
    }
    triage.update(SCRIPT_TRIAGE)
    results = report.get("results", {}).get("detectors", [])
    missing = [name for name in REQUIRED_CONTRACTS if not contract_analysed(report, log, name)]
    if missing:
        print(
            f"slither did not analyse {', '.join(missing)}: the check is misconfigured",
            file=sys.stderr,
        )
        return 1
    untriaged, explained, low = [], [], 0
    for result in results:
        key = finding_key(result)
        if result["impact"] not in FAILING_IMPACTS:
            low += 1
        elif key in triage:
            explained.append(key)
        else:
            untriaged.append((result["impact"], key, result["description"].strip()))
    stale = sorted(set(triage) - {finding_key(r) for r in results})
    print(
        f"slither: {count} contracts analysed, {len(results)} results: "
        f"{len(explained)} high/medium explained in {TRIAGE.relative_to(ROOT)} or the script, "
        f"{len(untriaged)} untriaged, {low} low"
    )
    for key in stale:
        print(f"note: triage entry {key} no longer matches a finding; remove it")
    for impact, key, description in untriaged:
        print(f"UNTRIAGED {impact} {key[0]} in {key[1]}:\n  {description}")
    return 1 if untriaged else 0


if __name__ == "__main__":
    sys.exit(main())
