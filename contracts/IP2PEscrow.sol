// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title IP2PEscrow
 * @notice Escrow for person-to-person trades. One contract holds many trades, in ETH or in
 * ERC-20 tokens that the owner allows. The buyer's money stays in the contract until the
 * buyer confirms delivery, the inspection period passes, the parties agree on a split, or an
 * arbitrator rules. Every open state has a timeout exit, so money is never stuck.
 *
 * Storage design (gas): a trade's terms never change after funding, so the contract keeps
 * one storage slot per trade: the first 192 bits of the keccak256 hash of its id and terms,
 * its status, the deadline that applies in that status, and an open split proposal. Every
 * later action passes the terms as calldata and the contract checks them against the hash.
 * The terms are in the {TradeFunded} event, so any client can rebuild them from the chain.
 *
 * The slot belongs to a "lane" of the buyer, not to one trade: when a trade ends its slot
 * keeps a final status, and the buyer's next trade in that lane reuses it. Rewriting a used
 * slot costs 5,000 gas instead of 22,100 for a new one, so a returning buyer pays about a
 * quarter less to open a trade. A trade id is `buyer << 96 | lane << 64 | funding block`,
 * unique for ever: a lane can be reused only from the block after its trade ended. A buyer
 * with several open trades uses several lanes (any uint32; clients take the lowest free one).
 *
 * While Shipped the deadline field holds the inspection end (34 bits of unix time) and the
 * buyer's one extension request (days asked, granted or not); the effective inspection end
 * is that time plus a granted extension.
 *
 * Payouts are pushed to the receiver with a bounded gas stipend. A receiver that reverts, runs
 * out of gas or is a token-blacklisted address does not block anybody: its share is credited
 * to it instead ({PaymentDeferred}) and it takes it later with {withdraw} or {withdrawTo}. A
 * token payout counts what left the escrow's balance, not what the token's return value says.
 */
interface IP2PEscrow {
    /// @notice Lifecycle of a trade. `None` means the trade id was never used.
    enum Status {
        None,
        Funded, // money in escrow, waiting for the seller to ship (timeout: refund after shipBy)
        // seller shipped: the parcel travels, then the buyer inspects (timeout: release once the
        // inspection ends; it starts when the buyer marks the item received or when the
        // delivery window ends, whichever comes first)
        Shipped,
        Disputed, // an arbitrator decides (timeout: refund if never shipped, else 50/50)
        Released, // final: seller paid (buyer confirmed, or the inspection period passed)
        Refunded, // final: buyer paid back in full
        Settled, // final: paid out as a split both parties agreed on
        Resolved // final: paid out as the arbitrator ruled, or by the ruling timeout
    }

    /// @notice Which party made the open split proposal, if any.
    enum Party {
        None,
        Buyer,
        Seller
    }

    /// @notice The immutable terms of a trade, fixed when it is funded.
    struct Terms {
        address buyer;
        address seller;
        address arbitrator;
        address token; // address(0) for ETH
        uint256 amount; // in the token's smallest unit
        uint64 shipBy; // unix time; seller must mark the trade shipped before it
        uint32 inspectionPeriod; // seconds the buyer has to inspect once inspection starts
        uint16 arbitratorFeeBps; // paid to the arbitrator out of the amount if it rules
        uint16 platformFeeBps; // platform fee on what the seller receives, fixed at funding
        // seconds after shipping that the seller promises delivery in; inspection starts when
        // the buyer marks the item received or when this window ends, whichever comes first
        uint32 deliveryWindow;
    }

    /// @notice What a lane's slot holds, unpacked.
    struct TradeState {
        bytes24 termsHash; // first 192 bits of keccak256(abi.encode(tradeId, terms))
        Status status;
        // inspection end while Shipped (the latest one: delivery window end plus inspection
        // period, earlier once the buyer marked the item received, plus a granted extension),
        // ruling deadline while Disputed, and the block number in which the trade ended once
        // it is final
        uint40 deadline;
        Party splitProposer; // who made the open split proposal
        uint16 proposedBuyerBps; // the buyer's share in that proposal
    }

