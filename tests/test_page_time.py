"""The chain time pages are shown with (``trade_rules.page_now``): read from the node at most
once per ``CHAIN_TIME_CACHE_MS`` in a worker, then again in the background, and never stale for
an action that is sent."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from time import monotonic as real_monotonic
from time import sleep as real_sleep

import pytest
from flask import Flask

from escrow.chain import Chain
from escrow.deploy import Deployment
from web_fixtures import app_settings
from webapp import create_app, trade_rules

DAY = 24 * 3600


def make_app(
    chain: Chain, deployment: Deployment, web_db_url: str, tmp_path: Path, cache_ms: int
) -> Flask:
    return create_app(
        app_settings(web_db_url, tmp_path, chain, deployment, CHAIN_TIME_CACHE_MS=cache_ms)
    )


def test_a_page_reuses_the_chain_time_it_read_until_the_cache_expires(
    chain: Chain,
    deployment: Deployment,
    web_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(trade_rules.time, "monotonic", lambda: clock[0])
    app = make_app(chain, deployment, web_db_url, tmp_path, cache_ms=1000)
    with app.test_request_context("/"):
        first = trade_rules.page_now()
        assert first == datetime.fromtimestamp(chain.latest_timestamp(), UTC)
        moved = chain.increase_time(DAY)
        clock[0] += 0.5
        assert trade_rules.page_now() == first  # within the second: the time already read
        # An action is judged by the node's own time, never by the page's.
        assert trade_rules.chain_now() == datetime.fromtimestamp(moved, UTC)
        # Past the second, the view is shown with the time already read, and the new one is
        # read in the background for the next views.
        clock[0] += 0.6
        assert trade_rules.page_now() == first
        assert wait_for(lambda: trade_rules.page_now() == datetime.fromtimestamp(moved, UTC))
        # Past five seconds the kept time is too old to show: the view reads it itself.
        moved_again = chain.increase_time(DAY)
        clock[0] += 5.0
        assert trade_rules.page_now() == datetime.fromtimestamp(moved_again, UTC)
    app.extensions["escrow_engine"].dispose()


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = real_monotonic() + seconds
    while not condition():
        if real_monotonic() > deadline:
            return False
        real_sleep(0.01)
    return True


def test_one_background_read_at_a_time_and_a_failed_one_is_not_kept(
    chain: Chain,
    deployment: Deployment,
    web_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(chain, deployment, web_db_url, tmp_path, cache_ms=1000)
    release = threading.Event()
    reads: list[int] = []

    def slow_and_down() -> datetime:
        reads.append(1)
        release.wait(10)
        raise ConnectionError("node down")

    with app.test_request_context("/"):
        first = trade_rules.page_now()
        kept_at, _ = app.extensions[trade_rules.PAGE_TIME_KEY]
        app.extensions[trade_rules.PAGE_TIME_KEY] = (kept_at - 2, first)  # two seconds old
        monkeypatch.setattr(trade_rules, "chain_now", slow_and_down)
        # Many views while the node is slow: all shown at once with the kept time, one read.
        assert all(trade_rules.page_now() == first for _ in range(50))
        assert len(reads) == 1
        release.set()
        # The read failed: nothing is kept, and the next view asks the node itself.
        assert wait_for(lambda: trade_rules.PAGE_TIME_KEY not in app.extensions)
        monkeypatch.undo()
        assert trade_rules.page_now() == datetime.fromtimestamp(chain.latest_timestamp(), UTC)
    app.extensions["escrow_engine"].dispose()


def test_no_cache_asks_the_node_on_every_view(
    chain: Chain, deployment: Deployment, web_db_url: str, tmp_path: Path
) -> None:
    app = make_app(chain, deployment, web_db_url, tmp_path, cache_ms=0)
    with app.test_request_context("/"):
        trade_rules.page_now()
        moved = chain.increase_time(DAY)
        assert trade_rules.page_now() == datetime.fromtimestamp(moved, UTC)
    app.extensions["escrow_engine"].dispose()


def test_a_node_that_does_not_answer_gives_wall_clock_time_and_is_asked_again(
    chain: Chain,
    deployment: Deployment,
    web_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_app(chain, deployment, web_db_url, tmp_path, cache_ms=60_000)

    def down() -> datetime:
        raise ConnectionError("node down")

    with app.test_request_context("/"):
        monkeypatch.setattr(trade_rules, "chain_now", down)
        before = datetime.now(UTC)
        assert before <= trade_rules.page_now() <= datetime.now(UTC)
        monkeypatch.undo()
        # The wall-clock answer was not kept: the node is asked as soon as it is back.
        assert trade_rules.page_now() == datetime.fromtimestamp(chain.latest_timestamp(), UTC)
    app.extensions["escrow_engine"].dispose()
