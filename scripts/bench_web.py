"""Web benchmark: the production stack (gunicorn, SQLite, anvil, indexer) under bounded load.

Fills the database with ``--listings`` listings (default 10,000; titles, descriptions and
cities in Latin, Russian and Kazakh) and makes 2,000 real trades on the chain (sent in JSON-RPC
batches, then indexed) of which ``--disputes`` (default 100) are shipped and disputed, signs in
as a buyer and as the arbitrator, and measures with wrk on loopback for ``--seconds`` each
(default 20): the listing index, a filtered search, a Cyrillic search (``?q=айфон алматы``), a
Latin search (``?q=iphone``), a listing page, a trade page, a seller's profile and the
arbitration queue, and first a baseline: ``/livez`` of the same app behind the same gunicorn,
which touches no database. Each page's requests/s is also given as a fraction of the
baseline's (``ratio_to_baseline``): the figure that carries from one machine to another. Prints
a table and writes build/bench/web.json as ``{"baseline": {...}, "pages": {"index": {"p95_ms":
..., "req_per_s": ..., "ratio_to_baseline": ..., "load_1min": ...}, ...}}``; ``load_1min`` is
the machine's load average when the page's run ended (other work on the machine shows there).

``--search-only`` measures the search query itself instead (webapp.search.apply_search with the
index page's two queries: the count and one page of listings with their sellers), on
``--listings`` listings in a SQLite file and, when ``--postgres-url`` or ``TEST_POSTGRES_URL``
names a server, in a fresh PostgreSQL schema; no stack, no wrk. It writes
build/bench/search.json as ``{"sqlite": {"<query>": {"p50_ms": ..., "p95_ms": ...}}, ...}``.

    python scripts/bench_web.py [--listings 10000] [--seconds 20] [--trades 2000] [--disputes 100]
    python scripts/bench_web.py --search-only [--postgres-url URL] [--runs 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.orm import Session, contains_eager

from escrow.db.engine import make_engine, session_scope, upgrade
from escrow.db.models import Listing, Trade, TradeStatus, User
from escrow.settings import PROJECT_ROOT
from webapp.search import apply_search
from webapp.stack import LocalStack

CATEGORIES = ["electronics", "phones", "furniture", "clothing", "bikes", "books", "kids", "home"]
CITIES = [
    "Almaty",
    "Алматы",
    "Astana",
    "Астана",
    "Shymkent",
    "Шымкент",
    "Karaganda",
    "Қарағанды",
    "Aktobe",
    "Ақтөбе",
    "Taraz",
    "Pavlodar",
    "Өскемен",
]
WORDS = [
    "bike",
    "phone",
    "sofa",
    "jacket",
    "lamp",
    "table",
    "laptop",
    "camera",
    "stroller",
    "guitar",
    "book",
    "chair",
    "watch",
    "kettle",
    "boots",
    "desk",
    "monitor",
    "tent",
    "iPhone",
    "Samsung",
]
#: Every other listing is written in Russian or Kazakh.
WORDS_CYRILLIC = [
    "велосипед",
    "телефон",
    "диван",
    "куртка",
    "лампа",
    "стол",
    "ноутбук",
    "айфон",
    "самсунг",
    "гитара",
    "кітап",
    "орындық",
    "сағат",
    "шәйнек",
    "етік",
    "палатка",
]
#: Queries --search-only measures (and the two search pages of the full run).
SEARCH_QUERIES = {
    "cyrillic": "айфон алматы",
    "cyrillic_1word": "Диван",
    "kazakh": "шәйнек",
    "latin": "iphone",
    "latin_city": "Almaty",
    "short": "ай",
    "none": "",
}
LUA = """
done = function(summary, latency, requests)
  io.write(string.format("JSON {\\"p50_us\\": %d, \\"p95_us\\": %d, \\"p99_us\\": %d, "
    .. "\\"requests\\": %d, \\"duration_us\\": %d, \\"errors\\": %d, \\"non2xx\\": %d}\\n",
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def fill_listings(stack: LocalStack, count: int) -> list[int]:
    rng = random.Random(7)
    assert stack.chain is not None
    sellers = [a.lower() for a in stack.chain.accounts[1:5]]
    engine = make_engine(stack.database_url)
    try:
        with session_scope(engine) as session:
            user_ids = []
            for address in sellers:
                user = session.scalar(select(User).where(User.address == address))
                if user is None:
                    user = User(address=address)
                    session.add(user)
                    session.flush()
                user_ids.append(user.id)
            rows = []
            for i in range(count):
                words = WORDS_CYRILLIC if i % 2 else WORDS
                title = f"{rng.choice(words).title()} {rng.choice(words)} #{i}"
                currency = "ETH" if rng.random() < 0.6 else "USD"
                price = (
                    rng.randint(1, 500) * 10**15
                    if currency == "ETH"
                    else rng.randint(5, 2000) * 10**6
                )
                rows.append(
                    {
                        "ref": "0x" + secrets.token_hex(32),
                        "seller_id": rng.choice(user_ids),
                        "title": title,
                        "description": f"Good condition. {title}. Pick-up or post.",
                        "price": price,
                        "currency": currency,
                        "quantity": 1000,
                        "category": rng.choice(CATEGORIES),
                        "city": rng.choice(CITIES),
                        "photos": [],
                        "status": "active",
                        "created_at": datetime.now(UTC),
                        "updated_at": datetime.now(UTC),
                    }
                )
            for start in range(0, len(rows), 2_000):
                session.execute(insert(Listing), rows[start : start + 2_000])
            return list(
                session.scalars(select(Listing.id).order_by(Listing.id.desc()).limit(count))
            )
    finally:
        engine.dispose()


def make_trades(stack: LocalStack, count: int, listing_ids: list[int]) -> None:
    """``count`` ETH trades for real listings, sent as JSON-RPC batches with explicit nonces."""
    assert stack.chain is not None and stack.deployment is not None
    chain, deployment = stack.chain, stack.deployment
    client = deployment.client(chain)
    engine = make_engine(stack.database_url)
    with session_scope(engine) as session:
        listings = session.execute(
            select(Listing.ref, User.address)
            .join(User, Listing.seller_id == User.id)
            .where(Listing.id.in_(listing_ids[:count]), Listing.currency == "ETH")
        ).all()
    engine.dispose()
    buyers = [a for a in chain.accounts[5:8]]
    arbitrator = deployment.arbitrators[-1]
    ship_by = chain.latest_timestamp() + 30 * 86400
    nonces = {b: int(chain.w3.eth.get_transaction_count(b)) for b in buyers}
    lanes = {b: 1000 for b in buyers}  # lanes far from the demo's, each used once
    http = requests.Session()
    fee_bps = client.platform_fee()[1]  # the fee the buyer accepts (v2 fee cap)
    calls: list[dict[str, Any]] = []
    for i in range(count):
        ref, seller = listings[i % len(listings)]
        buyer = buyers[i % len(buyers)]
        if seller.lower() == buyer.lower():
            buyer = buyers[(i + 1) % len(buyers)]
        call = client.calls.fund(
            seller=seller,
            arbitrator=arbitrator,
            amount=10**15,
            ship_by=ship_by,
            inspection_period=3 * 86400,
            listing_ref=bytes.fromhex(ref[2:]),
            lane=lanes[buyer],
            max_platform_fee_bps=fee_bps,
        )
        lanes[buyer] += 1
        data = call.function._encode_transaction_data()
        calls.append(
            {
                "jsonrpc": "2.0",
                "id": i,
                "method": "eth_sendTransaction",
                "params": [
                    {
                        "from": buyer,
                        "to": client.address,
                        "data": data,
                        "value": hex(10**15),
                        "gas": hex(300_000),
                        "nonce": hex(nonces[buyer]),
                    }
                ],
            }
        )
        nonces[buyer] += 1
    # A batch holds at most one transaction per buyer: anvil handles a batch's requests at the
    # same moment, and an account's transactions that reach it out of order can stay among its
    # not-ready transactions for good (TransactionStuck "not_promoted", see escrow/chain.py).
    # Each batch is answered once its transactions are in the pool, so the next one follows.
    hashes = []
    for start in range(0, len(calls), len(buyers)):
        batch = calls[start : start + len(buyers)]
        senders = [c["params"][0]["from"] for c in batch]
        assert len(set(senders)) == len(senders), "one transaction per buyer in a batch"
        replies = http.post(chain.url or "", json=batch, timeout=60).json()
        errors = [r["error"] for r in replies if "error" in r]
        if errors:
            raise RuntimeError(f"sending trades failed: {errors[0]}")
        hashes += [r["result"] for r in sorted(replies, key=lambda r: int(r["id"]))]
    failed = sum(1 for h in hashes if chain.wait_for_receipt(h)["status"] != 1)
    if failed:
        raise RuntimeError(f"{failed} of {len(hashes)} trades reverted")
    stack.wait_indexed(timeout=300)


def make_disputes(stack: LocalStack, count: int) -> int:
    """Ships and disputes ``count`` of the indexed ETH trades (seller ships, buyer disputes), so
    that the arbitrator's queue has cases. Returns how many were disputed."""
    from webapp.trade_rules import terms_of

    assert stack.chain is not None and stack.deployment is not None
    client = stack.deployment.client(stack.chain)
    engine = make_engine(stack.database_url)
    with session_scope(engine) as session:
        trades = session.scalars(
            select(Trade)
            .where(
                Trade.status == TradeStatus.FUNDED.value,
                Trade.contract_address == client.address.lower(),
            )
            .order_by(Trade.id)
            .limit(count)
        ).all()
        work = [(int(t.onchain_id), terms_of(t)) for t in trades]
    engine.dispose()
    for trade_id, terms in work:
        client.mark_shipped(trade_id, terms, sender=terms.seller)
        client.open_dispute(trade_id, terms, sender=terms.buyer)
    stack.wait_indexed(timeout=300)
    return len(work)


def sign_in(stack: LocalStack, address: str) -> str:
    """Signs in through the app (SIWE, signed by the node's dev account); returns the cookie."""
    assert stack.chain is not None
    http = requests.Session()
    page = http.get(stack.url + "/auth/signin", timeout=10).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert token, "no CSRF token"
    message = http.get(stack.url + "/auth/message", params={"address": address}, timeout=10).json()[
        "message"
    ]
    signature = stack.chain.rpc("personal_sign", ["0x" + message.encode().hex(), address])
    reply = http.post(
        stack.url + "/auth/verify",
        json={"message": message, "signature": signature},
        headers={"X-CSRFToken": token.group(1)},
        timeout=10,
    )
    reply.raise_for_status()
    return "; ".join(f"{k}={v}" for k, v in http.cookies.items())


def fill_search_db(url: str, count: int) -> None:
    """``count`` active listings (no chain) in the database at ``url``, migrated first."""
    upgrade(url)
    rng = random.Random(7)
    engine = make_engine(url)
    try:
        with session_scope(engine) as session:
            users = [User(address="0x" + f"{n:040x}", languages=[]) for n in range(1, 5)]
            session.add_all(users)
            session.flush()
            rows = []
            for i in range(count):
                words = WORDS_CYRILLIC if i % 2 else WORDS
                title = f"{rng.choice(words).title()} {rng.choice(words)} #{i}"
                now = datetime.now(UTC)
                rows.append(
                    {
                        "ref": "0x" + secrets.token_hex(32),
                        "seller_id": rng.choice(users).id,
                        "title": title,
                        "description": f"Good condition. {title}. Pick-up or post.",
                        "price": rng.randint(1, 500) * 10**15,
                        "currency": "ETH",
                        "quantity": 1,
                        "category": rng.choice(CATEGORIES),
                        "city": rng.choice(CITIES),
                        "photos": [],
                        "status": "active" if rng.random() < 0.9 else "withdrawn",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            for start in range(0, len(rows), 2_000):
                session.execute(insert(Listing), rows[start : start + 2_000])
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("ANALYZE listings"))
                conn.execute(text("ANALYZE users"))
    finally:
        engine.dispose()


def index_queries(session: Session, q: str, page_size: int = 24) -> tuple[int, int]:
    """What the listings index runs for ``?q=``: the count and the first page (newest first)."""
    base = apply_search(select(Listing).where(Listing.status == "active"), session, q)
    total = session.scalar(base.with_only_columns(func.count(Listing.id)).order_by(None)) or 0
    page = session.scalars(
        base.join(Listing.seller)
        .options(contains_eager(Listing.seller))
        .order_by(Listing.created_at.desc(), Listing.id.desc())
        .limit(page_size)
    ).all()
    return total, len(page)


def measure_search(url: str, runs: int) -> dict[str, dict[str, Any]]:
    engine = make_engine(url)
    results: dict[str, dict[str, Any]] = {}
    try:
        with Session(engine) as session:
            for name, q in SEARCH_QUERIES.items():
                for _ in range(5):  # warm up caches and prepared statements
                    total, shown = index_queries(session, q)
                    session.rollback()
                times = []
                for _ in range(runs):
                    started = time.perf_counter()
                    index_queries(session, q)
                    session.rollback()
                    times.append((time.perf_counter() - started) * 1000)
                times.sort()
                results[name] = {
                    "query": q,
                    "found": total,
                    "shown": shown,
                    "p50_ms": round(statistics.median(times), 2),
                    "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
                    "max_ms": round(times[-1], 2),
                }
    finally:
        engine.dispose()
    return results


def fresh_postgres_schema(server_url: str) -> str:
    server_url = server_url.replace("postgresql://", "postgresql+psycopg://", 1)
    schema = "bench_" + secrets.token_hex(6)
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    separator = "&" if "?" in server_url else "?"
    return f"{server_url}{separator}options=-csearch_path%3D{schema}"


def search_only(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {"listings": args.listings, "runs": args.runs}
    with tempfile.TemporaryDirectory(prefix="bench-search.") as tmp:
        databases = {"sqlite": f"sqlite:///{Path(tmp) / 'search.sqlite3'}"}
        pg: str = args.postgres_url or os.environ.get("TEST_POSTGRES_URL") or ""
        if pg:
            databases["postgresql"] = fresh_postgres_schema(pg)
        for kind, url in databases.items():
            started = time.monotonic()
            fill_search_db(url, args.listings)
            filled = time.monotonic() - started
            report[kind] = measure_search(url, args.runs)
            report[kind + "_fill_seconds"] = round(filled, 1)
            if kind == "postgresql":
                schema = url.rsplit("%3D", 1)[1]
                admin = create_engine(pg.replace("postgresql://", "postgresql+psycopg://", 1))
                with admin.begin() as conn:
                    conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
                admin.dispose()
    out = args.out if args.out != DEFAULT_OUT else DEFAULT_OUT.with_name("search.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"{'database':11} {'query':16} {'found':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for kind in ("sqlite", "postgresql"):
        for name, r in report.get(kind, {}).items():
            print(
                f"{kind:11} {name:16} {r['found']:>6} {r['p50_ms']:>8} {r['p95_ms']:>8} "
                f"{r['max_ms']:>8}"
            )
    print(f"{args.listings:,} listings, {args.runs} runs per query; written to {out}")
    return 0


def connections_per_worker(master_pid: int, port: int) -> list[int]:
    """How many established connections to ``port`` each of the gunicorn master's workers
    holds, most first (from /proc; empty where /proc is not Linux's). A kept-alive connection
    stays with the worker that accepted it, and a worker's threads share one core."""
    try:
        sockets: set[str] = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as rows:
                for row in list(rows)[1:]:
                    fields = row.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        sockets.add(f"socket:[{fields[9]}]")
        counts = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                if parent != master_pid:
                    continue
                fds = os.listdir(f"/proc/{entry}/fd")
                counts.append(sum(os.readlink(f"/proc/{entry}/fd/{fd}") in sockets for fd in fds))
            except OSError:  # a process that ended meanwhile
                continue
        return sorted(counts, reverse=True)
    except OSError:
        return []


def run_wrk(
    url: str,
    seconds: int,
    cookie: str | None,
    threads: int,
    connections: int,
    script: Path,
    server: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """One page under load; ``server`` (gunicorn master's pid, port) adds the connections each
    worker held halfway through."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
    ]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    load = subprocess.Popen(command + [url], stdout=subprocess.PIPE, text=True)
    spread: list[int] = []
    try:
        if server is not None:
            time.sleep(seconds / 2)
            spread = connections_per_worker(*server)
        out, _ = load.communicate(timeout=seconds + 60)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    if load.returncode != 0:
        raise RuntimeError(f"wrk exited with {load.returncode}")
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    raw = json.loads(line[5:])
    return {
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p95_ms": round(raw["p95_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "req_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "requests": raw["requests"],
        "errors": raw["errors"],
        "non_2xx": raw["non2xx"],
        "connections_per_worker": spread,
    }


DEFAULT_OUT = PROJECT_ROOT / "build" / "bench" / "web.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--trades", type=int, default=2_000)
    parser.add_argument("--disputes", type=int, default=100, help="trades shipped and disputed")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument(
        "--pages", help="comma-separated pages to measure (default: all); the baseline always"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--search-only",
        action="store_true",
        help="measure the search query on SQLite (and PostgreSQL) directly, without the stack",
    )
    parser.add_argument("--postgres-url", help="PostgreSQL server for --search-only")
    parser.add_argument("--runs", type=int, default=300, help="runs per query (--search-only)")
    args = parser.parse_args(argv)
    if args.search_only:
        return search_only(args)
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="bench-web.") as tmp:
        data = Path(tmp)
        script = data / "report.lua"
        script.write_text(LUA)
        with LocalStack(
            data / "stack", workers=args.workers, threads=args.threads, quiet=True, seed=False
        ) as stack:
            started = time.monotonic()
            listing_ids = fill_listings(stack, args.listings)
            filled = time.monotonic() - started
            started = time.monotonic()
            make_trades(stack, args.trades, listing_ids)
            disputed = make_disputes(stack, min(args.disputes, args.trades))
            traded = time.monotonic() - started
            assert stack.chain is not None and stack.deployment is not None
            buyer = stack.chain.accounts[5].lower()
            cookie = sign_in(stack, buyer)
            arbitrator = stack.deployment.arbitrators[-1].lower()
            arbitrator_cookie = sign_in(stack, arbitrator)
            seller = stack.chain.accounts[1].lower()
            engine = make_engine(stack.database_url)
            with session_scope(engine) as session:
                trade_pk = session.scalar(
                    select(Trade.id).where(Trade.buyer == buyer).order_by(Trade.id.desc()).limit(1)
                )
                trades = session.scalar(select(Trade.id).order_by(Trade.id.desc()).limit(1))
            engine.dispose()
            assert trade_pk is not None, "no trade of the buyer was indexed"
            pages = {
                "baseline": (stack.url + "/livez", None),
                "index": (stack.url + "/", None),
                "search": (stack.url + "/?q=bike&category=bikes&sort=price_asc", None),
                "search_cyrillic": (
                    stack.url + "/?" + urlencode({"q": SEARCH_QUERIES["cyrillic"]}),
                    None,
                ),
                "search_latin": (
                    stack.url + "/?" + urlencode({"q": SEARCH_QUERIES["latin"]}),
                    None,
                ),
                "listing": (stack.url + f"/listings/{listing_ids[len(listing_ids) // 2]}", None),
                "trade": (stack.url + f"/trades/{trade_pk}", cookie),
                "profile": (stack.url + f"/u/{seller}", None),
                "arbitration": (stack.url + "/arbitration", arbitrator_cookie),
            }
            if args.pages:
                wanted = {"baseline", *args.pages.split(",")}
                pages = {name: page for name, page in pages.items() if name in wanted}
            results: dict[str, Any] = {}
            for name, (url, page_cookie) in pages.items():
                check = requests.get(
                    url,
                    headers={"Cookie": page_cookie} if page_cookie else {},
                    timeout=10,
                    allow_redirects=False,
                )
                if check.status_code != 200:
                    raise RuntimeError(f"{name} page answered {check.status_code} at {url}")
                results[name] = run_wrk(
                    url,
                    args.seconds,
                    page_cookie,
                    threads=2,
                    connections=args.connections,
                    script=script,
                    server=(stack.web.pid, stack.web_port) if stack.web else None,
                )
                # The machine's 1-minute load average as the page's run ended: other work on
                # a shared machine lowers a page's figures, the baseline's too.
                results[name]["load_1min"] = round(os.getloadavg()[0], 2)
    baseline = results.pop("baseline")
    for r in results.values():
        r["ratio_to_baseline"] = round(r["req_per_s"] / baseline["req_per_s"], 3)
    report = {
        "baseline": {"path": "/livez", **baseline},
        "pages": results,
        "disputes": disputed,
        "listings": args.listings,
        "trades": args.trades,
        "trades_in_db": trades,
        "seconds_per_page": args.seconds,
        "server": f"gunicorn, {args.workers} workers x {args.threads} threads, SQLite, loopback",
        "load": f"wrk, 2 threads, {args.connections} connections",
        "setup_seconds": {"listings": round(filled, 1), "trades": round(traded, 1)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{'page':16} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8} {'ratio':>6} "
        f"{'errors':>7} {'load':>6} connections per worker"
    )
    for name, r in {"baseline": baseline, **results}.items():
        print(
            f"{name:16} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} "
            f"{r['req_per_s']:>8} {r.get('ratio_to_baseline', 1.0):>6} "
            f"{r['errors'] + r['non_2xx']:>7} {r['load_1min']:>6} "
            f"{'/'.join(map(str, r['connections_per_worker']))}"
        )
    print(f"{args.listings:,} listings, {args.trades:,} trades; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
