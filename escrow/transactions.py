"""Build, sign, send and decode transactions; turn reverts into typed exceptions.

A sender is either the address of an account the node signs for (eth-tester's accounts,
anvil's unlocked dev accounts) or an ``eth_account`` ``LocalAccount`` holding a private key.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Union

import eth_abi
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError
from web3.types import TxParams, TxReceipt, Wei

from escrow.chain import Chain
from escrow.errors import (
    ContractRevert,
    TransactionFailed,
    UnknownContractError,
    revert_classes,
)

Sender = Union[str, LocalAccount]  # noqa: UP007 - a runtime alias used in isinstance checks

#: Extra gas on top of the node's estimate. Payouts forward a fixed stipend to the receiver
#: and fall back to a credit when it fails, so a tight estimate could turn a payout into a
#: credit; the margin makes sure the stipend is always available. Unused gas is not charged.
GAS_MARGIN_RATIO = 1.25
GAS_MARGIN_FLAT = 20_000

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)


def sender_address(sender: Sender) -> ChecksumAddress:
    if isinstance(sender, str):
        return to_checksum_address(sender)
    return to_checksum_address(sender.address)


@dataclass(frozen=True)
class _ErrorSpec:
    name: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]


class ErrorDecoder:
    """Maps revert data to the typed exception of the matching custom error."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._by_selector: dict[bytes, _ErrorSpec] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = tuple(_abi_type(i) for i in item["inputs"])
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                names = tuple(i["name"] or f"arg{n}" for n, i in enumerate(item["inputs"]))
                self._by_selector[selector] = _ErrorSpec(item["name"], names, types)
        self._classes = revert_classes()

    def decode(self, data: bytes) -> Exception:
        selector, payload = data[:4], data[4:]
        if selector == _ERROR_STRING:
            (reason,) = eth_abi.decode(["string"], payload)
            return TransactionFailed(f"reverted: {reason}")
        if selector == _PANIC:
            (code,) = eth_abi.decode(["uint256"], payload)
            return TransactionFailed(f"reverted with panic code {code:#x}")
        spec = self._by_selector.get(selector)
        if spec is None:
            if not data:
                return TransactionFailed("reverted without a reason")
            return UnknownContractError("0x" + data.hex())
        values = eth_abi.decode(list(spec.arg_types), payload)
        args = {
            name: (to_checksum_address(v) if t == "address" else v)
            for name, t, v in zip(spec.arg_names, spec.arg_types, values, strict=True)
        }
        cls = self._classes.get(spec.name)
        if cls is None:
            cls = type(spec.name, (ContractRevert,), {"error_name": spec.name})
            self._classes[spec.name] = cls
        return cls(**args)

    def from_exception(self, exc: BaseException) -> Exception | None:
        """The typed error behind a web3 or eth-tester exception, or None if it is no revert."""
        data = _revert_data(exc)
        if data is None:
            return None
        return self.decode(data)


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


def _revert_data(exc: BaseException) -> bytes | None:
    if isinstance(exc, ContractCustomError | ContractPanicError | ContractLogicError):
        data = exc.data
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        if isinstance(data, bytes):
            return data
        return b""
    # eth-tester raises its own TransactionFailed; the revert bytes sit on the inner exception
    if type(exc).__module__.startswith("eth_tester") and type(exc).__name__ == "TransactionFailed":
        inner = exc.__context__ or exc.__cause__
        if inner is not None and inner.args and isinstance(inner.args[0], bytes):
            return inner.args[0]
        text = str(exc.args[0]) if exc.args else ""
        prefix = "execution reverted: "
        if text.startswith(prefix):
            try:
                value = ast.literal_eval(text[len(prefix) :])
            except (ValueError, SyntaxError):
                return b""
            return value if isinstance(value, bytes) else b""
        return b""
    return None


@dataclass(frozen=True)
class PreparedCall:
    """A contract call with the ETH it carries; turned into a transaction by a sender."""

    function: ContractFunction | ContractConstructor
    value: int = 0


class TransactionSender:
    """Estimates, signs and sends transactions and waits for their receipts."""

    def __init__(self, chain: Chain, decoder: ErrorDecoder) -> None:
        self.chain = chain
        self.decoder = decoder

    def unsigned(self, call: PreparedCall, sender: str) -> TxParams:
        """A complete unsigned transaction for a wallet to sign (gas estimated, no nonce)."""
        frm = to_checksum_address(sender)
        base: TxParams = {"from": frm, "value": Wei(call.value), "chainId": self.chain.chain_id}
        tx = call.function.build_transaction({**base, "gas": 1})  # encodes data, no estimate
        params: TxParams = {
            "from": frm,
            "data": tx["data"],
            "value": Wei(call.value),
            "chainId": self.chain.chain_id,
        }
        if tx.get("to"):
            params["to"] = tx["to"]
        params["gas"] = self.estimate_gas(params)
        return params

    def estimate_gas(self, params: TxParams) -> int:
        try:
            estimate = self.chain.w3.eth.estimate_gas(params)
        except Exception as exc:
            typed = self.decoder.from_exception(exc)
            if typed is not None:
                raise typed from None
            raise
        return int(estimate * GAS_MARGIN_RATIO) + GAS_MARGIN_FLAT

    def send(self, call: PreparedCall, sender: Sender) -> TxReceipt:
        params = self.unsigned(call, sender_address(sender))
        return self.send_params(params, sender)

    def send_params(self, params: TxParams, sender: Sender) -> TxReceipt:
        w3 = self.chain.w3
        try:
            if isinstance(sender, str):
                tx_hash = w3.eth.send_transaction(params)
            else:
                signed = sender.sign_transaction(self._complete_for_signing(params, sender))
                tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        except Exception as exc:
            typed = self.decoder.from_exception(exc)
            if typed is not None:
                raise typed from None
            raise
        receipt = self.chain.wait_for_receipt(tx_hash)
        if receipt["status"] != 1:
            raise self._explain_failure(params, receipt)
        return receipt

    def _complete_for_signing(self, params: TxParams, account: LocalAccount) -> dict[str, Any]:
        w3 = self.chain.w3
        tx: dict[str, Any] = dict(params)
        tx["nonce"] = w3.eth.get_transaction_count(account.address, "pending")
        base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        priority = 1_000_000_000 if not self.chain.is_tester else 0
        tx["maxPriorityFeePerGas"] = priority
        tx["maxFeePerGas"] = 2 * base_fee + priority
        tx.pop("from", None)
        return tx

    def _explain_failure(self, params: TxParams, receipt: TxReceipt) -> Exception:
        """Replays a reverted transaction as a call at its block to learn the custom error."""
        replay = {k: v for k, v in params.items() if k in ("from", "to", "data", "value")}
        try:
            self.chain.w3.eth.call(replay, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except Exception as exc:
            typed = self.decoder.from_exception(exc)
            if typed is not None:
                return typed
        tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
        return TransactionFailed(f"transaction {tx_hash} reverted")
