"""Load benchmark: many simulated people trading through the web app at once.

Starts the LocalStack (what ``make run`` starts: anvil with saved state, the contracts, SQLite,
the indexer process and gunicorn) in a temporary folder and runs ``--users`` simulated users
for ``--seconds``. Each user is a thread driving two fresh accounts (a seller and a buyer,
funded with ``anvil_setBalance``; keys held locally, so every sign-in message and transaction
is signed here with eth-account, as a browser wallet would). Each user loops:

    sign in · the seller lists an item · the buyer browses the index, a search and the listing
    · buys it (POST /listings/<id>/buy, signs and sends the returned transaction, waits until
    /api/tx/<hash> says mined and indexed) · the seller ships · the buyer confirms receipt, or
    one time in ten opens a dispute instead.

Every user talks to the server from its own loopback address (127.0.0.x), as different people
would. Afterwards the database is compared with the chain: ``reconcile`` must find no
difference and the set of (tx hash, log index) of the escrow's logs from ``eth_getLogs`` must
equal the stored events. Prints and writes build/bench/load.json.

An error is any response other than 2xx/3xx (no request here is deliberately bad), any
transaction that fails, and any time-out. A GET whose reused keep-alive connection the server
had just closed is sent once more on a new connection, as browsers do; those are counted
(``keepalive_retries``), not hidden.

With ``--scaled`` it runs against the production shape instead (scripts/run_scaled.py:
PostgreSQL, Redis, two indexers and two keepers on the leader lock, ``--instances`` gunicorns
behind nginx). One trade in three is then paid in the test dollar (tUSD, minted to each buyer
first, paid with an EIP-2612 permit signed here), and during the run one web instance and then
the active indexer are killed (SIGKILL) and started again. The report adds the failover
figures: seconds until the standby indexer was active, the requests that failed while the web
instance was down, and the processes that were active at the end.

    python scripts/bench_load.py [--users 50] [--seconds 60] [--workers 2]
    python scripts/bench_load.py --scaled [--users 50] [--seconds 60] [--instances 2]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.signers.local import LocalAccount
from requests.adapters import HTTPAdapter
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from web3 import Web3
from web3.types import RPCEndpoint

from escrow.db.engine import make_engine
from escrow.db.models import Trade, TradeEvent
from escrow.indexer.reconcile import reconcile
from escrow.settings import PROJECT_ROOT

GWEI = 10**9
CSRF_META = re.compile(r'name="csrf-token" content="([^"]+)"')
TRADE_LINK = re.compile(r'href="/trades/(\d+)"')
LISTING_PATH = re.compile(r"/listings/(\d+)$")
QUOTE_FIELD = re.compile(r'<input type="hidden" name="(amount|currency|version)" value="([^"]*)">')
WORDS = ["bike", "phone", "sofa", "jacket", "lamp", "camera", "guitar", "watch", "kettle"]


class BenchError(Exception):
    """A failed request, a failed transaction or a time-out."""


# ---------------------------------------------------------------------------- measurements


@dataclass
class Stats:
    """Shared by all users; every method is thread-safe."""

    page_ms: list[float] = field(default_factory=list)
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    trades_completed: int = 0
    token_trades_completed: int = 0
    disputes: int = 0
    keepalive_retries: int = 0
    #: monotonic time of each error (to count those of a fault's window)
    error_times: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def page(self, ms: float) -> None:
        with self.lock:
            self.page_ms.append(ms)

    def request(self) -> None:
        with self.lock:
            self.requests += 1

    def keepalive_retry(self) -> None:
        with self.lock:
            self.keepalive_retries += 1

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)
            self.error_times.append(time.monotonic())

    def errors_between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(start <= t <= end for t in self.error_times)

    def completed(self, disputed: bool, token: bool = False) -> None:
        with self.lock:
            self.trades_completed += 1
            self.token_trades_completed += token
            self.disputes += disputed

    def p95_ms(self) -> float:
        with self.lock:
            values = sorted(self.page_ms)
        if not values:
            return 0.0
        return round(values[min(len(values) - 1, int(0.95 * len(values)))], 1)


# ---------------------------------------------------------------------------- one person


def _reset_on_reuse(exc: requests.ConnectionError) -> bool:
    """A connection reset or closed before any byte of the answer came back."""
    text = str(exc)
    return "Connection aborted" in text and (
        "ConnectionResetError" in text or "RemoteDisconnected" in text
    )


class SourceAddressAdapter(HTTPAdapter):
    """Connects from a chosen loopback address (each user looks like another client)."""

    def __init__(self, source_ip: str, **kwargs: Any) -> None:
        self.source_ip = source_ip
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source_ip, 0)
        super().init_poolmanager(*args, **kwargs)


class WebUser:
    """One person with a wallet: an HTTP session on the market and a key that signs locally."""

    def __init__(
        self,
        base_url: str,
        rpc_url: str,
        account: LocalAccount,
        *,
        source_ip: str | None = None,
        stats: Stats | None = None,
        timeout: float = 30.0,
        tx_timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.rpc_url = rpc_url
        self.account = account
        self.address = account.address.lower()
        self.stats = stats or Stats()
        self.timeout = timeout
        self.tx_timeout = tx_timeout
        self.http = requests.Session()
        # The market answers in the browser's language (Russian by default); the messages this
        # client and its tests read are the English ones.
        self.http.headers["Accept-Language"] = "en"
        self.rpc_http = requests.Session()
        if source_ip:
            self.http.mount("http://", SourceAddressAdapter(source_ip))
        self.csrf_token: str | None = None
        #: Trades this person has already seen in their list (to tell the new one apart).
        self.known_trades: set[int] = set()
        self._nonce: int | None = None
        self._fees: tuple[int, int] | None = None

    # -- HTTP

    def request(
        self, method: str, path: str, *, page: bool = False, expect_ok: bool = True, **kwargs: Any
    ) -> requests.Response:
        """One request; with ``expect_ok`` anything but 2xx/3xx raises :class:`BenchError`."""
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("allow_redirects", False)
        if method != "GET" and self.csrf_token:
            kwargs.setdefault("headers", {})["X-CSRFToken"] = self.csrf_token
        started = time.perf_counter()
        try:
            try:
                response = self.http.request(method, self.base_url + path, **kwargs)
            except requests.ConnectionError as exc:
                # The server closed an idle keep-alive connection just as this request went out
                # on it. Browsers send an idempotent request again on a new connection; so do
                # we, once, and count it. Anything else (and any POST) is an error.
                if method != "GET" or not _reset_on_reuse(exc):
                    raise
                self.stats.keepalive_retry()
                response = self.http.request(method, self.base_url + path, **kwargs)
        except requests.RequestException as exc:
            raise BenchError(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
        finally:
            self.stats.request()
        if page:
            self.stats.page((time.perf_counter() - started) * 1000)
        if expect_ok and response.status_code >= 400:
            raise BenchError(f"{method} {path}: {response.status_code} {response.text[:200]!r}")
        return response

    def page(self, path: str, **params: Any) -> requests.Response:
        """An HTML page a person would open; remembers its CSRF token."""
        response = self.request("GET", path, page=True, params=params or None)
        found = CSRF_META.search(response.text)
        if found:
            self.csrf_token = found.group(1)
        return response

    def post_json(
        self, path: str, data: dict[str, Any] | None = None, expect_ok: bool = True
    ) -> requests.Response:
        return self.request(
            "POST",
            path,
            json=data or {},
            expect_ok=expect_ok,
            headers={"Accept": "application/json"},
        )

    # -- sign-in

    def sign_in(self) -> None:
        self.page("/auth/signin")
        reply = self.request("GET", "/auth/message", params={"address": self.account.address})
        message = reply.json()["message"]
        signature = self.account.sign_message(encode_defunct(text=message)).signature
        self.post_json(
            "/auth/verify", {"message": message, "signature": "0x" + bytes(signature).hex()}
        )
        self.page("/")  # the session was renewed: a new CSRF token

    # -- market actions

    def create_listing(
        self, title: str, price: str, quantity: int = 1, currency: str = "ETH"
    ) -> int:
        self.page("/listings/new")
        form = {
            "csrf_token": self.csrf_token or "",
            "title": title,
            "description": "Good condition; hand-over or post.",
            "price": price,
            "currency": currency,
            "quantity": str(quantity),
            "category": "other",
            "city": "Almaty",
        }
        reply = self.request("POST", "/listings/new", data=form)
        found = LISTING_PATH.search(reply.headers.get("Location", ""))
        if reply.status_code not in (302, 303) or not found:
            raise BenchError(f"creating a listing answered {reply.status_code}")
        return int(found.group(1))

    def quote(self, listing_id: int) -> dict[str, str]:
        """The quote (amount, currency, listing version) the listing page's Buy form sends."""
        fields = dict(QUOTE_FIELD.findall(self.page(f"/listings/{listing_id}").text))
        return fields if set(fields) == {"amount", "currency", "version"} else {}

    def buy(self, listing_id: int, quote: dict[str, str] | None = None) -> requests.Response:
        """POST /listings/<id>/buy with the quote the page showed (``quote``: read earlier);
        returns the response (409 when someone else holds it or the price changed)."""
        body = {"quote": quote if quote is not None else self.quote(listing_id)}
        return self.post_json(f"/listings/{listing_id}/buy", body, expect_ok=False)

    def act(self, trade_pk: int, action: str, body: dict[str, Any] | None = None) -> str:
        """Prepares a trade action, signs and sends it, waits until it is mined and indexed."""
        reply = self.post_json(f"/trades/{trade_pk}/actions/{action}", body)
        payload = reply.json()
        tx_hash = self.send(payload["tx"])
        if payload.get("after_send"):
            self.post_json(payload["after_send"], {"tx_hash": tx_hash})
        self.wait_indexed(tx_hash)
        return tx_hash

    def trade_pks(self, role: str, status: str) -> list[int]:
        reply = self.page("/trades", role=role, status=status)
        return [int(pk) for pk in TRADE_LINK.findall(reply.text)]

    # -- the wallet

    def rpc(self, method: str, params: list[Any]) -> Any:
        try:
            reply = self.rpc_http.post(
                self.rpc_url,
                json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                timeout=self.timeout,
            ).json()
        except requests.RequestException as exc:
            raise BenchError(f"{method}: {exc.__class__.__name__}") from exc
        if "error" in reply:
            raise BenchError(f"{method}: {reply['error']}")
        return reply["result"]

    def send(self, tx: dict[str, Any]) -> str:
        """Signs the app's unsigned transaction with the local key and sends it."""
        if self._nonce is None:
            self._nonce = int(self.rpc("eth_getTransactionCount", [self.address, "pending"]), 16)
        if self._fees is None:
            price = int(self.rpc("eth_gasPrice", []), 16)
            self._fees = (max(4 * price, 2 * GWEI), min(GWEI, max(4 * price, 2 * GWEI)))
        if tx["from"].lower() != self.address:
            raise BenchError(f"the app prepared a transaction from {tx['from']}")
        fields = {
            "to": Web3.to_checksum_address(tx["to"]),
            "data": tx["data"],
            "value": int(tx["value"], 16),
            "gas": int(tx["gas"], 16),
            "chainId": int(tx["chainId"], 16),
            "nonce": self._nonce,
            "maxFeePerGas": self._fees[0],
            "maxPriorityFeePerGas": self._fees[1],
        }
        signed = self.account.sign_transaction(fields)
        try:
            tx_hash = str(
                self.rpc("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
            )
        except BenchError:
            self._nonce = None  # ask the node again next time
            raise
        self._nonce += 1
        return tx_hash

    def wait_indexed(self, tx_hash: str) -> None:
        """Polls /api/tx/<hash> as the wallet script does, until mined and indexed."""
        deadline = time.monotonic() + self.tx_timeout
        delay = 0.05
        while time.monotonic() < deadline:
            state = self.request("GET", f"/api/tx/{tx_hash}").json()
            if state["status"] == "failed":
                raise BenchError(f"transaction {tx_hash} failed: {state.get('error')}")
            if state["status"] == "mined" and state.get("indexed"):
                return
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        raise BenchError(f"transaction {tx_hash} not mined and indexed in {self.tx_timeout} s")


def fresh_account(rpc_url: str, ether: int = 1000) -> LocalAccount:
    """A new key with ``ether`` ETH set by the dev node (anvil_setBalance)."""
    account: LocalAccount = Account.create()
    reply = requests.post(
        rpc_url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "anvil_setBalance",
            "params": [account.address, hex(ether * 10**18)],
        },
        timeout=30,
    ).json()
    if "error" in reply:
        raise BenchError(f"anvil_setBalance: {reply['error']}")
    return account


