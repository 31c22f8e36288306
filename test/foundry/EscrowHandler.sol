// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IP2PEscrow} from "../../contracts/IP2PEscrow.sol";
import {P2PEscrow} from "../../contracts/P2PEscrow.sol";
import {TestStablecoin} from "../../contracts/TestStablecoin.sol";
import {Receiver} from "./Receiver.sol";
import {vm} from "./Vm.sol";

/**
 * @title EscrowHandler
 * @notice The only contract the invariant fuzzer calls. Each function is one action of one
 * role (chosen by the fuzzer, often the right one, sometimes anybody), with bounded inputs.
 * It drives every external function of the v2 escrow, including the receipt, the inspection
 * extension, cancelling a split offer and withdrawing to another address, and moves time both
 * at random and onto (one second before, at, after) a trade's deadlines.
 *
 * Beside the escrow it runs its own model of the state machine and of the money: it predicts
 * whether each call must succeed, what status and deadline the trade gets, and who is owed
 * what (paid now, or credited when the receiver refuses ETH). A call whose outcome differs
 * from the prediction is recorded as a violation; the invariants compare the rest.
 */
contract EscrowHandler {
    uint256 internal constant BPS = 10_000;
    uint32 public constant RULING_PERIOD = 7 days;
    uint256 public constant MAX_SHIPPING_WINDOW = 180 days;
    uint256 public constant MAX_INSPECTION = 60 days;
    uint256 public constant MIN_INSPECTION = 1 days;
    uint256 public constant MAX_DELIVERY_WINDOW = 60 days;
    uint8 public constant MAX_EXTENSION_DAYS = 7;
    uint256 public constant MAX_URI = 512;

    uint256 public constant BUYERS = 4;
    uint256 public constant LANES = 2;
    uint256 public constant SLOTS = BUYERS * LANES;
    uint256 public constant ACTORS = 9;

    /// @notice A plain address outside the actors that `withdrawTo` sometimes pays.
    address public constant OUTSIDER = address(0xBEEF0);

    // actor indices
    uint256 internal constant B0 = 0; // EOA buyer
    uint256 internal constant B1 = 1; // EOA buyer
    uint256 internal constant B2 = 2; // contract buyer that can refuse ETH
    uint256 internal constant S0 = 3; // EOA seller, also buys
    uint256 internal constant S1 = 4; // contract seller that can refuse ETH or re-enter
    uint256 internal constant A0 = 5; // EOA arbitrator
    uint256 internal constant A1 = 6; // contract arbitrator that can refuse ETH
    uint256 internal constant X = 7; // stranger
    uint256 internal constant F = 8; // platform fee recipient

    struct Slot {
        uint256 id; // 0: the lane was never used
        IP2PEscrow.Terms terms;
        IP2PEscrow.Status status;
        // as tradeState reports it: 0 while Funded, the effective inspection end (with a granted
        // extension) while Shipped, the ruling deadline while Disputed, the end block once final
        uint40 deadline;
        uint64 fundedAt;
        uint8 proposer; // 0 none, 1 buyer, 2 seller (as stored: a lapsed offer stays until cleared)
        uint16 proposedBps;
        bool shipped; // the seller marked it shipped (decides the ruling-timeout fallback)
        uint40 windowEnd; // shipping time + delivery window
        uint40 baseEnd; // inspection end without the extension
        bool received; // the buyer marked the item received
        uint8 extensionDays; // 0: not asked
        bool extensionGranted;
    }

    P2PEscrow public immutable escrow;
    TestStablecoin public immutable coin;
    address[ACTORS] public actors;
    uint256[ACTORS] internal keys; // private keys of the EOAs, 0 for contracts
    Receiver[3] internal receivers;

    /// @notice Each buyer's lanes; a slot holds the lane's current or last trade.
    Slot[SLOTS] internal slots;

    // the model's copy of the owner's settings
    uint16 public platformFeeBps;
    bool public paused;
    bool public coinAllowed;
    mapping(address => bool) public registered;
    mapping(address => uint16) public maxFeeBps;

    // ghost money, per token (address(0) is ETH)
    mapping(address => uint256) public ghostOpen; // amounts of open trades
    mapping(address => uint256) public ghostFees; // accrued platform fees
    mapping(address => mapping(address => uint256)) public ghostCredits;
    /// @notice Everything ever paid out or credited to an account by the model's rules (a
    /// credit sent elsewhere with withdrawTo moves from the payee's entitlement to the receiver's).
    mapping(address => mapping(address => uint256)) public ghostEntitled;
    /// @dev balance - baseline = what the escrow paid the account
    mapping(address => mapping(address => int256)) internal baseline;

    uint256 public violations;
    string public firstViolation;
    uint256 public tradesFunded;
    uint256 public tradesFinished;
    /// @notice Calls of the v2 actions that went through, so a run can show it reached them.
    mapping(bytes32 => uint256) public successes;

    /// @param receiversRefuseEth start with the contract accounts refusing ETH (credit path first)
    constructor(bool receiversRefuseEth) {
        escrow = new P2PEscrow(address(this), RULING_PERIOD);
        coin = new TestStablecoin(address(this));
        for (uint256 i = 0; i < 3; ++i) {
            receivers[i] = new Receiver(address(escrow));
            receivers[i].configure(receiversRefuseEth, false);
        }
        string[ACTORS] memory names = ["buyer0", "buyer1", "buyer2-contract", "seller0", "seller1-contract",
            "arbitrator0", "arbitrator1-contract", "stranger", "feeRecipient"];
        for (uint256 i = 0; i < ACTORS; ++i) {
            if (i == B2 || i == S1 || i == A1) {
                actors[i] = address(receivers[i == B2 ? 0 : i == S1 ? 1 : 2]);
            } else {
                keys[i] = 0xA11CE + i;
                actors[i] = vm.addr(keys[i]);
            }
            vm.label(actors[i], names[i]);
        }
        vm.label(address(escrow), "escrow");
        vm.label(address(coin), "coin");
        vm.label(OUTSIDER, "outsider");

        escrow.registerArbitrator(actors[A0], 500);
        escrow.registerArbitrator(actors[A1], 2_000);
        _modelRegister(actors[A0], 500);
        _modelRegister(actors[A1], 2_000);
        escrow.setPlatformFee(actors[F], 100);
        platformFeeBps = 100;
        escrow.setTokenAllowed(address(coin), true);
        coinAllowed = true;
        vm.warp(1_750_000_000);
        vm.roll(100);
    }

    // ------------------------------------------------------------------ funding

    /// @param times packs the ship-by offset (bits 0..127), the inspection period (128..191)
    /// and the delivery window (192..255) seeds
    function fund(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 arbSeed,
        bool inCoin,
        uint256 amount,
        uint256 times,
        uint256 arbFee,
        uint256 maxFeeSeed,
        uint256 laneSeed
    ) external {
        (address buyer, uint256 lane, IP2PEscrow.Terms memory t) =
            _newTerms(buyerSeed, sellerSeed, arbSeed, inCoin, amount, times, arbFee, laneSeed);
        uint16 maxFee = _maxFee(maxFeeSeed);
        bool predicted = _fundAllowed(t, lane, maxFee);
        // now and then a wrong ETH value
        uint256 value = t.token == address(0) ? t.amount : 0;
        if (buyerSeed % 23 == 7) {
            value += 1;
            predicted = false;
        }
        if (t.token == address(0)) {
            _topUp(address(0), buyer, value);
        } else {
            _topUp(address(coin), buyer, t.amount);
            vm.prank(buyer);
            coin.approve(address(escrow), t.amount);
        }
        vm.prank(buyer);
        try escrow.fund{value: value}(t.seller, t.arbitrator, t.token, t.amount, t.shipBy, t.inspectionPeriod,
            t.deliveryWindow, t.arbitratorFeeBps, maxFee, uint32(lane), bytes32("listing")) returns (uint256 id) {
            _expect(predicted, true, "fund");
            if (predicted) _funded(buyer, lane, id, t);
        } catch {
            _expect(predicted, false, "fund");
            // the buyer keeps what it was given for the payment
        }
        if (t.token != address(0)) {
            vm.prank(buyer);
            coin.approve(address(escrow), 0);
        }
    }

    /// @param permitMode 0 valid permit, 1 permit already submitted (front-run), 2 bad signature
    function fundWithPermit(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 arbSeed,
        uint256 amount,
        uint256 times,
        uint256 arbFee,
        uint256 maxFeeSeed,
        uint256 laneSeed,
        uint8 permitMode
    ) external {
        (address buyer, uint256 lane, IP2PEscrow.Terms memory t) =
            _newTerms(buyerSeed, sellerSeed, arbSeed, true, amount, times, arbFee, laneSeed);
        uint16 maxFee = _maxFee(maxFeeSeed);
        uint256 buyerIdx = _actorIndex(buyer);
        permitMode %= 3;
        _topUp(address(coin), buyer, t.amount);
        uint256 deadline = block.timestamp + 1 hours;
        uint256 key = keys[buyerIdx];
        bool signable = key != 0;
        if (!signable || permitMode == 2) key = 0xBAD;
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, _permitDigest(buyer, t.amount, deadline));
        if (permitMode == 1 && signable) {
            coin.permit(buyer, address(escrow), t.amount, deadline, v, r, s);
        }
        bool permitWorks = signable && permitMode != 2;
        bool predicted = _fundAllowed(t, lane, maxFee) && permitWorks;
        vm.prank(buyer);
        try escrow.fundWithPermit(t.seller, t.arbitrator, t.token, t.amount, t.shipBy, t.inspectionPeriod,
            t.deliveryWindow, t.arbitratorFeeBps, maxFee, uint32(lane), bytes32("listing"), deadline, v, r, s)
        returns (uint256 id) {
            _expect(predicted, true, "fundWithPermit");
            if (predicted) _funded(buyer, lane, id, t);
        } catch {
            _expect(predicted, false, "fundWithPermit");
        }
        vm.prank(buyer);
        coin.approve(address(escrow), 0);
    }

    // ------------------------------------------------------------------ trade actions

    function markShipped(uint256 slotSeed, uint256 callerSeed) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, s.terms.seller);
        bool predicted = caller == s.terms.seller && s.status == IP2PEscrow.Status.Funded
            && block.timestamp < s.terms.shipBy;
        vm.prank(caller);
        try escrow.markShipped(s.id, s.terms, bytes32("parcel")) {
            _expect(predicted, true, "markShipped");
            if (predicted) {
                uint40 windowEnd = uint40(block.timestamp + s.terms.deliveryWindow);
                uint40 end = windowEnd + s.terms.inspectionPeriod;
                _move(s, IP2PEscrow.Status.Shipped, end);
                s.shipped = true;
                s.windowEnd = windowEnd;
                s.baseEnd = end;
            }
        } catch {
            _expect(predicted, false, "markShipped");
        }
    }

    function markReceived(uint256 slotSeed, uint256 callerSeed) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, s.terms.buyer);
        // only before the delivery window ends, and only once (inspection then runs already)
        bool predicted = caller == s.terms.buyer && s.status == IP2PEscrow.Status.Shipped
            && block.timestamp + s.terms.inspectionPeriod < s.baseEnd;
        if (predicted && (s.received || block.timestamp >= s.windowEnd)) {
            _violate("model: receipt possible after inspection started");
        }
        vm.prank(caller);
        try escrow.markReceived(s.id, s.terms) {
            _expect(predicted, true, "markReceived");
            if (predicted) {
                s.received = true;
                s.baseEnd = uint40(block.timestamp + s.terms.inspectionPeriod);
                s.deadline = _effectiveEnd(s);
                successes["markReceived"] += 1;
            }
        } catch {
            _expect(predicted, false, "markReceived");
        }
    }

    function requestInspectionExtension(uint256 slotSeed, uint256 callerSeed, uint256 daysSeed) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, s.terms.buyer);
        uint8 extraDays = uint8(daysSeed % 9); // 0 and 8 are invalid
        bool predicted = caller == s.terms.buyer && s.status == IP2PEscrow.Status.Shipped
            && block.timestamp < s.deadline && s.extensionDays == 0 && extraDays >= 1
            && extraDays <= MAX_EXTENSION_DAYS;
        vm.prank(caller);
        try escrow.requestInspectionExtension(s.id, s.terms, extraDays) {
            _expect(predicted, true, "requestInspectionExtension");
            if (predicted) {
                s.extensionDays = extraDays;
                successes["requestInspectionExtension"] += 1;
            }
        } catch {
            _expect(predicted, false, "requestInspectionExtension");
        }
    }

    function grantInspectionExtension(uint256 slotSeed, uint256 callerSeed) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, s.terms.seller);
        bool predicted = caller == s.terms.seller && s.status == IP2PEscrow.Status.Shipped
            && block.timestamp < s.deadline && s.extensionDays != 0 && !s.extensionGranted;
        vm.prank(caller);
        try escrow.grantInspectionExtension(s.id, s.terms) {
            _expect(predicted, true, "grantInspectionExtension");
            if (predicted) {
                s.extensionGranted = true;
                s.deadline = _effectiveEnd(s);
                successes["grantInspectionExtension"] += 1;
            }
        } catch {
            _expect(predicted, false, "grantInspectionExtension");
        }
    }

    function confirmReceipt(uint256 slotSeed, uint256 callerSeed) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, s.terms.buyer);
        bool predicted = caller == s.terms.buyer && _isOpen(s.status);
        vm.prank(caller);
        try escrow.confirmReceipt(s.id, s.terms) {
            _expect(predicted, true, "confirmReceipt");
            if (predicted) _payRelease(s);
        } catch {
            _expect(predicted, false, "confirmReceipt");
        }
    }

    function releaseAfterInspection(uint256 slotSeed, uint256 callerSeed) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, actors[X]);
        bool predicted = s.status == IP2PEscrow.Status.Shipped && block.timestamp >= s.deadline;
        vm.prank(caller);
        try escrow.releaseAfterInspection(s.id, s.terms) {
            _expect(predicted, true, "releaseAfterInspection");
            if (predicted) _payRelease(s);
        } catch {
            _expect(predicted, false, "releaseAfterInspection");
        }
    }

    function refundAfterDeadline(uint256 slotSeed, uint256 callerSeed) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, actors[X]);
        bool predicted = s.status == IP2PEscrow.Status.Funded && block.timestamp >= s.terms.shipBy;
        vm.prank(caller);
        try escrow.refundAfterDeadline(s.id, s.terms) {
            _expect(predicted, true, "refundAfterDeadline");
            if (predicted) _payRefund(s);
        } catch {
            _expect(predicted, false, "refundAfterDeadline");
        }
    }

    function refundBySeller(uint256 slotSeed, uint256 callerSeed) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, s.terms.seller);
        bool predicted = caller == s.terms.seller && _isOpen(s.status);
        vm.prank(caller);
        try escrow.refundBySeller(s.id, s.terms) {
            _expect(predicted, true, "refundBySeller");
            if (predicted) _payRefund(s);
        } catch {
            _expect(predicted, false, "refundBySeller");
        }
    }

    function proposeSplit(uint256 slotSeed, uint256 callerSeed, uint256 buyerBps) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, callerSeed % 2 == 0 ? s.terms.buyer : s.terms.seller);
        buyerBps = buyerBps % 10_050; // a few invalid shares above 100 %
        bool isParty = caller == s.terms.buyer || caller == s.terms.seller;
        bool predicted = isParty && _isLive(s) && buyerBps <= BPS;
        vm.prank(caller);
        try escrow.proposeSplit(s.id, s.terms, uint16(buyerBps)) {
            _expect(predicted, true, "proposeSplit");
            if (predicted) {
                s.proposer = caller == s.terms.buyer ? 1 : 2;
                s.proposedBps = uint16(buyerBps);
            }
        } catch {
            _expect(predicted, false, "proposeSplit");
        }
    }

    function acceptSplit(uint256 slotSeed, uint256 callerSeed, uint256 buyerBps) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address counterparty = s.proposer == 1 ? s.terms.seller : s.terms.buyer;
        address caller = _caller(callerSeed, counterparty);
        // mostly the proposed share, sometimes another
        if (buyerBps % 5 != 0) buyerBps = s.proposedBps;
        buyerBps %= 10_050;
        bool isParty = caller == s.terms.buyer || caller == s.terms.seller;
        uint8 callerSide = caller == s.terms.buyer ? 1 : 2;
        // an offer lapses when the timeout of its state passes
        bool predicted = isParty && _isLive(s) && s.proposer != 0 && s.proposer != callerSide
            && s.proposedBps == buyerBps;
        bool lapsedOffer = isParty && _isOpen(s.status) && !_isLive(s) && s.proposer != 0
            && s.proposer != callerSide && s.proposedBps == buyerBps;
        vm.prank(caller);
        try escrow.acceptSplit(s.id, s.terms, uint16(buyerBps)) {
            if (lapsedOffer) _violate("acceptSplit: a lapsed split offer was accepted");
            _expect(predicted, true, "acceptSplit");
            if (predicted) _paySplit(s, IP2PEscrow.Status.Settled, s.terms.amount, uint16(buyerBps), 0);
        } catch {
            _expect(predicted, false, "acceptSplit");
            if (lapsedOffer) successes["lapsedOfferRefused"] += 1;
        }
    }

    function cancelSplit(uint256 slotSeed, uint256 callerSeed) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address proposer = s.proposer == 2 ? s.terms.seller : s.terms.buyer;
        address caller = _caller(callerSeed, proposer);
        bool isParty = caller == s.terms.buyer || caller == s.terms.seller;
        uint8 callerSide = caller == s.terms.buyer ? 1 : 2;
        // the proposer may withdraw its stored offer while the trade is open, lapsed or not
        bool predicted = isParty && _isOpen(s.status) && s.proposer == callerSide;
        vm.prank(caller);
        try escrow.cancelSplit(s.id, s.terms) {
            _expect(predicted, true, "cancelSplit");
            if (predicted) {
                s.proposer = 0;
                s.proposedBps = 0;
                successes["cancelSplit"] += 1;
            }
        } catch {
            _expect(predicted, false, "cancelSplit");
        }
    }

    function openDispute(uint256 slotSeed, uint256 callerSeed) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, callerSeed % 2 == 0 ? s.terms.buyer : s.terms.seller);
        bool isParty = caller == s.terms.buyer || caller == s.terms.seller;
        bool predicted = isParty && s.status != IP2PEscrow.Status.Disputed && _isLive(s);
        vm.prank(caller);
        try escrow.openDispute(s.id, s.terms) {
            _expect(predicted, true, "openDispute");
            if (predicted) _move(s, IP2PEscrow.Status.Disputed, uint40(block.timestamp + RULING_PERIOD));
        } catch {
            _expect(predicted, false, "openDispute");
        }
    }

    /// @param lengthSeed the URI's length: up to the 512-byte cap, now and then just above it
    function submitEvidence(uint256 slotSeed, uint256 callerSeed, uint256 lengthSeed) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, s.terms.arbitrator);
        uint256 length = lengthSeed % 4 == 0 ? MAX_URI - 2 + (lengthSeed >> 2) % 5 : (lengthSeed >> 2) % 80;
        bytes memory uri = new bytes(length);
        for (uint256 k = 0; k < length; ++k) uri[k] = "a";
        bool allowedCaller = caller == s.terms.buyer || caller == s.terms.seller || caller == s.terms.arbitrator;
        bool predicted = allowedCaller && _isOpen(s.status) && length <= MAX_URI;
        vm.prank(caller);
        try escrow.submitEvidence(s.id, s.terms, string(uri), keccak256(uri)) {
            _expect(predicted, true, "submitEvidence");
        } catch {
            _expect(predicted, false, "submitEvidence");
        }
    }

    function rule(uint256 slotSeed, uint256 callerSeed, uint256 buyerBps) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, s.terms.arbitrator);
        buyerBps = buyerBps % 10_050;
        // a removed arbitrator cannot rule: its disputes end by the ruling timeout
        bool predicted = caller == s.terms.arbitrator && registered[caller]
            && s.status == IP2PEscrow.Status.Disputed && block.timestamp < s.deadline && buyerBps <= BPS;
        vm.prank(caller);
        try escrow.rule(s.id, s.terms, uint16(buyerBps)) {
            _expect(predicted, true, "rule");
            if (predicted) {
                uint256 arbitratorFee = (s.terms.amount * s.terms.arbitratorFeeBps) / BPS;
                _paySplit(s, IP2PEscrow.Status.Resolved, s.terms.amount - arbitratorFee, uint16(buyerBps),
                    arbitratorFee);
            }
        } catch {
            _expect(predicted, false, "rule");
        }
    }

    function resolveAfterRulingTimeout(uint256 slotSeed, uint256 callerSeed) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        address caller = _caller(callerSeed, actors[X]);
        bool predicted = s.status == IP2PEscrow.Status.Disputed && block.timestamp >= s.deadline;
        vm.prank(caller);
        try escrow.resolveAfterRulingTimeout(s.id, s.terms) {
            _expect(predicted, true, "resolveAfterRulingTimeout");
            // a seller who never shipped gets nothing from an absent arbitrator
            if (predicted) _paySplit(s, IP2PEscrow.Status.Resolved, s.terms.amount, s.shipped ? 5_000 : 10_000, 0);
        } catch {
            _expect(predicted, false, "resolveAfterRulingTimeout");
        }
    }

    // ------------------------------------------------------------------ money out

    function withdraw(uint256 callerSeed, bool inCoin) external {
        address caller = actors[callerSeed % ACTORS];
        address token = inCoin ? address(coin) : address(0);
        uint256 owed = ghostCredits[token][caller];
        bool refuses = token == address(0) && _refusesEth(caller);
        bool predicted = owed != 0 && !refuses;
        vm.prank(caller);
        try escrow.withdraw(token) {
            _expect(predicted, true, "withdraw");
            if (predicted) ghostCredits[token][caller] = 0;
        } catch {
            _expect(predicted, false, "withdraw");
        }
    }

    /// @notice A payee sends its credit elsewhere: another actor (possibly one refusing ETH),
    /// itself, an outsider, or the invalid zero and escrow addresses.
    function withdrawTo(uint256 callerSeed, uint256 toSeed, bool inCoin) external {
        // mostly an account that holds a credit
        address caller = actors[callerSeed % ACTORS];
        address token = inCoin ? address(coin) : address(0);
        if (callerSeed % 3 != 0) {
            for (uint256 k = 0; k < ACTORS; ++k) {
                address a = actors[(callerSeed % ACTORS + k) % ACTORS];
                if (ghostCredits[token][a] != 0) {
                    caller = a;
                    break;
                }
            }
        }
        uint256 pick = toSeed % 16;
        address to = pick < ACTORS ? actors[pick] : pick < 12 ? OUTSIDER : pick < 14 ? caller
            : pick == 14 ? address(0) : address(escrow);
        uint256 owed = ghostCredits[token][caller];
        bool refuses = token == address(0) && _refusesEth(to);
        bool predicted = owed != 0 && to != address(0) && to != address(escrow) && !refuses;
        vm.prank(caller);
        try escrow.withdrawTo(token, to) {
            _expect(predicted, true, "withdrawTo");
            if (predicted) {
                ghostCredits[token][caller] = 0;
                // the entitlement follows the money
                ghostEntitled[token][caller] -= owed;
                if (to != OUTSIDER) ghostEntitled[token][to] += owed; // an outsider is off the books
                successes["withdrawTo"] += 1;
            }
        } catch {
            _expect(predicted, false, "withdrawTo");
        }
    }

    function withdrawPlatformFees(uint256 callerSeed, bool inCoin) external {
        // the fee recipient, the owner (this handler) or anybody
        address caller = callerSeed % 3 == 0 ? address(this) : callerSeed % 3 == 1
            ? actors[F] : actors[(callerSeed / 3) % ACTORS];
        address token = inCoin ? address(coin) : address(0);
        bool predicted = (caller == actors[F] || caller == address(this)) && ghostFees[token] != 0;
        if (caller != address(this)) vm.prank(caller);
        try escrow.withdrawPlatformFees(token) {
            _expect(predicted, true, "withdrawPlatformFees");
            if (predicted) ghostFees[token] = 0;
        } catch {
            _expect(predicted, false, "withdrawPlatformFees");
        }
    }

    // ------------------------------------------------------------------ time, receivers, owner

    function warp(uint256 seed) external {
        uint256 scale = seed % 4;
        uint256 r = seed >> 8;
        uint256 step = scale == 0 ? 1 + r % 1 hours : scale == 1 ? 1 hours + r % 3 days
            : scale == 2 ? 3 days + r % 30 days : 30 days + r % 170 days;
        vm.warp(block.timestamp + step);
        vm.roll(block.number + 1 + r % 10);
    }

    /// @notice Moves time to one second before, at, or one second after a deadline of a trade:
    /// its ship-by, its delivery window's end, its inspection end before and after the
    /// extension, or its ruling deadline. Time never goes back.
    function warpToDeadline(uint256 slotSeed, uint256 which, uint256 offset) external {
        (bool exists, uint256 i) = _pick(slotSeed);
        if (!exists) return;
        Slot storage s = slots[i];
        uint256 target;
        which %= 4;
        if (which == 0) {
            target = s.terms.shipBy;
        } else if (which == 1 && s.shipped) {
            target = s.windowEnd;
        } else if (which == 2 && s.status == IP2PEscrow.Status.Shipped) {
            target = s.baseEnd;
        } else if (_isOpen(s.status) && s.status != IP2PEscrow.Status.Funded) {
            target = s.deadline;
        }
        if (target == 0) return;
        target = target - 1 + offset % 3;
        if (target <= block.timestamp) return;
        vm.warp(target);
        vm.roll(block.number + 1);
    }

    /// @notice Switches a contract account between accepting, refusing and re-entering.
    function configureReceiver(uint256 which, uint8 mode) external {
        mode %= 3;
        receivers[which % 3].configure(mode == 1, mode == 2);
    }

    function ownerAction(uint256 seed) external {
        uint256 what = seed % 5;
        uint256 r = seed >> 8;
        if (what == 0) {
            uint16 fee = uint16(r % 1_001);
            escrow.setPlatformFee(actors[F], fee);
            platformFeeBps = fee;
        } else if (what == 1) {
            paused = !paused;
            escrow.setFundingPaused(paused);
        } else if (what == 2) {
            coinAllowed = !coinAllowed;
            escrow.setTokenAllowed(address(coin), coinAllowed);
        } else {
            address arb = actors[what == 3 ? A0 : A1];
            if (registered[arb] && r % 2 == 0) {
                escrow.removeArbitrator(arb);
                registered[arb] = false;
                maxFeeBps[arb] = 0;
            } else {
                uint16 maxFee = uint16(r % 2_001);
                escrow.registerArbitrator(arb, maxFee);
                _modelRegister(arb, maxFee);
            }
        }
    }

    // ------------------------------------------------------------------ views for the invariants

    function allSlots() external view returns (Slot[SLOTS] memory) {
        return slots;
    }

    /// @notice One row per actor of the model's books in `token`, in one call (the invariant
    /// runs after every step, and each external call costs the fuzzer time).
    struct Books {
        address[ACTORS] accounts;
        uint256[ACTORS] credits; // the model's
        uint256[ACTORS] entitled;
        int256[ACTORS] received;
        uint256 open;
        uint256 fees;
        uint256 reentries;
    }

    function books(address token) external view returns (Books memory b) {
        for (uint256 i = 0; i < ACTORS; ++i) {
            address a = actors[i];
            b.accounts[i] = a;
            b.credits[i] = ghostCredits[token][a];
            b.entitled[i] = ghostEntitled[token][a];
            b.received[i] = received(token, a);
        }
        b.open = ghostOpen[token];
        b.fees = ghostFees[token];
        for (uint256 i = 0; i < 3; ++i) b.reentries += receivers[i].reentrySuccesses();
    }

    /// @notice What the escrow has paid `account` in `token` so far (its balance less the baseline).
    function received(address token, address account) public view returns (int256) {
        return int256(_balance(token, account)) - baseline[token][account];
    }

    /// @notice The timeout of an open trade's state (ship-by, inspection end, ruling deadline).
    function liveDeadline(Slot memory s) public pure returns (uint256) {
        return s.status == IP2PEscrow.Status.Funded ? s.terms.shipBy : s.deadline;
    }

    // ------------------------------------------------------------------ model

    function _newTerms(
        uint256 buyerSeed,
        uint256 sellerSeed,
        uint256 arbSeed,
        bool inCoin,
        uint256 amount,
        uint256 times,
        uint256 arbFee,
        uint256 laneSeed
    ) private view returns (address buyer, uint256 lane, IP2PEscrow.Terms memory t) {
        buyer = actors[buyerSeed % BUYERS];
        lane = laneSeed % 7 == 6 ? 2 + laneSeed % 3 : laneSeed % LANES; // rarely an untracked lane
        // sellers: mostly the two sellers, sometimes a buyer or a stranger
        uint256[6] memory sellerPick = [S0, S1, S0, S1, B1, X];
        uint256[5] memory arbPick = [A0, A1, A0, A1, X];
        t.buyer = buyer;
        t.seller = actors[sellerPick[sellerSeed % 6]];
        t.arbitrator = actors[arbPick[arbSeed % 5]];
        t.token = inCoin ? address(coin) : address(0);
        // odd amounts so that every division rounds; now and then zero or too large
        t.amount = amount % 97 == 0 ? 0 : amount % 97 == 1 ? uint256(type(uint128).max) + 1 : 1 + amount % 1e24;
        uint256 shipIn = uint128(times);
        if (shipIn % 31 == 0) {
            t.shipBy = uint64(block.timestamp - shipIn % 2); // in the past or now
        } else {
            t.shipBy = uint64(block.timestamp + 1 + shipIn % (MAX_SHIPPING_WINDOW + 2 days));
        }
        t.inspectionPeriod = uint32(_period(uint64(times >> 128), MIN_INSPECTION, MAX_INSPECTION));
        t.deliveryWindow = uint32(_period(times >> 192, 0, MAX_DELIVERY_WINDOW));
        t.arbitratorFeeBps = uint16(arbFee % 2_100);
        t.platformFeeBps = platformFeeBps; // the fee in force is fixed into the terms
    }

    /// @dev A period mostly in [min, max], often at a bound, now and then one second outside.
    function _period(uint256 seed, uint256 min, uint256 max) private pure returns (uint256) {
        uint256 kind = seed % 16;
        uint256 r = seed >> 4;
        if (kind == 0) return min;
        if (kind == 1) return max;
        if (kind == 2) return min == 0 ? max + 1 : min - 1;
        if (kind == 3) return max + 1;
        if (kind < 8) return min + r % (2 days); // short: the deadlines come soon
        return min + r % (max - min + 1);
    }

    /// @dev The highest platform fee the buyer accepts: mostly enough, sometimes just below.
    function _maxFee(uint256 seed) private view returns (uint16) {
        uint256 kind = seed % 8;
        if (kind == 0 && platformFeeBps > 0) return platformFeeBps - 1;
        if (kind == 1) return platformFeeBps;
        if (kind == 2) return 0;
        return 1_000;
    }

    function _fundAllowed(IP2PEscrow.Terms memory t, uint256 lane, uint16 maxFee) private view returns (bool) {
        if (t.amount == 0 || t.amount > type(uint128).max) return false;
        if (t.seller == t.buyer || t.arbitrator == t.buyer || t.arbitrator == t.seller) return false;
        if (t.token != address(0) && !coinAllowed) return false;
        if (t.shipBy <= block.timestamp || t.shipBy > block.timestamp + MAX_SHIPPING_WINDOW) return false;
        if (t.inspectionPeriod > MAX_INSPECTION || t.inspectionPeriod < MIN_INSPECTION) return false;
        if (t.deliveryWindow > MAX_DELIVERY_WINDOW) return false;
        if (!registered[t.arbitrator] || t.arbitratorFeeBps > maxFeeBps[t.arbitrator]) return false;
        if (paused) return false;
        if (platformFeeBps > maxFee) return false;
        if (lane < LANES) {
            Slot storage s = slots[_slotIndex(t.buyer, lane)];
            if (s.id != 0 && (_isOpen(s.status) || s.deadline >= block.number)) return false;
        } else {
            IP2PEscrow.TradeState memory st = escrow.laneState(t.buyer, uint32(lane));
            if (st.status != IP2PEscrow.Status.None && (_isOpen(st.status) || st.deadline >= block.number)) {
                return false;
            }
        }
        return true;
    }

    function _funded(address buyer, uint256 lane, uint256 id, IP2PEscrow.Terms memory t) private {
        uint256 expectedId = (uint256(uint160(buyer)) << 96) | (lane << 64) | block.number;
        if (id != expectedId) _violate("fund: trade id is not buyer << 96 | lane << 64 | block");
        baseline[t.token][buyer] -= int256(t.amount);
        ghostOpen[t.token] += t.amount;
        tradesFunded += 1;
        if (lane >= LANES) {
            // an untracked lane: end the trade at once so no money is left unmodelled
            vm.prank(t.seller);
            escrow.refundBySeller(id, t);
            _owe(t.token, buyer, t.amount);
            ghostOpen[t.token] -= t.amount;
            tradesFinished += 1;
            return;
        }
        Slot storage s = slots[_slotIndex(buyer, lane)];
        s.id = id;
        s.terms = t;
        s.fundedAt = uint64(block.timestamp);
        s.shipped = false;
        s.windowEnd = 0;
        s.baseEnd = 0;
        s.received = false;
        s.extensionDays = 0;
        s.extensionGranted = false;
        _move(s, IP2PEscrow.Status.Funded, 0);
    }

    function _move(Slot storage s, IP2PEscrow.Status to, uint40 deadline) private {
        if (!_transitionAllowed(s.status, to)) _violate("model: transition not in the state machine");
        s.status = to;
        s.deadline = deadline;
        s.proposer = 0;
        s.proposedBps = 0;
    }

    /// @notice The state machine of IP2PEscrow.Status, written out.
    function _transitionAllowed(IP2PEscrow.Status from, IP2PEscrow.Status to) private pure returns (bool) {
        if (to == IP2PEscrow.Status.Funded) return !_isOpen(from); // a new trade in the lane
        if (from == IP2PEscrow.Status.Funded) {
            return to == IP2PEscrow.Status.Shipped || to == IP2PEscrow.Status.Disputed
                || to == IP2PEscrow.Status.Released || to == IP2PEscrow.Status.Refunded
                || to == IP2PEscrow.Status.Settled;
        }
        if (from == IP2PEscrow.Status.Shipped) {
            return to == IP2PEscrow.Status.Disputed || to == IP2PEscrow.Status.Released
                || to == IP2PEscrow.Status.Refunded || to == IP2PEscrow.Status.Settled;
        }
        if (from == IP2PEscrow.Status.Disputed) {
            return to == IP2PEscrow.Status.Released || to == IP2PEscrow.Status.Refunded
                || to == IP2PEscrow.Status.Settled || to == IP2PEscrow.Status.Resolved;
        }
        return false; // final states never change
    }

    function _effectiveEnd(Slot storage s) private view returns (uint40) {
        return s.baseEnd + (s.extensionGranted ? uint40(s.extensionDays) * 1 days : 0);
    }

    /// @dev Open, and its state's timeout has not passed: a party can still act.
    function _isLive(Slot storage s) private view returns (bool) {
        if (s.status == IP2PEscrow.Status.Funded) return block.timestamp < s.terms.shipBy;
        if (s.status == IP2PEscrow.Status.Shipped || s.status == IP2PEscrow.Status.Disputed) {
            return block.timestamp < s.deadline;
        }
        return false;
    }

    function _payRelease(Slot storage s) private {
        uint256 fee = (s.terms.amount * s.terms.platformFeeBps) / BPS;
        _finish(s, IP2PEscrow.Status.Released, fee);
        _owe(s.terms.token, s.terms.seller, s.terms.amount - fee);
    }

    function _payRefund(Slot storage s) private {
        _finish(s, IP2PEscrow.Status.Refunded, 0);
        _owe(s.terms.token, s.terms.buyer, s.terms.amount);
    }

    /// @dev `pot` is split by the buyer's share; the platform fee comes out of the seller's part.
    function _paySplit(Slot storage s, IP2PEscrow.Status to, uint256 pot, uint16 buyerBps, uint256 arbitratorFee)
        private
    {
        uint256 buyerAmount = (pot * buyerBps) / BPS;
        uint256 sellerGross = pot - buyerAmount;
        uint256 fee = (sellerGross * s.terms.platformFeeBps) / BPS;
        if (buyerAmount + sellerGross + arbitratorFee != s.terms.amount) _violate("model: split does not add up");
        _finish(s, to, fee);
        _owe(s.terms.token, s.terms.buyer, buyerAmount);
        _owe(s.terms.token, s.terms.seller, sellerGross - fee);
        _owe(s.terms.token, s.terms.arbitrator, arbitratorFee);
    }

    function _finish(Slot storage s, IP2PEscrow.Status to, uint256 fee) private {
        _move(s, to, uint40(block.number));
        ghostOpen[s.terms.token] -= s.terms.amount;
        ghostFees[s.terms.token] += fee;
        ghostEntitled[s.terms.token][actors[F]] += fee;
        tradesFinished += 1;
    }

    /// @dev A payout: pushed, or credited when the receiver refuses ETH.
    function _owe(address token, address payee, uint256 amount) private {
        if (amount == 0) return;
        ghostEntitled[token][payee] += amount;
        if (token == address(0) && _refusesEth(payee)) ghostCredits[token][payee] += amount;
    }

    function _refusesEth(address account) private view returns (bool) {
        for (uint256 i = 0; i < 3; ++i) {
            if (account == address(receivers[i])) return receivers[i].rejecting();
        }
        return false;
    }

    function _modelRegister(address arb, uint16 maxFee) private {
        registered[arb] = true;
        maxFeeBps[arb] = maxFee;
    }

    // ------------------------------------------------------------------ plumbing

    function _expect(bool predicted, bool succeeded, string memory action) private {
        if (predicted == succeeded) return;
        _violate(string.concat(action, succeeded ? ": succeeded where the model forbids it"
            : ": reverted where the model allows it"));
    }

    function _violate(string memory why) private {
        violations += 1;
        if (bytes(firstViolation).length == 0) firstViolation = why;
    }

    /// @dev A used slot chosen by the seed (the next used one after it), if any.
    function _pick(uint256 seed) private view returns (bool, uint256) {
        for (uint256 k = 0; k < SLOTS; ++k) {
            uint256 i = (seed % SLOTS + k) % SLOTS;
            if (slots[i].id != 0) return (true, i);
        }
        return (false, 0);
    }

    /// @dev The expected role seven times in ten, anybody otherwise.
    function _caller(uint256 seed, address expected) private view returns (address) {
        return seed % 10 < 7 ? expected : actors[(seed / 10) % ACTORS];
    }

    function _slotIndex(address buyer, uint256 lane) private view returns (uint256) {
        return _actorIndex(buyer) * LANES + lane;
    }

    function _actorIndex(address account) private view returns (uint256) {
        for (uint256 i = 0; i < ACTORS; ++i) {
            if (actors[i] == account) return i;
        }
        revert("not an actor");
    }

    function _isOpen(IP2PEscrow.Status status) private pure returns (bool) {
        return status == IP2PEscrow.Status.Funded || status == IP2PEscrow.Status.Shipped
            || status == IP2PEscrow.Status.Disputed;
    }

    /// @dev Gives `account` `amount` more of `token`, kept out of what counts as received.
    function _topUp(address token, address account, uint256 amount) private {
        if (token == address(0)) {
            vm.deal(account, account.balance + amount);
        } else {
            coin.mint(account, amount);
        }
        baseline[token][account] += int256(amount);
    }

    function _balance(address token, address account) private view returns (uint256) {
        return token == address(0) ? account.balance : coin.balanceOf(account);
    }

    function _permitDigest(address owner, uint256 value, uint256 deadline) private view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(
            keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
            owner, address(escrow), value, coin.nonces(owner), deadline));
        return keccak256(abi.encodePacked("\x19\x01", coin.DOMAIN_SEPARATOR(), structHash));
    }
}
