"""scripts/mutation_check.py: its mutants still apply to the v2 contract, each changes exactly one
place inside the named function, and the check never writes the real contracts/ folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "contracts" / "P2PEscrow.sol"

mutation = load_script("mutation_check")


def test_every_mutant_applies_once_inside_its_function() -> None:
    source = CONTRACT.read_text()
    names = [m.name for m in mutation.MUTANTS]
    assert len(names) == len(set(names))
    for mutant in mutation.MUTANTS:
        mutated = mutation.apply_mutant(source, mutant)
        assert mutated != source, mutant.name
        # the change stays inside the function: everything before it is untouched
        start = source.index(f"function {mutant.function}(")
        assert mutated[:start] == source[:start], mutant.name


def test_required_mutants_are_present() -> None:
    functions = {m.function for m in mutation.MUTANTS}
    names = {m.name for m in mutation.MUTANTS}
    assert {"rule-deadline-ge-to-gt", "markShipped-shipBy-ge-to-gt"} <= names
    new_functions = {
        "markReceived",
        "grantInspectionExtension",
        "requestInspectionExtension",
        "cancelSplit",
        "_withdraw",
        "acceptSplit",
    }
    assert len(functions & new_functions) >= 3


def test_an_ambiguous_or_stale_mutant_is_refused() -> None:
    stale = mutation.Mutant("stale", "rule", "this text is not there", "x", "")
    with pytest.raises(ValueError):
        mutation.apply_mutant(CONTRACT.read_text(), stale)
    missing = mutation.Mutant("missing", "noSuchFunction", "a", "b", "")
    with pytest.raises(ValueError):
        mutation.apply_mutant(CONTRACT.read_text(), missing)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_one_mutant_is_caught_in_a_copy(tmp_path: Path) -> None:
    if not mutation.FORGE.is_file():
        pytest.fail(f"forge is missing at {mutation.FORGE}: run `npm ci`")
    before = hashlib.sha256(CONTRACT.read_bytes()).hexdigest()
    out = tmp_path / "mutation.json"
    code = mutation.main(
        ["--mutant", "rule-deadline-ge-to-gt", "--skip-baseline", "--json", str(out)]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["caught"] == report["total"] == 1
    assert report["results"][0]["caught_by"] == "forge unit tests"
    assert hashlib.sha256(CONTRACT.read_bytes()).hexdigest() == before
