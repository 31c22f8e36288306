// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IP2PEscrowV1} from "./IP2PEscrowV1.sol";

/**
 * @title P2PEscrowV1
 * @notice Version 1 of the escrow, kept so that deployments of it can be verified and followed; implementation of {IP2PEscrowV1}. See the interface for the design and the NatSpec.
 *
 * Storage slot of a lane, keyed by `buyer << 96 | lane << 64` (a trade id without its block):
 *   bits 255..64  first 192 bits of keccak256(abi.encode(tradeId, terms))
 *   bits  63..56  status
 *   bits  55..16  deadline (uint40): inspection end or ruling deadline (unix time) while open,
 *                 the block number in which the trade ended once final; while Disputed its
 *                 top bit records whether the seller had shipped
 *   bits  15..14  split proposer: 0 none, 1 buyer, 2 seller
 *   bits  13..0   proposed buyer share in basis points
 */
contract P2PEscrowV1 is IP2PEscrowV1, Ownable2Step, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    struct Config {
        address feeRecipient;
        uint16 platformFeeBps;
        bool paused;
    }

    struct ArbitratorInfo {
        bool registered;
        uint16 maxFeeBps;
    }

    uint256 private constant BPS = 10_000;
    uint16 public constant MAX_PLATFORM_FEE_BPS = 1_000;
    uint16 public constant MAX_ARBITRATOR_FEE_BPS = 2_000;
    uint32 public constant MAX_INSPECTION_PERIOD = 60 days;
    uint64 public constant MAX_SHIPPING_WINDOW = 180 days;
    uint256 public constant MAX_AMOUNT = type(uint128).max;
    /// @notice Gas forwarded with an ETH payout; enough for smart-contract wallets, bounded so a
    /// receiver cannot burn the caller's gas.
    uint256 public constant PAYOUT_GAS = 50_000;

    /// @dev Top bit of the deadline field while Disputed: the seller had shipped. Unix times
    /// stay below 2^39 for the next 17,000 years.
    uint40 private constant SHIPPED_FLAG = uint40(1) << 39;
    uint8 private constant PROPOSER_BUYER = uint8(Party.Buyer);
    uint8 private constant PROPOSER_SELLER = uint8(Party.Seller);

    uint32 private immutable _rulingPeriod;

    Config private _config;
    mapping(uint256 laneKey => uint256 packed) private _lanes;
    mapping(address arbitrator => ArbitratorInfo) private _arbitrators;
    mapping(address token => bool) private _allowedTokens;
    mapping(address token => mapping(address payee => uint256)) private _credits;
    mapping(address token => uint256) private _platformFees;

    modifier onlyParty(Terms calldata terms) {
        if (msg.sender != terms.buyer && msg.sender != terms.seller) revert NotParty(msg.sender);
        _;
    }

    /**
     * @param initialOwner registers arbitrators, sets the platform fee and allowed tokens
     * @param rulingPeriod_ seconds an arbitrator has to rule once a dispute is opened
     */
    constructor(address initialOwner, uint32 rulingPeriod_) Ownable(initialOwner) {
        if (rulingPeriod_ == 0) revert ZeroAmount();
        _rulingPeriod = rulingPeriod_;
    }

    // ------------------------------------------------------------------ funding

    /// @inheritdoc IP2PEscrowV1
    function fund(
        address seller,
        address arbitrator,
        address token,
        uint256 amount,
        uint64 shipBy,
        uint32 inspectionPeriod,
        uint16 arbitratorFeeBps,
        uint32 lane,
        bytes32 listingRef
    ) external payable nonReentrant returns (uint256 tradeId) {
        uint256 expectedValue = token == address(0) ? amount : 0;
        if (msg.value != expectedValue) revert WrongPayment(msg.value, expectedValue);
        tradeId = _open(seller, arbitrator, token, amount, shipBy, inspectionPeriod, arbitratorFeeBps, lane, listingRef);
        if (token != address(0)) _pullToken(token, amount);
    }

    /// @inheritdoc IP2PEscrowV1
    function fundWithPermit(
        address seller,
        address arbitrator,
        address token,
        uint256 amount,
        uint64 shipBy,
        uint32 inspectionPeriod,
        uint16 arbitratorFeeBps,
        uint32 lane,
        bytes32 listingRef,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (uint256 tradeId) {
        if (token == address(0)) revert TokenNotAllowed(token);
        tradeId = _open(seller, arbitrator, token, amount, shipBy, inspectionPeriod, arbitratorFeeBps, lane, listingRef);
        // A front-runner may have submitted the permit already; then the allowance is there.
        try IERC20Permit(token).permit(msg.sender, address(this), amount, permitDeadline, v, r, s) {} catch {}
        _pullToken(token, amount);
    }

    // ------------------------------------------------------------------ trade actions

    /// @inheritdoc IP2PEscrowV1
    function markShipped(uint256 tradeId, Terms calldata terms, bytes32 shipmentRef) external {
        uint256 packed = _load(tradeId, terms);
        if (msg.sender != terms.seller) revert NotSeller(msg.sender);
        _requireStatus(tradeId, packed, Status.Funded);
        if (block.timestamp >= terms.shipBy) revert DeadlinePassed(tradeId, uint40(terms.shipBy));
        uint40 inspectionEndsAt = uint40(block.timestamp + terms.inspectionPeriod);
        _lanes[_laneKey(tradeId)] = _pack(packed, Status.Shipped, inspectionEndsAt);
        emit TradeShipped(tradeId, shipmentRef, inspectionEndsAt);
    }

    /// @inheritdoc IP2PEscrowV1
    function confirmReceipt(uint256 tradeId, Terms calldata terms) external nonReentrant {
        uint256 packed = _load(tradeId, terms);
        if (msg.sender != terms.buyer) revert NotBuyer(msg.sender);
        _requireOpen(tradeId, packed);
        _release(tradeId, terms, packed, true);
    }

    /// @inheritdoc IP2PEscrowV1
    function releaseAfterInspection(uint256 tradeId, Terms calldata terms) external nonReentrant {
        uint256 packed = _load(tradeId, terms);
        _requireStatus(tradeId, packed, Status.Shipped);
        uint40 deadline = _deadline(packed);
        if (block.timestamp < deadline) revert DeadlineNotReached(tradeId, deadline);
        _release(tradeId, terms, packed, false);
    }

    /// @inheritdoc IP2PEscrowV1
    function refundAfterDeadline(uint256 tradeId, Terms calldata terms) external nonReentrant {
        uint256 packed = _load(tradeId, terms);
        _requireStatus(tradeId, packed, Status.Funded);
        if (block.timestamp < terms.shipBy) revert DeadlineNotReached(tradeId, uint40(terms.shipBy));
        _refund(tradeId, terms, packed, true);
    }

    /// @inheritdoc IP2PEscrowV1
    function refundBySeller(uint256 tradeId, Terms calldata terms) external nonReentrant {
        uint256 packed = _load(tradeId, terms);
        if (msg.sender != terms.seller) revert NotSeller(msg.sender);
        _requireOpen(tradeId, packed);
        _refund(tradeId, terms, packed, false);
    }

    /// @inheritdoc IP2PEscrowV1
    function proposeSplit(uint256 tradeId, Terms calldata terms, uint16 buyerBps) external onlyParty(terms) {
        uint256 packed = _load(tradeId, terms);
        _requireOpen(tradeId, packed);
        if (buyerBps > BPS) revert InvalidBps(buyerBps);
        uint8 proposer = msg.sender == terms.buyer ? PROPOSER_BUYER : PROPOSER_SELLER;
        uint256 proposal = (uint256(proposer) << 14) | buyerBps;
        _lanes[_laneKey(tradeId)] = (packed & ~uint256(0xFFFF)) | proposal;
        emit SplitProposed(tradeId, msg.sender, buyerBps);
    }

    /// @inheritdoc IP2PEscrowV1
    function acceptSplit(
        uint256 tradeId,
        Terms calldata terms,
        uint16 buyerBps
    ) external nonReentrant onlyParty(terms) {
        uint256 packed = _load(tradeId, terms);
        _requireOpen(tradeId, packed);
        uint8 counterparty = msg.sender == terms.buyer ? PROPOSER_SELLER : PROPOSER_BUYER;
        if (uint8((packed >> 14) & 0x3) != counterparty || uint16(packed & 0x3FFF) != buyerBps) {
            revert NoMatchingProposal(tradeId, buyerBps);
        }
        _lanes[_laneKey(tradeId)] = _pack(packed, Status.Settled, uint40(block.number));
        (uint256 buyerAmount, uint256 sellerAmount, uint256 feeAmount) = _split(terms, terms.amount, buyerBps);
        emit TradeSettled(tradeId, buyerBps, buyerAmount, sellerAmount, feeAmount);
        _pay(terms.token, terms.buyer, buyerAmount);
        _pay(terms.token, terms.seller, sellerAmount);
    }

    /// @inheritdoc IP2PEscrowV1
    function openDispute(uint256 tradeId, Terms calldata terms) external onlyParty(terms) {
        uint256 packed = _load(tradeId, terms);
        Status status = _status(packed);
        if (status == Status.Funded) {
            if (block.timestamp >= terms.shipBy) revert DeadlinePassed(tradeId, uint40(terms.shipBy));
        } else if (status == Status.Shipped) {
            uint40 inspectionEndsAt = _deadline(packed);
            if (block.timestamp >= inspectionEndsAt) revert DeadlinePassed(tradeId, inspectionEndsAt);
        } else {
            revert InvalidStatus(tradeId, status);
        }
        uint40 rulingDeadline = uint40(block.timestamp + _rulingPeriod);
        // Remember whether the seller had shipped: it decides the ruling-timeout fallback.
        uint40 stored = status == Status.Shipped ? rulingDeadline | SHIPPED_FLAG : rulingDeadline;
        _lanes[_laneKey(tradeId)] = _pack(packed, Status.Disputed, stored);
        emit DisputeOpened(tradeId, msg.sender, rulingDeadline);
    }

    /// @inheritdoc IP2PEscrowV1
    function submitEvidence(
        uint256 tradeId,
        Terms calldata terms,
        string calldata uri,
        bytes32 contentHash
    ) external {
        uint256 packed = _load(tradeId, terms);
        if (msg.sender != terms.buyer && msg.sender != terms.seller && msg.sender != terms.arbitrator) {
            revert NotPartyOrArbitrator(msg.sender);
        }
        _requireOpen(tradeId, packed);
        emit EvidenceSubmitted(tradeId, msg.sender, uri, contentHash);
    }

    /// @inheritdoc IP2PEscrowV1
    function rule(uint256 tradeId, Terms calldata terms, uint16 buyerBps) external nonReentrant {
        uint256 packed = _load(tradeId, terms);
        if (msg.sender != terms.arbitrator) revert NotArbitrator(msg.sender);
        _requireStatus(tradeId, packed, Status.Disputed);
        uint40 deadline = _deadline(packed);
        if (block.timestamp >= deadline) revert DeadlinePassed(tradeId, deadline);
        if (buyerBps > BPS) revert InvalidBps(buyerBps);
        _lanes[_laneKey(tradeId)] = _pack(packed, Status.Resolved, uint40(block.number));
        uint256 arbitratorFee = (terms.amount * terms.arbitratorFeeBps) / BPS;
        (uint256 buyerAmount, uint256 sellerAmount, uint256 feeAmount) = _split(
            terms,
            terms.amount - arbitratorFee,
            buyerBps
        );
        emit DisputeResolved(tradeId, false, buyerBps, buyerAmount, sellerAmount, arbitratorFee, feeAmount);
        _pay(terms.token, terms.buyer, buyerAmount);
        _pay(terms.token, terms.seller, sellerAmount);
        _pay(terms.token, terms.arbitrator, arbitratorFee);
    }

    /// @inheritdoc IP2PEscrowV1
    function resolveAfterRulingTimeout(uint256 tradeId, Terms calldata terms) external nonReentrant {
        uint256 packed = _load(tradeId, terms);
        _requireStatus(tradeId, packed, Status.Disputed);
        uint40 deadline = _deadline(packed);
        if (block.timestamp < deadline) revert DeadlineNotReached(tradeId, deadline);
        _lanes[_laneKey(tradeId)] = _pack(packed, Status.Resolved, uint40(block.number));
        // A seller who never shipped cannot profit from an absent arbitrator: full refund.
        bool shipped = (uint40(packed >> 16) & SHIPPED_FLAG) != 0;
        uint16 buyerBps = shipped ? uint16(BPS / 2) : uint16(BPS);
        (uint256 buyerAmount, uint256 sellerAmount, uint256 feeAmount) = _split(terms, terms.amount, buyerBps);
        emit DisputeResolved(tradeId, true, buyerBps, buyerAmount, sellerAmount, 0, feeAmount);
        _pay(terms.token, terms.buyer, buyerAmount);
        _pay(terms.token, terms.seller, sellerAmount);
    }

    // ------------------------------------------------------------------ money out

    /// @inheritdoc IP2PEscrowV1
    function withdraw(address token) external nonReentrant {
        uint256 amount = _credits[token][msg.sender];
        if (amount == 0) revert NothingToWithdraw(token, msg.sender);
        _credits[token][msg.sender] = 0;
        emit Withdrawn(token, msg.sender, amount);
        _transferOut(token, msg.sender, amount);
    }

    /// @inheritdoc IP2PEscrowV1
    function withdrawPlatformFees(address token) external nonReentrant {
        address recipient = _config.feeRecipient;
        if (msg.sender != recipient && msg.sender != owner()) revert NotFeeRecipient(msg.sender);
        if (recipient == address(0)) revert ZeroAddress();
        uint256 amount = _platformFees[token];
        if (amount == 0) revert NothingToWithdraw(token, recipient);
        _platformFees[token] = 0;
        emit PlatformFeesWithdrawn(token, recipient, amount);
        _transferOut(token, recipient, amount);
    }

    // ------------------------------------------------------------------ owner

    /// @inheritdoc IP2PEscrowV1
    function registerArbitrator(address arbitrator, uint16 maxFeeBps) external onlyOwner {
        if (arbitrator == address(0)) revert ZeroAddress();
        if (arbitrator == address(this)) revert EscrowCannotBeParty();
        if (maxFeeBps > MAX_ARBITRATOR_FEE_BPS) revert ArbitratorFeeTooHigh(maxFeeBps, MAX_ARBITRATOR_FEE_BPS);
        _arbitrators[arbitrator] = ArbitratorInfo({registered: true, maxFeeBps: maxFeeBps});
        emit ArbitratorRegistered(arbitrator, maxFeeBps);
    }

    /// @inheritdoc IP2PEscrowV1
    function removeArbitrator(address arbitrator) external onlyOwner {
        if (!_arbitrators[arbitrator].registered) revert ArbitratorNotRegistered(arbitrator);
        delete _arbitrators[arbitrator];
        emit ArbitratorRemoved(arbitrator);
    }

    /// @inheritdoc IP2PEscrowV1
    function setPlatformFee(address recipient, uint16 feeBps) external onlyOwner {
        if (feeBps > MAX_PLATFORM_FEE_BPS) revert PlatformFeeTooHigh(feeBps, MAX_PLATFORM_FEE_BPS);
        if (recipient == address(0) && feeBps != 0) revert ZeroAddress();
        if (recipient == address(this)) revert EscrowCannotBeParty();
        _config.feeRecipient = recipient;
        _config.platformFeeBps = feeBps;
        emit PlatformFeeUpdated(recipient, feeBps);
    }

    /// @inheritdoc IP2PEscrowV1
    function setTokenAllowed(address token, bool allowed) external onlyOwner {
        if (token == address(0)) revert ZeroAddress();
        _allowedTokens[token] = allowed;
        emit TokenAllowanceUpdated(token, allowed);
    }

    /// @inheritdoc IP2PEscrowV1
    function setFundingPaused(bool paused) external onlyOwner {
        _config.paused = paused;
        emit FundingPausedSet(paused);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IP2PEscrowV1
    function tradeState(uint256 tradeId, Terms calldata terms) external view returns (TradeState memory) {
        return _unpack(_load(tradeId, terms));
    }

    /// @inheritdoc IP2PEscrowV1
    function laneState(address buyer, uint32 lane) external view returns (TradeState memory) {
        return _unpack(_lanes[(uint256(uint160(buyer)) << 96) | (uint256(lane) << 64)]);
    }

    /// @inheritdoc IP2PEscrowV1
    function hashTerms(uint256 tradeId, Terms calldata terms) external pure returns (bytes24) {
        return _hashTerms(tradeId, terms);
    }

    /// @inheritdoc IP2PEscrowV1
    function credits(address token, address payee) external view returns (uint256) {
        return _credits[token][payee];
    }

    /// @inheritdoc IP2PEscrowV1
    function accruedPlatformFees(address token) external view returns (uint256) {
        return _platformFees[token];
    }

    /// @inheritdoc IP2PEscrowV1
    function arbitratorMaxFeeBps(address arbitrator) external view returns (bool registered, uint16 maxFeeBps) {
        ArbitratorInfo memory info = _arbitrators[arbitrator];
        return (info.registered, info.maxFeeBps);
    }

    /// @inheritdoc IP2PEscrowV1
    function platformFee() external view returns (address recipient, uint16 feeBps) {
        return (_config.feeRecipient, _config.platformFeeBps);
    }

    /// @inheritdoc IP2PEscrowV1
    function isTokenAllowed(address token) external view returns (bool) {
        return _allowedTokens[token];
    }

    /// @inheritdoc IP2PEscrowV1
    function rulingPeriod() external view returns (uint32) {
        return _rulingPeriod;
    }

    /// @inheritdoc IP2PEscrowV1
    function fundingPaused() external view returns (bool) {
        return _config.paused;
    }

    // ------------------------------------------------------------------ internal

    function _open(
        address seller,
        address arbitrator,
        address token,
        uint256 amount,
        uint64 shipBy,
        uint32 inspectionPeriod,
        uint16 arbitratorFeeBps,
        uint32 lane,
        bytes32 listingRef
    ) private returns (uint256 tradeId) {
        if (amount == 0) revert ZeroAmount();
        if (amount > MAX_AMOUNT) revert AmountTooLarge(amount, MAX_AMOUNT);
        if (seller == address(0) || arbitrator == address(0)) revert ZeroAddress();
        if (seller == address(this) || arbitrator == address(this)) revert EscrowCannotBeParty();
        if (seller == msg.sender) revert SellerIsBuyer(seller);
        if (arbitrator == msg.sender || arbitrator == seller) revert ArbitratorIsParty(arbitrator);
        if (token != address(0) && !_allowedTokens[token]) revert TokenNotAllowed(token);
        if (shipBy <= block.timestamp) revert DeadlineInPast(shipBy, block.timestamp);
        if (shipBy > block.timestamp + MAX_SHIPPING_WINDOW) {
            revert DeadlineTooFar(shipBy, block.timestamp + MAX_SHIPPING_WINDOW);
        }
        if (inspectionPeriod > MAX_INSPECTION_PERIOD) {
            revert InspectionPeriodTooLong(inspectionPeriod, MAX_INSPECTION_PERIOD);
        }
        ArbitratorInfo memory info = _arbitrators[arbitrator];
        if (!info.registered) revert ArbitratorNotRegistered(arbitrator);
        if (arbitratorFeeBps > info.maxFeeBps) revert ArbitratorFeeTooHigh(arbitratorFeeBps, info.maxFeeBps);

        Config memory config = _config;
        if (config.paused) revert FundingPaused();
        uint256 laneKey = (uint256(uint160(msg.sender)) << 96) | (uint256(lane) << 64);
        uint256 previous = _lanes[laneKey];
        if (previous != 0) {
            // Reusable once the lane's trade is final, from the block after it ended.
            Status previousStatus = _status(previous);
            if (previousStatus == Status.Funded || previousStatus == Status.Shipped ||
                previousStatus == Status.Disputed || _deadline(previous) >= block.number) {
                revert LaneBusy(msg.sender, lane);
            }
        }
        tradeId = laneKey | block.number;

        Terms memory terms = Terms({
            buyer: msg.sender,
            seller: seller,
            arbitrator: arbitrator,
            token: token,
            amount: amount,
            shipBy: shipBy,
            inspectionPeriod: inspectionPeriod,
            arbitratorFeeBps: arbitratorFeeBps,
            platformFeeBps: config.platformFeeBps
        });
        bytes24 termsHash = bytes24(keccak256(abi.encode(tradeId, terms)));
        _lanes[laneKey] = uint256(bytes32(termsHash)) | (uint256(uint8(Status.Funded)) << 56);
        emit TradeFunded(tradeId, msg.sender, seller, terms, listingRef);
    }

    /// @dev Pulls `amount` of `token` from the buyer and rejects tokens that take a fee on transfer.
    function _pullToken(address token, uint256 amount) private {
        uint256 balanceBefore = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = IERC20(token).balanceOf(address(this)) - balanceBefore;
        if (received != amount) revert FeeOnTransferToken(token, amount, received);
    }

    function _release(uint256 tradeId, Terms calldata terms, uint256 packed, bool byBuyer) private {
        _lanes[_laneKey(tradeId)] = _pack(packed, Status.Released, uint40(block.number));
        uint256 feeAmount = (terms.amount * terms.platformFeeBps) / BPS;
        if (feeAmount != 0) _platformFees[terms.token] += feeAmount;
        uint256 sellerAmount = terms.amount - feeAmount;
        emit TradeReleased(tradeId, byBuyer, sellerAmount, feeAmount);
        _pay(terms.token, terms.seller, sellerAmount);
    }

    function _refund(uint256 tradeId, Terms calldata terms, uint256 packed, bool afterDeadline) private {
        _lanes[_laneKey(tradeId)] = _pack(packed, Status.Refunded, uint40(block.number));
        emit TradeRefunded(tradeId, afterDeadline, terms.amount);
        _pay(terms.token, terms.buyer, terms.amount);
    }

    /// @dev Splits `pot` by the buyer's share; the platform fee comes out of the seller's part
    /// and is accrued here. The three results always add up to `pot`.
    function _split(
        Terms calldata terms,
        uint256 pot,
        uint16 buyerBps
    ) private returns (uint256 buyerAmount, uint256 sellerAmount, uint256 feeAmount) {
        buyerAmount = (pot * buyerBps) / BPS;
        uint256 sellerGross = pot - buyerAmount;
        feeAmount = (sellerGross * terms.platformFeeBps) / BPS;
        if (feeAmount != 0) _platformFees[terms.token] += feeAmount;
        sellerAmount = sellerGross - feeAmount;
    }

    /// @dev Pushes a payout; if the receiver cannot take it, credits it for {withdraw} instead,
    /// so one failing receiver never blocks the others.
    function _pay(address token, address to, uint256 amount) private {
        if (amount == 0) return;
        bool ok;
        if (token == address(0)) {
            uint256 gasForPayout = PAYOUT_GAS;
            assembly ("memory-safe") {
                // No return data is copied, so a receiver cannot grief with a huge return.
                ok := call(gasForPayout, to, amount, 0, 0, 0, 0)
            }
        } else {
            ok = IERC20(token).trySafeTransfer(to, amount);
        }
        if (!ok) {
            _credits[token][to] += amount;
            emit PaymentDeferred(token, to, amount);
        }
    }

    /// @dev Transfers that must succeed (withdrawals): the caller asked for them.
    function _transferOut(address token, address to, uint256 amount) private {
        if (token == address(0)) {
            (bool ok, ) = to.call{value: amount}("");
            if (!ok) revert TransferFailed(token, to, amount);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }

    function _load(uint256 tradeId, Terms calldata terms) private view returns (uint256 packed) {
        packed = _lanes[_laneKey(tradeId)];
        if (packed == 0) revert UnknownTrade(tradeId);
        if (bytes24(bytes32(packed)) != _hashTerms(tradeId, terms)) revert TermsMismatch(tradeId);
    }

    function _laneKey(uint256 tradeId) private pure returns (uint256) {
        return tradeId & ~uint256(type(uint64).max);
    }

    function _unpack(uint256 packed) private pure returns (TradeState memory) {
        return
            TradeState({
                termsHash: bytes24(bytes32(packed)),
                status: _status(packed),
                deadline: _deadline(packed),
                splitProposer: Party(uint8((packed >> 14) & 0x3)),
                proposedBuyerBps: uint16(packed & 0x3FFF)
            });
    }

    function _requireStatus(uint256 tradeId, uint256 packed, Status expected) private pure {
        Status status = _status(packed);
        if (status != expected) revert InvalidStatus(tradeId, status);
    }

    /// @dev Open means money is still in escrow for this trade.
    function _requireOpen(uint256 tradeId, uint256 packed) private pure {
        Status status = _status(packed);
        if (status != Status.Funded && status != Status.Shipped && status != Status.Disputed) {
            revert InvalidStatus(tradeId, status);
        }
    }

    /// @dev Keeps the terms hash; sets status and deadline; clears any split proposal.
    function _pack(uint256 packed, Status status, uint40 deadline) private pure returns (uint256) {
        return (packed & ~uint256(type(uint64).max)) | (uint256(uint8(status)) << 56) | (uint256(deadline) << 16);
    }

    function _status(uint256 packed) private pure returns (Status) {
        return Status(uint8(packed >> 56));
    }

    function _deadline(uint256 packed) private pure returns (uint40) {
        return uint40(packed >> 16) & ~SHIPPED_FLAG;
    }

    function _hashTerms(uint256 tradeId, Terms calldata terms) private pure returns (bytes24) {
        return bytes24(keccak256(abi.encode(tradeId, terms)));
    }
}
