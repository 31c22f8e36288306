"""What counting requests in the database costs: time per POST with the rate-limit counters in
the app's SQLite database (the default, webapp/ratelimit_storage.py) and in worker memory
(``memory://``), through the Flask app in this process (no HTTP server, no chain).

Two POSTs, each refused by the view before it touches anything else, so what differs between
the two storages is the limiter's work: ``/auth/logout`` without a session (the write limit:
two counters, "60 per minute; 600 per hour") and ``/auth/verify`` without a signature (the
write limit and the sign-in limit: three counters). The limits are raised so nothing is
refused. Also the storage's own ``incr`` alone, and with ``--threads`` parallel clients.

    python scripts/bench_ratelimit.py [--requests 3000] [--threads 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from escrow.db.engine import upgrade
from webapp import create_app
from webapp.extensions import limiter
from webapp.ratelimit_storage import DatabaseStorage, storage_uri


def make_app(folder: Path, database_url: str, storage: str) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "DATA_DIR": str(folder),
            "SECRET_KEY": "bench",
            "SESSION_COOKIE_SECURE": False,
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_STORAGE_URI": storage,
            "WRITE_RATE_LIMIT": "1000000 per minute; 10000000 per hour",
            "SIGNIN_RATE_LIMIT": "1000000 per minute",
        }
    )


def per_request_us(send: Callable[[], int], requests: int) -> float:
    """Median of five rounds, microseconds per request."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(requests // 5):
            send()
        rounds.append((time.perf_counter() - start) / (requests // 5) * 1e6)
    return statistics.median(rounds)


def bench_posts(folder: Path, database_url: str, requests: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, storage in (("memory", "memory://"), ("database", "")):
        app = make_app(folder, database_url, storage)
        client = app.test_client()

        def logout(client: FlaskClient = client) -> int:
            return client.post("/auth/logout").status_code

        def verify(client: FlaskClient = client) -> int:
            return client.post("/auth/verify", json={"message": "x"}).status_code

        assert logout() == 302 and verify() == 400
        results[name] = {
            "logout": per_request_us(logout, requests),
            "verify": per_request_us(verify, requests),
        }
        print(f"  {name:8} storage: {type(limiter.storage).__name__}")
        app.extensions["escrow_engine"].dispose()
    return results


def bench_incr(database_url: str, requests: int, threads: int) -> tuple[float, float]:
    storage = DatabaseStorage(storage_uri(database_url))
    keys = [f"bench/{n}" for n in range(200)]
    alone = per_request_us(lambda: storage.incr(keys[0], 60), requests)

    def work(count: int) -> None:
        for n in range(count):
            storage.incr(keys[n % len(keys)], 60)

    per_thread = requests // threads
    pool = [threading.Thread(target=work, args=(per_thread,)) for _ in range(threads)]
    start = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    parallel = (time.perf_counter() - start) / (per_thread * threads) * 1e6
    storage.dispose()
    return alone, parallel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_ratelimit.") as name:
        folder = Path(name)
        database_url = f"sqlite:///{folder / 'escrow.sqlite3'}"
        upgrade(database_url)
        print(f"{args.requests} POSTs per case, Flask test client, SQLite in {folder}")
        posts = bench_posts(folder, database_url, args.requests)
        alone, parallel = bench_incr(database_url, args.requests, args.threads)
    print(f"{'POST':<14}{'memory µs':>12}{'database µs':>14}{'difference':>12}")
    for route, label in (("logout", "/auth/logout"), ("verify", "/auth/verify")):
        memory, database = posts["memory"][route], posts["database"][route]
        print(f"{label:<14}{memory:>12.0f}{database:>14.0f}{database - memory:>+12.0f}")
    print(f"DatabaseStorage.incr alone: {alone:.0f} µs")
    print(
        f"DatabaseStorage.incr, {args.threads} threads on 200 keys: {parallel:.0f} µs per "
        f"increment ({1e6 / parallel:,.0f} increments/s)"
    )


if __name__ == "__main__":
    main()