@dataclass(frozen=True)
class Dollar:
    """The test dollar (tUSD): its address and the owner that may mint it (unlocked on anvil)."""

    address: str
    owner: str
    #: One minting transaction at a time: they all come from the owner's account.
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)

    def mint(self, rpc_url: str, to: str, units: int, timeout: float = 60.0) -> None:
        from eth_abi import encode
        from eth_utils import function_signature_to_4byte_selector

        data = function_signature_to_4byte_selector("mint(address,uint256)") + encode(
            ["address", "uint256"], [Web3.to_checksum_address(to), units]
        )
        with self.lock:
            reply = requests.post(
                rpc_url,
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "eth_sendTransaction",
                    "params": [{"from": self.owner, "to": self.address, "data": "0x" + data.hex()}],
                },
                timeout=30,
            ).json()
            if "error" in reply:
                raise BenchError(f"minting tUSD: {reply['error']}")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                receipt = requests.post(
                    rpc_url,
                    json={
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "eth_getTransactionReceipt",
                        "params": [reply["result"]],
                    },
                    timeout=30,
                ).json()
                if receipt.get("result"):
                    if int(receipt["result"]["status"], 16) != 1:
                        raise BenchError("minting tUSD failed")
                    return
                time.sleep(0.02)
            raise BenchError("minting tUSD timed out")