    /// @notice A trade's full state for anyone holding its id and terms ({tradeView}).
    struct TradeView {
        // the lane holds another commitment: a later trade of the buyer reused it (this one
        // ended long ago; its outcome is in the events), or these are not the trade's terms
        bool superseded;
        Status status; // None when the lane was never used or superseded
        // the timeout now running: shipBy while Funded, inspection end while Shipped, ruling
        // deadline while Disputed; 0 once final. At and after it only the timeout exit is open.
        uint40 deadline;
        // while Shipped: whether inspection has started (received, or delivery window over)
        bool inspectionStarted;
        Party splitProposer; // None when there is no live proposal (lapsed offers read None)
        uint16 proposedBuyerBps;
        uint8 extensionDays; // days the buyer asked to add to the inspection (0: not asked)
        bool extensionGranted;
        uint40 endedInBlock; // once final: the block in which the trade ended
    }

    // ------------------------------------------------------------------ events (trades)

    event TradeFunded(
        uint256 indexed tradeId,
        address indexed buyer,
        address indexed seller,
        Terms terms,
        bytes32 listingRef
    );
    /// @param inspectionEndsAt the latest inspection end: delivery window end plus inspection
    event TradeShipped(uint256 indexed tradeId, bytes32 shipmentRef, uint40 inspectionEndsAt);
    /// @notice The buyer marked the item received: inspection runs until `inspectionEndsAt`.
    event TradeReceived(uint256 indexed tradeId, uint40 inspectionEndsAt);
    /// @notice The buyer asked, once, for `extraDays` more days of inspection.
    event InspectionExtensionRequested(uint256 indexed tradeId, uint8 extraDays);
    /// @notice The seller granted the extension; the inspection now ends at `inspectionEndsAt`.
    event InspectionExtended(uint256 indexed tradeId, uint8 extraDays, uint40 inspectionEndsAt);
    /// @param byBuyer true when the buyer confirmed, false when released after inspection
    event TradeReleased(uint256 indexed tradeId, bool byBuyer, uint256 sellerAmount, uint256 platformFee);
    /// @param afterDeadline true when refunded because the seller missed the ship-by deadline
    event TradeRefunded(uint256 indexed tradeId, bool afterDeadline, uint256 buyerAmount);
    event SplitProposed(uint256 indexed tradeId, address indexed proposer, uint16 buyerBps);
    /// @notice An open split proposal was cleared without being accepted: withdrawn by its
    /// proposer (`byCancel`), or dropped because the trade moved to another state.
    event SplitCleared(uint256 indexed tradeId, bool byCancel);
    event TradeSettled(
        uint256 indexed tradeId,
        uint16 buyerBps,
        uint256 buyerAmount,
        uint256 sellerAmount,
        uint256 platformFee
    );
    event DisputeOpened(uint256 indexed tradeId, address indexed openedBy, uint40 rulingDeadline);
    event EvidenceSubmitted(
        uint256 indexed tradeId,
        address indexed submittedBy,
        string uri,
        bytes32 contentHash
    );
    /// @param byTimeout true when nobody ruled in time and the fallback applied (full refund
    /// if the dispute was opened before shipping, otherwise 50/50)
    event DisputeResolved(
        uint256 indexed tradeId,
        bool byTimeout,
        uint16 buyerBps,
        uint256 buyerAmount,
        uint256 sellerAmount,
        uint256 arbitratorFee,
        uint256 platformFee
    );

    // ------------------------------------------------------------------ events (money)

    /// @notice A push payment failed; `amount` is credited to `payee` for {withdraw}.
    event PaymentDeferred(address indexed token, address indexed payee, uint256 amount);
    /// @notice `payee` took its credit; `to` received it (the payee itself for {withdraw}).
    event Withdrawn(address indexed token, address indexed payee, uint256 amount, address to);
    event PlatformFeesWithdrawn(address indexed token, address indexed recipient, uint256 amount);

    // ------------------------------------------------------------------ events (admin)

    event ArbitratorRegistered(address indexed arbitrator, uint16 maxFeeBps);
    event ArbitratorRemoved(address indexed arbitrator);
    event PlatformFeeUpdated(address indexed recipient, uint16 feeBps);
    event TokenAllowanceUpdated(address indexed token, bool allowed);
    event FundingPausedSet(bool paused);

    // ------------------------------------------------------------------ errors

