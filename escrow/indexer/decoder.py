"""Fast decoding of the escrow contract's raw logs.

web3's event decoding builds several objects per log and is the bottleneck of a catch-up scan.
Here each event of the ABI becomes a small plan, keyed by its topic: indexed arguments are read
from the topics, static data words are sliced straight out of the hex string (addresses,
integers, booleans, fixed bytes, static tuples), and only events with dynamic data (strings)
fall back to ``eth_abi``. Values come out JSON-ready: addresses and bytes as lower-case ``0x``
hex, integers as ``int``, booleans as ``bool``.

Anyone can make the contract emit a log (``submitEvidence`` takes any bytes as its URI), so
decoding must not trust the data: a string that is not UTF-8 is kept with replacement
characters and its exact bytes go alongside as ``<name>_hex``; a log that cannot be decoded at
all raises :class:`UndecodableLog` (never anything else), and the indexer stores it raw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak

Converter = Callable[[str], Any]  # from one 64-hex-digit word
_HEX_DIGITS = b"0123456789abcdefABCDEF"


def _is_hex(text: str) -> bool:
    """True when ``text`` is only hex digits (a C-speed check: it runs on every log)."""
    try:
        return not text.encode("ascii").translate(None, _HEX_DIGITS)
    except UnicodeEncodeError:
        return False


@dataclass(frozen=True)
class RawLog:
    """The parts of an ``eth_getLogs`` entry the indexer uses."""

    block_number: int
    block_hash: str
    block_timestamp: int | None
    tx_hash: str
    log_index: int
    topics: Sequence[str]
    data: str  # hex without 0x


@dataclass(frozen=True)
class DecodedLog:
    name: str
    args: dict[str, Any]
    block_number: int
    block_hash: str
    block_timestamp: int | None
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class Undecoded:
    """A log that could not be decoded, and why."""

    log: RawLog
    error: str


class UndecodableLog(Exception):
    """A log that cannot be decoded as an event of the ABI (the message says why)."""


class UnknownEvent(UndecodableLog):
    """A log whose topic is not an event of the ABI."""


def text_of(raw: bytes) -> tuple[str, bool]:
    """``raw`` as text, and whether it was valid UTF-8 (if not, bad bytes become U+FFFD)."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


def _address(word: str) -> str:
    return "0x" + word[24:]


def _uint(word: str) -> int:
    return int(word, 16)


def _int(bits: int) -> Converter:
    limit = 1 << (bits - 1)

    def convert(word: str) -> int:
        value = int(word, 16) & ((1 << bits) - 1)
        return value - (1 << bits) if value >= limit else value

    return convert


def _bool(word: str) -> bool:
    return word[-1] != "0" or int(word, 16) != 0


def _fixed_bytes(size: int) -> Converter:
    def convert(word: str) -> str:
        return "0x" + word[: 2 * size]

    return convert


def _word_converter(abi_type: str) -> Converter | None:
    """Converter for a type that fits in one word, or None (dynamic or composite)."""
    if abi_type == "address":
        return _address
    if abi_type == "bool":
        return _bool
    if abi_type.startswith("uint"):
        return _uint
    if abi_type.startswith("int"):
        return _int(int(abi_type[3:] or 256))
    if abi_type.startswith("bytes") and abi_type != "bytes":
        return _fixed_bytes(int(abi_type[5:]))
    return None


def _canonical_type(param: dict[str, Any], *, strings_as_bytes: bool = False) -> str:
    """The type as in an event signature; ``strings_as_bytes`` reads ``string`` as ``bytes``
    (same encoding), so that text which is not UTF-8 can be decoded leniently afterwards."""
    if param["type"].startswith("tuple"):
        inner = ",".join(
            _canonical_type(c, strings_as_bytes=strings_as_bytes) for c in param["components"]
        )
        return f"({inner}){param['type'][5:]}"
    if strings_as_bytes and param["type"].startswith("string"):
        return "bytes" + param["type"][6:]
    return str(param["type"])


# A static plan: (name, converter) for a word, or (name, sub-plan) for a static tuple.
Plan = list[tuple[str, Any]]


def _static_plan(params: Sequence[dict[str, Any]]) -> Plan | None:
    plan: Plan = []
    for param in params:
        if param["type"] == "tuple":
            sub = _static_plan(param["components"])
            if sub is None:
                return None
            plan.append((param["name"], sub))
            continue
        converter = _word_converter(param["type"])
        if converter is None:
            return None
        plan.append((param["name"], converter))
    return plan


def _plan_words(plan: Plan) -> int:
    return sum(_plan_words(step) if isinstance(step, list) else 1 for _, step in plan)