def dev_account(index: int) -> LocalAccount:
    """Anvil's dev account ``index`` (public test keys) as a local signer."""
    from escrow.anvil import DEV_MNEMONIC

    Account.enable_unaudited_hdwallet_features()
    account: LocalAccount = Account.from_mnemonic(
        DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}"
    )
    return account


# ---------------------------------------------------------------------------- database vs chain


@dataclass
class Comparison:
    reconcile_ok: bool
    reconcile_checked: int
    chain_events: int
    db_events: int
    missing: list[tuple[str, int]]
    extra: list[tuple[str, int]]
    duplicates: int
    funded_on_chain: int
    trades_in_db: int
    differences: list[str]

    @property
    def equal(self) -> bool:
        return (
            self.reconcile_ok
            and not self.missing
            and not self.extra
            and not self.duplicates
            and self.funded_on_chain == self.trades_in_db
        )


def chain_log_keys(
    w3: Web3, address: str, from_block: int, to_block: int
) -> tuple[set[tuple[str, int]], int]:
    """(tx hash, log index) of every log of ``address``, and how many were TradeFunded."""
    from eth_utils import event_abi_to_log_topic

    from escrow.compiler import load_artifact

    funded_abi = next(
        e
        for e in load_artifact("P2PEscrow").abi
        if e.get("type") == "event" and e.get("name") == "TradeFunded"
    )
    funded_topic = "0x" + event_abi_to_log_topic(funded_abi).hex()  # type: ignore[arg-type]
    keys: set[tuple[str, int]] = set()
    funded = 0
    step = 5_000
    for start in range(from_block, to_block + 1, step):
        reply = w3.provider.make_request(
            RPCEndpoint("eth_getLogs"),
            [
                {
                    "address": address,
                    "fromBlock": hex(start),
                    "toBlock": hex(min(to_block, start + step - 1)),
                }
            ],
        )
        if "error" in reply:
            raise BenchError(f"eth_getLogs: {reply['error']}")
        for entry in reply["result"]:
            keys.add((entry["transactionHash"].lower(), int(entry["logIndex"], 16)))
            funded += entry["topics"][0].lower() == funded_topic
    return keys, funded