    error ZeroAmount();
    error AmountTooLarge(uint256 amount, uint256 maxAmount);
    error FundingPaused();
    error ZeroAddress();
    error SellerIsBuyer(address account);
    error ArbitratorIsParty(address arbitrator);
    /// @dev The escrow's own address as seller, arbitrator or fee recipient: what it paid to
    /// itself would be stuck for ever.
    error EscrowCannotBeParty();
    error UnknownTrade(uint256 tradeId);
    error LaneBusy(address buyer, uint32 lane);
    error TermsMismatch(uint256 tradeId);
    error InvalidBps(uint256 bps);
    error ArbitratorNotRegistered(address arbitrator);
    error ArbitratorFeeTooHigh(uint16 feeBps, uint16 maxFeeBps);
    error PlatformFeeTooHigh(uint16 feeBps, uint16 maxFeeBps);
    error DeadlineInPast(uint64 deadline, uint256 nowTime);
    error DeadlineTooFar(uint64 deadline, uint256 latest);
    error InspectionPeriodTooLong(uint32 period, uint32 maxPeriod);
    error InspectionPeriodTooShort(uint32 period, uint32 minPeriod);
    error DeliveryWindowTooLong(uint32 window, uint32 maxWindow);
    /// @dev The platform fee in force is above what the buyer accepted when signing.
    error PlatformFeeAboveLimit(uint16 feeBps, uint16 maxFeeBps);
    error EvidenceUriTooLong(uint256 length, uint256 maxLength);
    error InspectionAlreadyStarted(uint256 tradeId);
    error ExtensionAlreadyRequested(uint256 tradeId);
    error InvalidExtension(uint8 extraDays, uint8 maxDays);
    error NoExtensionRequested(uint256 tradeId);
    error NoProposalToCancel(uint256 tradeId);
    error InvalidStatus(uint256 tradeId, Status status);
    error NotBuyer(address caller);
    error NotSeller(address caller);
    error NotArbitrator(address caller);
    error NotParty(address caller);
    error NotPartyOrArbitrator(address caller);
    error DeadlineNotReached(uint256 tradeId, uint40 deadline);
    error DeadlinePassed(uint256 tradeId, uint40 deadline);
    error NoMatchingProposal(uint256 tradeId, uint16 buyerBps);
    error WrongPayment(uint256 sent, uint256 expected);
    error TokenNotAllowed(address token);
    error FeeOnTransferToken(address token, uint256 expected, uint256 received);
    error NothingToWithdraw(address token, address payee);
    error NotFeeRecipient(address caller);
    error TransferFailed(address token, address to, uint256 amount);

    // ------------------------------------------------------------------ trade actions

