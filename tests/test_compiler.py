"""The offline compiler: artifacts, the source-hash cache and clear errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from escrow import compiler
from escrow.errors import CompilationFailed, CompilerNotFound

TINY = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
contract Tiny { uint256 public value = %d; }
"""


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "Tiny.sol").write_text(TINY % 1)
    return tmp_path


def _compile(root: Path, **kwargs: object) -> compiler.CompileResult:
    return compiler.compile_contracts(
        contracts_dir=root / "contracts",
        out_dir=root / "build",
        root=root,
        **kwargs,  # type: ignore[arg-type]
    )


def test_project_artifacts_have_the_documented_fields() -> None:
    result = compiler.compile_contracts()
    assert {"P2PEscrow", "IP2PEscrow", "TestStablecoin"} <= set(result.artifacts)
    data = json.loads((compiler.ARTIFACTS_DIR / "P2PEscrow.json").read_text())
    assert set(data) >= {"abi", "bytecode", "deployedBytecode", "compiler", "sourceHash"}
    assert data["compiler"]["version"].startswith("0.8.")
    assert data["bytecode"].startswith("0x") and len(data["bytecode"]) > 1000
    # EIP-170: deployed code must stay under 24,576 bytes
    assert (len(data["deployedBytecode"]) - 2) // 2 < 24_576


def test_unchanged_sources_are_not_recompiled(tiny_project: Path) -> None:
    first = _compile(tiny_project)
    assert not first.cached
    started = time.monotonic()
    second = _compile(tiny_project)
    assert second.cached
    assert time.monotonic() - started < 0.5  # no compiler process was started
    assert second.artifacts["Tiny"] == first.artifacts["Tiny"]


def test_changed_source_recompiles(tiny_project: Path) -> None:
    first = _compile(tiny_project)
    (tiny_project / "contracts" / "Tiny.sol").write_text(TINY % 2)
    second = _compile(tiny_project)
    assert not second.cached
    assert second.artifacts["Tiny"].source_hash != first.artifacts["Tiny"].source_hash
    assert second.artifacts["Tiny"].bytecode != first.artifacts["Tiny"].bytecode


def test_deleted_artifact_triggers_a_rebuild(tiny_project: Path) -> None:
    _compile(tiny_project)
    (tiny_project / "build" / "Tiny.json").unlink()
    assert not _compile(tiny_project).cached
    assert (tiny_project / "build" / "Tiny.json").is_file()


def test_syntax_error_reports_the_compiler_message(tiny_project: Path) -> None:
    (tiny_project / "contracts" / "Tiny.sol").write_text("pragma solidity ^0.8.24; contract {")
    with pytest.raises(CompilationFailed) as info:
        _compile(tiny_project)
    assert "ParserError" in str(info.value)
    assert "Tiny.sol" in str(info.value)
    assert len(str(info.value)) < 2_000  # the message, not the whole JSON output


def test_missing_node_says_what_to_install(
    tiny_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("ESCROW_SOLC", raising=False)
    with pytest.raises(CompilerNotFound, match="Node.js"):
        _compile(tiny_project)


def test_configured_compiler_must_exist(
    tiny_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCROW_SOLC", str(tiny_project / "no-such-solc"))
    with pytest.raises(CompilerNotFound, match="ESCROW_SOLC"):
        _compile(tiny_project)


def test_configured_compiler_is_used(tiny_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCROW_SOLC", str(compiler.SHIM))
    result = _compile(tiny_project)
    assert result.artifacts["Tiny"].compiler_version.startswith("0.8.")


def test_empty_source_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "contracts").mkdir()
    with pytest.raises(CompilationFailed, match="no Solidity sources"):
        _compile(tmp_path)
