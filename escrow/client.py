"""Typed Python client for the escrow contract: one method per trade action.

Every action comes in two forms:

* ``client.confirm_receipt(trade_id, terms, sender=...)`` signs and sends the transaction
  (with a local key or an account the node unlocks) and returns a :class:`TxResult`;
* ``client.unsigned(client.calls.confirm_receipt(trade_id, terms), sender_address)`` returns
  the unsigned transaction for a browser wallet to sign.

Reverts raise the exception class named after the contract's custom error
(see :mod:`escrow.errors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import event_abi_to_log_topic, to_checksum_address
from hexbytes import HexBytes
from web3.contract import Contract
from web3.types import TxParams, TxReceipt

from escrow.chain import Chain
from escrow.compiler import load_artifact
from escrow.errors import EscrowError, UnknownTrade
from escrow.events import DecodedEvent, EventDecoder
from escrow.transactions import (
    ErrorDecoder,
    PreparedCall,
    Sender,
    TransactionSender,
    sender_address,
)

ETH = to_checksum_address("0x" + "00" * 20)
ZERO_REF = b"\x00" * 32
DAY = 24 * 3600

#: Contract versions this client speaks, by the name of their compiled artifact. New trades go
#: to the current version; older deployments stay readable and finishable.
CONTRACT_VERSIONS = {1: "P2PEscrowV1", 2: "P2PEscrow"}
CURRENT_VERSION = 2
#: v2 terms: the market's default delivery window when a caller names none.
DEFAULT_DELIVERY_WINDOW = 0


class Status(IntEnum):
    NONE = 0
    FUNDED = 1
    SHIPPED = 2
    DISPUTED = 3
    RELEASED = 4
    REFUNDED = 5
    SETTLED = 6
    RESOLVED = 7

    @property
    def is_open(self) -> bool:
        return self in (Status.FUNDED, Status.SHIPPED, Status.DISPUTED)


class Party(IntEnum):
    NONE = 0
    BUYER = 1
    SELLER = 2


@dataclass(frozen=True)
class Terms:
    """The immutable terms of a trade, as hashed on chain.

    ``delivery_window`` is None for a trade of the version 1 contract, whose terms have no
    delivery window (its inspection starts when the seller ships).
    """

    buyer: ChecksumAddress
    seller: ChecksumAddress
    arbitrator: ChecksumAddress
    token: ChecksumAddress
    amount: int
    ship_by: int
    inspection_period: int
    arbitrator_fee_bps: int
    platform_fee_bps: int
    delivery_window: int | None = None

    @property
    def version(self) -> int:
        return 1 if self.delivery_window is None else 2

    def as_tuple(self) -> tuple[Any, ...]:
        fields: tuple[Any, ...] = (
            self.buyer,
            self.seller,
            self.arbitrator,
            self.token,
            self.amount,
            self.ship_by,
            self.inspection_period,
            self.arbitrator_fee_bps,
            self.platform_fee_bps,
        )
        return fields if self.delivery_window is None else (*fields, self.delivery_window)

    @classmethod
    def from_event(cls, terms: Any) -> Terms:
        """From the decoded ``terms`` tuple or dict of a TradeFunded event."""
        if isinstance(terms, dict):
            window = terms.get("deliveryWindow")
            terms = (
                terms["buyer"],
                terms["seller"],
                terms["arbitrator"],
                terms["token"],
                terms["amount"],
                terms["shipBy"],
                terms["inspectionPeriod"],
                terms["arbitratorFeeBps"],
                terms["platformFeeBps"],
            ) + (() if window is None else (window,))
        terms = tuple(terms)
        delivery_window = int(terms[9]) if len(terms) > 9 else None
        b, s, a, t, amount, ship_by, inspection, arb_fee, platform_fee = terms[:9]
        return cls(
            to_checksum_address(b),
            to_checksum_address(s),
            to_checksum_address(a),
            to_checksum_address(t),
            int(amount),
            int(ship_by),
            int(inspection),
            int(arb_fee),
            int(platform_fee),
            delivery_window,
        )

    @property
    def is_eth(self) -> bool:
        return int(self.token, 16) == 0


@dataclass(frozen=True)
class TradeState:
    trade_id: int
    terms_hash: bytes
    status: Status
    deadline: int
    split_proposer: Party
    proposed_buyer_bps: int


@dataclass(frozen=True)
class TradeView:
    """A trade's full state from its id and terms (contract v2 ``tradeView``)."""

    trade_id: int
    superseded: bool
    status: Status
    deadline: int
    inspection_started: bool
    split_proposer: Party
    proposed_buyer_bps: int
    extension_days: int
    extension_granted: bool
    ended_in_block: int


