"""Decode the escrow contract's logs quickly, straight from the ABI with eth_abi.

web3's per-event decoding walks the whole ABI for every log; the indexer decodes tens of
thousands of logs, so this module builds a topic -> event map once and decodes with eth_abi.

Strings are decoded leniently: the contract accepts any bytes as an evidence URI, so text that is
not UTF-8 comes out with replacement characters, and its exact bytes as ``<name>_hex``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import eth_abi
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes


@dataclass(frozen=True)
class DecodedEvent:
    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    address: str


@dataclass(frozen=True)
class _EventSpec:
    name: str
    indexed: tuple[tuple[str, str], ...]  # (name, abi type)
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]
    #: What eth_abi is asked to decode: ``data_types`` with ``string`` read as ``bytes``.
    wire_types: tuple[str, ...]
    data_components: tuple[Any, ...]  # component lists for tuple-typed fields, else None


def _abi_type(item: Mapping[str, Any], *, strings_as_bytes: bool = False) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(
            _abi_type(c, strings_as_bytes=strings_as_bytes) for c in item["components"]
        )
        return f"({inner}){item['type'][5:]}"
    if strings_as_bytes and item["type"].startswith("string"):
        return "bytes" + item["type"][6:]
    return str(item["type"])


def _text(raw: bytes) -> tuple[str, bool]:
    """``raw`` as text, and whether it was valid UTF-8 (if not, bad bytes become U+FFFD)."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


def _normalise(abi_type: str, value: Any, components: Any = None) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type == "string" and isinstance(value, bytes):
        return _text(value)[0]
    if abi_type.startswith("(") and components is not None:
        return {
            c["name"]: _normalise(_abi_type(c), v, c.get("components"))
            for c, v in zip(components, value, strict=True)
        }
    return value


class EventDecoder:
    """Decodes logs of one contract ABI into :class:`DecodedEvent` objects."""

    def __init__(self, abi: Iterable[Mapping[str, Any]]) -> None:
        self._by_topic: dict[bytes, _EventSpec] = {}
        self._topic_by_name: dict[str, str] = {}
        for item in abi:
            if item.get("type") != "event":
                continue
            inputs = item["inputs"]
            signature = f"{item['name']}({','.join(_abi_type(i) for i in inputs)})"
            topic = keccak(text=signature)
            data_inputs = [i for i in inputs if not i["indexed"]]
            self._by_topic[topic] = _EventSpec(
                name=item["name"],
                indexed=tuple((i["name"], _abi_type(i)) for i in inputs if i["indexed"]),
                data_names=tuple(i["name"] for i in data_inputs),
                data_types=tuple(_abi_type(i) for i in data_inputs),
                wire_types=tuple(_abi_type(i, strings_as_bytes=True) for i in data_inputs),
                data_components=tuple(i.get("components") for i in data_inputs),
            )
            self._topic_by_name[item["name"]] = "0x" + topic.hex()

    def topic(self, name: str) -> str:
        return self._topic_by_name[name]

    @property
    def names(self) -> list[str]:
        return sorted(self._topic_by_name)

    def decode_log(self, log: Mapping[str, Any]) -> DecodedEvent:
        topics = [HexBytes(t) for t in log["topics"]]
        spec = self._by_topic.get(bytes(topics[0])) if topics else None
        if spec is None:
            raise LookupError(f"log with unknown topic {topics[0].to_0x_hex() if topics else None}")
        args: dict[str, Any] = {}
        for (name, abi_type), topic in zip(spec.indexed, topics[1:], strict=True):
            (value,) = eth_abi.decode([abi_type], bytes(topic))
            args[name] = _normalise(abi_type, value)
        values = eth_abi.decode(list(spec.wire_types), bytes(HexBytes(log["data"])))
        for name, abi_type, components, value in zip(
            spec.data_names, spec.data_types, spec.data_components, values, strict=True
        ):
            if abi_type == "string":
                args[name], valid = _text(value)
                if not valid:
                    args[name + "_hex"] = "0x" + value.hex()
            else:
                args[name] = _normalise(abi_type, value, components)
        return DecodedEvent(
            name=spec.name,
            args=args,
            block_number=int(log["blockNumber"]),
            block_hash=HexBytes(log["blockHash"]).to_0x_hex(),
            tx_hash=HexBytes(log["transactionHash"]).to_0x_hex(),
            log_index=int(log["logIndex"]),
            address=to_checksum_address(log["address"]),
        )

    def decode_receipt(self, receipt: Mapping[str, Any], address: str) -> list[DecodedEvent]:
        """The events that ``address`` emitted in a transaction, in log order."""
        wanted = to_checksum_address(address)
        return [
            self.decode_log(log)
            for log in receipt["logs"]
            if to_checksum_address(log["address"]) == wanted
            and log["topics"]
            and bytes(HexBytes(log["topics"][0])) in self._by_topic
        ]
