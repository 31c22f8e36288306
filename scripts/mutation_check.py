"""Mutation check of the escrow's tests: does each named mutant of contracts/P2PEscrow.sol fail
them?

    python scripts/mutation_check.py [--mutant NAME ...] [--list] [--invariant-runs N]
        [--pytest "tests/test_x.py -k y"] [--json build/bench/mutation.json]

Every mutant is applied to a TEMPORARY COPY of the project (contracts/, test/foundry,
foundry.toml, the solc shim; node_modules symlinked): the real contracts/ is never written,
so others can compile and test at the same time. For each mutant, in that copy:

1. forge runs the unit tests (every non-invariant test in test/foundry, among them the
   deadline-boundary tests); a failure means the mutant is caught;
2. otherwise forge runs the invariant suite with --invariant-runs runs per suite;
3. otherwise, if --pytest is given, that pytest selection runs against a copy of the whole
   tracked project (so the Python client compiles the mutant).

The unmutated copy must pass first (else the check says nothing). Prints a table and writes
the results as JSON. Exit status 0 when every mutant was caught, 1 otherwise, 2 on a setup
error.
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
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = Path("contracts") / "P2PEscrow.sol"
FORGE = ROOT / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"
DEFAULT_JSON = ROOT / "build" / "bench" / "mutation.json"


@dataclass(frozen=True)
class Mutant:
    name: str
    function: str  # the mutation is made inside this function's body
    old: str  # exact text, unique within the function
    new: str
    why: str  # what a test must notice


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "rule-deadline-ge-to-gt",
        "rule",
        "if (block.timestamp >= deadline) revert DeadlinePassed",
        "if (block.timestamp > deadline) revert DeadlinePassed",
        "the arbitrator could still rule at the ruling deadline, when the timeout exit is open too",
    ),
    Mutant(
        "markShipped-shipBy-ge-to-gt",
        "markShipped",
        "if (block.timestamp >= terms.shipBy) revert DeadlinePassed",
        "if (block.timestamp > terms.shipBy) revert DeadlinePassed",
        "the seller could ship at ship-by, when the refund after the deadline is open too",
    ),
    Mutant(
        "markReceived-started-ge-to-gt",
        "markReceived",
        "if (inspectionEndsAt >= (field & TIME_MASK)) revert InspectionAlreadyStarted",
        "if (inspectionEndsAt > (field & TIME_MASK)) revert InspectionAlreadyStarted",
        "a receipt at the delivery window's end (inspection already started) would go through",
    ),
    Mutant(
        "markReceived-any-caller",
        "markReceived",
        "if (msg.sender != terms.buyer) revert NotBuyer(msg.sender);",
        "",
        "anybody (the seller) could mark the item received and start the inspection",
    ),
    Mutant(
        "grantExtension-without-request",
        "grantInspectionExtension",
        "if (field & EXTENSION_DAYS_MASK == 0 || field & EXTENSION_GRANTED != 0)",
        "if (field & EXTENSION_GRANTED != 0)",
        "the seller could 'grant' an extension nobody asked for",
    ),
    Mutant(
        "grantExtension-twice",
        "grantInspectionExtension",
        "if (field & EXTENSION_DAYS_MASK == 0 || field & EXTENSION_GRANTED != 0)",
        "if (field & EXTENSION_DAYS_MASK == 0)",
        "the seller could grant the same extension again",
    ),
    Mutant(
        "requestExtension-twice",
        "requestInspectionExtension",
        "if (field & EXTENSION_DAYS_MASK != 0) revert ExtensionAlreadyRequested(tradeId);",
        "",
        "the buyer could ask for an extension more than once",
    ),
    Mutant(
        "cancelSplit-not-proposer",
        "cancelSplit",
        "if (uint8((packed >> 14) & 0x3) != proposer) revert NoProposalToCancel",
        "if (uint8((packed >> 14) & 0x3) == 0) revert NoProposalToCancel",
        "the other party could withdraw the proposer's offer",
    ),
    Mutant(
        "withdrawTo-credit-of-receiver",
        "_withdraw",
        "uint256 amount = _credits[token][msg.sender];\n"
        "        if (amount == 0) revert NothingToWithdraw(token, msg.sender);\n"
        "        _credits[token][msg.sender] = 0;",
        "uint256 amount = _credits[token][to];\n"
        "        if (amount == 0) revert NothingToWithdraw(token, msg.sender);\n"
        "        _credits[token][to] = 0;",
        "withdrawTo would pay out the receiver's credit instead of the caller's",
    ),
    Mutant(
        "acceptSplit-lapsed-offer",
        "acceptSplit",
        "_requireLive(tradeId, terms, packed);",
        "_requireOpen(tradeId, packed);",
        "a split offer could be accepted after its state's timeout passed",
    ),
    Mutant(
        "release-lt-to-le",
        "releaseAfterInspection",
        "if (block.timestamp < deadline) revert DeadlineNotReached",
        "if (block.timestamp <= deadline) revert DeadlineNotReached",
        "at the inspection end neither the party actions nor the release would work",
    ),
    Mutant(
        "effectiveEnd-ignores-extension",
        "_effectiveEnd",
        "if (field & EXTENSION_GRANTED != 0) endsAt +=",
        "if (field & EXTENSION_GRANTED == 0) endsAt +=",
        "a granted extension would not move the inspection end (and an ungranted one would)",
    ),
)


def apply_mutant(source: str, mutant: Mutant) -> str:
    """The source with the mutant's replacement made inside its function; raises if ambiguous."""
    match = re.search(rf"\bfunction {re.escape(mutant.function)}\(", source)
    if not match:
        raise ValueError(f"{mutant.name}: function {mutant.function} not found")
    start = match.start()
    following = re.search(r"\n    function |\n    // -{10}", source[match.end() :])
    end = match.end() + following.start() if following else len(source)
    body = source[start:end]
    count = body.count(mutant.old)
    if count != 1:
        raise ValueError(
            f"{mutant.name}: expected the text once in {mutant.function}, found {count}"
        )
    return source[:start] + body.replace(mutant.old, mutant.new) + source[end:]


