// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable, Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IP2PEscrow} from "./IP2PEscrow.sol";

/**
 * @title P2PEscrow
 * @notice Implementation of {IP2PEscrow}. See the interface for the design and the NatSpec.
 *
 * Storage slot of a lane, keyed by `buyer << 96 | lane << 64` (a trade id without its block):
 *   bits 255..64  first 192 bits of keccak256(abi.encode(tradeId, terms))
 *   bits  63..56  status
 *   bits  55..16  deadline field (uint40): its low 34 bits hold the inspection end or the
 *                 ruling deadline (unix time) while open, the block number in which the trade
 *                 ended once final. While Shipped bits 36..34 hold the extension days the
 *                 buyer asked for and bit 37 whether the seller granted them; while Disputed
 *                 bit 39 records whether the seller had shipped
 *   bits  15..14  split proposer: 0 none, 1 buyer, 2 seller
 *   bits  13..0   proposed buyer share in basis points
 */
contract P2PEscrow is IP2PEscrow, Ownable2Step, ReentrancyGuardTransient {
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
    /// @notice A zero inspection would let a seller ship and release in one block, before the
    /// buyer could ever dispute.
    uint32 public constant MIN_INSPECTION_PERIOD = 1 days;
    uint32 public constant MAX_DELIVERY_WINDOW = 60 days;
    uint8 public constant MAX_EXTENSION_DAYS = 7;
    uint256 public constant MAX_EVIDENCE_URI_BYTES = 512;
    uint64 public constant MAX_SHIPPING_WINDOW = 180 days;
    uint256 public constant MAX_AMOUNT = type(uint128).max;
    /// @notice Gas forwarded with an ETH payout; enough for smart-contract wallets, bounded so a
    /// receiver cannot burn the caller's gas.
    uint256 public constant PAYOUT_GAS = 50_000;

    /// @dev Top bit of the deadline field while Disputed: the seller had shipped. Unix times
    /// stay below 2^39 for the next 17,000 years.
    uint40 private constant SHIPPED_FLAG = uint40(1) << 39;
    uint40 private constant TIME_MASK = (uint40(1) << 34) - 1;
    uint40 private constant EXTENSION_DAYS_MASK = uint40(7) << 34;
    uint40 private constant EXTENSION_GRANTED = uint40(1) << 37;
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

    /// @inheritdoc IP2PEscrow
    function fund(
        address seller,
        address arbitrator,
        address token,
        uint256 amount,
        uint64 shipBy,
        uint32 inspectionPeriod,
        uint32 deliveryWindow,
        uint16 arbitratorFeeBps,
        uint16 maxPlatformFeeBps,
        uint32 lane,
        bytes32 listingRef
    ) external payable nonReentrant returns (uint256 tradeId) {
        uint256 expectedValue = token == address(0) ? amount : 0;
        if (msg.value != expectedValue) revert WrongPayment(msg.value, expectedValue);
        tradeId = _open(
            Terms({
                buyer: msg.sender,
                seller: seller,
                arbitrator: arbitrator,
                token: token,
                amount: amount,
                shipBy: shipBy,
                inspectionPeriod: inspectionPeriod,
                arbitratorFeeBps: arbitratorFeeBps,
                platformFeeBps: maxPlatformFeeBps,
                deliveryWindow: deliveryWindow
            }),
            lane,
            listingRef
        );
        if (token != address(0)) _pullToken(token, amount);
    }

    /// @inheritdoc IP2PEscrow
    function fundWithPermit(
        address seller,
        address arbitrator,
        address token,
        uint256 amount,
        uint64 shipBy,
        uint32 inspectionPeriod,
        uint32 deliveryWindow,
        uint16 arbitratorFeeBps,
        uint16 maxPlatformFeeBps,
        uint32 lane,
        bytes32 listingRef,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external nonReentrant returns (uint256 tradeId) {
        if (token == address(0)) revert TokenNotAllowed(token);
        tradeId = _open(
            Terms({
                buyer: msg.sender,
                seller: seller,
                arbitrator: arbitrator,
                token: token,
                amount: amount,
                shipBy: shipBy,
                inspectionPeriod: inspectionPeriod,
                arbitratorFeeBps: arbitratorFeeBps,
                platformFeeBps: maxPlatformFeeBps,
                deliveryWindow: deliveryWindow
            }),
            lane,
            listingRef
        );
        // A front-runner may have submitted the permit already; then the allowance is there.
        try IERC20Permit(token).permit(msg.sender, address(this), amount, permitDeadline, v, r, s) {} catch {}
        _pullToken(token, amount);
    }

    // ------------------------------------------------------------------ trade actions

    /// @inheritdoc IP2PEscrow
    function markShipped(uint256 tradeId, Terms calldata terms, bytes32 shipmentRef) external {
        uint256 packed = _load(tradeId, terms);
        if (msg.sender != terms.seller) revert NotSeller(msg.sender);
        _requireStatus(tradeId, packed, Status.Funded);
        if (block.timestamp >= terms.shipBy) revert DeadlinePassed(tradeId, uint40(terms.shipBy));
        // The latest possible inspection end: the delivery window runs out, then the buyer inspects.
        uint40 inspectionEndsAt = uint40(block.timestamp + terms.deliveryWindow + terms.inspectionPeriod);
        _setState(tradeId, packed, Status.Shipped, inspectionEndsAt);
        emit TradeShipped(tradeId, shipmentRef, inspectionEndsAt);
    }

    /// @inheritdoc IP2PEscrow
    function markReceived(uint256 tradeId, Terms calldata terms) external {
        uint256 packed = _load(tradeId, terms);
        if (msg.sender != terms.buyer) revert NotBuyer(msg.sender);
        _requireStatus(tradeId, packed, Status.Shipped);
        uint40 field = _field(packed);
        // Inspection starts at receipt or at the delivery window's end, whichever is first: once
        // it has started (window over, or already received) receipt changes nothing.
        uint40 inspectionEndsAt = uint40(block.timestamp + terms.inspectionPeriod);
        if (inspectionEndsAt >= (field & TIME_MASK)) revert InspectionAlreadyStarted(tradeId);
        uint40 updated = (field & ~TIME_MASK) | inspectionEndsAt;
        _lanes[_laneKey(tradeId)] = _withField(packed, updated);
        emit TradeReceived(tradeId, _effectiveEnd(updated));
    }

    /// @inheritdoc IP2PEscrow
    function requestInspectionExtension(uint256 tradeId, Terms calldata terms, uint8 extraDays) external {
        uint256 packed = _load(tradeId, terms);
        if (msg.sender != terms.buyer) revert NotBuyer(msg.sender);
        _requireStatus(tradeId, packed, Status.Shipped);
        uint40 field = _field(packed);
        uint40 endsAt = _effectiveEnd(field);
        if (block.timestamp >= endsAt) revert DeadlinePassed(tradeId, endsAt);
        if (field & EXTENSION_DAYS_MASK != 0) revert ExtensionAlreadyRequested(tradeId);
        if (extraDays == 0 || extraDays > MAX_EXTENSION_DAYS) revert InvalidExtension(extraDays, MAX_EXTENSION_DAYS);
        _lanes[_laneKey(tradeId)] = _withField(packed, field | (uint40(extraDays) << 34));
        emit InspectionExtensionRequested(tradeId, extraDays);
    }

    /// @inheritdoc IP2PEscrow
    function grantInspectionExtension(uint256 tradeId, Terms calldata terms) external {
        uint256 packed = _load(tradeId, terms);
        if (msg.sender != terms.seller) revert NotSeller(msg.sender);
        _requireStatus(tradeId, packed, Status.Shipped);
        uint40 field = _field(packed);
        uint40 endsAt = _effectiveEnd(field);
        if (block.timestamp >= endsAt) revert DeadlinePassed(tradeId, endsAt);
        if (field & EXTENSION_DAYS_MASK == 0 || field & EXTENSION_GRANTED != 0) revert NoExtensionRequested(tradeId);
        uint40 updated = field | EXTENSION_GRANTED;
        _lanes[_laneKey(tradeId)] = _withField(packed, updated);
        emit InspectionExtended(tradeId, uint8((field & EXTENSION_DAYS_MASK) >> 34), _effectiveEnd(updated));
    }

    /// @inheritdoc IP2PEscrow
    function confirmReceipt(uint256 tradeId, Terms calldata terms) external nonReentrant {
        uint256 packed = _load(tradeId, terms);
        if (msg.sender != terms.buyer) revert NotBuyer(msg.sender);
        _requireOpen(tradeId, packed);
        _release(tradeId, terms, packed, true);
    }

    /// @inheritdoc IP2PEscrow
    function releaseAfterInspection(uint256 tradeId, Terms calldata terms) external nonReentrant {
        uint256 packed = _load(tradeId, terms);
        _requireStatus(tradeId, packed, Status.Shipped);
        uint40 deadline = _effectiveEnd(_field(packed));
        if (block.timestamp < deadline) revert DeadlineNotReached(tradeId, deadline);
        _release(tradeId, terms, packed, false);
    }

    /// @inheritdoc IP2PEscrow
    function refundAfterDeadline(uint256 tradeId, Terms calldata terms) external nonReentrant {
        uint256 packed = _load(tradeId, terms);
        _requireStatus(tradeId, packed, Status.Funded);
        if (block.timestamp < terms.shipBy) revert DeadlineNotReached(tradeId, uint40(terms.shipBy));
        _refund(tradeId, terms, packed, true);
    }

    /// @inheritdoc IP2PEscrow
    function refundBySeller(uint256 tradeId, Terms calldata terms) external nonReentrant {
        uint256 packed = _load(tradeId, terms);
        if (msg.sender != terms.seller) revert NotSeller(msg.sender);
        _requireOpen(tradeId, packed);
        _refund(tradeId, terms, packed, false);
    }

    /// @inheritdoc IP2PEscrow
    function proposeSplit(uint256 tradeId, Terms calldata terms, uint16 buyerBps) external onlyParty(terms) {
        uint256 packed = _load(tradeId, terms);
        _requireLive(tradeId, terms, packed);
        if (buyerBps > BPS) revert InvalidBps(buyerBps);
        uint8 proposer = msg.sender == terms.buyer ? PROPOSER_BUYER : PROPOSER_SELLER;
        uint256 proposal = (uint256(proposer) << 14) | buyerBps;
        _lanes[_laneKey(tradeId)] = (packed & ~uint256(0xFFFF)) | proposal;
        emit SplitProposed(tradeId, msg.sender, buyerBps);
    }

    /// @inheritdoc IP2PEscrow
    function acceptSplit(
        uint256 tradeId,
        Terms calldata terms,
        uint16 buyerBps
    ) external nonReentrant onlyParty(terms) {
        uint256 packed = _load(tradeId, terms);
        // An offer lapses with the timeout of the state it was made in (a state change clears it).
        _requireLive(tradeId, terms, packed);
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

    /// @inheritdoc IP2PEscrow
    function cancelSplit(uint256 tradeId, Terms calldata terms) external onlyParty(terms) {
        uint256 packed = _load(tradeId, terms);
        _requireOpen(tradeId, packed);
        uint8 proposer = msg.sender == terms.buyer ? PROPOSER_BUYER : PROPOSER_SELLER;
        if (uint8((packed >> 14) & 0x3) != proposer) revert NoProposalToCancel(tradeId);
        _lanes[_laneKey(tradeId)] = packed & ~uint256(0xFFFF);
        emit SplitCleared(tradeId, true);
    }

    /// @inheritdoc IP2PEscrow
    function openDispute(uint256 tradeId, Terms calldata terms) external onlyParty(terms) {
        uint256 packed = _load(tradeId, terms);
        Status status = _status(packed);
        if (status == Status.Funded) {
            if (block.timestamp >= terms.shipBy) revert DeadlinePassed(tradeId, uint40(terms.shipBy));
        } else if (status == Status.Shipped) {
            uint40 inspectionEndsAt = _effectiveEnd(_field(packed));
            if (block.timestamp >= inspectionEndsAt) revert DeadlinePassed(tradeId, inspectionEndsAt);
        } else {
            revert InvalidStatus(tradeId, status);
        }
        uint40 rulingDeadline = uint40(block.timestamp + _rulingPeriod);
        // Remember whether the seller had shipped: it decides the ruling-timeout fallback.
        uint40 stored = status == Status.Shipped ? rulingDeadline | SHIPPED_FLAG : rulingDeadline;
        _setState(tradeId, packed, Status.Disputed, stored);
        emit DisputeOpened(tradeId, msg.sender, rulingDeadline);
    }

    /// @inheritdoc IP2PEscrow
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
        if (bytes(uri).length > MAX_EVIDENCE_URI_BYTES) revert EvidenceUriTooLong(bytes(uri).length, MAX_EVIDENCE_URI_BYTES);
        emit EvidenceSubmitted(tradeId, msg.sender, uri, contentHash);
    }

    /// @inheritdoc IP2PEscrow
    function rule(uint256 tradeId, Terms calldata terms, uint16 buyerBps) external nonReentrant {
        uint256 packed = _load(tradeId, terms);
        if (msg.sender != terms.arbitrator) revert NotArbitrator(msg.sender);
        // A removed (for example compromised) arbitrator moves no money; the timeout applies.
        if (!_arbitrators[msg.sender].registered) revert ArbitratorNotRegistered(msg.sender);
        _requireStatus(tradeId, packed, Status.Disputed);
        uint40 deadline = _deadline(packed);
        if (block.timestamp >= deadline) revert DeadlinePassed(tradeId, deadline);
        if (buyerBps > BPS) revert InvalidBps(buyerBps);
        _setState(tradeId, packed, Status.Resolved, uint40(block.number));
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

    /// @inheritdoc IP2PEscrow
    function resolveAfterRulingTimeout(uint256 tradeId, Terms calldata terms) external nonReentrant {
        uint256 packed = _load(tradeId, terms);
        _requireStatus(tradeId, packed, Status.Disputed);
        uint40 deadline = _deadline(packed);
        if (block.timestamp < deadline) revert DeadlineNotReached(tradeId, deadline);
        _setState(tradeId, packed, Status.Resolved, uint40(block.number));
        // A seller who never shipped cannot profit from an absent arbitrator: full refund.
        bool shipped = (uint40(packed >> 16) & SHIPPED_FLAG) != 0;
        uint16 buyerBps = shipped ? uint16(BPS / 2) : uint16(BPS);
        (uint256 buyerAmount, uint256 sellerAmount, uint256 feeAmount) = _split(terms, terms.amount, buyerBps);
        emit DisputeResolved(tradeId, true, buyerBps, buyerAmount, sellerAmount, 0, feeAmount);
        _pay(terms.token, terms.buyer, buyerAmount);
        _pay(terms.token, terms.seller, sellerAmount);
    }

    // ------------------------------------------------------------------ money out

    /// @inheritdoc IP2PEscrow
    function withdraw(address token) external nonReentrant {
        _withdraw(token, msg.sender);
    }

    /// @inheritdoc IP2PEscrow
    function withdrawTo(address token, address to) external nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        if (to == address(this)) revert EscrowCannotBeParty();
        _withdraw(token, to);
    }

    /// @inheritdoc IP2PEscrow
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

    /// @inheritdoc IP2PEscrow
    function registerArbitrator(address arbitrator, uint16 maxFeeBps) external onlyOwner {
        if (arbitrator == address(0)) revert ZeroAddress();
        if (arbitrator == address(this)) revert EscrowCannotBeParty();
        if (maxFeeBps > MAX_ARBITRATOR_FEE_BPS) revert ArbitratorFeeTooHigh(maxFeeBps, MAX_ARBITRATOR_FEE_BPS);
        _arbitrators[arbitrator] = ArbitratorInfo({registered: true, maxFeeBps: maxFeeBps});
        emit ArbitratorRegistered(arbitrator, maxFeeBps);
    }

    /// @inheritdoc IP2PEscrow
    function removeArbitrator(address arbitrator) external onlyOwner {
        if (!_arbitrators[arbitrator].registered) revert ArbitratorNotRegistered(arbitrator);
        delete _arbitrators[arbitrator];
        emit ArbitratorRemoved(arbitrator);
    }

    /// @inheritdoc IP2PEscrow
    function setPlatformFee(address recipient, uint16 feeBps) external onlyOwner {
        if (feeBps > MAX_PLATFORM_FEE_BPS) revert PlatformFeeTooHigh(feeBps, MAX_PLATFORM_FEE_BPS);
        if (recipient == address(0) && feeBps != 0) revert ZeroAddress();
        if (recipient == address(this)) revert EscrowCannotBeParty();
        _config.feeRecipient = recipient;
        _config.platformFeeBps = feeBps;
        emit PlatformFeeUpdated(recipient, feeBps);
    }

    /// @inheritdoc IP2PEscrow
    function setTokenAllowed(address token, bool allowed) external onlyOwner {
        if (token == address(0)) revert ZeroAddress();
        _allowedTokens[token] = allowed;
        emit TokenAllowanceUpdated(token, allowed);
    }

    /// @inheritdoc IP2PEscrow
    function setFundingPaused(bool paused) external onlyOwner {
        _config.paused = paused;
        emit FundingPausedSet(paused);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IP2PEscrow
    function tradeState(uint256 tradeId, Terms calldata terms) external view returns (TradeState memory) {
        return _unpack(_load(tradeId, terms));
    }

    /// @inheritdoc IP2PEscrow
    function tradeView(uint256 tradeId, Terms calldata terms) external view returns (TradeView memory view_) {
        uint256 packed = _lanes[_laneKey(tradeId)];
        if (packed == 0) return view_;
        if (bytes24(bytes32(packed)) != _hashTerms(tradeId, terms)) {
            view_.superseded = true;
            return view_;
        }
        Status status = _status(packed);
        view_.status = status;
        uint40 field = _field(packed);
        if (status == Status.Funded || status == Status.Shipped || status == Status.Disputed) {
            uint40 deadline = _liveDeadline(terms, packed);
            view_.deadline = deadline;
            if (status == Status.Shipped) {
                view_.inspectionStarted = block.timestamp + terms.inspectionPeriod >= (field & TIME_MASK);
                view_.extensionDays = uint8((field & EXTENSION_DAYS_MASK) >> 34);
                view_.extensionGranted = field & EXTENSION_GRANTED != 0;
            }
            if (block.timestamp < deadline) {
                view_.splitProposer = Party(uint8((packed >> 14) & 0x3));
                view_.proposedBuyerBps = uint16(packed & 0x3FFF);
            }
        } else {
            view_.endedInBlock = field;
        }
    }

    /// @inheritdoc IP2PEscrow
    function laneState(address buyer, uint32 lane) external view returns (TradeState memory) {
        return _unpack(_lanes[(uint256(uint160(buyer)) << 96) | (uint256(lane) << 64)]);
    }

    /// @inheritdoc IP2PEscrow
    function hashTerms(uint256 tradeId, Terms calldata terms) external pure returns (bytes24) {
        return _hashTerms(tradeId, terms);
    }

    /// @inheritdoc IP2PEscrow
    function credits(address token, address payee) external view returns (uint256) {
        return _credits[token][payee];
    }

    /// @inheritdoc IP2PEscrow
    function accruedPlatformFees(address token) external view returns (uint256) {
        return _platformFees[token];
    }

    /// @inheritdoc IP2PEscrow
    function arbitratorMaxFeeBps(address arbitrator) external view returns (bool registered, uint16 maxFeeBps) {
        ArbitratorInfo memory info = _arbitrators[arbitrator];
        return (info.registered, info.maxFeeBps);
    }

    /// @inheritdoc IP2PEscrow
    function platformFee() external view returns (address recipient, uint16 feeBps) {
        return (_config.feeRecipient, _config.platformFeeBps);
    }

    /// @inheritdoc IP2PEscrow
    function isTokenAllowed(address token) external view returns (bool) {
        return _allowedTokens[token];
    }

    /// @inheritdoc IP2PEscrow
    function rulingPeriod() external view returns (uint32) {
        return _rulingPeriod;
    }

    /// @inheritdoc IP2PEscrow
    function fundingPaused() external view returns (bool) {
        return _config.paused;
    }

    // ------------------------------------------------------------------ internal

    /// @dev Checks the terms the buyer sent (`terms.platformFeeBps` is the highest fee it
    /// accepts), fixes the fee in force into them and records the trade.
    function _open(Terms memory terms, uint32 lane, bytes32 listingRef) private returns (uint256 tradeId) {
        if (terms.amount == 0) revert ZeroAmount();
        if (terms.amount > MAX_AMOUNT) revert AmountTooLarge(terms.amount, MAX_AMOUNT);
        if (terms.seller == address(0) || terms.arbitrator == address(0)) revert ZeroAddress();
        if (terms.seller == address(this) || terms.arbitrator == address(this)) revert EscrowCannotBeParty();
        if (terms.seller == msg.sender) revert SellerIsBuyer(terms.seller);
        if (terms.arbitrator == msg.sender || terms.arbitrator == terms.seller) revert ArbitratorIsParty(terms.arbitrator);
        if (terms.token != address(0) && !_allowedTokens[terms.token]) revert TokenNotAllowed(terms.token);
        if (terms.shipBy <= block.timestamp) revert DeadlineInPast(terms.shipBy, block.timestamp);
        if (terms.shipBy > block.timestamp + MAX_SHIPPING_WINDOW) {
            revert DeadlineTooFar(terms.shipBy, block.timestamp + MAX_SHIPPING_WINDOW);
        }
        if (terms.inspectionPeriod > MAX_INSPECTION_PERIOD) {
            revert InspectionPeriodTooLong(terms.inspectionPeriod, MAX_INSPECTION_PERIOD);
        }
        if (terms.inspectionPeriod < MIN_INSPECTION_PERIOD) {
            revert InspectionPeriodTooShort(terms.inspectionPeriod, MIN_INSPECTION_PERIOD);
        }
        if (terms.deliveryWindow > MAX_DELIVERY_WINDOW) {
            revert DeliveryWindowTooLong(terms.deliveryWindow, MAX_DELIVERY_WINDOW);
        }
        ArbitratorInfo memory info = _arbitrators[terms.arbitrator];
        if (!info.registered) revert ArbitratorNotRegistered(terms.arbitrator);
        if (terms.arbitratorFeeBps > info.maxFeeBps) revert ArbitratorFeeTooHigh(terms.arbitratorFeeBps, info.maxFeeBps);

        Config memory config = _config;
        if (config.paused) revert FundingPaused();
        if (config.platformFeeBps > terms.platformFeeBps) {
            revert PlatformFeeAboveLimit(config.platformFeeBps, terms.platformFeeBps);
        }
        terms.platformFeeBps = config.platformFeeBps;
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
        bytes24 termsHash;
        assembly ("memory-safe") {
            // abi.encode(tradeId, terms): the id, then the static struct's 10 words as they lie
            // in memory
            let ptr := mload(0x40)
            mstore(ptr, tradeId)
            mcopy(add(ptr, 0x20), terms, 0x140)
            termsHash := and(keccak256(ptr, 0x160), not(0xffffffffffffffff))
        }
        _lanes[laneKey] = uint256(bytes32(termsHash)) | (uint256(uint8(Status.Funded)) << 56);
        emit TradeFunded(tradeId, msg.sender, terms.seller, terms, listingRef);
    }

    /// @dev Pulls `amount` of `token` from the buyer and rejects tokens that take a fee on transfer.
    function _pullToken(address token, uint256 amount) private {
        uint256 balanceBefore = IERC20(token).balanceOf(address(this));
        IERC20(token).safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = IERC20(token).balanceOf(address(this)) - balanceBefore;
        if (received != amount) revert FeeOnTransferToken(token, amount, received);
    }

    function _release(uint256 tradeId, Terms calldata terms, uint256 packed, bool byBuyer) private {
        _setState(tradeId, packed, Status.Released, uint40(block.number));
        uint256 feeAmount = (terms.amount * terms.platformFeeBps) / BPS;
        if (feeAmount != 0) _platformFees[terms.token] += feeAmount;
        uint256 sellerAmount = terms.amount - feeAmount;
        emit TradeReleased(tradeId, byBuyer, sellerAmount, feeAmount);
        _pay(terms.token, terms.seller, sellerAmount);
    }

    function _refund(uint256 tradeId, Terms calldata terms, uint256 packed, bool afterDeadline) private {
        _setState(tradeId, packed, Status.Refunded, uint40(block.number));
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
    /// so one failing receiver never blocks the others. For a token, what counts is what left
    /// the escrow's balance, whatever the token returns: a token that moves the tokens but
    /// returns false must not have the payee paid twice.
    function _pay(address token, address to, uint256 amount) private {
        if (amount == 0) return;
        uint256 unpaid;
        if (token == address(0)) {
            bool ok;
            uint256 gasForPayout = PAYOUT_GAS;
            assembly ("memory-safe") {
                // No return data is copied, so a receiver cannot grief with a huge return.
                ok := call(gasForPayout, to, amount, 0, 0, 0, 0)
            }
            if (!ok) unpaid = amount;
        } else {
            unpaid = amount;
            (bool known, uint256 balanceBefore) = _balanceOf(token);
            if (known) {
                IERC20(token).trySafeTransfer(to, amount);
                (bool stillKnown, uint256 balanceAfter) = _balanceOf(token);
                if (stillKnown && balanceAfter <= balanceBefore) {
                    uint256 sent = balanceBefore - balanceAfter;
                    unpaid = sent >= amount ? 0 : amount - sent;
                }
            }
        }
        if (unpaid != 0) {
            _credits[token][to] += unpaid;
            emit PaymentDeferred(token, to, unpaid);
        }
    }

    /// @dev The escrow's balance of `token`, or (false, 0) if the token does not answer.
    function _balanceOf(address token) private view returns (bool, uint256) {
        try IERC20(token).balanceOf(address(this)) returns (uint256 balance) {
            return (true, balance);
        } catch {
            return (false, 0);
        }
    }

    function _withdraw(address token, address to) private {
        uint256 amount = _credits[token][msg.sender];
        if (amount == 0) revert NothingToWithdraw(token, msg.sender);
        _credits[token][msg.sender] = 0;
        emit Withdrawn(token, msg.sender, amount, to);
        _transferOut(token, to, amount);
    }

    /// @dev Transfers that must succeed (withdrawals): the caller asked for them. A token must
    /// move exactly `amount` out of the escrow, or the whole withdrawal reverts.
    function _transferOut(address token, address to, uint256 amount) private {
        if (token == address(0)) {
            (bool ok, ) = to.call{value: amount}("");
            if (!ok) revert TransferFailed(token, to, amount);
        } else {
            uint256 balanceBefore = IERC20(token).balanceOf(address(this));
            IERC20(token).safeTransfer(to, amount);
            uint256 balanceAfter = IERC20(token).balanceOf(address(this));
            if (balanceAfter > balanceBefore || balanceBefore - balanceAfter != amount) {
                revert TransferFailed(token, to, amount);
            }
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
                deadline: _status(packed) == Status.Shipped ? _effectiveEnd(_field(packed)) : _deadline(packed),
                splitProposer: Party(uint8((packed >> 14) & 0x3)),
                proposedBuyerBps: uint16(packed & 0x3FFF)
            });
    }

    function _requireStatus(uint256 tradeId, uint256 packed, Status expected) private pure {
        Status status = _status(packed);
        if (status != expected) revert InvalidStatus(tradeId, status);
    }

    /// @dev Open, and the timeout of its state has not passed: a party can still act.
    function _requireLive(uint256 tradeId, Terms calldata terms, uint256 packed) private view {
        _requireOpen(tradeId, packed);
        uint40 deadline = _liveDeadline(terms, packed);
        if (block.timestamp >= deadline) revert DeadlinePassed(tradeId, deadline);
    }

    /// @dev The timeout of an open trade's state: ship-by, inspection end or ruling deadline.
    function _liveDeadline(Terms calldata terms, uint256 packed) private pure returns (uint40) {
        Status status = _status(packed);
        if (status == Status.Funded) return uint40(terms.shipBy);
        if (status == Status.Shipped) return _effectiveEnd(_field(packed));
        return _deadline(packed);
    }

    /// @dev Open means money is still in escrow for this trade.
    function _requireOpen(uint256 tradeId, uint256 packed) private pure {
        Status status = _status(packed);
        if (status != Status.Funded && status != Status.Shipped && status != Status.Disputed) {
            revert InvalidStatus(tradeId, status);
        }
    }

    /// @dev Moves a trade to another state; an open split proposal is dropped, with an event.
    function _setState(uint256 tradeId, uint256 packed, Status status, uint40 field) private {
        if (packed & 0xFFFF != 0) emit SplitCleared(tradeId, false);
        _lanes[_laneKey(tradeId)] = _pack(packed, status, field);
    }

    /// @dev Replaces the deadline field, keeping status and split proposal.
    function _withField(uint256 packed, uint40 field) private pure returns (uint256) {
        return (packed & ~(uint256(type(uint40).max) << 16)) | (uint256(field) << 16);
    }

    function _field(uint256 packed) private pure returns (uint40) {
        return uint40(packed >> 16);
    }

    /// @dev Inspection end while Shipped: the stored time plus a granted extension.
    function _effectiveEnd(uint40 field) private pure returns (uint40 endsAt) {
        endsAt = field & TIME_MASK;
        if (field & EXTENSION_GRANTED != 0) endsAt += ((field & EXTENSION_DAYS_MASK) >> 34) * 1 days;
    }

    /// @dev Keeps the terms hash; sets status and deadline; clears any split proposal.
    function _pack(uint256 packed, Status status, uint40 deadline) private pure returns (uint256) {
        return (packed & ~uint256(type(uint64).max)) | (uint256(uint8(status)) << 56) | (uint256(deadline) << 16);
    }

    function _status(uint256 packed) private pure returns (Status) {
        return Status(uint8(packed >> 56));
    }

    /// @dev The stored time: ruling deadline while Disputed, ended-in block once final.
    function _deadline(uint256 packed) private pure returns (uint40) {
        return uint40(packed >> 16) & TIME_MASK;
    }

    /// @dev keccak256(abi.encode(tradeId, terms)) straight from calldata: a static struct's
    /// calldata is its ABI encoding. Bytes that are not a clean encoding (dirty high bits) hash
    /// to something else and fail the comparison with the stored commitment, so every field
    /// read after {_load} is clean. Saves the field-by-field copy and checks of abi.encode.
    function _hashTerms(uint256 tradeId, Terms calldata terms) private pure returns (bytes24 termsHash) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, tradeId)
            calldatacopy(add(ptr, 0x20), terms, 0x140)
            termsHash := and(keccak256(ptr, 0x160), not(0xffffffffffffffff))
        }
    }
}
