"""Faults against the production stack (anvil with its state file, the `escrow index` process,
gunicorn, SQLite or PostgreSQL): the node going away and coming back, history rewritten under
the running indexer, the database locked or unreachable, the indexer killed under load.

After each fault the database must equal the chain: ``reconcile`` finds no difference and the
(tx hash, log index) pairs stored are exactly those ``eth_getLogs`` returns — nothing lost,
nothing doubled. What people see during the fault must be a clear message, never a 500.

The indexer killed at random moments inside and between batches is tests/test_indexer_kill.py;
reorganisations read in-process are tests/test_indexer_chain.py. Here the same happens to the
running processes.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from db_fixtures import _in_ci
from escrow.client import EscrowClient, Funded
from escrow.db.engine import make_engine
from escrow.settings import PROJECT_ROOT
from helpers import load_script
from webapp.stack import BIN, LocalStack

pytestmark = [pytest.mark.anvil, pytest.mark.slow]


bench = load_script("bench_load")  # its web client is the one these tests drive
CHAIN_DOWN = "The blockchain node is not reachable right now"
_addresses = itertools.count(1)


# ---------------------------------------------------------------------------- helpers


def person(stack: LocalStack) -> Any:
    """A signed-in person with a fresh funded key, from their own loopback address."""
    n = next(_addresses)
    user = bench.WebUser(
        stack.url,
        stack.node.url,
        bench.fresh_account(stack.node.url),
        source_ip=f"127.0.3.{n}",
        timeout=30,
    )
    user.sign_in()
    return user


def web_trade(stack: LocalStack, seller: Any, buyer: Any, title: str) -> int:
    """A trade made through the web app; returns its page id."""
    listing_id = seller.create_listing(title, "0.05")
    reply = buyer.buy(listing_id)
    assert reply.status_code == 200, reply.text
    buyer.wait_indexed(buyer.send(reply.json()["tx"]))
    new = [pk for pk in buyer.trade_pks("buyer", "funded") if pk not in buyer.known_trades]
    assert len(new) == 1
    buyer.known_trades.add(new[0])
    return int(new[0])


class Trader:
    """Trades made directly on chain by the node's dev accounts (as other people's wallets)."""

    def __init__(self, stack: LocalStack) -> None:
        assert stack.chain is not None and stack.deployment is not None
        self.chain = stack.chain
        self.client: EscrowClient = stack.deployment.client(stack.chain)
        self.arbitrator = stack.deployment.arbitrators[0]
        accounts = stack.chain.accounts
        self.seller = accounts[1]
        self.buyers = accounts[2:6]
        self.turn = itertools.count()

    def fund(self, amount: int = 10**15) -> Funded:
        buyer = self.buyers[next(self.turn) % len(self.buyers)]
        return self.client.fund(
            seller=self.seller,
            arbitrator=self.arbitrator,
            amount=amount,
            ship_by=self.chain.latest_timestamp() + 7 * 86400,
            inspection_period=3 * 86400,
            arbitrator_fee_bps=100,
            sender=buyer,
        )

    def ship(self, funded: Funded) -> None:
        assert funded.terms is not None
        self.client.mark_shipped(funded.trade_id, funded.terms, sender=self.seller)

    def confirm(self, funded: Funded) -> None:
        assert funded.terms is not None
        self.client.confirm_receipt(funded.trade_id, funded.terms, sender=funded.terms.buyer)


def compare(stack: LocalStack) -> Any:
    assert stack.chain is not None and stack.deployment is not None
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


def assert_indexer_running(stack: LocalStack) -> None:
    assert stack.indexer is not None
    assert stack.indexer.poll() is None, (
        f"the indexer process exited with {stack.indexer.returncode}"
    )


def wait_for_state_dump(stack: LocalStack, timeout: float = 15.0) -> None:
    """Returns just after anvil has written its state file (it does every few seconds)."""
    assert stack.node.state_file is not None
    path = stack.node.state_file
    before = path.stat().st_mtime_ns if path.exists() else 0
    deadline = time.monotonic() + timeout
    while not path.exists() or path.stat().st_mtime_ns == before:
        assert time.monotonic() < deadline, "anvil did not write its state file"
        time.sleep(0.02)


def assert_db_equals_chain(stack: LocalStack, timeout: float = 30.0) -> None:
    """Waits for the running indexer to converge, then requires the database to equal the
    chain. The indexer process must still be running: nobody restarts it in production."""
    deadline = time.monotonic() + timeout
    while True:
        assert_indexer_running(stack)
        try:
            stack.wait_indexed(timeout=max(0.1, deadline - time.monotonic()))
            result = compare(stack)
        except TimeoutError:
            result = None
        if result is not None and result.equal:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the database does not equal the chain: {result}")
        time.sleep(0.2)


def collect(*checks: Callable[[], object]) -> list[str]:
    """Runs every check and returns the failures, so one test reports all it found."""
    problems = []
    for check in checks:
        try:
            check()
        except (AssertionError, Exception) as exc:  # noqa: B014 - both are findings
            problems.append(f"{exc.__class__.__name__}: {str(exc)[:400]}")
    return problems


def restart_indexer(stack: LocalStack) -> None:
    """Starts `escrow index` as LocalStack does (after a kill)."""
    stack.indexer = subprocess.Popen(
        [str(BIN / "escrow"), "index", "--poll", str(stack.indexer_poll)],
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def clear_503(reply: requests.Response, json_expected: bool, words: str = CHAIN_DOWN) -> None:
    assert reply.status_code == 503, (reply.status_code, reply.text[:300])
    if json_expected:
        assert reply.headers["Content-Type"].startswith("application/json")
        assert words in reply.json()["error"]
    else:
        assert reply.headers["Content-Type"].startswith("text/html")
        assert words in reply.text and "Traceback" not in reply.text


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LocalStack]:
    with LocalStack(tmp_path / "stack", quiet=True, seed=False, workers=2) as running:
        yield running


# ---------------------------------------------------------------------------- (a) node down


def test_the_node_stops_mid_request_and_comes_back(stack: LocalStack) -> None:
    seller, buyer = person(stack), person(stack)
    trade_pk = web_trade(stack, seller, buyer, "Record player")
    spare = seller.create_listing("Turntable needle", "0.01")

    def chain_requests() -> list[tuple[str, Callable[[], requests.Response], bool]]:
        return [
            ("buy", lambda: buyer.buy(spare), True),
            (
                "ship",
                lambda: seller.post_json(
                    f"/trades/{trade_pk}/actions/ship", {"tracking": "RR1"}, expect_ok=False
                ),
                True,
            ),
            (
                "ship form",
                lambda: seller.request(
                    "POST",
                    f"/trades/{trade_pk}/actions/ship",
                    expect_ok=False,
                    data={"csrf_token": seller.csrf_token, "tracking": "RR1"},
                    headers={"Accept": "text/html"},
                ),
                False,
            ),
            (
                "tx status",
                lambda: buyer.request("GET", "/api/tx/0x" + "ab" * 32, expect_ok=False),
                True,
            ),
        ]

    for name, call, _ in chain_requests() * 3:  # every worker has talked to the node
        if name != "buy":
            assert call().status_code == 200, name

    # The node freezes with requests in flight, then stops (SIGTERM: it writes its state).
    assert stack.node.process is not None
    os.kill(stack.node.process.pid, signal.SIGSTOP)
    in_flight: dict[str, requests.Response] = {}
    threads = [
        threading.Thread(target=lambda n=name, c=call: in_flight.__setitem__(n, c()))
        for name, call, _ in chain_requests()
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    os.kill(stack.node.process.pid, signal.SIGCONT)
    stack.node.stop()
    for thread in threads:
        thread.join(30)
    problems = [
        f"in flight: {name}: {reply.status_code} {reply.text[:120]!r}"
        for name, reply in in_flight.items()
        if reply.status_code not in (200, 409, 503)
    ]

    # While it is down: a clear 503 for everything that needs the node, JSON and HTML alike;
    # pages that read only the database keep working.
    for _round in range(3):  # both workers
        for name, call, is_json in chain_requests():
            try:
                clear_503(call(), is_json)
            except AssertionError as exc:
                problems.append(f"node down: {name}: {exc}")
        for path in ("/", f"/listings/{spare}", f"/trades/{trade_pk}", "/trades"):
            status = seller.request("GET", path, expect_ok=False).status_code
            if status != 200:
                problems.append(f"node down: GET {path}: {status}")
        health = seller.request("GET", "/healthz", expect_ok=False)
        assert health.status_code == 503 and health.json()["chain"]["ok"] is False
    assert not problems, "\n".join(sorted(set(problems)))

    # Back from its state file: the trade is still there and everything works again.
    stack.node.start()
    reply = seller.post_json(f"/trades/{trade_pk}/actions/ship", {"tracking": "RR1"})
    assert reply.json()["tx"]["from"].lower() == seller.address
    reply = buyer.buy(spare)
    assert reply.status_code == 200, reply.text
    assert seller.request("GET", "/healthz", expect_ok=False).status_code == 200
    tx_hash = buyer.send(reply.json()["tx"])
    assert_indexer_running(stack)
    buyer.wait_indexed(tx_hash)
    assert_db_equals_chain(stack)


# ---------------------------------------------------------------------------- (b) node restart


def test_the_node_restarts_from_its_state_file_under_the_indexer(stack: LocalStack) -> None:
    trader = Trader(stack)
    before = [trader.fund() for _ in range(3)]
    trader.ship(before[0])
    stack.wait_indexed()

    stack.node.stop()  # a clean stop writes the state file
    time.sleep(2 * stack.indexer_poll + 0.5)  # the indexer polls a node that is not there
    stack.node.start()
    after = [trader.fund() for _ in range(3)]
    trader.confirm(before[0])
    trader.ship(after[1])
    assert_db_equals_chain(stack)


def test_the_node_crashes_and_loses_its_newest_blocks(stack: LocalStack) -> None:
    """SIGKILL: the state file has only what was dumped before (every few seconds), so blocks
    the indexer has already stored disappear; the indexer must drop them."""
    trader = Trader(stack)
    kept = [trader.fund() for _ in range(2)]
    wait_for_state_dump(stack)  # the file has these trades; the next dump is seconds away
    for _ in range(3):
        trader.fund()  # lost in the crash
    trader.ship(kept[0])
    stack.wait_indexed()
    assert compare(stack).trades_in_db == 5
    stack.node.kill()
    stack.node.start()
    replacement = trader.fund()
    trader.chain.mine(5)  # the new history is longer than the one the indexer saw
    assert_db_equals_chain(stack)
    report = compare(stack)
    assert report.trades_in_db == report.funded_on_chain == 3  # the lost three are gone
    del replacement


# ---------------------------------------------------------------------------- (c) reorg


def test_history_rewritten_under_the_running_indexer(stack: LocalStack) -> None:
    trader = Trader(stack)
    kept = trader.fund()
    stack.wait_indexed()
    snapshot = trader.chain.snapshot()
    dropped = [trader.fund() for _ in range(3)]
    trader.ship(kept)
    trader.ship(dropped[0])
    stack.wait_indexed()
    assert compare(stack).trades_in_db == 4

    trader.chain.revert(snapshot)  # from here on a different history
    trader.turn = itertools.count(1)  # other buyers, other trades
    replacements = [trader.fund(amount=2 * 10**15) for _ in range(2)]
    trader.confirm(kept)
    trader.chain.mine(6)
    assert_db_equals_chain(stack)
    report = compare(stack)
    assert report.trades_in_db == 3 == report.funded_on_chain
    del replacements


# ---------------------------------------------------------------------------- (d) database


def _sqlite_path(stack: LocalStack) -> str:
    return stack.database_url.removeprefix("sqlite:///")


def test_sqlite_locked_while_trading(stack: LocalStack) -> None:
    seller, buyer = person(stack), person(stack)
    trader = Trader(stack)
    web_trade(stack, seller, buyer, "Bookshelf")

    def hold_lock(seconds: float) -> threading.Thread:
        ready = threading.Event()

        def run() -> None:
            conn = sqlite3.connect(_sqlite_path(stack), timeout=30, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            ready.set()
            time.sleep(seconds)
            conn.execute("COMMIT")
            conn.close()

        thread = threading.Thread(target=run)
        thread.start()
        ready.wait(10)
        return thread

    # A few seconds (less than the 10 s busy timeout): writers wait, nothing fails.
    holder = hold_lock(3)
    during = [trader.fund() for _ in range(3)]
    second = web_trade(stack, seller, buyer, "Desk lamp")
    holder.join()
    seller.act(second, "ship", {"tracking": "RR2"})
    assert_db_equals_chain(stack)

    # Longer than the busy timeout: writes fail with a clear message, the indexer waits it out.
    holder = hold_lock(12)
    more = [trader.fund() for _ in range(2)]
    started = time.monotonic()
    reply = seller.request(
        "POST",
        "/listings/new",
        expect_ok=False,
        data={
            "csrf_token": seller.csrf_token,
            "title": "Armchair",
            "price": "0.02",
            "currency": "ETH",
            "quantity": "1",
            "category": "home",
        },
        headers={"Accept": "text/html"},
    )
    holder.join()
    assert time.monotonic() - started < 15
    problems = collect(
        lambda: clear_503(reply, False, "database"), lambda: assert_db_equals_chain(stack)
    )
    assert not problems, "\n".join(problems)
    del during, more


@pytest.fixture
def own_postgres() -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A PostgreSQL cluster of this test's own (so it can be stopped): (url, stop, start)."""
    script = PROJECT_ROOT / "scripts" / "pg_test_server.sh"
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not bins:
        if _in_ci():
            pytest.fail("PostgreSQL server binaries are required in CI")
        pytest.skip("PostgreSQL server binaries not installed")
    folder = tempfile.mkdtemp(prefix="pgfault.")
    started = subprocess.run(
        [str(script), "start", folder], capture_output=True, text=True, timeout=120
    )
    if started.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        reason = f"PostgreSQL did not start: {started.stderr.strip()}"
        if _in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    url = started.stdout.strip().splitlines()[-1]
    port = url.rsplit(":", 1)[1].split("/")[0]
    owner = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    pg_ctl = [*owner, str(bins[-1]), "-D", f"{folder}/data", "-w", "-t", "60"]

    def stop() -> None:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], check=True, capture_output=True)

    def start() -> None:
        subprocess.run(
            [
                *pg_ctl,
                "-l",
                f"{folder}/server.log",
                "start",
                "-o",
                f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off "
                "-c synchronous_commit=off -c max_connections=100",
            ],
            check=True,
            capture_output=True,
        )

    try:
        yield url, stop, start
    finally:
        subprocess.run([str(script), "stop", folder], capture_output=True, timeout=60)