def compare_db_with_chain(w3: Web3, engine: Engine, address: str, from_block: int) -> Comparison:
    """reconcile() plus the event sets: every log of the escrow stored exactly once."""
    address = address.lower()
    report = reconcile(w3, engine, address)
    head = int(w3.eth.block_number)
    chain_keys, funded = chain_log_keys(w3, address, from_block, head)
    with Session(engine) as session:
        rows = session.execute(
            select(TradeEvent.tx_hash, TradeEvent.log_index).where(
                TradeEvent.contract_address == address
            )
        ).all()
        trades = len(
            session.scalars(select(Trade.id).where(Trade.contract_address == address)).all()
        )
    stored = [(str(tx).lower(), int(index)) for tx, index in rows]
    stored_set = set(stored)
    return Comparison(
        reconcile_ok=report.ok,
        reconcile_checked=report.checked,
        chain_events=len(chain_keys),
        db_events=len(stored),
        missing=sorted(chain_keys - stored_set),
        extra=sorted(stored_set - chain_keys),
        duplicates=len(stored) - len(stored_set),
        funded_on_chain=funded,
        trades_in_db=trades,
        differences=[str(d) for d in report.differences],
    )


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


# ---------------------------------------------------------------------------- the load


def price_for(rng: random.Random) -> str:
    return f"0.{rng.randint(1, 999):03d}"


