"""The web instances' gunicorn settings (deploy/gunicorn.conf.py), used by the local stack and
the scaled shape alike."""

from __future__ import annotations

import gc
import importlib.util
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

from escrow.anvil import free_port
from helpers import load_script
from webapp.stack import GUNICORN_CONFIG

bench_web = load_script("bench_web")  # its count of each worker's connections


def load_config() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gunicorn_conf", GUNICORN_CONFIG)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_worker_freezes_what_it_loaded_out_of_the_collectors_reach() -> None:
    config = load_config()
    gc.unfreeze()
    try:
        config.post_worker_init(None)
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the test process's modules at least
        # Objects made afterwards (per request) are still collected.
        cycle: list[object] = []
        cycle.append(cycle)
        assert gc.is_tracked(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()


def test_the_local_stack_uses_the_shared_settings() -> None:
    config = load_config()
    assert GUNICORN_CONFIG.is_file()
    assert config.worker_class.__name__ == "DrainingThreadWorker"


SLOW_APP = """
import os
import time


def app(environ, start_response):
    seconds = float(environ.get("QUERY_STRING") or 0)
    time.sleep(seconds)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def timed_gets(port: int, seconds: float, count: int) -> list[tuple[str, float]]:
    """``count`` requests at once, each on its own connection: (worker pid, seconds taken)."""

    def one(_: int) -> tuple[str, float]:
        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?{seconds}", timeout=30) as answer:
            pid = answer.read().decode()
        return pid, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


@pytest.fixture
def two_workers_of_two_threads(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A gunicorn of 2 workers x 2 threads with the shared settings: (port, master's pid)."""
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(GUNICORN_CONFIG),
            "--workers",
            "2",
            "--threads",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(tmp_path),
            "slow_app:app",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Both workers are up once three requests at once are answered by two of them (one
        # worker takes two at most).
        deadline = time.monotonic() + 30
        while len({pid for pid, _ in timed_gets_or_none(port)}) < 2:
            assert time.monotonic() < deadline, "gunicorn's two workers did not come up"
            time.sleep(0.2)
        yield port, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def timed_gets_or_none(port: int) -> list[tuple[str, float]]:
    try:
        return timed_gets(port, 0.3, 3)
    except OSError:
        return []


def test_a_worker_leaves_new_connections_to_a_worker_with_an_idle_thread(
    two_workers_of_two_threads: tuple[int, int],
) -> None:
    """Four slow requests arrive at once at two workers of two threads. No worker takes a
    third connection while both its threads are busy, so all four run at once, two on each
    worker. (gunicorn's own thread worker accepts whatever is waiting: a worker could take
    three, and the third would wait for one of its threads.) The web benchmark's count of
    each worker's connections sees the same."""
    port, master = two_workers_of_two_threads
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(timed_gets, port, 1.5, 4)
        time.sleep(0.7)
        held = bench_web.connections_per_worker(master, port)
        answers = running.result()
    per_worker = Counter(pid for pid, _ in answers)
    assert sorted(per_worker.values()) == [2, 2], answers
    assert max(took for _, took in answers) < 2.3, answers
    assert held == [2, 2]


def test_connections_beyond_every_thread_wait_and_are_answered(
    two_workers_of_two_threads: tuple[int, int],
) -> None:
    """Six at once on four threads: two wait in the backlog until a thread is free; none is
    refused or lost."""
    answers = timed_gets(two_workers_of_two_threads[0], 0.5, 6)
    assert len(answers) == 6
    assert len({pid for pid, _ in answers}) == 2
    assert sorted(took >= 0.9 for _, took in answers).count(True) == 2, answers