@dataclass(frozen=True)
class Trade:
    trade_id: int
    terms: Terms
    state: TradeState
    listing_ref: bytes


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    block_number: int
    gas_used: int
    events: list[DecodedEvent] = field(default_factory=list)

    def event(self, name: str) -> DecodedEvent:
        for ev in self.events:
            if ev.name == name:
                return ev
        raise LookupError(f"no {name} event in {self.tx_hash}")

    def has_event(self, name: str) -> bool:
        return any(ev.name == name for ev in self.events)


@dataclass(frozen=True)
class Funded(TxResult):
    trade_id: int = 0
    terms: Terms | None = None


@dataclass(frozen=True)
class ArbitratorInfo:
    registered: bool
    max_fee_bps: int


class EscrowCalls:
    """Encodes each contract action as a :class:`PreparedCall`; no network access."""

    def __init__(self, contract: Contract, version: int = CURRENT_VERSION) -> None:
        self._fn = contract.functions
        self.version = version

    def _terms_args(
        self,
        inspection_period: int,
        delivery_window: int,
        arbitrator_fee_bps: int,
        max_platform_fee_bps: int,
    ) -> tuple[int, ...]:
        """The funding arguments between ship-by and lane, in this version's order."""
        if self.version == 1:
            if delivery_window:
                raise EscrowError("escrow contract v1 has no delivery window; fund on v2")
            return (inspection_period, arbitrator_fee_bps)
        return (inspection_period, delivery_window, arbitrator_fee_bps, max_platform_fee_bps)

    def fund(
        self,
        *,
        seller: str,
        arbitrator: str,
        amount: int,
        ship_by: int,
        inspection_period: int,
        lane: int,
        max_platform_fee_bps: int,
        delivery_window: int = DEFAULT_DELIVERY_WINDOW,
        arbitrator_fee_bps: int = 0,
        token: str = ETH,
        listing_ref: bytes = ZERO_REF,
    ) -> PreparedCall:
        """``max_platform_fee_bps``: the highest platform fee the buyer accepts (the one it
        was shown); the contract reverts ``PlatformFeeAboveLimit`` above it."""
        token = to_checksum_address(token)
        fn = self._fn.fund(
            to_checksum_address(seller),
            to_checksum_address(arbitrator),
            token,
            amount,
            ship_by,
            *self._terms_args(
                inspection_period, delivery_window, arbitrator_fee_bps, max_platform_fee_bps
            ),
            lane,
            _bytes32(listing_ref),
        )
        return PreparedCall(fn, value=amount if int(token, 16) == 0 else 0)

    def fund_with_permit(
        self,
        *,
        seller: str,
        arbitrator: str,
        token: str,
        amount: int,
        ship_by: int,
        inspection_period: int,
        permit_deadline: int,
        v: int,
        r: bytes,
        s: bytes,
        lane: int,
        max_platform_fee_bps: int,
        delivery_window: int = DEFAULT_DELIVERY_WINDOW,
        arbitrator_fee_bps: int = 0,
        listing_ref: bytes = ZERO_REF,
    ) -> PreparedCall:
        fn = self._fn.fundWithPermit(
            to_checksum_address(seller),
            to_checksum_address(arbitrator),
            to_checksum_address(token),
            amount,
            ship_by,
            *self._terms_args(
                inspection_period, delivery_window, arbitrator_fee_bps, max_platform_fee_bps
            ),
            lane,
            _bytes32(listing_ref),
            permit_deadline,
            v,
            _bytes32(r),
            _bytes32(s),
        )
        return PreparedCall(fn)

    def mark_shipped(
        self, trade_id: int, terms: Terms, shipment_ref: bytes = ZERO_REF
    ) -> PreparedCall:
        return PreparedCall(
            self._fn.markShipped(trade_id, terms.as_tuple(), _bytes32(shipment_ref))
        )

    def confirm_receipt(self, trade_id: int, terms: Terms) -> PreparedCall:
        return PreparedCall(self._fn.confirmReceipt(trade_id, terms.as_tuple()))

    def mark_received(self, trade_id: int, terms: Terms) -> PreparedCall:
        self._require_v2("markReceived")
        return PreparedCall(self._fn.markReceived(trade_id, terms.as_tuple()))

    def request_inspection_extension(
        self, trade_id: int, terms: Terms, extra_days: int
    ) -> PreparedCall:
        self._require_v2("requestInspectionExtension")
        return PreparedCall(
            self._fn.requestInspectionExtension(trade_id, terms.as_tuple(), extra_days)
        )

    def grant_inspection_extension(self, trade_id: int, terms: Terms) -> PreparedCall:
        self._require_v2("grantInspectionExtension")
        return PreparedCall(self._fn.grantInspectionExtension(trade_id, terms.as_tuple()))

    def cancel_split(self, trade_id: int, terms: Terms) -> PreparedCall:
        self._require_v2("cancelSplit")
        return PreparedCall(self._fn.cancelSplit(trade_id, terms.as_tuple()))

    def withdraw_to(self, to: str, token: str = ETH) -> PreparedCall:
        self._require_v2("withdrawTo")
        return PreparedCall(
            self._fn.withdrawTo(to_checksum_address(token), to_checksum_address(to))
        )

    def _require_v2(self, name: str) -> None:
        if self.version < 2:
            raise EscrowError(f"{name} needs escrow contract version 2; this one is v1")

    def release_after_inspection(self, trade_id: int, terms: Terms) -> PreparedCall:
        return PreparedCall(self._fn.releaseAfterInspection(trade_id, terms.as_tuple()))

    def refund_after_deadline(self, trade_id: int, terms: Terms) -> PreparedCall:
        return PreparedCall(self._fn.refundAfterDeadline(trade_id, terms.as_tuple()))

    def refund_by_seller(self, trade_id: int, terms: Terms) -> PreparedCall:
        return PreparedCall(self._fn.refundBySeller(trade_id, terms.as_tuple()))

    def propose_split(self, trade_id: int, terms: Terms, buyer_bps: int) -> PreparedCall:
        return PreparedCall(self._fn.proposeSplit(trade_id, terms.as_tuple(), buyer_bps))

    def accept_split(self, trade_id: int, terms: Terms, buyer_bps: int) -> PreparedCall:
        return PreparedCall(self._fn.acceptSplit(trade_id, terms.as_tuple(), buyer_bps))

    def open_dispute(self, trade_id: int, terms: Terms) -> PreparedCall:
        return PreparedCall(self._fn.openDispute(trade_id, terms.as_tuple()))

    def submit_evidence(
        self, trade_id: int, terms: Terms, uri: str, content_hash: bytes
    ) -> PreparedCall:
        return PreparedCall(
            self._fn.submitEvidence(trade_id, terms.as_tuple(), uri, _bytes32(content_hash))
        )

    def rule(self, trade_id: int, terms: Terms, buyer_bps: int) -> PreparedCall:
        return PreparedCall(self._fn.rule(trade_id, terms.as_tuple(), buyer_bps))

    def resolve_after_ruling_timeout(self, trade_id: int, terms: Terms) -> PreparedCall:
        return PreparedCall(self._fn.resolveAfterRulingTimeout(trade_id, terms.as_tuple()))

    def withdraw(self, token: str = ETH) -> PreparedCall:
        return PreparedCall(self._fn.withdraw(to_checksum_address(token)))

    def withdraw_platform_fees(self, token: str = ETH) -> PreparedCall:
        return PreparedCall(self._fn.withdrawPlatformFees(to_checksum_address(token)))

    def register_arbitrator(self, arbitrator: str, max_fee_bps: int) -> PreparedCall:
        return PreparedCall(
            self._fn.registerArbitrator(to_checksum_address(arbitrator), max_fee_bps)
        )

    def remove_arbitrator(self, arbitrator: str) -> PreparedCall:
        return PreparedCall(self._fn.removeArbitrator(to_checksum_address(arbitrator)))

    def set_platform_fee(self, recipient: str, fee_bps: int) -> PreparedCall:
        return PreparedCall(self._fn.setPlatformFee(to_checksum_address(recipient), fee_bps))

    def set_token_allowed(self, token: str, allowed: bool) -> PreparedCall:
        return PreparedCall(self._fn.setTokenAllowed(to_checksum_address(token), allowed))

    def set_funding_paused(self, paused: bool) -> PreparedCall:
        return PreparedCall(self._fn.setFundingPaused(paused))