def dollars_for(rng: random.Random) -> str:
    return f"{rng.randint(1, 200)}.{rng.randint(0, 99):02d}"


def pay_with_permit(
    buyer: WebUser, listing_id: int, quote: dict[str, str], first: requests.Response
) -> requests.Response:
    """The dollar checkout's second step: sign the EIP-2612 permit the app asked for, as a
    wallet would, and ask again with it (the answer has the fundWithPermit transaction)."""
    body = first.json()
    if "permit" not in body:
        raise BenchError(f"a dollar checkout answered without a permit: {sorted(body)}")
    signed = buyer.account.sign_message(encode_typed_data(full_message=body["permit"]))
    permit = {
        "signature": "0x" + bytes(signed.signature).hex(),
        "deadline": body["permit_deadline"],
    }
    return buyer.post_json(
        f"/listings/{listing_id}/buy",
        {"quote": quote, "hold": body["hold"], "permit": permit},
        expect_ok=False,
    )


def one_trade(
    seller: WebUser, buyer: WebUser, rng: random.Random, stats: Stats, token: bool = False
) -> None:
    """List, browse, buy, ship, confirm (or dispute): one trade from start to finish, paid in
    ETH or (``token``) in the test dollar through a permit."""
    word = rng.choice(WORDS)
    title = f"{word.title()} by {seller.address[:8]}"
    if token:
        listing_id = seller.create_listing(title, dollars_for(rng), currency="USD")
    else:
        listing_id = seller.create_listing(title, price_for(rng))
    buyer.page("/")
    buyer.page("/", q=word)
    quote = buyer.quote(listing_id)
    reply = buyer.buy(listing_id, quote)
    if token and reply.status_code == 200:
        reply = pay_with_permit(buyer, listing_id, quote, reply)
    if reply.status_code != 200:
        raise BenchError(f"buy answered {reply.status_code} {reply.text[:200]!r}")
    tx_hash = buyer.send(reply.json()["tx"])
    buyer.post_json(reply.json()["paid_url"], {"tx_hash": tx_hash})
    buyer.wait_indexed(tx_hash)
    fresh = [pk for pk in buyer.trade_pks("buyer", "funded") if pk not in buyer.known_trades]
    new = fresh
    if len(new) > 1:
        # A trade of an earlier loop that failed half-way (already counted as an error) is
        # still funded: this loop's trade is the one whose page links to this listing.
        new = [
            pk for pk in new if f'href="/listings/{listing_id}"' in buyer.page(f"/trades/{pk}").text
        ]
    if len(new) != 1:
        raise BenchError(f"the buyer expected one new funded trade, the list shows {new}")
    trade_pk = new[0]
    buyer.known_trades.update(fresh)
    seller.page(f"/trades/{trade_pk}")
    seller.act(trade_pk, "ship", {"tracking": f"KZ{rng.randint(10**8, 10**9)}"})
    buyer.page(f"/trades/{trade_pk}")
    disputed = rng.random() < 0.1
    if disputed:
        buyer.act(trade_pk, "dispute", {"statement": "The item does not match the photos."})
    else:
        buyer.act(trade_pk, "confirm")
    buyer.page(f"/trades/{trade_pk}")
    stats.completed(disputed, token)


