#!/usr/bin/env python
"""Indexer catch-up benchmark.

Creates ``--events`` TradeFunded events on a fresh anvil node (JSON-RPC batches of
``eth_sendTransaction`` with explicit nonces, many trades per block), then indexes the contract
from block 0 into SQLite and into PostgreSQL and reports events per second. Writes
build/bench/indexer.json with keys events, sqlite_events_per_s, postgres_events_per_s, and the
SQL statements each database was sent per committed batch (reads included). ``--profile DIR``
also writes a cProfile of each database's ``Indexer.sync`` (``DIR/indexer-<db>.prof``) and
prints its top.

    .venv/bin/python scripts/bench_indexer.py --events 100000
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from web3 import HTTPProvider, Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from escrow.anvil import ends_with_parent  # noqa: E402
from escrow.compiler import load_artifact  # noqa: E402
from escrow.db.engine import make_engine, upgrade  # noqa: E402
from escrow.db.models import TradeEvent  # noqa: E402
from escrow.indexer import Indexer  # noqa: E402
from escrow.settings import anvil_binary  # noqa: E402

ZERO = "0x" + "00" * 20
BATCH = 1_000


class Node:
    def __init__(self) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [
                # Ends with this script, even when the script is killed.
                *ends_with_parent(),
                str(anvil_binary()),
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--silent",
                "--prune-history",
                "--no-mining",
                "--order",
                "fifo",
                "--gas-limit",
                "1000000000",
                "--code-size-limit",
                "100000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.http = requests.Session()
        for _ in range(500):
            try:
                self.call("eth_chainId", [])
                return
            except requests.RequestException:
                time.sleep(0.02)
        raise RuntimeError("anvil did not start")

    def call(self, method: str, params: list[object]) -> object:
        reply = self.http.post(
            self.url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            timeout=120,
        ).json()
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["result"]

    def batch(self, calls: list[tuple[str, list[object]]]) -> list[object]:
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)
        ]
        replies = self.http.post(self.url, json=body, timeout=300).json()
        errors = [r["error"] for r in replies if "error" in r]
        if errors:
            raise RuntimeError(errors[0])
        return [r["result"] for r in sorted(replies, key=lambda r: r["id"])]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(15)


def create_events(node: Node, count: int) -> tuple[str, int]:
    w3 = Web3(HTTPProvider(node.url))
    accounts = list(w3.eth.accounts)
    owner, seller, arbitrator, buyer = accounts[0], accounts[1], accounts[2], accounts[3]
    artifact = load_artifact("P2PEscrow")
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    deploy = factory.constructor(owner, 86400).build_transaction({"from": owner, "gas": 8_000_000})
    tx = node.call(
        "eth_sendTransaction", [{"from": owner, "data": deploy["data"], "gas": hex(8_000_000)}]
    )
    node.call("evm_mine", [])
    receipt = node.call("eth_getTransactionReceipt", [tx])
    assert isinstance(receipt, dict)
    address = receipt["contractAddress"]
    contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact.abi)
    node.call(
        "eth_sendTransaction",
        [
            {
                "from": owner,
                "to": address,
                "gas": hex(200_000),
                "data": contract.encode_abi("registerArbitrator", [arbitrator, 500]),
            }
        ],
    )
    node.call("evm_mine", [])
    ship_by = int(w3.eth.get_block("latest")["timestamp"]) + 30 * 86400
    template = bytes.fromhex(
        contract.encode_abi(
            # seller, arbitrator, token, amount, ship-by, inspection, delivery window,
            # arbitrator fee, highest platform fee accepted, lane, listing ref
            "fund",
            [seller, arbitrator, ZERO, 1000, ship_by, 86400, 0, 100, 1000, 0, b"\0" * 32],
        )[2:]
    )
    lane_offset = 4 + 32 * 9
    nonce = int(str(node.call("eth_getTransactionCount", [buyer, "latest"])), 16)
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        calls: list[tuple[str, list[object]]] = []
        for lane in range(first, min(count, first + BATCH)):
            data = bytearray(template)
            data[lane_offset : lane_offset + 32] = lane.to_bytes(32, "big")
            calls.append(
                (
                    "eth_sendTransaction",
                    [
                        {
                            "from": buyer,
                            "to": address,
                            "value": hex(1000),
                            "gas": hex(250_000),
                            "nonce": hex(nonce),
                            "data": "0x" + data.hex(),
                        }
                    ],
                )
            )
            nonce += 1
        node.batch(calls)
        node.call("evm_mine", [])
    print(f"created {count} events in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return address, int(receipt["blockNumber"], 16)


def measure(
    w3: Web3, url: str, address: str, expected: int, profile: Path | None = None
) -> tuple[float, float]:
    """(events per second, SQL statements per committed batch, all reads included)."""
    upgrade(url)
    engine = make_engine(url)
    statements = {"n": 0, "batches": 0}

    def count(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        statements["n"] += 1
        if sql.startswith("UPDATE indexer_checkpoints"):  # one per committed batch
            statements["batches"] += 1

    event.listen(engine, "before_cursor_execute", count)
    indexer = Indexer(w3, engine, address, start_block=0)
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    result = indexer.sync()
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    with Session(engine) as session:
        stored = session.scalar(select(func.count()).select_from(TradeEvent))
    engine.dispose()
    if stored != expected + 1:  # + ArbitratorRegistered (OwnershipTransferred too, below)
        if stored != expected + 2:
            raise RuntimeError(f"stored {stored} events, expected about {expected}")
    per_batch = statements["n"] / max(1, statements["batches"])
    print(
        f"{url.split(':')[0]}: {result.events} events in {seconds:.2f} s "
        f"({result.events / seconds:,.0f}/s, {statements['batches']} batches, "
        f"{per_batch:.1f} statements each{', profiled' if profiler else ''})",
        file=sys.stderr,
    )
    if profiler and profile:
        profile.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(str(profile))
        pstats.Stats(str(profile), stream=sys.stderr).sort_stats("tottime").print_stats(15)
    return result.events / seconds, per_batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="PostgreSQL database to use (default: start a throwaway cluster)",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "build" / "bench" / "indexer.json"))
    parser.add_argument(
        "--profile",
        default=None,
        help="folder for a cProfile of each database's sync (slows the run: rates not comparable)",
    )
    args = parser.parse_args()

    node = Node()
    pg_dir: str | None = None
    try:
        address, _ = create_events(node, args.events)
        w3 = Web3(HTTPProvider(node.url, request_kwargs={"timeout": 300}))
        profiles = Path(args.profile) if args.profile else None
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_rate, sqlite_statements = measure(
                w3,
                f"sqlite:///{tmp}/bench.sqlite3",
                address,
                args.events,
                profiles / "indexer-sqlite.prof" if profiles else None,
            )
        postgres_rate: float | None = None
        postgres_statements: float | None = None
        if not args.no_postgres:
            url = args.postgres_url
            if url is None:
                pg_dir = tempfile.mkdtemp(prefix="pgbench.")
                url = (
                    subprocess.run(
                        [str(ROOT / "scripts" / "pg_test_server.sh"), "start", pg_dir],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    .stdout.strip()
                    .splitlines()[-1]
                )
            postgres_rate, postgres_statements = measure(
                w3,
                url,
                address,
                args.events,
                profiles / "indexer-postgres.prof" if profiles else None,
            )
    finally:
        node.stop()
        if pg_dir:
            subprocess.run(
                [str(ROOT / "scripts" / "pg_test_server.sh"), "stop", pg_dir], capture_output=True
            )
    report = {
        "events": args.events,
        "sqlite_events_per_s": round(sqlite_rate),
        "postgres_events_per_s": None if postgres_rate is None else round(postgres_rate),
        "sqlite_statements_per_batch": round(sqlite_statements, 1),
        "postgres_statements_per_batch": (
            None if postgres_statements is None else round(postgres_statements, 1)
        ),
        "profiled": bool(args.profile),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
