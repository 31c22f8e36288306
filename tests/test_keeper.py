"""The keeper on a real anvil, with the real indexer writing a real SQLite database.

Each test gets its own anvil and deployment (half a second), funds and moves trades with the
parties' own transactions, moves the chain's clock with ``evm_setNextBlockTimestamp``, indexes,
and runs the keeper. What the keeper did is read back from the chain: the trades' states and the
number of transactions its account sent (its nonce).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from db_fixtures import fresh_postgres_url, postgres_server  # noqa: F401 (a fixture)
from escrow.anvil import AnvilNode, ends_with_parent
from escrow.chain import Chain, connect
from escrow.cli import main as cli_main
from escrow.client import EscrowClient, Funded, Status
from escrow.db.engine import make_engine, upgrade
from escrow.db.models import Trade, TradeStatus
from escrow.deploy import (
    DEMO_ARBITRATOR_MAX_FEE_BPS,
    DEMO_PLATFORM_FEE_BPS,
    Deployment,
    _deploy_contract,
    deploy,
)
from escrow.indexer import Indexer
from escrow.keeper import Budget, Keeper, PassReport
from escrow.settings import PROJECT_ROOT
from escrow.transactions import Sender, sender_address

pytestmark = pytest.mark.anvil

DAY = 24 * 3600
RULING = 2 * DAY
ETHER = 10**18
GENEROUS = Budget(max_gas_price=100 * 10**9, per_hour=ETHER)


@dataclass
class Market:
    node: AnvilNode
    chain: Chain
    deployment: Deployment
    engine: Engine
    db_url: str
    data_dir: Path
    indexers: list[Indexer] = field(default_factory=list)

    @property
    def client(self) -> EscrowClient:
        return self.deployment.client(self.chain)

    @property
    def buyer(self) -> str:
        return self.chain.accounts[1]

    @property
    def seller(self) -> str:
        return self.chain.accounts[2]

    def index(self) -> None:
        for indexer in self.indexers:
            indexer.sync()

    def fund(
        self,
        *,
        client: EscrowClient | None = None,
        ship_in: int = DAY,
        inspection: int = DAY,
        window: int = 0,
        buyer: str | None = None,
    ) -> Funded:
        client = client or self.client
        return client.fund(
            seller=self.seller,
            arbitrator=self.deployment.arbitrators[-1],
            amount=10**16,
            ship_by=self.chain.latest_timestamp() + ship_in,
            inspection_period=inspection,
            delivery_window=window,
            sender=buyer or self.buyer,
        )

    def client_of(self, funded: Funded) -> EscrowClient:
        address = funded.events[0].address if funded.events else self.client.address
        return self.deployment.client_for(self.chain, address)

    def ship(self, funded: Funded) -> int:
        """Marks the trade shipped; returns the inspection end the contract announced."""
        assert funded.terms is not None
        result = self.client_of(funded).mark_shipped(
            funded.trade_id, funded.terms, sender=funded.terms.seller
        )
        return int(result.event("TradeShipped").args["inspectionEndsAt"])

    def dispute(self, funded: Funded) -> int:
        """Opens a dispute as the buyer; returns the ruling deadline."""
        assert funded.terms is not None
        result = self.client_of(funded).open_dispute(
            funded.trade_id, funded.terms, sender=funded.terms.buyer
        )
        return int(result.event("DisputeOpened").args["rulingDeadline"])

    def status(self, funded: Funded) -> Status:
        assert funded.terms is not None
        return self.client_of(funded).trade_state(funded.trade_id, funded.terms).status

    def travel_to(self, timestamp: int) -> None:
        """The next block (mined now) has exactly this time."""
        self.chain.rpc("evm_setNextBlockTimestamp", [timestamp])
        self.chain.rpc("evm_mine", [])
        assert self.chain.latest_timestamp() == timestamp

    def new_keeper_account(self) -> LocalAccount:
        account: LocalAccount = Account.create()
        self.chain.fund_account(account.address, 10 * ETHER)
        return account

    def keeper(self, sender: Sender, budget: Budget = GENEROUS, **kwargs: Any) -> Keeper:
        return Keeper(self.chain, self.deployment, self.engine, sender, budget, **kwargs)

    def sent_by(self, sender: Sender) -> int:
        """Transactions the account has had mined (its nonce)."""
        return int(self.chain.w3.eth.get_transaction_count(sender_address(sender), "latest"))

    def db_status(self, funded: Funded) -> str:
        with Session(self.engine) as session:
            row = session.scalar(select(Trade).where(Trade.onchain_id == funded.trade_id))
            assert row is not None
            return row.status

    def add_v1_escrow(self) -> EscrowClient:
        """A version 1 escrow beside the current one, as after an upgrade (its funding is
        left open here so the test can open trades in it)."""
        owner = self.chain.accounts[0]
        record = _deploy_contract(self.chain, "P2PEscrowV1", [owner, RULING], owner)
        assert record.version == 1
        self.deployment = dataclasses.replace(self.deployment, previous_escrows=[record])
        v1 = self.deployment.client_for(self.chain, record.address)
        for arbitrator in self.deployment.arbitrators:
            v1.register_arbitrator(arbitrator, DEMO_ARBITRATOR_MAX_FEE_BPS, sender=owner)
        v1.set_platform_fee(owner, DEMO_PLATFORM_FEE_BPS, sender=owner)
        self.indexers.append(
            Indexer(self.chain.w3, self.engine, record.address, start_block=record.block_number)
        )
        return v1


@pytest.fixture
def market(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Market]:
    """A fresh anvil and deployment, and a migrated SQLite database (or PostgreSQL, with
    ``indirect`` parametrization)."""
    data_dir = tmp_path / "data"
    if getattr(request, "param", "sqlite") == "postgresql":
        db_url = fresh_postgres_url(request.getfixturevalue("postgres_server"))
    else:
        db_url = f"sqlite:///{tmp_path / 'escrow.sqlite3'}"
    with AnvilNode() as node:
        chain = connect(node.url)
        deployment = deploy(chain, registry_dir=data_dir / "deployments", ruling_period=RULING)
        upgrade(db_url)
        engine = make_engine(db_url)
        indexer = Indexer(
            chain.w3,
            engine,
            deployment.escrow.address,
            start_block=deployment.escrow.block_number,
            stablecoin=deployment.stablecoin.address if deployment.stablecoin else None,
        )
        try:
            yield Market(node, chain, deployment, engine, db_url, data_dir, [indexer])
        finally:
            engine.dispose()


def kinds(report: PassReport) -> list[str]:
    return sorted(s.kind for s in report.confirmed)


# ---------------------------------------------------------------------------- each timeout


@pytest.mark.parametrize("case", ["refund", "release", "release_received", "resolve"])
def test_a_timeout_is_sent_at_its_deadline_and_not_a_second_before(
    market: Market, case: str
) -> None:
    """Funded and not shipped by ship-by: refunded. Shipped (v2, with a delivery window) and
    the inspection over: released; also when the buyer marked it received early. Disputed and
    no ruling by the deadline: resolved. One second before, the keeper leaves it alone."""
    funded = market.fund(window=3 * DAY if case.startswith("release") else 0)
    assert funded.terms is not None
    if case == "refund":
        deadline, expected, kind = funded.terms.ship_by, Status.REFUNDED, "refund"
    elif case.startswith("release"):
        deadline = market.ship(funded)
        if case == "release_received":
            result = market.client.mark_received(
                funded.trade_id, funded.terms, sender=funded.terms.buyer
            )
            received = int(result.event("TradeReceived").args["inspectionEndsAt"])
            assert received < deadline  # the window no longer counts
            deadline = received
        expected, kind = Status.RELEASED, "release"
    else:
        deadline = market.dispute(funded)
        expected, kind = Status.RESOLVED, "resolve"
    # Someone else's trade that is due much later stays open throughout.
    later = market.fund(ship_in=30 * DAY, buyer=market.chain.accounts[5])
    keeper_account = market.new_keeper_account()
    keeper = market.keeper(keeper_account)

    market.travel_to(deadline - 1)
    market.index()
    report = keeper.run_once()
    assert (report.candidates, report.sent, report.failed) == (0, [], [])
    assert market.status(funded) not in (expected,) and market.status(funded).is_open
    assert market.sent_by(keeper_account) == 0

    market.travel_to(deadline)
    market.index()
    report = keeper.run_once()
    assert kinds(report) == [kind], report.summary()
    assert report.done and report.sent[0].gas_used and report.sent[0].gas_used > 21_000
    assert market.status(funded) == expected
    assert market.status(later) == Status.FUNDED
    assert market.sent_by(keeper_account) == 1

    market.index()
    assert market.db_status(funded) == TradeStatus(expected.name.capitalize()).value
    # Nothing is due any more: a second pass and a restarted keeper send nothing.
    assert keeper.run_once().sent == []
    assert market.keeper(keeper_account).run_once().sent == []
    assert market.sent_by(keeper_account) == 1


@pytest.mark.parametrize("market", ["sqlite", "postgresql"], indirect=True)
def test_every_kind_in_one_pass_from_an_unlocked_account_and_on_a_v1_escrow(
    market: Market,
) -> None:
    v1 = market.add_v1_escrow()
    refund2, refund1 = market.fund(), market.fund(client=v1)
    release2, release1 = market.fund(window=DAY), market.fund(client=v1)
    resolve2, resolve1 = market.fund(), market.fund(client=v1)
    for funded in (release2, release1):
        market.ship(funded)
    for funded in (resolve2, resolve1):
        market.ship(funded)
        market.dispute(funded)
    market.travel_to(market.chain.latest_timestamp() + 5 * DAY)
    market.index()
    keeper_account = market.chain.accounts[3]  # unlocked: the node signs
    before = market.sent_by(keeper_account)

    report = market.keeper(keeper_account).run_once()

    assert kinds(report) == ["refund"] * 2 + ["release"] * 2 + ["resolve"] * 2
    assert report.done, report.summary()
    assert {s.escrow for s in report.sent} == {market.client.address, v1.address}
    for funded, status in (
        (refund2, Status.REFUNDED),
        (refund1, Status.REFUNDED),
        (release2, Status.RELEASED),
        (release1, Status.RELEASED),
        (resolve2, Status.RESOLVED),
        (resolve1, Status.RESOLVED),
    ):
        assert market.status(funded) == status
    assert market.sent_by(keeper_account) - before == 6
    market.index()
    with Session(market.engine) as session:
        rows = session.scalars(select(Trade)).all()
        assert {r.status for r in rows} == {"Refunded", "Released", "Resolved"}
        assert all(r.refunded_after_deadline for r in rows if r.status == "Refunded")
        assert not any(r.released_by_buyer for r in rows if r.status == "Released")


# ---------------------------------------------------------------------------- never twice


def test_two_keepers_at_once_and_a_restart_send_each_timeout_once(market: Market) -> None:
    trades = [market.fund(buyer=market.chain.accounts[(1, 4, 5)[i % 3]]) for i in range(8)]
    for funded in trades[::2]:
        market.ship(funded)
    market.travel_to(market.chain.latest_timestamp() + 3 * DAY)
    market.index()
    shared = market.new_keeper_account()
    # Two keepers with the same account, each with its own connection, start together.
    keepers = [
        Keeper(connect(market.node.url), market.deployment, market.engine, shared, GENEROUS)
        for _ in range(2)
    ]
    barrier = threading.Barrier(2)
    reports: list[PassReport] = []
    errors: list[BaseException] = []

    def run(keeper: Keeper) -> None:
        try:
            barrier.wait(5)
            reports.append(keeper.run_once())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in keepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    reverted = [s for r in reports for s in r.sent if s.ok is False and s.gas_used]
    assert reverted == [], "a timeout was mined twice (the second reverted)"
    # A keeper that lost the nonce race stopped its pass; one more pass finishes the rest.
    market.index()
    Keeper(market.chain, market.deployment, market.engine, shared, GENEROUS).run_once()
    # A keeper on another account, after the work is done: its checks see every trade final.
    other = market.new_keeper_account()
    assert market.keeper(other).run_once().sent == []

    assert all(not market.status(f).is_open for f in trades)
    assert market.sent_by(shared) == len(trades)
    assert market.sent_by(other) == 0


def test_a_keeper_on_another_account_skips_what_the_first_did(market: Market) -> None:
    trades = [market.fund() for _ in range(3)]
    market.travel_to(trades[-1].terms.ship_by if trades[-1].terms else 0)
    market.index()
    first, second = market.new_keeper_account(), market.new_keeper_account()
    assert len(market.keeper(first).run_once().confirmed) == 3
    # The database still says funded (not indexed yet): the second keeper's checks on chain
    # find the trades refunded and it sends nothing.
    report = market.keeper(second).run_once()
    assert report.candidates == 3 and report.sent == []
    assert all("already refunded" in why for _, why in report.skipped)
    assert (market.sent_by(first), market.sent_by(second)) == (3, 0)


def test_a_pending_transaction_holds_every_keeper_back(market: Market) -> None:
    funded = market.fund()
    assert funded.terms is not None
    market.travel_to(funded.terms.ship_by)
    market.index()
    account = market.new_keeper_account()
    keeper = market.keeper(account, receipt_timeout=0.3)
    market.chain.rpc("evm_setAutomine", [False])
    try:
        first = keeper.run_once()
        assert len(first.sent) == 1 and first.sent[0].ok is None  # sent, not mined
        assert not first.done and keeper.inflight
        # The same keeper in its next pass, and a restarted one: the account has a pending
        # transaction, so neither looks for work.
        again = keeper.run_once()
        assert again.waited_for_pending == 1 and again.sent == []
        restarted = market.keeper(account, receipt_timeout=0.3)
        assert not restarted.wait_until_idle(0.3)
        assert restarted.run_once().waited_for_pending == 1
        assert market.chain.w3.eth.get_transaction_count(account.address, "pending") == 1
    finally:
        market.chain.rpc("evm_setAutomine", [True])
    market.chain.mine()
    assert restarted.wait_until_idle(5)
    report = keeper.run_once()  # collects the receipt; the trade is final on chain
    assert [s.ok for s in report.sent] == [True] and not keeper.inflight
    assert restarted.run_once().sent == []
    assert market.status(funded) == Status.REFUNDED
    assert market.sent_by(account) == 1


# ---------------------------------------------------------------------------- budget


def test_the_budget_and_the_gas_price_cap_refuse_to_send(
    market: Market, caplog: pytest.LogCaptureFixture
) -> None:
    trades = [market.fund() for _ in range(2)]
    market.travel_to(trades[-1].terms.ship_by if trades[-1].terms else 0)
    market.index()
    account = market.new_keeper_account()

    caplog.set_level(logging.INFO, logger="escrow.keeper")
    cheap = market.keeper(account, Budget(max_gas_price=1, per_hour=ETHER))
    report = cheap.run_once()
    assert report.sent == [] and len(report.refused) == 2 and not report.done
    assert "above the limit of 0.000 gwei" in caplog.text

    caplog.clear()
    poor = market.keeper(account, Budget(max_gas_price=100 * 10**9, per_hour=10**9))
    report = poor.run_once()
    assert report.sent == [] and len(report.refused) == 2
    assert "hourly budget 0.000000 ETH would be exceeded" in caplog.text

    caplog.clear()
    once = market.keeper(account, Budget(max_gas_price=100 * 10**9, per_hour=ETHER, per_run=1))
    assert once.run_once().refused and "budget of this run" in caplog.text
    assert market.sent_by(account) == 0
    assert all(market.status(f) == Status.FUNDED for f in trades)


def test_the_hourly_budget_counts_what_was_spent(market: Market) -> None:
    """A keeper whose hourly budget is what it has just spent waits for the hour to pass."""
    first = market.fund()
    assert first.terms is not None
    market.travel_to(first.terms.ship_by)
    market.index()
    account = market.new_keeper_account()
    now = [1000.0]
    keeper = market.keeper(account, clock=lambda: now[0])
    sent = keeper.run_once().sent[0]
    assert sent.cost and 0 < sent.cost < sent.reserved
    # Room for one more transaction like it (at its worst case), but not on top of the first.
    budget = sent.reserved * 6 // 5
    assert sent.cost + sent.reserved > budget
    keeper.budget = dataclasses.replace(keeper.budget, per_hour=budget)

    second = market.fund()
    assert second.terms is not None
    market.travel_to(second.terms.ship_by)
    market.index()
    now[0] += 1800
    report = keeper.run_once()
    assert report.sent == [] and "hourly budget" in report.refused[0][1]
    assert market.status(second) == Status.FUNDED
    now[0] += 1801  # the first spending is more than an hour old
    assert len(keeper.run_once().confirmed) == 1
    assert market.status(second) == Status.REFUNDED
    assert market.sent_by(account) == 2


# ---------------------------------------------------------------------------- odd trades


def test_odd_and_stale_trades_do_not_stop_the_others(market: Market) -> None:
    """Rows the chain disagrees with come first; the good trades after them are still done."""
    client = market.client
    extended = market.fund()  # the inspection was extended on chain after the last indexing
    confirmed = market.fund()  # the buyer confirmed it on chain after the last indexing
    tampered = market.fund()  # its stored terms differ from the chain's
    broken = market.fund()  # its stored terms cannot even be encoded
    good = [market.fund(), market.fund()]
    for funded in (extended, confirmed, good[1]):
        market.ship(funded)
    market.index()
    assert extended.terms and confirmed.terms
    client.request_inspection_extension(
        extended.trade_id, extended.terms, 5, sender=extended.terms.buyer
    )
    client.grant_inspection_extension(
        extended.trade_id, extended.terms, sender=extended.terms.seller
    )
    client.confirm_receipt(confirmed.trade_id, confirmed.terms, sender=confirmed.terms.buyer)
    with Session(market.engine) as session, session.begin():
        session.execute(
            update(Trade).where(Trade.onchain_id == tampered.trade_id).values(amount=10**16 + 1)
        )
        session.execute(
            update(Trade).where(Trade.onchain_id == broken.trade_id).values(delivery_window=None)
        )
    market.travel_to(market.chain.latest_timestamp() + 3 * DAY)  # inspection over, w/o extension
    account = market.new_keeper_account()
    keeper = market.keeper(account)

    report = keeper.run_once()

    assert report.candidates == 6
    assert kinds(report) == ["refund", "release"]
    skipped = dict(report.skipped)
    assert "due only at" in skipped[extended.trade_id]
    assert "already released" in skipped[confirmed.trade_id]
    assert "stored terms differ" in skipped[tampered.trade_id]
    assert [t for t, _ in report.failed] == [broken.trade_id]
    assert market.status(good[0]) == Status.REFUNDED
    assert market.status(good[1]) == Status.RELEASED
    assert market.status(extended) == Status.SHIPPED
    assert market.status(tampered) == Status.FUNDED
    assert market.sent_by(account) == 2
    # The odd rows rest for a while instead of being checked on every pass.
    assert keeper.run_once().candidates == 0


# ---------------------------------------------------------------------------- command line


def test_escrow_keep_once_from_the_command_line(
    market: Market,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("ESCROW_DATA_DIR", str(market.data_dir))
    monkeypatch.delenv("ESCROW_PRIVATE_KEY", raising=False)
    funded = market.fund()
    assert funded.terms is not None
    market.travel_to(funded.terms.ship_by)
    market.index()
    base = ["--rpc-url", market.node.url, "keep", "--once", "--database-url", market.db_url]
    caplog.set_level(logging.INFO, logger="escrow.keeper")

    assert cli_main([*base, "--from", "3", "--budget-eth", "0.000000001"]) == 1
    assert "hourly budget" in caplog.text
    assert market.status(funded) == Status.FUNDED

    key = market.new_keeper_account()
    monkeypatch.setenv("ESCROW_PRIVATE_KEY", key.key.hex())
    assert cli_main(base) == 0
    out = capsys.readouterr().out
    assert "1 timeouts done (1 refund)" in out
    assert "refunded trade" in caplog.text and "refundAfterDeadline" in caplog.text
    assert market.status(funded) == Status.REFUNDED
    assert market.sent_by(key) == 1


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["keep", "--once", "--from", "3"], "needs a chain node"),
        (["--rpc-url", "http://127.0.0.1:9", "keep", "--max-gas-price-gwei", "x"], "gwei"),
        (["--rpc-url", "http://127.0.0.1:9", "keep", "--budget-eth", "-1"], "ETH"),
        (["--rpc-url", "http://127.0.0.1:9", "keep", "--poll", "0"], "seconds"),
    ],
)
def test_escrow_keep_usage_errors(
    argv: list[str],
    words: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("ESCROW_RPC_URL", raising=False)
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- make run


@pytest.mark.slow
def test_the_local_stack_runs_the_keeper(tmp_path: Path) -> None:
    """`make run`'s stack starts `escrow keep` beside the indexer, from its own account (none
    of the demo's parties), and stops it with the rest."""
    from webapp.stack import LocalStack, keeper_account

    with LocalStack(
        tmp_path / "stack", quiet=True, seed=False, workers=1, threads=2, keeper_poll=0.2
    ) as stack:
        assert stack.chain is not None and stack.deployment is not None and stack.keeper
        chain, client = stack.chain, stack.deployment.client(stack.chain)
        keeper = keeper_account().address
        assert keeper not in chain.accounts
        assert keeper not in stack.deployment.arbitrators and keeper != stack.deployment.owner
        funded = client.fund(
            seller=chain.accounts[2],
            arbitrator=stack.deployment.arbitrators[-1],
            amount=10**16,
            ship_by=chain.latest_timestamp() + DAY,
            inspection_period=DAY,
            sender=chain.accounts[1],
        )
        assert funded.terms is not None
        chain.increase_time(DAY + 1)
        deadline = time.monotonic() + 90  # a busy machine: the process imports web3 first
        while client.trade_state(funded.trade_id, funded.terms).status != Status.REFUNDED:
            assert stack.keeper.poll() is None, "the keeper exited"
            assert time.monotonic() < deadline, "the keeper did not refund the trade"
            time.sleep(0.2)
        assert chain.w3.eth.get_transaction_count(keeper) == 1
        process = stack.keeper
        status = Path(f"/proc/{process.pid}/status").read_text()
        assert re.search(r"^Umask:\s+0077$", status, re.MULTILINE)  # like the stack's others
    assert process.returncode == 0  # stopped with the stack, cleanly on SIGTERM