def run_user(
    index: int,
    base_url: str,
    rpc_url: str,
    stop_at: float,
    stats: Stats,
    seed: int,
    dollar: Dollar | None = None,
    token_every: int = 3,
) -> None:
    rng = random.Random(seed * 1_000 + index)
    # 127.0.0.0/8 is loopback: each user gets its own pair of client addresses.
    seller = WebUser(
        base_url,
        rpc_url,
        fresh_account(rpc_url),
        source_ip=f"127.0.{1 + index // 120}.{2 + 2 * (index % 120)}",
        stats=stats,
    )
    buyer = WebUser(
        base_url,
        rpc_url,
        fresh_account(rpc_url),
        source_ip=f"127.0.{1 + index // 120}.{3 + 2 * (index % 120)}",
        stats=stats,
    )
    if dollar is not None:
        try:
            dollar.mint(rpc_url, buyer.address, 10**6 * 10**6)  # a million tUSD
        except BenchError as exc:
            stats.error(f"user {index}: {exc}")
            dollar = None
    time.sleep(rng.random())  # people do not all arrive in the same millisecond
    rounds = 0
    while time.monotonic() < stop_at:
        # Every third trade of a user (from a different first one per user) is in dollars.
        token = dollar is not None and (rounds + index) % token_every == 0
        rounds += 1
        try:
            seller.sign_in()
            buyer.sign_in()
            one_trade(seller, buyer, rng, stats, token)
        except BenchError as exc:
            stats.error(f"user {index}: {exc}")
            time.sleep(1.0)
        except Exception as exc:  # anything else is still an error of the run, not a crash
            stats.error(f"user {index}: {exc.__class__.__name__}: {exc}")
            time.sleep(1.0)


def run_load(
    base_url: str,
    rpc_url: str,
    users: int,
    seconds: float,
    seed: int = 1,
    dollar: Dollar | None = None,
    during: Any = None,
) -> Stats:
    """``users`` threads for ``seconds``; ``during(stats, started)``, if given, runs in this
    (the calling) thread meanwhile: the faults of the scaled run."""
    stats = Stats()
    started = time.monotonic()
    stop_at = started + seconds
    threads = [
        threading.Thread(
            target=run_user,
            name=f"user-{i}",
            daemon=True,
            args=(i, base_url, rpc_url, stop_at, stats, seed, dollar),
        )
        for i in range(users)
    ]
    for thread in threads:
        thread.start()
    if during is not None:
        try:
            during(stats, started)
        except Exception as exc:  # a fault that did not go as planned fails the run
            stats.error(f"faults: {exc.__class__.__name__}: {exc}")
    for thread in threads:
        # A loop that started before the end finishes its trade (bounded by the time-outs).
        thread.join(timeout=seconds + 300)
        if thread.is_alive():
            stats.error(f"{thread.name} did not finish")
    return stats


def summarise(values: Iterable[str], limit: int = 10) -> dict[str, int]:
    counts: dict[str, int] = {}
    for text in values:
        key = re.sub(r"0x[0-9a-f]{8,}", "0x…", text.split(": ", 1)[-1])
        key = re.sub(r"/(trades|listings)/\d+", r"/\1/<id>", key)[:160]
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:limit])


def build_report(
    args: argparse.Namespace,
    stats: Stats,
    elapsed: float,
    comparison: Comparison,
    server: str,
) -> dict[str, Any]:
    return {
        "users": args.users,
        "seconds": args.seconds,
        "elapsed_seconds": round(elapsed, 1),
        "trades_completed": stats.trades_completed,
        "token_trades_completed": stats.token_trades_completed,
        "disputes": stats.disputes,
        "errors": len(stats.errors),
        "error_kinds": summarise(stats.errors),
        "requests": stats.requests,
        "keepalive_retries": stats.keepalive_retries,
        "page_requests": len(stats.page_ms),
        "p95_ms": stats.p95_ms(),
        "db_equals_chain": comparison.equal,
        "check": {
            "reconcile_ok": comparison.reconcile_ok,
            "trades_checked": comparison.reconcile_checked,
            "chain_events": comparison.chain_events,
            "db_events": comparison.db_events,
            "missing": len(comparison.missing),
            "extra": len(comparison.extra),
            "duplicates": comparison.duplicates,
            "funded_on_chain": comparison.funded_on_chain,
            "trades_in_db": comparison.trades_in_db,
            "differences": comparison.differences[:10],
        },
        "server": server,
    }


