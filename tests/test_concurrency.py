"""Concurrency against the production stack (anvil, the `escrow index` process, gunicorn with
two workers, SQLite): buyers racing for one item, and trades sent from several OS processes.

The HTTP client is the one of ``scripts/bench_load.py``: keys held locally, sign-in with SIWE
and transactions signed with eth-account, each person from their own loopback address.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from eth_account import Account
from hexbytes import HexBytes
from sqlalchemy import select
from sqlalchemy.orm import Session
from web3 import HTTPProvider, Web3

from escrow.compiler import load_artifact
from escrow.db.engine import make_engine
from escrow.db.models import Listing, Trade
from helpers import load_script
from webapp.stack import LocalStack

pytestmark = [pytest.mark.anvil, pytest.mark.slow]

ZERO_ADDRESS = "0x" + "00" * 20
GWEI = 10**9


bench = load_script("bench_load")  # its web client is the one these tests drive


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        tmp_path_factory.mktemp("concurrency"), quiet=True, workers=2, seed=False
    ) as running:
        yield running


def db_matches_chain(stack: LocalStack) -> Any:
    assert stack.chain is not None and stack.deployment is not None
    stack.wait_indexed()
    engine = make_engine(stack.database_url)
    try:
        return bench.compare_db_with_chain(
            stack.chain.w3,
            engine,
            stack.deployment.escrow.address,
            stack.deployment.escrow.block_number,
        )
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- racing buyers


def test_buyers_race_for_a_single_item(stack: LocalStack) -> None:
    assert stack.chain is not None
    seller = bench.WebUser(stack.url, stack.node.url, bench.dev_account(1), source_ip="127.0.2.1")
    seller.sign_in()
    listing_id = seller.create_listing("Single espresso machine", "0.25")
    buyers = [
        bench.WebUser(
            stack.url, stack.node.url, bench.dev_account(i), source_ip=f"127.0.2.{10 + i}"
        )
        for i in (0, 2, 3, 4, 5, 6, 7, 8)
    ]
    quotes = []
    for buyer in buyers:
        buyer.sign_in()
        quotes.append(buyer.quote(listing_id))  # every buyer has the page open

    start = threading.Barrier(len(buyers))
    replies: dict[int, requests.Response] = {}

    def attempt(index: int) -> None:
        start.wait()
        replies[index] = buyers[index].buy(listing_id, quotes[index])

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(buyers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    statuses = sorted(r.status_code for r in replies.values())
    assert statuses == [200] + [409] * (len(buyers) - 1), statuses
    winner_index = next(i for i, r in replies.items() if r.status_code == 200)
    for index, reply in replies.items():
        if index != winner_index:
            assert "Someone else is buying this item" in reply.json()["error"]
    winner = buyers[winner_index]
    tx = replies[winner_index].json()["tx"]
    assert tx["from"].lower() == winner.address

    winner.wait_indexed(winner.send(tx))

    # Exactly one trade for the listing, on chain and in the database; the item is sold.
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            listing = session.get(Listing, listing_id)
            assert listing is not None
            ref, status = listing.ref, listing.status
            trades = session.scalars(select(Trade).where(Trade.listing_id == listing_id)).all()
            buyers_in_db = [t.buyer for t in trades]
    finally:
        engine.dispose()
    assert buyers_in_db == [winner.address]
    assert status == "sold"
    assert stack.deployment is not None
    contract = stack.chain.w3.eth.contract(
        address=Web3.to_checksum_address(stack.deployment.escrow.address),
        abi=load_artifact("P2PEscrow").abi,
    )
    funded = contract.events.TradeFunded.get_logs(from_block=0)
    on_chain = [e for e in funded if "0x" + bytes(e["args"]["listingRef"]).hex() == ref]
    assert len(on_chain) == 1 and on_chain[0]["args"]["buyer"].lower() == winner.address

    # Later buyers are told it is gone, in words.
    late = buyers[(winner_index + 1) % len(buyers)].buy(listing_id)
    assert late.status_code == 409
    assert "no longer for sale" in late.json()["error"]
    assert db_matches_chain(stack).equal


# ---------------------------------------------------------------------------- many processes


def send_trades(
    rpc_url: str,
    escrow: str,
    arbitrator: str,
    buyer_keys: list[str],
    seller_key: str,
    per_buyer: int,
) -> dict[str, Any]:
    """Runs in its own process: funds ``per_buyer`` trades from each buyer (all sent before
    waiting), then the seller ships every second one and the buyer confirms every fourth."""
    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
    contract = w3.eth.contract(
        address=Web3.to_checksum_address(escrow), abi=load_artifact("P2PEscrow").abi
    )
    chain_id = int(w3.eth.chain_id)
    accounts = {a.address: a for a in map(Account.from_key, [*buyer_keys, seller_key])}
    seller = Account.from_key(seller_key).address
    nonces = {address: int(w3.eth.get_transaction_count(address)) for address in accounts}
    fees = {"maxFeePerGas": 50 * GWEI, "maxPriorityFeePerGas": GWEI}

    def send(function: Any, sender: str, value: int = 0) -> HexBytes:
        tx = function.build_transaction(
            {
                "from": sender,
                "nonce": nonces[sender],
                "gas": 500_000,
                "value": value,
                "chainId": chain_id,
                **fees,
            }
        )
        nonces[sender] += 1
        return w3.eth.send_raw_transaction(accounts[sender].sign_transaction(tx).raw_transaction)

    def receipts(hashes: list[HexBytes]) -> list[Any]:
        out = []
        for tx_hash in hashes:
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.01)
            assert receipt["status"] == 1, receipt
            out.append(receipt)
        return out

    ship_by = int(w3.eth.get_block("latest")["timestamp"]) + 7 * 86400
    fee_bps = int(contract.functions.platformFee().call()[1])  # the fee the buyers accept
    hashes = []
    for lane in range(per_buyer):
        for key in buyer_keys:
            buyer = Account.from_key(key).address
            amount = 10**15 + lane
            hashes.append(
                send(
                    contract.functions.fund(
                        seller,
                        arbitrator,
                        ZERO_ADDRESS,
                        amount,
                        ship_by,
                        3 * 86400,  # inspection period
                        2 * 86400 if lane % 3 == 0 else 0,  # delivery window
                        100,  # arbitrator fee
                        fee_bps,  # highest platform fee accepted
                        lane,
                        lane.to_bytes(32, "big"),
                    ),
                    buyer,
                    value=amount,
                )
            )
    funded = []
    for receipt in receipts(hashes):
        event = contract.events.TradeFunded().process_receipt(receipt)[0]["args"]
        funded.append((int(event["tradeId"]), tuple(event["terms"].values())))
    shipped = funded[::2]
    receipts(
        [
            send(contract.functions.markShipped(t, terms, b"\x01" * 32), seller)
            for t, terms in shipped
        ]
    )
    confirmed = shipped[::2]
    receipts(
        [send(contract.functions.confirmReceipt(t, terms), terms[0]) for t, terms in confirmed]
    )
    return {
        "funded": [t for t, _ in funded],
        "shipped": [t for t, _ in shipped],
        "confirmed": [t for t, _ in confirmed],
    }


def test_trades_from_several_processes_are_indexed_exactly_once(stack: LocalStack) -> None:
    assert stack.chain is not None and stack.deployment is not None
    processes, buyers_each, per_buyer = 4, 3, 12
    jobs = []
    for _ in range(processes):
        keys = [Account.create() for _ in range(buyers_each + 1)]
        for key in keys:
            stack.chain.rpc("anvil_setBalance", [key.address, hex(100 * 10**18)])
        jobs.append(
            (
                stack.node.url,
                stack.deployment.escrow.address,
                stack.deployment.arbitrators[0],
                [k.key.hex() for k in keys[:-1]],
                keys[-1].key.hex(),
                per_buyer,
            )
        )
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.starmap(send_trades, jobs, chunksize=1)
    sent = time.monotonic() - started

    funded = [t for r in results for t in r["funded"]]
    assert len(funded) == len(set(funded)) == processes * buyers_each * per_buyer
    comparison = db_matches_chain(stack)
    assert comparison.equal, comparison
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            stored = {
                int(onchain_id): str(status)
                for onchain_id, status in session.execute(
                    select(Trade.onchain_id, Trade.status)
                ).all()
            }
    finally:
        engine.dispose()
    assert set(funded) <= set(stored)
    assert len(stored) == comparison.funded_on_chain
    shipped = {t for r in results for t in r["shipped"]}
    confirmed = {t for r in results for t in r["confirmed"]}
    assert {t for t in funded if stored[t] == "Released"} == confirmed
    assert {t for t in funded if stored[t] == "Shipped"} == shipped - confirmed
    assert {t for t in funded if stored[t] == "Funded"} == set(funded) - shipped
    print(f"{len(funded)} trades from {processes} processes in {sent:.1f} s")
