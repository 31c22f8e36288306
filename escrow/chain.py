"""Connections to a chain: the embedded eth-tester chain or a JSON-RPC node such as anvil.

:class:`Chain` hides the few differences that matter to the rest of the package: how to wait
for a receipt quickly, how to move time, and how to take and restore snapshots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

import requests
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.exceptions import TransactionNotFound
from web3.types import TxReceipt, Wei

from escrow.errors import ChainUnavailable, TransactionStuck

#: How long to wait for a receipt before giving up (seconds).
RECEIPT_TIMEOUT = 120.0
#: How long a pending transaction may wait without its account's nonce moving before the wait
#: looks at why it is not mined (seconds). A local node mines at once; a public chain's queue
#: moves every block.
STALL_SECONDS = 10.0


@dataclass
class Chain:
    """A connected chain. ``is_tester`` is true for the embedded eth-tester chain."""

    w3: Web3
    is_tester: bool
    url: str | None = None
    _chain_id: int | None = field(default=None, repr=False)

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    @property
    def accounts(self) -> list[ChecksumAddress]:
        """Accounts the node signs for (eth-tester's and anvil's unlocked dev accounts)."""
        return list(self.w3.eth.accounts)

    def wait_for_receipt(
        self,
        tx_hash: HexBytes | bytes | str,
        timeout: float = RECEIPT_TIMEOUT,
        *,
        stall_seconds: float = STALL_SECONDS,
    ) -> TxReceipt:
        """Polls with a short, growing interval: a local node mines in milliseconds.

        A transaction that can never be mined as it stands ends the wait early with
        :class:`TransactionStuck` saying why, instead of a bare timeout: the node no longer
        knows it, another transaction took its nonce, a nonce before it was never sent (a gap
        from concurrent senders), or its fee cap is below the base fee. Looked at once the
        sender's nonce has not moved for ``stall_seconds``."""
        tx_hash = HexBytes(tx_hash)
        start = time.monotonic()
        deadline = start + timeout
        delay = 0.001
        watch = _StallWatch(start)
        while True:
            try:
                return self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                now = time.monotonic()
                if now > deadline:
                    raise ChainUnavailable(
                        f"no receipt for {tx_hash.to_0x_hex()} after {timeout:.0f} s"
                    ) from None
                if not self.is_tester and now - watch.checked >= min(1.0, stall_seconds):
                    self._diagnose_pending(tx_hash, watch, now, stall_seconds)
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _diagnose_pending(
        self, tx_hash: HexBytes, watch: _StallWatch, now: float, stall_seconds: float
    ) -> None:
        """Raises :class:`TransactionStuck` when ``tx_hash`` cannot be mined as it stands."""
        watch.checked = now
        shown = tx_hash.to_0x_hex()
        try:
            tx = self.w3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            tx = None
        if tx is None:
            # Mined between the two questions? Then the next receipt poll returns it.
            try:
                self.w3.eth.get_transaction_receipt(tx_hash)
                return
            except TransactionNotFound:
                pass
            watch.unknown += 1
            if watch.unknown >= 2:
                raise TransactionStuck(
                    f"transaction {shown} is unknown to the node: it was dropped from the "
                    "pool (or sent to another node) and will not be mined; send it again",
                    reason="dropped",
                    tx_hash=shown,
                )
            return
        watch.unknown = 0
        if tx.get("blockNumber") is not None:
            return  # mined: the receipt follows
        sender, nonce = tx["from"], int(tx["nonce"])
        latest = int(self.w3.eth.get_transaction_count(sender, "latest"))
        if nonce < latest:
            raise TransactionStuck(
                f"transaction {shown} has nonce {nonce}, but {sender} has already used it "
                f"(next nonce {latest}): another transaction replaced it, so it will never be "
                "mined",
                reason="replaced",
                tx_hash=shown,
            )
        if latest != watch.nonce:
            watch.nonce, watch.since = latest, now
            return
        if now - watch.since < stall_seconds:
            return
        stalled = f"{now - watch.since:.0f} s"
        pool = self._pool_nonces(sender)
        if pool is not None and latest in pool["queued"]:
            # The account's next transaction is in the pool but held as not ready.
            behind = "" if nonce == latest else f", and {shown} waits behind it"
            raise TransactionStuck(
                f"{sender}'s next transaction (nonce {latest}) has waited {stalled} among the "
                "node's not-ready (queued) transactions though no earlier nonce is missing, so "
                f"the node will not mine it as it stands{behind}. anvil can leave a "
                "transaction there when one account's transactions reach it out of order at "
                "the same moment; send each account's transactions in nonce order",
                reason="not_promoted",
                tx_hash=shown,
            )
        if nonce > latest and (pool is None or latest not in pool["pending"]):
            raise TransactionStuck(
                f"transaction {shown} has nonce {nonce}, but {sender}'s next nonce is {latest} "
                f"and has not moved for {stalled}: nonces {latest}..{nonce - 1} were never "
                "sent (a gap, as from two programs sending for one account at once), so it "
                "cannot be mined until they are",
                reason="nonce_gap",
                tx_hash=shown,
            )
        fee_cap = tx.get("maxFeePerGas", tx.get("gasPrice"))
        base_fee = self.w3.eth.get_block("latest").get("baseFeePerGas")
        if fee_cap is not None and base_fee is not None and int(fee_cap) < int(base_fee):
            raise TransactionStuck(
                f"transaction {shown} offers at most {int(fee_cap)} wei per gas, below the "
                f"chain's base fee of {int(base_fee)}: it waits until the base fee falls",
                reason="underpriced",
                tx_hash=shown,
            )

    def _pool_nonces(self, sender: str) -> dict[str, set[int]] | None:
        """``sender``'s nonces in the node's pool, ``pending`` (ready) and ``queued`` (not
        ready); None when the node has no ``txpool_content`` (it is not a standard method)."""
        try:
            content = self.rpc("txpool_content", [])
        except (ChainUnavailable, ValueError, OSError):
            return None
        out: dict[str, set[int]] = {"pending": set(), "queued": set()}
        for kind in out:
            for address, by_nonce in ((content or {}).get(kind) or {}).items():
                if str(address).lower() == sender.lower():
                    out[kind] |= {int(n) for n in (by_nonce or {})}
        return out

    @property
    def _testing(self) -> Any:
        """web3's eth-tester-only ``testing`` module (time travel, snapshots, mining)."""
        return self.w3.testing  # type: ignore[attr-defined]

    def latest_timestamp(self) -> int:
        """The latest block's time. On a node, one raw JSON-RPC call: web3's block formatting
        costs about three times the call itself, and pages ask for this on every view."""
        if self.is_tester:
            return int(self.w3.eth.get_block("latest")["timestamp"])
        block = self.rpc("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict) or "timestamp" not in block:
            raise ChainUnavailable(f"eth_getBlockByNumber gave no latest block: {block!r:.200}")
        value = block["timestamp"]
        return int(value, 16) if isinstance(value, str) else int(value)

    def increase_time(self, seconds: int) -> int:
        """Moves chain time forward and mines a block; returns the new block's timestamp."""
        if self.is_tester:
            target = self.latest_timestamp() + seconds
            self._testing.timeTravel(target)
            self._testing.mine()
        else:
            self.rpc("evm_increaseTime", [seconds])
            self.rpc("evm_mine", [])
        return self.latest_timestamp()

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            if self.is_tester:
                self._testing.mine()
            else:
                self.rpc("evm_mine", [])

    def snapshot(self) -> Any:
        if self.is_tester:
            return self._testing.snapshot()
        return self.rpc("evm_snapshot", [])

    def revert(self, snapshot_id: Any) -> None:
        """Restores a snapshot. On anvil a snapshot id can be used only once."""
        if self.is_tester:
            self._testing.revert(snapshot_id)
        else:
            self.rpc("evm_revert", [snapshot_id])

    def rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(cast(Any, method), params)
        if "error" in response:
            raise ChainUnavailable(f"{method} failed: {response['error']}")
        return response.get("result")

    def fund_account(self, address: str, wei: int) -> None:
        """Sets an account's ETH balance on a dev chain (anvil) or sends it from a dev account."""
        if self.is_tester:
            tx = self.w3.eth.send_transaction(
                {
                    "from": self.accounts[0],
                    "to": Web3.to_checksum_address(address),
                    "value": Wei(wei),
                }
            )
            self.wait_for_receipt(tx)
        else:
            self.rpc("anvil_setBalance", [address, hex(wei)])


@dataclass
class _StallWatch:
    """What ``wait_for_receipt`` saw of a pending transaction's sender so far."""

    checked: float
    nonce: int | None = None
    since: float = 0.0
    unknown: int = 0


def connect(rpc_url: str | None = None, *, timeout: float = 30.0) -> Chain:
    """The embedded eth-tester chain when ``rpc_url`` is None, else the node at ``rpc_url``."""
    if rpc_url is None:
        return Chain(w3=Web3(EthereumTesterProvider()), is_tester=True)
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    provider = HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}, session=session)
    w3 = Web3(provider)
    try:
        w3.eth.chain_id  # noqa: B018 - probe the node once so a dead URL fails here
    except (requests.RequestException, OSError) as exc:
        raise ChainUnavailable(
            f"cannot reach the chain node at {rpc_url} ({exc.__class__.__name__}); "
            "start one with `escrow chain` or `make chain`"
        ) from exc
    return Chain(w3=w3, is_tester=False, url=rpc_url)