def write_report(args: argparse.Namespace, report: dict[str, Any], stats: Stats) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    keys = ("trades_completed", "token_trades_completed", "errors", "p95_ms", "db_equals_chain")
    print(json.dumps({k: report[k] for k in keys}))
    if "failover" in report:
        print("failover:", json.dumps(report["failover"]))
    if stats.errors:
        print("errors:", json.dumps(report["error_kinds"], indent=2))
    print(
        f"{stats.requests} requests ({stats.keepalive_retries} GETs sent again after a "
        f"keep-alive reset), {len(stats.page_ms)} pages; written to {args.out}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (per instance)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--scaled",
        action="store_true",
        help="run against the production shape (scripts/run_scaled.py) with faults",
    )
    parser.add_argument(
        "--instances", type=int, default=2, help="web instances behind nginx (--scaled)"
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "build" / "bench" / "load.json")
    args = parser.parse_args(argv)
    if args.scaled:
        return run_scaled_bench(args)
    return run_local(args)


def run_local(args: argparse.Namespace) -> int:
    from webapp.stack import LocalStack

    with (
        tempfile.TemporaryDirectory(prefix="bench-load.") as tmp,
        LocalStack(
            Path(tmp) / "stack", workers=args.workers, threads=args.threads, quiet=True
        ) as stack,
    ):
        assert stack.chain is not None and stack.deployment is not None
        print(
            f"{args.users} users for {args.seconds:g} s against {stack.url} "
            f"(gunicorn {args.workers}x{args.threads}, SQLite, anvil, indexer process)",
            flush=True,
        )
        started = time.monotonic()
        stats = run_load(stack.url, stack.node.url, args.users, args.seconds, args.seed)
        elapsed = time.monotonic() - started
        stack.wait_indexed(timeout=120)
        engine = make_engine(stack.database_url)
        try:
            comparison = compare_db_with_chain(
                stack.chain.w3,
                engine,
                stack.deployment.escrow.address,
                stack.deployment.escrow.block_number,
            )
        finally:
            engine.dispose()
        indexer_alive = stack.indexer is not None and stack.indexer.poll() is None
    report = build_report(
        args,
        stats,
        elapsed,
        comparison,
        f"gunicorn {args.workers} workers x {args.threads} threads, SQLite, loopback",
    )
    report["indexer_alive"] = indexer_alive
    write_report(args, report, stats)
    return 0 if not stats.errors and comparison.equal else 1


# ---------------------------------------------------------------------------- the scaled shape


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
        return True
    except requests.RequestException:
        return False


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def scaled_faults(stack: Any, seconds: float, figures: dict[str, Any]) -> Any:
    """The faults of a scaled run, as ``run_load``'s ``during``: SIGKILL one web instance at a
    quarter of the run and start it again five seconds later; SIGKILL the active indexer at
    half of the run, time the standby's takeover, start the killed one again (it stands by).
    Runs in the main thread: the restarted processes die with the thread that started them."""

    def during(stats: Stats, started: float) -> None:
        _sleep_until(started + seconds * 0.25)
        web = stack.roles["web-1"]
        requests_before = stats.requests
        killed = time.monotonic()
        web.kill()
        time.sleep(min(5.0, seconds / 4))
        web.start()
        web.restarts += 1
        while not _answers(stack.instance_url(0) + "/healthz"):
            if time.monotonic() - killed > 60:
                raise BenchError("the restarted web instance did not answer in 60 s")
            time.sleep(0.05)
        back = time.monotonic()
        figures["web_instance_down_seconds"] = round(back - killed, 2)
        figures["requests_while_web_instance_down"] = stats.requests - requests_before
        # Errors of requests that started before the instance was back (a request takes at
        # most the client's time-out, but they show up well within a second).
        figures["requests_lost_while_web_instance_down"] = stats.errors_between(killed, back + 1)

        _sleep_until(started + seconds * 0.5)
        active = stack.active("indexer")
        if len(active) != 1:
            raise BenchError(f"expected one active indexer before the kill, found {active}")
        victim = stack.roles[active[0]]
        killed = time.monotonic()
        victim.kill()
        deadline = killed + 60
        while True:
            now_active = [name for name in stack.active("indexer") if name != victim.name]
            if now_active:
                break
            if time.monotonic() > deadline:
                raise BenchError("no standby indexer took over within 60 s")
            time.sleep(0.02)
        figures["indexer_killed"] = victim.name
        figures["indexer_took_over"] = now_active[0]
        figures["indexer_takeover_seconds"] = round(time.monotonic() - killed, 2)
        victim.start()
        victim.restarts += 1

    return during