def test_postgres_unreachable_while_trading(
    tmp_path: Path, own_postgres: tuple[str, Callable[[], None], Callable[[], None]]
) -> None:
    url, stop_db, start_db = own_postgres
    with LocalStack(
        tmp_path / "stack", quiet=True, seed=False, workers=2, database_url=url
    ) as stack:
        seller, buyer = person(stack), person(stack)
        trader = Trader(stack)
        trade_pk = web_trade(stack, seller, buyer, "Winter tyres")

        stop_db()
        try:
            during = [trader.fund() for _ in range(3)]  # the chain goes on without the database
            problems = collect(
                *(
                    lambda p=path: clear_503(
                        seller.request("GET", p, expect_ok=False), False, "database"
                    )
                    for path in ("/", f"/trades/{trade_pk}")
                ),
                lambda: clear_503(
                    seller.post_json(
                        f"/trades/{trade_pk}/actions/ship", {"tracking": "R"}, expect_ok=False
                    ),
                    True,
                    "database",
                ),
            )
            time.sleep(1)
        finally:
            start_db()
        indexer = collect(lambda: assert_indexer_running(stack))
        problems += indexer or collect(
            lambda: seller.act(trade_pk, "ship", {"tracking": "RR3"}),
            lambda: trader.fund(),
            lambda: assert_db_equals_chain(stack),
        )
        assert not problems, "\n".join(problems)
        del during


# ---------------------------------------------------------------------------- (e) indexer killed


def test_the_indexer_killed_under_load(stack: LocalStack) -> None:
    """SIGKILL of the following indexer while trades keep arriving, restarted each time.
    (Kills inside a batch, with one block per batch, are tests/test_indexer_kill.py.)"""
    trader = Trader(stack)
    stop = threading.Event()
    sent: list[Funded] = []

    def load() -> None:
        while not stop.is_set():
            funded = trader.fund()
            sent.append(funded)
            if len(sent) % 3 == 0:
                trader.ship(funded)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        for delay in (0.7, 0.4, 1.1, 0.25):
            time.sleep(delay)
            assert stack.indexer is not None
            stack.indexer.send_signal(signal.SIGKILL)
            stack.indexer.wait()
            restart_indexer(stack)
    finally:
        stop.set()
        thread.join(60)
    assert len(sent) >= 10
    assert_db_equals_chain(stack)
    assert compare(stack).trades_in_db == len(sent)
