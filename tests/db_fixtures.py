"""Fixtures for the database and indexer tests: SQLite and PostgreSQL databases, an anvil node
and a deployed escrow contract driven with raw web3.

PostgreSQL: ``TEST_POSTGRES_URL`` names a server to use; otherwise a throwaway cluster is started
with ``scripts/pg_test_server.sh``. When neither works the PostgreSQL tests are skipped, except
with ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, create_engine, text
from web3 import HTTPProvider, Web3

from escrow.anvil import ends_with_parent
from escrow.compiler import load_artifact
from escrow.db.engine import make_engine, upgrade
from escrow.settings import PROJECT_ROOT, anvil_binary

PG_SCRIPT = PROJECT_ROOT / "scripts" / "pg_test_server.sh"
ZERO_ADDRESS = "0x" + "00" * 20


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL database that the tests may create schemas in."""
    configured = os.environ.get("TEST_POSTGRES_URL")
    if configured:
        yield configured.replace("postgresql://", "postgresql+psycopg://", 1)
        return
    folder = tempfile.mkdtemp(prefix="pgtest.")
    try:
        out = subprocess.run(
            [str(PG_SCRIPT), "start", folder], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        _unavailable(str(exc))
        return
    if out.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        _unavailable(out.stderr.strip() or f"exit code {out.returncode}")
        return
    try:
        yield out.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(PG_SCRIPT), "stop", folder], capture_output=True, timeout=60)


def fresh_postgres_url(server_url: str) -> str:
    """A new, empty schema on the server, as a URL whose search_path points at it."""
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    separator = "&" if "?" in server_url else "?"
    return f"{server_url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind (no schema yet)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    server = request.getfixturevalue("postgres_server")
    return fresh_postgres_url(server)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database of each kind."""
    upgrade(db_url)
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


# ---------------------------------------------------------------------------- anvil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AnvilProcess:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_anvil(*extra: str) -> AnvilProcess:
    binary = anvil_binary()
    if not binary.is_file():
        if _in_ci():
            pytest.fail(f"anvil binary missing at {binary}: run npm ci")
        pytest.skip(f"anvil binary missing at {binary}")
    port = free_port()
    process = subprocess.Popen(
        [
            *ends_with_parent(),  # a killed test run takes its nodes with it
            str(binary),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--silent",
            "--prune-history",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.post(
                url,
                json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                timeout=1,
            ).raise_for_status()
            return AnvilProcess(process, url)
        except requests.RequestException:
            if process.poll() is not None:
                raise RuntimeError(f"anvil exited with {process.returncode}") from None
            time.sleep(0.02)
    process.kill()
    raise RuntimeError("anvil did not start")


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilProcess]:
    node = start_anvil()
    yield node
    node.stop()


# ---------------------------------------------------------------------------- the contract


class Market:
    """The deployed escrow with a few accounts, driven with raw web3 transactions."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        artifact = load_artifact("P2PEscrow")
        self.abi = artifact.abi
        accounts = w3.eth.accounts
        self.owner, self.seller, self.arbitrator = accounts[0], accounts[1], accounts[2]
        self.buyers = accounts[3:]
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.wait(
            factory.constructor(self.owner, 7 * 86400).transact({"from": self.owner})
        )
        self.address: str = receipt["contractAddress"]
        self.deploy_block: int = receipt["blockNumber"]
        self.contract = w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)
        self.wait(
            self.contract.functions.registerArbitrator(self.arbitrator, 500).transact(
                {"from": self.owner}
            )
        )
        self.terms: dict[int, tuple[Any, ...]] = {}
        self._lanes: dict[str, int] = {}

    def wait(self, tx_hash: Any) -> Any:
        while True:
            response = self.w3.provider.make_request(  # type: ignore[arg-type]
                "eth_getTransactionReceipt", [Web3.to_hex(tx_hash)]
            )
            if response.get("result"):
                receipt = self.w3.eth.get_transaction_receipt(tx_hash)
                assert receipt["status"] == 1, receipt
                return receipt
            time.sleep(0.002)

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def fund(
        self,
        amount: int = 10**18,
        buyer: str | None = None,
        listing_ref: bytes = b"",
        fee_bps: int = 100,
    ) -> int:
        buyer = buyer or self.buyers[0]
        ship_by = self.now() + 7 * 86400
        lane = self._lanes[buyer] = self._lanes.get(buyer, -1) + 1  # a fresh lane every time
        receipt = self.wait(
            self.contract.functions.fund(
                self.seller,
                self.arbitrator,
                ZERO_ADDRESS,
                amount,
                ship_by,
                3 * 86400,
                0,  # delivery window: inspection starts at shipping
                fee_bps,
                1_000,  # the highest platform fee this buyer accepts (the contract's cap)
                lane,
                listing_ref.ljust(32, b"\0"),
            ).transact({"from": buyer, "value": amount})
        )
        event = self.contract.events.TradeFunded().process_receipt(receipt)[0]
        trade_id = int(event["args"]["tradeId"])
        self.terms[trade_id] = tuple(event["args"]["terms"].values())
        return trade_id

    def act(self, function: str, trade_id: int, *args: Any, sender: str | None = None) -> Any:
        terms = self.terms[trade_id]
        call = getattr(self.contract.functions, function)(trade_id, terms, *args)
        return self.wait(call.transact({"from": sender or terms[0]}))

    def ship(self, trade_id: int, ref: bytes = b"parcel") -> Any:
        return self.act("markShipped", trade_id, ref.ljust(32, b"\0"), sender=self.seller)

    def confirm(self, trade_id: int) -> Any:
        return self.act("confirmReceipt", trade_id)

    def dispute(self, trade_id: int) -> Any:
        return self.act("openDispute", trade_id)

    def rule(self, trade_id: int, buyer_bps: int) -> Any:
        return self.act("rule", trade_id, buyer_bps, sender=self.arbitrator)

    def propose(self, trade_id: int, buyer_bps: int, sender: str | None = None) -> Any:
        return self.act("proposeSplit", trade_id, buyer_bps, sender=sender)

    def evidence(self, trade_id: int, uri: str, content_hash: bytes) -> Any:
        return self.act("submitEvidence", trade_id, uri, content_hash)

    def rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        assert "error" not in response, response
        return response["result"]


def anvil_web3(url: str) -> Web3:
    return Web3(HTTPProvider(url, request_kwargs={"timeout": 60}))


@pytest.fixture
def market(anvil: AnvilProcess) -> Market:
    """A freshly deployed escrow on the module's anvil node."""
    return Market(anvil_web3(anvil.url))