def shared_rate_limit(stack: Any) -> dict[str, Any]:
    """Asks each web instance in turn (directly, not through nginx) for sign-in messages from
    one new client address until one refuses with 429: with one count for all instances that
    is right after the limit; with a count per instance it would take the limit times the
    number of instances."""
    http = requests.Session()
    http.mount("http://", SourceAddressAdapter("127.0.250.250"))
    limit = None
    for n in range(1, 200):
        base = stack.instance_url(n % len(stack.web_ports))
        reply = http.get(base + "/auth/message", params={"address": "0x" + "ab" * 20}, timeout=30)
        limit = limit or reply.headers.get("X-RateLimit-Limit")
        if reply.status_code == 429:
            return {"limit": int(limit or 0), "refused_at_request": n}
    return {"limit": int(limit or 0), "refused_at_request": None}


def wait_indexed_db(w3: Web3, database_url: str, addresses: list[str], timeout: float) -> None:
    from escrow.db.engine import session_scope
    from escrow.indexer.scanner import indexed_through

    target = int(w3.eth.block_number)
    engine = make_engine(database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with session_scope(engine) as session:
                last = indexed_through(session, int(w3.eth.chain_id), addresses)
            if last is not None and last >= target:
                return
            time.sleep(0.1)
    finally:
        engine.dispose()
    raise TimeoutError(f"the indexer did not reach block {target}")


def run_scaled_bench(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(PROJECT_ROOT / "scripts"))
    from run_scaled import ScaledStack

    figures: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-scaled.") as tmp,
        ScaledStack(
            Path(tmp),
            instances=args.instances,
            workers=args.workers,
            threads=args.threads,
            quiet=True,
        ) as stack,
    ):
        assert stack.chain is not None and stack.deployment is not None and stack.node
        coin = stack.deployment.stablecoin
        if coin is None:
            raise BenchError("the deployment has no test dollar")
        dollar = Dollar(coin.address, stack.deployment.owner)
        print(
            f"{args.users} users for {args.seconds:g} s against {stack.url} (nginx, "
            f"{args.instances} x gunicorn {args.workers}x{args.threads}, PostgreSQL, Redis, "
            "anvil, 2 indexers, 2 keepers); killing web-1 at 25 %, the active indexer at 50 %",
            flush=True,
        )
        started = time.monotonic()
        stats = run_load(
            stack.url,
            stack.node.url,
            args.users,
            args.seconds,
            args.seed,
            dollar=dollar,
            during=scaled_faults(stack, args.seconds, figures),
        )
        elapsed = time.monotonic() - started
        addresses = [r.address.lower() for r in stack.deployment.escrows]
        wait_indexed_db(stack.chain.w3, stack.database_url, addresses, timeout=120)
        engine = make_engine(stack.database_url)
        try:
            comparison = compare_db_with_chain(
                stack.chain.w3,
                engine,
                stack.deployment.escrow.address,
                stack.deployment.escrow.block_number,
            )
        finally:
            engine.dispose()
        # The restarted indexer says whether it stands by (it should) once it has started.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            decided = len(stack.active("indexer")) + len(stack.standing_by("indexer"))
            if decided == 2:
                break
            time.sleep(0.2)
        import redis

        figures["rate_limit_keys_in_redis"] = len(
            redis.Redis.from_url(stack.redis_url).keys("LIMITS:*")
        )
        figures["shared_rate_limit"] = shared_rate_limit(stack)
        figures["active_indexers_at_end"] = stack.active("indexer")
        figures["standby_indexers_at_end"] = stack.standing_by("indexer")
        figures["active_keepers_at_end"] = stack.active("keeper")
        figures["processes_down_at_end"] = stack.dead()
    report = build_report(
        args,
        stats,
        elapsed,
        comparison,
        f"nginx -> {args.instances} x gunicorn {args.workers} workers x {args.threads} "
        "threads; PostgreSQL; Redis rate limits; 2 indexers and 2 keepers on the leader lock; "
        "loopback",
    )
    report["failover"] = figures
    write_report(args, report, stats)
    one_each = (
        len(figures.get("active_indexers_at_end", [])) == 1
        and len(figures.get("standby_indexers_at_end", [])) == 1
        and len(figures.get("active_keepers_at_end", [])) == 1
        and not figures.get("processes_down_at_end")
    )
    ok = not stats.errors and comparison.equal and stats.token_trades_completed > 0 and one_each
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