# ---------------------------------------------------------------------------- leader lock


def _wait_for(condition: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.parametrize("market", ["postgresql"], indirect=True)
def test_two_keepers_on_the_leader_lock_one_active_and_a_takeover(
    market: Market, tmp_path: Path
) -> None:
    """`escrow keep --leader-lock` twice on PostgreSQL: one sends, the other stands by; when
    the active one is killed, the standby takes over and sends the next due timeout."""
    key = market.new_keeper_account()
    env = {
        **os.environ,
        "ESCROW_DATA_DIR": str(market.data_dir),
        "ESCROW_PRIVATE_KEY": "0x" + bytes(key.key).hex(),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    escrow = Path(sys.executable).parent / "escrow"
    logs = [tmp_path / f"keeper-{n}.log" for n in (1, 2)]
    command = [
        *ends_with_parent(),
        str(escrow),
        "--rpc-url",
        market.node.url,
        "keep",
        "--leader-lock",
        "--poll",
        "0.2",
        "--database-url",
        market.db_url,
    ]
    processes = []
    for log in logs:
        with open(log, "wb") as out:
            processes.append(
                subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
            )

    def said(n: int, words: str) -> bool:
        return words in logs[n].read_text(errors="replace")

    try:
        _wait_for(
            lambda: (
                said(0, "became active") != said(1, "became active")
                and (said(0, "waiting for the lock") or said(1, "waiting for the lock"))
            ),
            30,
            "one active keeper and one standing by",
        )
        active = 0 if said(0, "became active") else 1
        standby = 1 - active

        first = market.fund()
        assert first.terms is not None
        market.travel_to(first.terms.ship_by)
        market.index()
        _wait_for(lambda: market.status(first) == Status.REFUNDED, 30, "the first refund")
        assert "refunded trade" in logs[active].read_text()
        assert "refunded trade" not in logs[standby].read_text()

        processes[active].kill()
        processes[active].wait()
        took = _wait_for(lambda: said(standby, "became active"), 10, "the standby to take over")
        assert took < 5.0

        second = market.fund()
        assert second.terms is not None
        market.travel_to(second.terms.ship_by)
        market.index()
        _wait_for(lambda: market.status(second) == Status.REFUNDED, 30, "the second refund")
        assert "refunded trade" in logs[standby].read_text()
        assert market.sent_by(key) == 2  # each timeout sent once
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(15)