class EscrowClient:
    """Reads and acts on one deployed escrow contract."""

    def __init__(
        self,
        chain: Chain,
        escrow_address: str,
        stablecoin_address: str | None = None,
        version: int = CURRENT_VERSION,
    ) -> None:
        if version not in CONTRACT_VERSIONS:
            raise EscrowError(f"unknown escrow contract version {version}")
        self.chain = chain
        self.w3 = chain.w3
        self.version = version
        escrow_abi = load_artifact(CONTRACT_VERSIONS[version]).abi
        token_abi = load_artifact("TestStablecoin").abi
        self.contract = self.w3.eth.contract(
            address=to_checksum_address(escrow_address), abi=escrow_abi
        )
        self.address: ChecksumAddress = self.contract.address
        self.stablecoin = (
            self.w3.eth.contract(address=to_checksum_address(stablecoin_address), abi=token_abi)
            if stablecoin_address
            else None
        )
        self._token_abi = token_abi
        self.calls = EscrowCalls(self.contract, version)
        self.events = EventDecoder(escrow_abi)
        self.sender = TransactionSender(chain, ErrorDecoder([escrow_abi, token_abi]))

    # ------------------------------------------------------------ plumbing

    def unsigned(self, call: PreparedCall, sender: str) -> TxParams:
        """The unsigned transaction for ``call`` from ``sender`` (gas estimated).

        Raises the typed revert error if the call would revert now.
        """
        return self.sender.unsigned(call, sender)

    def send(self, call: PreparedCall, sender: Sender) -> TxResult:
        return self._result(self.sender.send(call, sender))

    def _result(self, receipt: TxReceipt) -> TxResult:
        return TxResult(
            tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            events=self.events.decode_receipt(receipt, self.address),
        )

    # ------------------------------------------------------------ trade actions

    def fund(
        self,
        *,
        seller: str,
        arbitrator: str,
        amount: int,
        ship_by: int,
        inspection_period: int,
        sender: Sender,
        arbitrator_fee_bps: int = 0,
        token: str = ETH,
        listing_ref: bytes = ZERO_REF,
        lane: int | None = None,
        delivery_window: int = DEFAULT_DELIVERY_WINDOW,
        max_platform_fee_bps: int | None = None,
    ) -> Funded:
        """Opens and funds a trade. For a token, the buyer must have approved the escrow.

        ``lane`` defaults to the buyer's lowest free lane (see :meth:`free_lane`);
        ``max_platform_fee_bps`` to the fee in force now (pass the fee the buyer was shown
        to be protected against a raise before the transaction is mined).
        """
        call = self.calls.fund(
            seller=seller,
            arbitrator=arbitrator,
            amount=amount,
            ship_by=ship_by,
            inspection_period=inspection_period,
            delivery_window=delivery_window,
            max_platform_fee_bps=self._fee_cap(max_platform_fee_bps),
            arbitrator_fee_bps=arbitrator_fee_bps,
            token=token,
            listing_ref=listing_ref,
            lane=self.free_lane(sender_address(sender)) if lane is None else lane,
        )
        return self._funded(self.send(call, sender))

    def fund_with_permit(
        self,
        *,
        seller: str,
        arbitrator: str,
        token: str,
        amount: int,
        ship_by: int,
        inspection_period: int,
        sender: Sender,
        arbitrator_fee_bps: int = 0,
        listing_ref: bytes = ZERO_REF,
        permit_deadline: int | None = None,
        lane: int | None = None,
        delivery_window: int = DEFAULT_DELIVERY_WINDOW,
        max_platform_fee_bps: int | None = None,
    ) -> Funded:
        """Funds a token trade in one transaction with an EIP-2612 permit signed by the buyer."""
        deadline = (
            self.chain.latest_timestamp() + 3600 if permit_deadline is None else permit_deadline
        )
        v, r, s = self.sign_permit(token, sender, amount, deadline)
        call = self.calls.fund_with_permit(
            seller=seller,
            arbitrator=arbitrator,
            token=token,
            amount=amount,
            ship_by=ship_by,
            inspection_period=inspection_period,
            permit_deadline=deadline,
            v=v,
            r=r,
            s=s,
            delivery_window=delivery_window,
            max_platform_fee_bps=self._fee_cap(max_platform_fee_bps),
            arbitrator_fee_bps=arbitrator_fee_bps,
            listing_ref=listing_ref,
            lane=self.free_lane(sender_address(sender)) if lane is None else lane,
        )
        return self._funded(self.send(call, sender))

    def _fee_cap(self, max_platform_fee_bps: int | None) -> int:
        return self.platform_fee()[1] if max_platform_fee_bps is None else max_platform_fee_bps

    def _funded(self, result: TxResult) -> Funded:
        event = result.event("TradeFunded")
        return Funded(
            tx_hash=result.tx_hash,
            block_number=result.block_number,
            gas_used=result.gas_used,
            events=result.events,
            trade_id=int(event.args["tradeId"]),
            terms=Terms.from_event(event.args["terms"]),
        )

    def mark_shipped(
        self, trade_id: int, terms: Terms, *, sender: Sender, shipment_ref: bytes = ZERO_REF
    ) -> TxResult:
        return self.send(self.calls.mark_shipped(trade_id, terms, shipment_ref), sender)

    def confirm_receipt(self, trade_id: int, terms: Terms, *, sender: Sender) -> TxResult:
        return self.send(self.calls.confirm_receipt(trade_id, terms), sender)

    def mark_received(self, trade_id: int, terms: Terms, *, sender: Sender) -> TxResult:
        return self.send(self.calls.mark_received(trade_id, terms), sender)

    def request_inspection_extension(
        self, trade_id: int, terms: Terms, extra_days: int, *, sender: Sender
    ) -> TxResult:
        call = self.calls.request_inspection_extension(trade_id, terms, extra_days)
        return self.send(call, sender)

    def grant_inspection_extension(
        self, trade_id: int, terms: Terms, *, sender: Sender
    ) -> TxResult:
        return self.send(self.calls.grant_inspection_extension(trade_id, terms), sender)

    def cancel_split(self, trade_id: int, terms: Terms, *, sender: Sender) -> TxResult:
        return self.send(self.calls.cancel_split(trade_id, terms), sender)

    def withdraw_to(self, to: str, *, sender: Sender, token: str = ETH) -> TxResult:
        return self.send(self.calls.withdraw_to(to, token), sender)

    def release_after_inspection(self, trade_id: int, terms: Terms, *, sender: Sender) -> TxResult:
        return self.send(self.calls.release_after_inspection(trade_id, terms), sender)

    def refund_after_deadline(self, trade_id: int, terms: Terms, *, sender: Sender) -> TxResult:
        return self.send(self.calls.refund_after_deadline(trade_id, terms), sender)

    def refund_by_seller(self, trade_id: int, terms: Terms, *, sender: Sender) -> TxResult:
        return self.send(self.calls.refund_by_seller(trade_id, terms), sender)

    def propose_split(
        self, trade_id: int, terms: Terms, buyer_bps: int, *, sender: Sender
    ) -> TxResult:
        return self.send(self.calls.propose_split(trade_id, terms, buyer_bps), sender)

    def accept_split(
        self, trade_id: int, terms: Terms, buyer_bps: int, *, sender: Sender
    ) -> TxResult:
        return self.send(self.calls.accept_split(trade_id, terms, buyer_bps), sender)

    def open_dispute(self, trade_id: int, terms: Terms, *, sender: Sender) -> TxResult:
        return self.send(self.calls.open_dispute(trade_id, terms), sender)

    def submit_evidence(
        self, trade_id: int, terms: Terms, uri: str, content_hash: bytes, *, sender: Sender
    ) -> TxResult:
        return self.send(self.calls.submit_evidence(trade_id, terms, uri, content_hash), sender)

    def rule(self, trade_id: int, terms: Terms, buyer_bps: int, *, sender: Sender) -> TxResult:
        return self.send(self.calls.rule(trade_id, terms, buyer_bps), sender)

    def resolve_after_ruling_timeout(
        self, trade_id: int, terms: Terms, *, sender: Sender
    ) -> TxResult:
        return self.send(self.calls.resolve_after_ruling_timeout(trade_id, terms), sender)

    def withdraw(self, *, sender: Sender, token: str = ETH) -> TxResult:
        return self.send(self.calls.withdraw(token), sender)

    def withdraw_platform_fees(self, *, sender: Sender, token: str = ETH) -> TxResult:
        return self.send(self.calls.withdraw_platform_fees(token), sender)

    # ------------------------------------------------------------ owner actions

    def register_arbitrator(self, arbitrator: str, max_fee_bps: int, *, sender: Sender) -> TxResult:
        return self.send(self.calls.register_arbitrator(arbitrator, max_fee_bps), sender)

    def remove_arbitrator(self, arbitrator: str, *, sender: Sender) -> TxResult:
        return self.send(self.calls.remove_arbitrator(arbitrator), sender)

    def set_platform_fee(self, recipient: str, fee_bps: int, *, sender: Sender) -> TxResult:
        return self.send(self.calls.set_platform_fee(recipient, fee_bps), sender)

    def set_token_allowed(self, token: str, allowed: bool, *, sender: Sender) -> TxResult:
        return self.send(self.calls.set_token_allowed(token, allowed), sender)

    def set_funding_paused(self, paused: bool, *, sender: Sender) -> TxResult:
        return self.send(self.calls.set_funding_paused(paused), sender)

    # ------------------------------------------------------------ tokens

    def token(self, address: str) -> Contract:
        return self.w3.eth.contract(address=to_checksum_address(address), abi=self._token_abi)

    def approve(self, token: str, amount: int, *, sender: Sender) -> TxResult:
        """Lets the escrow pull ``amount`` of ``token`` from the sender (for :meth:`fund`)."""
        call = PreparedCall(self.token(token).functions.approve(self.address, amount))
        return self.send(call, sender)

    def token_balance(self, token: str, account: str) -> int:
        if int(token, 16) == 0:
            return int(self.w3.eth.get_balance(to_checksum_address(account)))
        return int(self.token(token).functions.balanceOf(to_checksum_address(account)).call())

    def permit_typed_data(
        self, token: str, owner: str, amount: int, deadline: int
    ) -> dict[str, Any]:
        """EIP-712 typed data of an EIP-2612 permit for the escrow (what a wallet signs)."""
        contract = self.token(token)
        owner = to_checksum_address(owner)
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Permit": [
                    {"name": "owner", "type": "address"},
                    {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ],
            },
            "primaryType": "Permit",
            "domain": self._eip712_domain(contract),
            "message": {
                "owner": owner,
                "spender": self.address,
                "value": amount,
                "nonce": int(contract.functions.nonces(owner).call()),
                "deadline": deadline,
            },
        }

    def _eip712_domain(self, contract: Contract) -> dict[str, Any]:
        """The token's EIP-712 domain: from ERC-5267 ``eip712Domain()`` where the token has it
        (the version differs between tokens, e.g. "2" for USDC), else name and version "1"."""
        try:
            _, name, version, chain_id, verifying, _, _ = contract.functions.eip712Domain().call()
            return {
                "name": name,
                "version": version,
                "chainId": int(chain_id),
                "verifyingContract": to_checksum_address(verifying),
            }
        except Exception:  # tokens without ERC-5267
            return {
                "name": contract.functions.name().call(),
                "version": "1",
                "chainId": self.chain.chain_id,
                "verifyingContract": contract.address,
            }

    def sign_permit(
        self, token: str, signer: Sender, amount: int, deadline: int
    ) -> tuple[int, bytes, bytes]:
        """Signs a permit with a local key, or asks the node to sign for an unlocked account."""
        data = self.permit_typed_data(token, sender_address(signer), amount, deadline)
        if isinstance(signer, LocalAccount):
            signed = signer.sign_message(encode_typed_data(full_message=data))
            return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
        if self.chain.is_tester:
            raise EscrowError("the embedded chain cannot sign typed data; use a LocalAccount")
        signature = HexBytes(self.chain.rpc("eth_signTypedData_v4", [signer, data]))
        return signature[64], bytes(signature[:32]), bytes(signature[32:64])

    # ------------------------------------------------------------ reads

    def trade_state(self, trade_id: int, terms: Terms) -> TradeState:
        """Current state of a trade; raises TermsMismatch if its lane holds a later trade."""
        return self._state(
            trade_id, self._read(self.contract.functions.tradeState(trade_id, terms.as_tuple()))
        )

    def trade_view(self, trade_id: int, terms: Terms) -> TradeView:
        """Full state without reverting: ``superseded`` when the lane holds a later trade (or
        the terms are wrong); a lapsed split offer reads as none (contract v2)."""
        if self.version < 2:
            raise EscrowError("tradeView needs escrow contract version 2; this one is v1")
        raw = self._read(self.contract.functions.tradeView(trade_id, terms.as_tuple()))
        superseded, status, deadline, started, proposer, bps, days, granted, ended = raw
        return TradeView(
            trade_id,
            bool(superseded),
            Status(status),
            int(deadline),
            bool(started),
            Party(proposer),
            int(bps),
            int(days),
            bool(granted),
            int(ended),
        )

    def lane_state(self, buyer: str, lane: int) -> TradeState:
        """The raw slot of a buyer's lane: its current or last trade."""
        raw = self._read(self.contract.functions.laneState(to_checksum_address(buyer), lane))
        return self._state(trade_id_of(buyer, lane, 0), raw)

    def free_lane(self, buyer: str, start: int = 0) -> int:
        """The buyer's lowest lane that a new trade can use now.

        The contract reuses a lane whose trade is final only from the block after the one it
        ended in (it reverts ``LaneBusy`` while ``ended block >= block.number``). A new trade
        must pass that check twice: in the gas estimate sent before it, and in the block that
        includes it, which is always after the latest block. anvil runs ``eth_estimateGas``
        (without a block, i.e. at ``latest``) in the latest block itself (``block.number ==
        latest``, with automine and with interval mining), so a lane whose trade ended in the
        latest block fails the estimate there; eth-tester estimates in the pending block
        (``latest + 1``). Hence ``ended block < estimate block``: a lane this skips costs a
        fresh slot once, a lane it let through would fail the purchase.
        """
        latest = int(self.w3.eth.block_number)
        estimate_block = latest + 1 if self.chain.is_tester else latest
        lane = start
        while True:
            state = self.lane_state(buyer, lane)
            if state.status == Status.NONE or (
                not state.status.is_open and state.deadline < estimate_block
            ):
                return lane
            lane += 1

    def _read(self, fn: Any) -> Any:
        try:
            return fn.call()
        except Exception as exc:
            typed = self.sender.decoder.from_exception(exc)
            if typed is not None:
                raise typed from None
            raise

    @staticmethod
    def _state(trade_id: int, raw: Any) -> TradeState:
        terms_hash, status, deadline, proposer, bps = raw
        return TradeState(
            trade_id, bytes(terms_hash), Status(status), int(deadline), Party(proposer), int(bps)
        )

    def terms_of(self, trade_id: int) -> tuple[Terms, bytes]:
        """The terms and listing reference of a trade, from its TradeFunded event.

        The funding block is part of the trade id, so this reads the logs of one block.
        """
        block = funding_block(trade_id)
        logs = self.w3.eth.get_logs(
            {
                "address": self.address,
                "fromBlock": block,
                "toBlock": block,
                "topics": [
                    self.events.topic("TradeFunded"),
                    "0x" + trade_id.to_bytes(32, "big").hex(),
                ],
            }
        )
        if not logs:
            raise UnknownTrade(tradeId=trade_id)
        event = self.events.decode_log(logs[0])
        return Terms.from_event(event.args["terms"]), bytes(event.args["listingRef"])

    def trade(self, trade_id: int) -> Trade:
        terms, listing_ref = self.terms_of(trade_id)
        return Trade(trade_id, terms, self.trade_state(trade_id, terms), listing_ref)

    def credits(self, account: str, token: str = ETH) -> int:
        return int(
            self.contract.functions.credits(
                to_checksum_address(token), to_checksum_address(account)
            ).call()
        )

    def accrued_platform_fees(self, token: str = ETH) -> int:
        return int(self.contract.functions.accruedPlatformFees(to_checksum_address(token)).call())

    def arbitrator_info(self, arbitrator: str) -> ArbitratorInfo:
        registered, max_fee = self.contract.functions.arbitratorMaxFeeBps(
            to_checksum_address(arbitrator)
        ).call()
        return ArbitratorInfo(bool(registered), int(max_fee))

    def platform_fee(self) -> tuple[ChecksumAddress, int]:
        recipient, bps = self.contract.functions.platformFee().call()
        return to_checksum_address(recipient), int(bps)

    def ruling_period(self) -> int:
        return int(self.contract.functions.rulingPeriod().call())

    def is_token_allowed(self, token: str) -> bool:
        return bool(self.contract.functions.isTokenAllowed(to_checksum_address(token)).call())

    def hash_terms(self, trade_id: int, terms: Terms) -> bytes:
        return bytes(self.contract.functions.hashTerms(trade_id, terms.as_tuple()).call())


