"""Compile the Solidity sources offline and keep one JSON artifact per contract.

The compiler is a native ``solc`` when one is configured (``ESCROW_SOLC`` or ``solc`` on the
PATH), otherwise the npm ``solc`` package behind ``escrow/solc_shim/solc-shim``, driven through
py-solc-x's ``compile_standard``. Artifacts are written to ``build/contracts/<Name>.json`` and
reused while the sources, the settings and the compiler stay the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import solcx
from solcx.exceptions import SolcError

from escrow.errors import CompilationFailed, CompilerNotFound
from escrow.settings import PROJECT_ROOT

SHIM = Path(__file__).resolve().parent / "solc_shim" / "solc-shim"
CONTRACTS_DIR = PROJECT_ROOT / "contracts"
ARTIFACTS_DIR = PROJECT_ROOT / "build" / "contracts"
CACHE_FILE_NAME = ".build-info.json"

EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 10_000
VIA_IR = True
REMAPPINGS = (
    "@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/",
    "oz-contracts-v4/=node_modules/oz-contracts-v4/",
)


@dataclass(frozen=True)
class Artifact:
    """One compiled contract, as stored in ``build/contracts/<name>.json``."""

    contract_name: str
    source_name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str
    source_hash: str
    # byte ranges of the deployed code that the constructor fills with immutable values
    immutable_ranges: tuple[tuple[int, int], ...] = ()

    def matches_code(self, code: bytes, *, ignore_metadata: bool = False) -> bool:
        """True when ``code`` (read from the chain) is this contract's deployed code.

        ``ignore_metadata`` leaves out the CBOR metadata the compiler appends (source hash,
        compiler version): the code of the same contract compiled from a moved or renamed
        source file, as for a version kept under ``contracts/v1/``.
        """
        expected = bytearray(bytes.fromhex(self.deployed_bytecode[2:]))
        actual = bytearray(code)
        if ignore_metadata:
            expected, actual = _without_metadata(expected), _without_metadata(actual)
        if len(expected) != len(actual):
            return False
        for start, length in self.immutable_ranges:
            actual[start : start + length] = expected[start : start + length]
        return actual == expected

    def to_json(self) -> dict[str, Any]:
        return {
            "contractName": self.contract_name,
            "sourceName": self.source_name,
            "abi": self.abi,
            "bytecode": self.bytecode,
            "deployedBytecode": self.deployed_bytecode,
            "compiler": {
                "version": self.compiler_version,
                "evmVersion": EVM_VERSION,
                "optimizerRuns": OPTIMIZER_RUNS,
                "viaIR": VIA_IR,
            },
            "sourceHash": self.source_hash,
            "immutableRanges": [list(r) for r in self.immutable_ranges],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Artifact:
        return cls(
            contract_name=data["contractName"],
            source_name=data["sourceName"],
            abi=data["abi"],
            bytecode=data["bytecode"],
            deployed_bytecode=data["deployedBytecode"],
            compiler_version=data["compiler"]["version"],
            source_hash=data["sourceHash"],
            immutable_ranges=tuple((int(r[0]), int(r[1])) for r in data.get("immutableRanges", [])),
        )


@dataclass(frozen=True)
class CompileResult:
    artifacts: dict[str, Artifact]
    cached: bool


def find_solc() -> Path:
    """The compiler to run: ``ESCROW_SOLC``, a native ``solc`` on the PATH, or the npm shim."""
    configured = os.environ.get("ESCROW_SOLC")
    if configured:
        path = Path(configured)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise CompilerNotFound(f"ESCROW_SOLC={configured} is not an executable file")
        return path
    native = shutil.which("solc")
    if native:
        return Path(native)
    if shutil.which("node") is None:
        raise CompilerNotFound(
            "no Solidity compiler: install Node.js (apt-get install nodejs npm) and run "
            "`npm ci` in the project folder, or point ESCROW_SOLC at a native solc binary"
        )
    if not (PROJECT_ROOT / "node_modules" / "solc" / "package.json").is_file():
        raise CompilerNotFound(
            f"npm package 'solc' is missing: run `npm ci` in {PROJECT_ROOT} "
            "(or point ESCROW_SOLC at a native solc binary)"
        )
    return SHIM


def compiler_version(solc: Path) -> str:
    try:
        out = subprocess.run(
            [str(solc), "--version"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise CompilerNotFound(f"cannot run the Solidity compiler {solc}: {exc}") from exc
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise CompilerNotFound(f"{solc} --version did not print a version: {out!r}")


def source_files(contracts_dir: Path = CONTRACTS_DIR) -> list[Path]:
    return sorted(p for p in contracts_dir.rglob("*.sol") if p.is_file())


def _compiler_identity(solc: Path) -> str:
    """Cheap fingerprint of the compiler, so a cache hit does not have to start it."""
    if solc == SHIM:
        package = PROJECT_ROOT / "node_modules" / "solc" / "package.json"
        return "npm-solc-" + json.loads(package.read_text())["version"]
    stat = solc.stat()
    return f"{solc}:{stat.st_size}:{stat.st_mtime_ns}"


def sources_hash(files: Iterable[Path], identity: str, root: Path = PROJECT_ROOT) -> str:
    digest = hashlib.sha256()
    digest.update(f"{identity}|{EVM_VERSION}|{OPTIMIZER_RUNS}|{VIA_IR}|{REMAPPINGS}".encode())
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    # Imported library code counts too: a changed OpenZeppelin version must recompile.
    for lock in ("package-lock.json",):
        lock_path = root / lock
        if lock_path.is_file():
            digest.update(lock_path.read_bytes())
    return digest.hexdigest()


def _standard_input(files: list[Path], root: Path) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {str(p.relative_to(root)): {"content": p.read_text()} for p in files},
        "settings": {
            "remappings": list(REMAPPINGS),
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "viaIR": VIA_IR,
            "evmVersion": EVM_VERSION,
            "outputSelection": {
                "*": {
                    "*": [
                        "abi",
                        "evm.bytecode.object",
                        "evm.deployedBytecode.object",
                        "evm.deployedBytecode.immutableReferences",
                    ]
                }
            },
        },
    }


def compile_contracts(
    *,
    force: bool = False,
    contracts_dir: Path = CONTRACTS_DIR,
    out_dir: Path = ARTIFACTS_DIR,
    root: Path = PROJECT_ROOT,
) -> CompileResult:
    """Compile every ``.sol`` file under ``contracts_dir`` unless the artifacts are current."""
    files = source_files(contracts_dir)
    if not files:
        raise CompilationFailed(f"no Solidity sources under {contracts_dir}")
    solc = find_solc()
    digest = sources_hash(files, _compiler_identity(solc), root)
    cache_file = out_dir / CACHE_FILE_NAME
    if not force and cache_file.is_file():
        info = json.loads(cache_file.read_text())
        if info.get("sourceHash") == digest:
            names = info.get("contracts", [])
            if all((out_dir / f"{n}.json").is_file() for n in names):
                return CompileResult(load_artifacts(names, out_dir), cached=True)

    version = compiler_version(solc)
    try:
        output = solcx.compile_standard(
            _standard_input(files, root),
            solc_binary=str(solc),
            base_path=str(root),
            allow_paths=[str(root)],
        )
    except SolcError as exc:
        raise CompilationFailed(_solc_error_message(exc)) from None
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompilationFailed("\n".join(e.get("formattedMessage", e["message"]) for e in errors))

    own_sources = {str(p.relative_to(root)) for p in files}
    artifacts: dict[str, Artifact] = {}
    for source_name, contracts in output["contracts"].items():
        if source_name not in own_sources:
            continue
        for name, data in contracts.items():
            if name in artifacts:
                raise CompilationFailed(
                    f"two contracts named {name}: {artifacts[name].source_name} and {source_name}"
                )
            artifacts[name] = Artifact(
                contract_name=name,
                source_name=source_name,
                abi=data["abi"],
                bytecode="0x" + data["evm"]["bytecode"]["object"],
                deployed_bytecode="0x" + data["evm"]["deployedBytecode"]["object"],
                compiler_version=version,
                source_hash=digest,
                immutable_ranges=tuple(
                    sorted(
                        (int(ref["start"]), int(ref["length"]))
                        for refs in data["evm"]["deployedBytecode"]
                        .get("immutableReferences", {})
                        .values()
                        for ref in refs
                    )
                ),
            )

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.json"):
        if stale.stem not in artifacts:
            stale.unlink()
    for name, artifact in artifacts.items():
        _atomic_write(out_dir / f"{name}.json", json.dumps(artifact.to_json(), indent=2))
    _atomic_write(
        cache_file,
        json.dumps({"sourceHash": digest, "compiler": version, "contracts": sorted(artifacts)}),
    )
    return CompileResult(artifacts, cached=False)


def load_artifacts(names: Iterable[str], out_dir: Path = ARTIFACTS_DIR) -> dict[str, Artifact]:
    return {n: Artifact.from_json(json.loads((out_dir / f"{n}.json").read_text())) for n in names}


def load_artifact(name: str, out_dir: Path = ARTIFACTS_DIR) -> Artifact:
    """The artifact of one contract, compiling first if the build is missing or stale."""
    result = compile_contracts(out_dir=out_dir)
    if name not in result.artifacts:
        raise CompilationFailed(f"no contract named {name}; have {sorted(result.artifacts)}")
    return result.artifacts[name]


def _solc_error_message(exc: SolcError) -> str:
    """Only the compiler's own messages, not the whole JSON output py-solc-x attaches."""
    try:
        output = json.loads(exc.stdout_data or "")
        messages = [
            e.get("formattedMessage", e.get("message", ""))
            for e in output.get("errors", [])
            if e.get("severity") == "error"
        ]
    except (TypeError, ValueError):
        messages = []
    return "\n".join(messages) or f"{exc.message}\n{exc.stderr_data}"


def _without_metadata(code: bytearray) -> bytearray:
    """Deployed code without its trailing CBOR metadata (its length is in the last 2 bytes)."""
    if len(code) < 2:
        return code
    length = int.from_bytes(code[-2:], "big")
    if length + 2 > len(code):
        return code
    return code[: -(length + 2)]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