    /**
     * @notice Buyer opens a trade and funds it in one transaction.
     * @dev For ETH (`token == address(0)`) send exactly `amount` as value; for a token, approve
     * this contract first (or use {fundWithPermit}). The platform fee in force now is fixed
     * into the trade's terms. Emits {TradeFunded}.
     * @param inspectionPeriod 1 to 60 days
     * @param deliveryWindow 0 to 60 days after shipping
     * @param maxPlatformFeeBps the highest platform fee the buyer accepts; reverts
     * {PlatformFeeAboveLimit} if the owner raised the fee above it before this was mined
     * @param lane a lane of the buyer's that is unused or whose trade ended before this block
     * @return tradeId `buyer << 96 | lane << 64 | block.number`
     */
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
    ) external payable returns (uint256 tradeId);

    /**
     * @notice Like {fund} for an EIP-2612 token, with the buyer's permit signature instead of a
     * prior approval. A permit that was already used (for example front-run) is ignored when
     * the allowance is already enough.
     */
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
    ) external returns (uint256 tradeId);

    /// @notice Seller marks the trade shipped before `shipBy`; the delivery window starts.
    function markShipped(uint256 tradeId, Terms calldata terms, bytes32 shipmentRef) external;

    /// @notice Buyer marks the item received before the delivery window ends: the inspection
    /// starts now (it would otherwise start when the window ends).
    function markReceived(uint256 tradeId, Terms calldata terms) external;

    /// @notice Buyer asks, once per trade and before the inspection ends, for 1 to 7 more days.
    function requestInspectionExtension(uint256 tradeId, Terms calldata terms, uint8 extraDays) external;

    /// @notice Seller grants the buyer's extension request before the inspection ends.
    function grantInspectionExtension(uint256 tradeId, Terms calldata terms) external;

    /// @notice Buyer confirms receipt: the seller is paid, minus the platform fee.
    function confirmReceipt(uint256 tradeId, Terms calldata terms) external;

    /// @notice Anyone releases the money to the seller once the inspection period is over.
    function releaseAfterInspection(uint256 tradeId, Terms calldata terms) external;

    /// @notice Anyone refunds the buyer in full when the seller missed the ship-by deadline.
    function refundAfterDeadline(uint256 tradeId, Terms calldata terms) external;

    /// @notice Seller refunds the buyer in full, at any time before the money is released.
    function refundBySeller(uint256 tradeId, Terms calldata terms) external;

    /// @notice Buyer or seller proposes a split before the current state's timeout; replaces
    /// any open proposal. A proposal lapses when the trade changes state (shipped, disputed)
    /// and when the timeout of the state it was made in passes: from then on only the timeout
    /// exit is open, so nobody can accept an offer the timeout has overtaken.
    function proposeSplit(uint256 tradeId, Terms calldata terms, uint16 buyerBps) external;

    /// @notice The other party accepts the live proposal with exactly `buyerBps`; it is paid out.
    function acceptSplit(uint256 tradeId, Terms calldata terms, uint16 buyerBps) external;

    /// @notice The proposer withdraws its open proposal. Emits {SplitCleared}.
    function cancelSplit(uint256 tradeId, Terms calldata terms) external;

    /// @notice Buyer or seller opens a dispute while the current timeout has not passed.
    function openDispute(uint256 tradeId, Terms calldata terms) external;

    /// @notice Buyer, seller or arbitrator records evidence (an URI of at most 512 bytes and
    /// the hash of its content).
    function submitEvidence(
        uint256 tradeId,
        Terms calldata terms,
        string calldata uri,
        bytes32 contentHash
    ) external;

    /// @notice Arbitrator rules before the ruling deadline: takes its fee, splits the rest. An
    /// arbitrator the owner removed can no longer rule (the ruling timeout then applies).
    function rule(uint256 tradeId, Terms calldata terms, uint16 buyerBps) external;

    /// @notice Anyone resolves a dispute nobody ruled on in time, without arbitrator fee: the
    /// buyer is refunded in full if the seller had not shipped when the dispute was opened
    /// (a seller cannot gain from disputing instead of shipping), otherwise it is split 50/50.
    function resolveAfterRulingTimeout(uint256 tradeId, Terms calldata terms) external;

    /// @notice Takes the payments credited to the caller after a failed push.
    function withdraw(address token) external;

    /// @notice Sends the caller's credit to `to` (for a payee that cannot receive itself, e.g.
    /// blacklisted by the token or a contract without a receive function).
    function withdrawTo(address token, address to) external;

    /// @notice Sends the accrued platform fees of `token` to the fee recipient.
    function withdrawPlatformFees(address token) external;

    // ------------------------------------------------------------------ owner

    /// @notice Owner lets `arbitrator` be chosen for new trades, charging at most `maxFeeBps`.
    function registerArbitrator(address arbitrator, uint16 maxFeeBps) external;

    /// @notice Owner stops `arbitrator` from being chosen for new trades and from ruling; its
    /// open disputes end by the ruling timeout unless the parties settle.
    function removeArbitrator(address arbitrator) external;

    /// @notice Owner sets the platform fee for new trades and where accrued fees go.
    function setPlatformFee(address recipient, uint16 feeBps) external;

    /// @notice Owner allows or disallows an ERC-20 token for new trades.
    function setTokenAllowed(address token, bool allowed) external;

    /// @notice Owner pauses or resumes new trades. Every exit of an open trade stays open.
    function setFundingPaused(bool paused) external;

    // ------------------------------------------------------------------ views

    /// @notice State of a trade; reverts {TermsMismatch} if the lane now holds a later trade.
    function tradeState(uint256 tradeId, Terms calldata terms) external view returns (TradeState memory);

    /// @notice Full state of a trade from its id and terms, without reverting: a reused lane or
    /// other terms read as `superseded`, a lapsed split proposal reads as none.
    function tradeView(uint256 tradeId, Terms calldata terms) external view returns (TradeView memory);

    /// @notice Raw state of a buyer's lane (its current or last trade), for choosing a lane.
    function laneState(address buyer, uint32 lane) external view returns (TradeState memory);

    function hashTerms(uint256 tradeId, Terms calldata terms) external pure returns (bytes24);

    function credits(address token, address payee) external view returns (uint256);

    function accruedPlatformFees(address token) external view returns (uint256);

    function arbitratorMaxFeeBps(address arbitrator) external view returns (bool registered, uint16 maxFeeBps);

    function platformFee() external view returns (address recipient, uint16 feeBps);

    function isTokenAllowed(address token) external view returns (bool);

    function rulingPeriod() external view returns (uint32);

    function fundingPaused() external view returns (bool);
}
