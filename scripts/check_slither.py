"""Static analysis of the contracts with Slither; fails on an untriaged high or medium finding.

    python scripts/check_slither.py [--json build/slither.json]

Every High or Medium result must either be fixed or be explained in
security/slither-triage.json (matched by detector and the function it is about). The check
also fails when Slither analysed no contract at all (a silent misconfiguration).
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
    results = report.get("results", {}).get("detectors", [])
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
        f"{len(explained)} high/medium explained in {TRIAGE.relative_to(ROOT)}, "
        f"{len(untriaged)} untriaged, {low} low"
    )
    for key in stale:
        print(f"note: triage entry {key} no longer matches a finding; remove it")
    for impact, key, description in untriaged:
        print(f"UNTRIAGED {impact} {key[0]} in {key[1]}:\n  {description}")
    return 1 if untriaged else 0


if __name__ == "__main__":
    sys.exit(main())
