"""The chain time pages are shown with (``trade_rules.page_now``): read from the node at most
once per ``CHAIN_TIME_CACHE_MS`` in a worker, never stale for an action that is sent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

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
        clock[0] += 0.6
        assert trade_rules.page_now() == datetime.fromtimestamp(moved, UTC)
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
