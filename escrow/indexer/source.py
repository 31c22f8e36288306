"""What the indexer reads from a node: logs, block hashes, the genesis hash and contract code.

Against a JSON-RPC node the requests go out raw (``provider.make_request``), skipping web3's
result formatting, which costs more than the decoding itself on a large scan. The embedded
eth-tester chain only speaks through web3's formatted API, so it is adapted to the same shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eth_utils import keccak
from web3 import EthereumTesterProvider, Web3

from escrow.indexer.decoder import RawLog


class NodeError(Exception):
    """The node answered a request with an error."""


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if hasattr(value, "to_0x_hex"):
        return str(value.to_0x_hex())
    return str(value).lower()


class LogSource:
    """Read access to one node for one contract address."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self._tester = isinstance(w3.provider, EthereumTesterProvider)
        self._chain_id: int | None = None

    def _rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if response.get("error"):
            raise NodeError(f"{method}: {response['error']}")
        return response.get("result")

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def head(self) -> int:
        if self._tester:
            return int(self.w3.eth.block_number)
        return int(self._rpc("eth_blockNumber", []), 16)

    def block_hash(self, number: int) -> str | None:
        """Hash of block ``number`` on the node's current chain; None when it has no such block."""
        if self._tester:
            try:
                return _hex(self.w3.eth.get_block(number)["hash"])
            except Exception:  # BlockNotFound
                return None
        block = self._rpc("eth_getBlockByNumber", [hex(number), False])
        return None if block is None else str(block["hash"]).lower()

    def block_timestamps(self, numbers: Iterable[int]) -> dict[int, int]:
        result: dict[int, int] = {}
        for number in numbers:
            if self._tester:
                result[number] = int(self.w3.eth.get_block(number)["timestamp"])
            else:
                block = self._rpc("eth_getBlockByNumber", [hex(number), False])
                result[number] = int(block["timestamp"], 16)
        return result

    def genesis_hash(self) -> str:
        genesis = self.block_hash(0)
        if genesis is None:
            raise NodeError("the node has no genesis block")
        return genesis

    def code_hash(self, address: str) -> str:
        """keccak256 of the code at ``address`` (of empty bytes when there is none)."""
        if self._tester:
            code = bytes(self.w3.eth.get_code(Web3.to_checksum_address(address)))
        else:
            code = bytes.fromhex(self._rpc("eth_getCode", [address, "latest"])[2:])
        return "0x" + keccak(code).hex()

    def get_logs(
        self, address: str, from_block: int, to_block: int, topics: list[str | None] | None = None
    ) -> list[RawLog]:
        """Logs of ``address`` in ``[from_block, to_block]``, in chain order."""
        if self._tester:
            query: Any = {
                "address": Web3.to_checksum_address(address),
                "fromBlock": from_block,
                "toBlock": to_block,
            }
            if topics:
                query["topics"] = topics
            entries = self.w3.eth.get_logs(query)
            return [
                RawLog(
                    block_number=int(e["blockNumber"]),
                    block_hash=_hex(e["blockHash"]),
                    block_timestamp=None,
                    tx_hash=_hex(e["transactionHash"]),
                    log_index=int(e["logIndex"]),
                    topics=[_hex(t) for t in e["topics"]],
                    data=_hex(e["data"])[2:],
                )
                for e in entries
            ]
        params: dict[str, Any] = {
            "address": address,
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
        }
        if topics:
            params["topics"] = topics
        entries = self._rpc("eth_getLogs", [params])
        logs = []
        for e in entries:
            if e.get("removed"):
                continue
            stamp = e.get("blockTimestamp")
            logs.append(
                RawLog(
                    block_number=int(e["blockNumber"], 16),
                    block_hash=e["blockHash"].lower(),
                    block_timestamp=int(stamp, 16) if stamp else None,
                    tx_hash=e["transactionHash"].lower(),
                    log_index=int(e["logIndex"], 16),
                    topics=e["topics"],
                    data=e["data"][2:],
                )
            )
        return logs