def make_forge_copy(tmp: Path) -> Path:
    """A copy of what forge needs, with node_modules symlinked. Returns its root."""
    root = tmp / "forge"
    root.mkdir()
    shutil.copytree(ROOT / "contracts", root / "contracts")
    (root / "test").mkdir()
    shutil.copytree(ROOT / "test" / "foundry", root / "test" / "foundry")
    shutil.copy(ROOT / "foundry.toml", root / "foundry.toml")
    (root / "escrow").mkdir()
    shutil.copytree(ROOT / "escrow" / "solc_shim", root / "escrow" / "solc_shim")
    (root / "node_modules").symlink_to(ROOT / "node_modules")
    return root


def make_project_copy(tmp: Path) -> Path:
    """A copy of every tracked file (for pytest), with .venv and node_modules symlinked."""
    root = tmp / "project"
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if not src.is_file():
            continue
        dst = root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    for link in (".venv", "node_modules"):
        if (ROOT / link).exists():
            (root / link).symlink_to(ROOT / link)
    return root


def run_forge(root: Path, args: list[str], env: dict[str, str], timeout: int) -> tuple[bool, str]:
    proc = subprocess.run(
        [str(FORGE), "test", "--offline", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    out = proc.stdout + proc.stderr
    return proc.returncode == 0, out


def failing_tests(output: str) -> list[str]:
    """Names of the tests forge reported as failing, with their reason."""
    found = re.findall(r"^\[FAIL(?:: ([^\]]*))?\] (\w+)\(", output, flags=re.M)
    seen: list[str] = []
    for reason, name in found:
        entry = f"{name}: {reason}" if reason else name
        if entry not in seen:
            seen.append(entry)
    return seen


def run_pytest(root: Path, selection: str, timeout: int) -> tuple[bool, str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            *selection.split(),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode == 0, proc.stdout + proc.stderr


def check_mutant(
    mutant: Mutant | None,
    forge_root: Path,
    project_root: Path | None,
    original: str,
    args: argparse.Namespace,
) -> dict[str, object]:
    """Applies `mutant` (None: the original) in the copies and runs the stages until one fails."""
    source = original if mutant is None else apply_mutant(original, mutant)
    (forge_root / CONTRACT).write_text(source)
    if project_root is not None:
        (project_root / CONTRACT).write_text(source)
    env = {
        **os.environ,
        "FOUNDRY_INVARIANT_RUNS": str(args.invariant_runs),
        "FOUNDRY_FUZZ_SEED": args.seed,
        # Without the optimizer viaIR compiles about a fifth faster; the semantics are the same
        # and the unmutated baseline must pass under the same setting.
        "FOUNDRY_OPTIMIZER": "true" if args.optimizer else "false",
    }
    started = time.monotonic()
    result: dict[str, object] = {
        "name": "original" if mutant is None else mutant.name,
        "function": None if mutant is None else mutant.function,
        "why": None if mutant is None else mutant.why,
        "caught": False,
        "caught_by": None,
        "failing": [],
    }
    stages: list[tuple[str, list[str]]] = [
        ("forge unit tests", ["--no-match-test", "invariant"]),
        (f"forge invariants ({args.invariant_runs} runs/suite)", ["--match-test", "invariant"]),
    ]
    for stage, stage_args in stages:
        ok, output = run_forge(forge_root, stage_args, env, args.timeout)
        if "Compiler run failed" in output:
            result.update(caught=None, caught_by="compile error", failing=[output[-800:]])
            break
        if not ok:
            result.update(
                caught=True, caught_by=stage, failing=failing_tests(output)[:6] or [output[-800:]]
            )
            break
    else:
        if project_root is not None and args.pytest:
            ok, output = run_pytest(project_root, args.pytest, args.timeout)
            if not ok:
                tail = [
                    line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))
                ]
                result.update(caught=True, caught_by=f"pytest {args.pytest}", failing=tail[:6])
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def print_table(rows: list[dict[str, object]]) -> None:
    width = max(len(str(r["name"])) for r in rows)
    print(f"{'mutant':<{width}}  {'result':<9}  {'seconds':>7}  caught by / first failing test")
    print("-" * (width + 70))
    for r in rows:
        verdict = (
            "baseline"
            if r["name"] == "original"
            else ("CAUGHT" if r["caught"] else "error" if r["caught"] is None else "SURVIVED")
        )
        if r["name"] == "original":
            verdict = "passes" if not r["caught"] else "FAILS"
        first = r["failing"][0] if r["failing"] else ""  # type: ignore[index]
        detail = f"{r['caught_by'] or ''}" + (f": {first}" if first else "")
        print(f"{r['name']:<{width}}  {verdict:<9}  {r['seconds']:>7}  {detail[:160]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutant", action="append", help="only this mutant (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--invariant-runs", type=int, default=60, help="invariant runs per suite")
    parser.add_argument("--seed", default="0x5eed", help="fuzz seed (fixed, so results repeat)")
    parser.add_argument(
        "--pytest", help="also run this pytest selection when forge misses a mutant"
    )
    parser.add_argument(
        "--optimizer", action="store_true", help="compile with the optimizer (slower)"
    )
    parser.add_argument(
        "--skip-baseline", action="store_true", help="do not run the original first"
    )
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per forge or pytest run")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)

    if args.list:
        for m in MUTANTS:
            print(f"{m.name:<34} {m.function:<28} {m.why}")
        return 0
    selected = list(MUTANTS)
    if args.mutant:
        unknown = set(args.mutant) - {m.name for m in MUTANTS}
        if unknown:
            print(f"unknown mutant(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        selected = [m for m in MUTANTS if m.name in args.mutant]
    if not FORGE.is_file():
        print(f"forge is missing at {FORGE}: run `npm ci`", file=sys.stderr)
        return 2

    original = (ROOT / CONTRACT).read_text()
    for mutant in selected:  # fail early on a mutant that no longer applies
        try:
            apply_mutant(original, mutant)
        except ValueError as exc:
            print(f"setup error: {exc}", file=sys.stderr)
            return 2

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="mutation.") as tmp:
        forge_root = make_forge_copy(Path(tmp))
        project_root = make_project_copy(Path(tmp)) if args.pytest else None
        if not args.skip_baseline:
            base = check_mutant(None, forge_root, project_root, original, args)
            rows.append(base)
            if base["caught"] is not False:
                print_table(rows)
                print(
                    "the unmutated contract fails the tests: the mutation check says nothing",
                    file=sys.stderr,
                )
                return 2
        for mutant in selected:
            print(f"mutant {mutant.name} ...", flush=True)
            rows.append(check_mutant(mutant, forge_root, project_root, original, args))
    # the real contract must be as it was
    if (ROOT / CONTRACT).read_text() != original:
        print(
            f"warning: {CONTRACT} changed while the check ran (someone else edited it)",
            file=sys.stderr,
        )

    print_table(rows)
    mutants = [r for r in rows if r["name"] != "original"]
    caught = sum(1 for r in mutants if r["caught"])
    survived = [r["name"] for r in mutants if r["caught"] is False]
    errors = [r["name"] for r in mutants if r["caught"] is None]
    print(
        f"{caught}/{len(mutants)} mutants caught; survived: {', '.join(survived) or 'none'}"
        + (f"; errors: {', '.join(errors)}" if errors else "")
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "contract": str(CONTRACT),
                "seed": args.seed,
                "invariant_runs_per_suite": args.invariant_runs,
                "pytest": args.pytest,
                "caught": caught,
                "total": len(mutants),
                "survived": survived,
                "errors": errors,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")
    return 0 if caught == len(mutants) else 1


if __name__ == "__main__":
    sys.exit(main())
