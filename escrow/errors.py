"""Typed exceptions: one class per custom error of the contracts, plus the tool errors.

A reverted call surfaces as the subclass of :class:`ContractRevert` named after the contract's
custom error, with the error's arguments as attributes (``exc.args_by_name``)::

    try:
        client.confirm_receipt(trade_id, terms, sender=stranger)
    except NotBuyer as exc:
        print(exc.args_by_name["caller"])
"""

from __future__ import annotations

from typing import Any


class EscrowError(Exception):
    """Base of every error this package raises on purpose."""


class CompilerNotFound(EscrowError):
    """No Solidity compiler can be run; the message says what to install."""


class CompilationFailed(EscrowError):
    """The compiler rejected the sources."""


class ChainUnavailable(EscrowError):
    """The JSON-RPC node cannot be reached or answered with an error."""


class TransactionStuck(ChainUnavailable):
    """A sent transaction that the node will never mine as it stands; the message says why
    (dropped from the pool, its nonce used by another transaction, a nonce gap before it, or
    a fee below the chain's base fee, or left among the node's not-ready transactions though
    nothing precedes it). ``reason`` is one of ``dropped``, ``replaced``, ``nonce_gap``,
    ``not_promoted``, ``underpriced``."""

    def __init__(self, message: str, *, reason: str, tx_hash: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.tx_hash = tx_hash


class DeploymentError(EscrowError):
    """A deployment is missing, stale, or would overwrite a live one."""


class TransactionFailed(EscrowError):
    """A transaction was mined but reverted without a decodable reason."""


class UnknownContractError(EscrowError):
    """A revert whose data matches no known custom error."""

    def __init__(self, data: str) -> None:
        super().__init__(f"transaction reverted with undecoded data {data[:74]}")
        self.data = data


class ContractRevert(EscrowError):
    """A contract call reverted with a named custom error."""

    error_name: str = ""

    def __init__(self, **args_by_name: Any) -> None:
        self.args_by_name = args_by_name
        shown = ", ".join(f"{k}={v!r}" for k, v in args_by_name.items())
        super().__init__(f"{self.error_name}({shown})")


def _revert(name: str, doc: str) -> type[ContractRevert]:
    return type(name, (ContractRevert,), {"error_name": name, "__doc__": doc})


# Escrow contract (contracts/IP2PEscrow.sol)
ZeroAmount = _revert("ZeroAmount", "The amount is zero.")
AmountTooLarge = _revert("AmountTooLarge", "The amount is above the contract's maximum.")
FundingPaused = _revert("FundingPaused", "The owner paused new trades.")
ZeroAddress = _revert("ZeroAddress", "An address argument is the zero address.")
SellerIsBuyer = _revert("SellerIsBuyer", "The buyer and the seller are the same account.")
ArbitratorIsParty = _revert("ArbitratorIsParty", "The arbitrator is the buyer or the seller.")
EscrowCannotBeParty = _revert("EscrowCannotBeParty", "The escrow itself cannot take part.")
UnknownTrade = _revert("UnknownTrade", "No trade has this id.")
LaneBusy = _revert("LaneBusy", "The lane holds an open trade, or one that ended this block.")
TermsMismatch = _revert("TermsMismatch", "The terms passed do not match the trade's hash.")
InvalidBps = _revert("InvalidBps", "A share in basis points is above 10,000.")
ArbitratorNotRegistered = _revert("ArbitratorNotRegistered", "The arbitrator is not registered.")
ArbitratorFeeTooHigh = _revert("ArbitratorFeeTooHigh", "The fee is above the arbitrator's cap.")
PlatformFeeTooHigh = _revert("PlatformFeeTooHigh", "The platform fee is above its cap.")
DeadlineInPast = _revert("DeadlineInPast", "The ship-by deadline is not in the future.")
DeadlineTooFar = _revert("DeadlineTooFar", "The ship-by deadline is too far in the future.")
InspectionPeriodTooLong = _revert("InspectionPeriodTooLong", "The inspection period is too long.")
InspectionPeriodTooShort = _revert(
    "InspectionPeriodTooShort", "The inspection period is shorter than the minimum (1 day)."
)
DeliveryWindowTooLong = _revert("DeliveryWindowTooLong", "The delivery window is too long.")
PlatformFeeAboveLimit = _revert(
    "PlatformFeeAboveLimit", "The platform fee is now above what the buyer accepted."
)
EvidenceUriTooLong = _revert("EvidenceUriTooLong", "The evidence URI is longer than 512 bytes.")
InspectionAlreadyStarted = _revert(
    "InspectionAlreadyStarted", "The inspection has started already (received or window over)."
)
ExtensionAlreadyRequested = _revert(
    "ExtensionAlreadyRequested", "The buyer has already asked for an extension in this trade."
)
InvalidExtension = _revert("InvalidExtension", "An extension is 1 to 7 days.")
NoExtensionRequested = _revert(
    "NoExtensionRequested", "No extension request is waiting for the seller."
)
NoProposalToCancel = _revert("NoProposalToCancel", "The caller has no open split proposal.")
InvalidStatus = _revert("InvalidStatus", "The trade is not in a status that allows this action.")
NotBuyer = _revert("NotBuyer", "Only the trade's buyer may do this.")
NotSeller = _revert("NotSeller", "Only the trade's seller may do this.")
NotArbitrator = _revert("NotArbitrator", "Only the trade's arbitrator may do this.")
NotParty = _revert("NotParty", "Only the buyer or the seller may do this.")
NotPartyOrArbitrator = _revert("NotPartyOrArbitrator", "Only a party or the arbitrator may.")
DeadlineNotReached = _revert("DeadlineNotReached", "The timeout for this action has not passed.")
DeadlinePassed = _revert("DeadlinePassed", "The time for this action is over.")
NoMatchingProposal = _revert("NoMatchingProposal", "The other party proposed no such split.")
WrongPayment = _revert("WrongPayment", "The ETH sent does not match the amount.")
TokenNotAllowed = _revert("TokenNotAllowed", "The token is not allowed for trades.")
FeeOnTransferToken = _revert("FeeOnTransferToken", "The token delivered less than was sent.")
NothingToWithdraw = _revert("NothingToWithdraw", "Nothing is credited to this account.")
NotFeeRecipient = _revert("NotFeeRecipient", "Only the fee recipient or the owner may do this.")
TransferFailed = _revert("TransferFailed", "A transfer that had to succeed failed.")
ReentrancyGuardReentrantCall = _revert("ReentrancyGuardReentrantCall", "A re-entrant call.")
OwnableUnauthorizedAccount = _revert("OwnableUnauthorizedAccount", "Only the owner may do this.")
OwnableInvalidOwner = _revert("OwnableInvalidOwner", "The new owner is invalid.")
SafeERC20FailedOperation = _revert("SafeERC20FailedOperation", "A token transfer failed.")
# Errors of OpenZeppelin's ERC-20 (the test stablecoin) that a funding call can bubble up.
ERC20InsufficientBalance = _revert("ERC20InsufficientBalance", "Token balance too low.")
ERC20InsufficientAllowance = _revert("ERC20InsufficientAllowance", "Token allowance too low.")
ERC2612ExpiredSignature = _revert("ERC2612ExpiredSignature", "The permit has expired.")
ERC2612InvalidSigner = _revert("ERC2612InvalidSigner", "The permit was signed by someone else.")


def revert_classes() -> dict[str, type[ContractRevert]]:
    """Every custom-error class defined here, by error name."""
    return {
        cls.error_name: cls
        for cls in globals().values()
        if isinstance(cls, type) and issubclass(cls, ContractRevert) and cls is not ContractRevert
    }
