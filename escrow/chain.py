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

from escrow.errors import ChainUnavailable

#: How long to wait for a receipt before giving up (seconds).
RECEIPT_TIMEOUT = 120.0


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
        self, tx_hash: HexBytes | bytes | str, timeout: float = RECEIPT_TIMEOUT
    ) -> TxReceipt:
        """Polls with a short, growing interval: a local node mines in milliseconds."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                return self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                if time.monotonic() > deadline:
                    raise ChainUnavailable(
                        f"no receipt for {HexBytes(tx_hash).to_0x_hex()} after {timeout:.0f} s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    @property
    def _testing(self) -> Any:
        """web3's eth-tester-only ``testing`` module (time travel, snapshots, mining)."""
        return self.w3.testing  # type: ignore[attr-defined]

    def latest_timestamp(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

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
