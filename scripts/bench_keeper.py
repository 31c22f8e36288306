#!/usr/bin/env python
"""Keeper benchmark: how fast one keeper pass sends due timeouts, and their gas.

Starts a fresh anvil, deploys, opens ``--trades`` trades (a third left funded and never
shipped, a third shipped, a third disputed), moves the chain's clock past every deadline,
indexes them into a fresh SQLite database and runs the keeper once (``Keeper.run_once``: the
database query, the check of each trade on chain, the gas estimate, signing, sending and the
receipts). Prints and writes build/bench/keeper.json: timeouts done per second, gas per timeout
kind (refund, release, resolve), the pass's seconds.

    .venv/bin/python scripts/bench_keeper.py --trades 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eth_account import Account  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402

from escrow.anvil import AnvilNode  # noqa: E402
from escrow.chain import connect  # noqa: E402
from escrow.client import ETH, Status  # noqa: E402
from escrow.db.engine import make_engine, upgrade  # noqa: E402
from escrow.deploy import deploy  # noqa: E402
from escrow.indexer import Indexer  # noqa: E402
from escrow.keeper import KINDS, Budget, Keeper  # noqa: E402

DAY = 24 * 3600


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=200, help="due trades to create (200)")
    parser.add_argument("--token", choices=("eth", "usd"), default="eth")
    parser.add_argument("--out", default=str(ROOT / "build" / "bench" / "keeper.json"))
    args = parser.parse_args()
    if args.trades < 3:
        parser.error("--trades must be at least 3 (one of each kind)")

    with tempfile.TemporaryDirectory(prefix="bench-keeper.") as folder, AnvilNode() as node:
        chain = connect(node.url)
        deployment = deploy(chain, record=False, ruling_period=DAY)
        client = deployment.client(chain)
        accounts = chain.accounts
        seller, arbitrator = accounts[2], deployment.arbitrators[-1]
        buyers = [a for a in accounts if a != seller and a not in deployment.arbitrators]
        token: str = ETH
        amount = 10**15
        if args.token == "usd":
            assert deployment.stablecoin is not None
            token, amount = deployment.stablecoin.address, 10 * 10**6
            for buyer in buyers:
                client.approve(token, amount * args.trades, sender=buyer)

        started = time.perf_counter()
        ship_by = chain.latest_timestamp() + DAY
        expected: dict[str, list[Any]] = {kind: [] for kind in KINDS}
        lanes = dict.fromkeys(buyers, 0)
        for n in range(args.trades):
            buyer = buyers[n % len(buyers)]
            funded = client.fund(
                seller=seller,
                arbitrator=arbitrator,
                token=token,
                amount=amount,
                ship_by=ship_by,
                inspection_period=DAY,
                lane=lanes[buyer],
                sender=buyer,
            )
            lanes[buyer] += 1
            assert funded.terms is not None
            kind = KINDS[n % 3]
            if kind in ("release", "resolve"):
                client.mark_shipped(funded.trade_id, funded.terms, sender=seller)
            if kind == "resolve":
                client.open_dispute(funded.trade_id, funded.terms, sender=buyer)
            expected[kind].append(funded)
        chain.increase_time(3 * DAY)
        url = f"sqlite:///{Path(folder) / 'escrow.sqlite3'}"
        upgrade(url)
        engine = make_engine(url)
        indexed = Indexer(
            chain.w3, engine, deployment.escrow.address, start_block=deployment.escrow.block_number
        ).sync()
        setup_seconds = time.perf_counter() - started

        account: LocalAccount = Account.create()  # a fresh platform account, as `make run` has
        chain.fund_account(account.address, 100 * 10**18)
        keeper = Keeper(
            chain,
            deployment,
            engine,
            account,
            Budget(max_gas_price=100 * 10**9, per_hour=10**18),
            max_per_pass=args.trades,
        )
        report = keeper.run_once()
        engine.dispose()

        final = {Status.REFUNDED: "refund", Status.RELEASED: "release", Status.RESOLVED: "resolve"}
        for kind, trades in expected.items():
            for funded in trades:
                assert funded.terms is not None
                status = client.trade_state(funded.trade_id, funded.terms).status
                if final.get(status) != kind:
                    raise SystemExit(f"trade {funded.trade_id:#x} is {status.name}, not {kind}")
        gas: dict[str, dict[str, float]] = {}
        for kind in KINDS:
            used = [s.gas_used for s in report.confirmed if s.kind == kind and s.gas_used]
            gas[kind] = {
                "count": len(used),
                "mean": round(statistics.fmean(used)) if used else 0,
                "min": min(used, default=0),
                "max": max(used, default=0),
            }
        done = len(report.confirmed)
        result = {
            "trades": args.trades,
            "token": "ETH" if token == ETH else "tUSD",
            "timeouts_done": done,
            "skipped": len(report.skipped),
            "refused": len(report.refused),
            "failed": len(report.failed),
            "seconds": round(report.seconds, 3),
            "timeouts_per_s": round(done / report.seconds, 1) if report.seconds else 0.0,
            "gas": gas,
            "gas_total": sum(s.gas_used or 0 for s in report.confirmed),
            "spent_eth": sum(s.cost or 0 for s in report.confirmed) / 10**18,
            "keeper_transactions": int(chain.w3.eth.get_transaction_count(account.address)),
            "setup_seconds": round(setup_seconds, 1),
            "indexed_events": indexed.events,
        }
    if result["timeouts_done"] != args.trades or result["keeper_transactions"] != args.trades:
        print(json.dumps(result, indent=2), file=sys.stderr)
        raise SystemExit("the keeper did not send exactly one timeout per trade")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{done} timeouts in {result['seconds']} s: {result['timeouts_per_s']} per second; "
        + ", ".join(f"{k} {v['mean']:,} gas" for k, v in gas.items())
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