def escrow_events_abi() -> list[dict[str, Any]]:
    """The events of every escrow version: a decoder keyed by topic reads the logs of any of
    them (an event whose arguments changed between versions has a different topic)."""
    events: dict[bytes, dict[str, Any]] = {}
    for name in reversed(CONTRACT_VERSIONS.values()):  # current version first
        for item in load_artifact(name).abi:
            if item.get("type") == "event" and not item.get("anonymous"):
                events.setdefault(event_abi_to_log_topic(item), item)  # type: ignore[arg-type]
    return list(events.values())


def trade_id_of(buyer: str, lane: int, block_number: int) -> int:
    """``buyer << 96 | lane << 64 | funding block``, as the contract builds it."""
    return (int(buyer, 16) << 96) | (lane << 64) | block_number


def split_trade_id(trade_id: int) -> tuple[ChecksumAddress, int, int]:
    """(buyer, lane, funding block) of a trade id."""
    buyer = to_checksum_address((trade_id >> 96).to_bytes(20, "big"))
    return buyer, (trade_id >> 64) & 0xFFFFFFFF, trade_id & 0xFFFFFFFFFFFFFFFF


def funding_block(trade_id: int) -> int:
    return trade_id & 0xFFFFFFFFFFFFFFFF


def _bytes32(value: bytes | str) -> bytes:
    raw = HexBytes(value) if isinstance(value, str) else bytes(value)
    if len(raw) > 32:
        raise ValueError(f"expected at most 32 bytes, got {len(raw)}")
    return bytes(raw).ljust(32, b"\x00")