def _run_plan(plan: Plan, data: str, offset: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    for name, step in plan:
        if isinstance(step, list):
            out[name], offset = _run_plan(step, data, offset)
        else:
            out[name] = step(data[offset : offset + 64])
            offset += 64
    return out, offset


def _jsonable(value: Any, param: dict[str, Any]) -> Any:
    """An ``eth_abi`` value in the same shape as the fast path produces."""
    abi_type = param["type"]
    if abi_type == "tuple":
        return {c["name"]: _jsonable(v, c) for c, v in zip(param["components"], value, strict=True)}
    if abi_type == "string" and isinstance(value, bytes):
        return text_of(value)[0]
    if isinstance(value, list | tuple) and abi_type.endswith("]"):
        inner = dict(param, type=abi_type[: abi_type.rindex("[")])
        return [_jsonable(v, inner) for v in value]
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if abi_type == "address":
        return str(value).lower()
    return value


class _EventPlan:
    def __init__(self, event: dict[str, Any]) -> None:
        self.name: str = event["name"]
        inputs = event["inputs"]
        self.signature = f"{self.name}({','.join(_canonical_type(p) for p in inputs)})"
        self.topic = "0x" + keccak(text=self.signature).hex()
        self.indexed: list[tuple[str, Converter | None]] = []
        for param in inputs:
            if param["indexed"]:
                # Indexed dynamic values are only their hash: keep that as bytes32.
                converter = _word_converter(param["type"]) or _fixed_bytes(32)
                self.indexed.append((param["name"], converter))
        self.data_params = [p for p in inputs if not p["indexed"]]
        self.static_plan = _static_plan(self.data_params)
        self.data_words = _plan_words(self.static_plan) if self.static_plan is not None else 0
        self.data_types = [_canonical_type(p, strings_as_bytes=True) for p in self.data_params]

    def decode(self, topics: Sequence[str], data: str) -> dict[str, Any]:
        if len(topics) != len(self.indexed) + 1:
            raise ValueError(f"expected {len(self.indexed) + 1} topics, got {len(topics)}")
        args: dict[str, Any] = {}
        words = [topic[2:] if topic.startswith("0x") else topic for topic in topics[1:]]
        for (name, converter), word in zip(self.indexed, words, strict=True):
            assert converter is not None
            if len(word) != 64:
                raise ValueError(f"topic {name} is not 64 hex digits: {word[:80]!r}")
            args[name] = converter(word)
        if self.static_plan is not None:
            # The converters slice words without checking them: check everything once.
            if len(data) != 64 * self.data_words:
                raise ValueError(f"data is {len(data)} hex digits, not {64 * self.data_words}")
            if not _is_hex(data + "".join(words)):
                raise ValueError("data or topics are not hex")
            values, _ = _run_plan(self.static_plan, data, 0)
            args.update(values)
        else:
            if not _is_hex("".join(words)):
                raise ValueError("topics are not hex")
            decoded = abi_decode(self.data_types, bytes.fromhex(data))
            for param, value in zip(self.data_params, decoded, strict=True):
                name = param["name"]
                if param["type"] == "string":
                    args[name], valid = text_of(value)
                    if not valid:
                        args[name + "_hex"] = "0x" + value.hex()
                else:
                    args[name] = _jsonable(value, param)
        return args


class LogDecoder:
    """Decodes raw logs of one contract ABI by their first topic."""

    def __init__(self, abi: Sequence[dict[str, Any]]) -> None:
        plans = [
            _EventPlan(item)
            for item in abi
            if item.get("type") == "event" and not item.get("anonymous")
        ]
        self._by_topic = {plan.topic: plan for plan in plans}

    @property
    def topics(self) -> dict[str, str]:
        """Topic hash -> event name."""
        return {topic: plan.name for topic, plan in self._by_topic.items()}

    def decode(self, log: RawLog) -> DecodedLog:
        """The event of ``log``; raises :class:`UndecodableLog` and nothing else."""
        if not log.topics:
            raise UnknownEvent("log without topics")
        first = log.topics[0]
        plan = self._by_topic.get(first.lower()) if isinstance(first, str) else None
        if plan is None:
            raise UnknownEvent(f"unknown topic {str(first)[:80]}")
        try:
            args = plan.decode(log.topics, log.data)
        except Exception as exc:  # whatever malformed data makes the parsers raise
            raise UndecodableLog(f"{plan.name}: {exc.__class__.__name__}: {exc}"[:1000]) from exc
        return DecodedLog(
            name=plan.name,
            args=args,
            block_number=log.block_number,
            block_hash=log.block_hash,
            block_timestamp=log.block_timestamp,
            tx_hash=log.tx_hash,
            log_index=log.log_index,
        )
