// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IP2PEscrow} from "../../contracts/IP2PEscrow.sol";
import {P2PEscrow} from "../../contracts/P2PEscrow.sol";
import {EscrowHandler} from "./EscrowHandler.sol";
import {TestStablecoin} from "../../contracts/TestStablecoin.sol";
import {vm} from "./Vm.sol";

/**
 * @title EscrowInvariantsTest
 * @notice Random sequences of every action by every role, with time moving, in ETH and the
 * stablecoin (see {EscrowHandler}). After every call forge checks {invariant_escrowIsSound}:
 *
 * 1. solvent: the escrow's balance of each token equals what it still owes (open trades,
 *    credits, accrued platform fees) — by the model and by the escrow's own books;
 * 2. nobody overpaid: no account received more than was escrowed for it, and what it received
 *    plus its credit is exactly what the model says it is owed;
 * 3. state machine: every call succeeded or reverted as the state machine says, and each
 *    trade's status and deadline on chain are the model's;
 * 4. timeouts finish everything: on a snapshot, warping past every open trade's deadline (the
 *    ship-by, the inspection end after the delivery window, a receipt and a granted extension,
 *    or the ruling deadline; each must lie within a fixed bound of its funding), no party
 *    action is open any more (no lapsed split offer can be accepted, no dispute opened, no
 *    shipping, receipt, extension or ruling), and calling the timeout exit as a stranger
 *    finishes every open trade, after which the escrow holds exactly the credits and fees;
 * 5. views: tradeState and tradeView (deadline, inspection started, extension, live split
 *    offer, end block) say what the model says.
 */
abstract contract EscrowInvariants {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    /// @dev The latest any trade can end, counted from funding: the whole shipping window, the
    /// longest delivery window, the longest inspection, the longest extension and the ruling period.
    uint256 internal constant MAX_LIFETIME = 180 days + 60 days + 60 days + 7 days + 7 days;
    uint256 internal constant STRANGER = 7;
    uint256 internal constant FEE_RECIPIENT = 8;

    EscrowHandler internal handler;
    P2PEscrow internal escrow;
    TestStablecoin internal coin;
    address[2] internal tokens;
    address[9] internal actors;

    /// @dev Whether the contract accounts start out refusing ETH; the two suites differ in it.
    function _receiversRefuseEth() internal pure virtual returns (bool);

    function setUp() public {
        handler = new EscrowHandler(_receiversRefuseEth());
        escrow = handler.escrow();
        coin = handler.coin();
        tokens = [address(0), address(coin)];
        for (uint256 i = 0; i < actors.length; ++i) actors[i] = handler.actors(i);
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        bytes4[] memory selectors = new bytes4[](24);
        selectors[0] = EscrowHandler.fund.selector;
        selectors[1] = EscrowHandler.fundWithPermit.selector;
        selectors[2] = EscrowHandler.markShipped.selector;
        selectors[3] = EscrowHandler.confirmReceipt.selector;
        selectors[4] = EscrowHandler.releaseAfterInspection.selector;
        selectors[5] = EscrowHandler.refundAfterDeadline.selector;
        selectors[6] = EscrowHandler.refundBySeller.selector;
        selectors[7] = EscrowHandler.proposeSplit.selector;
        selectors[8] = EscrowHandler.acceptSplit.selector;
        selectors[9] = EscrowHandler.openDispute.selector;
        selectors[10] = EscrowHandler.submitEvidence.selector;
        selectors[11] = EscrowHandler.rule.selector;
        selectors[12] = EscrowHandler.resolveAfterRulingTimeout.selector;
        selectors[13] = EscrowHandler.withdraw.selector;
        selectors[14] = EscrowHandler.withdrawPlatformFees.selector;
        selectors[15] = EscrowHandler.warp.selector;
        selectors[16] = EscrowHandler.configureReceiver.selector;
        selectors[17] = EscrowHandler.ownerAction.selector;
        selectors[18] = EscrowHandler.markReceived.selector;
        selectors[19] = EscrowHandler.requestInspectionExtension.selector;
        selectors[20] = EscrowHandler.grantInspectionExtension.selector;
        selectors[21] = EscrowHandler.cancelSplit.selector;
        selectors[22] = EscrowHandler.withdrawTo.selector;
        selectors[23] = EscrowHandler.warpToDeadline.selector;
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector(address(handler), selectors);
    }

    /// @dev Every property that fails, so that a failure names all of them.
    /// (Invariant calls are never committed, so these start empty each time.)
    string internal failures;
    mapping(bytes32 => bool) internal reported;

    function invariant_escrowIsSound() public {
        failures = "";
        EscrowHandler.Slot[8] memory slots = handler.allSlots();
        for (uint256 k = 0; k < 2; ++k) {
            EscrowHandler.Books memory b = handler.books(tokens[k]);
            uint256[9] memory credits = _credits(tokens[k]);
            _solvent(tokens[k], b, credits);
            _nobodyOverpaid(tokens[k], b, credits);
        }
        _stateMachine(slots);
        _timeoutsFinishEveryTrade(slots);
        if (bytes(failures).length != 0) revert(failures);
    }

    /// @dev A plain unit test so that a broken setup fails loudly rather than fuzzing nothing.
    function test_setUpFundsAndFinishesATrade() public {
        // ship by in 3 days, inspection 1 day (the minimum), no delivery window, fee cap 10 %
        handler.fund(0, 0, 0, false, 1e18 + 3, 3 days, 100, 3, 0);
        require(handler.tradesFunded() == 1, "setup: fund failed");
        require(address(escrow).balance == 1e18 + 4, "setup: escrow balance");
        handler.markShipped(0, 0);
        handler.warp(2 days << 8 | 1);
        handler.releaseAfterInspection(0, 0);
        require(handler.tradesFinished() == 1, "setup: release failed");
        invariant_escrowIsSound();
    }

    /// @dev The v2 actions go through the handler's model: receipt, extension asked and
    /// granted, a split offer cancelled, a lapsed offer refused, a credit sent elsewhere.
    function test_handlerReachesTheV2Actions() public {
        handler.configureReceiver(1, 1); // seller1 (a contract) refuses ETH: its payout becomes a credit
        // buyer0, seller1 (sellerSeed 1), arbitrator0; ship by in 3 days; inspection 1 day;
        // delivery window: kind 4 = 0 + r % 2 days with r = 1 day -> 1 day
        uint256 times = 3 days | (uint256(0) << 128) | (uint256(4 | (1 days << 4)) << 192);
        handler.fund(0, 1, 0, false, 5e18, times, 100, 3, 0);
        require(handler.tradesFunded() == 1, "v2: fund failed");
        handler.markShipped(0, 0);
        handler.warp(0 | (1 hours << 8)); // 1 hour + 1 second
        handler.markReceived(0, 0);
        require(handler.successes("markReceived") == 1, "v2: markReceived");
        handler.requestInspectionExtension(0, 0, 3);
        require(handler.successes("requestInspectionExtension") == 1, "v2: request extension");
        handler.grantInspectionExtension(0, 0);
        require(handler.successes("grantInspectionExtension") == 1, "v2: grant extension");
        handler.proposeSplit(0, 0, 4_000); // callerSeed 0: the buyer
        handler.cancelSplit(0, 0);
        require(handler.successes("cancelSplit") == 1, "v2: cancelSplit");
        handler.proposeSplit(0, 1, 6_000); // callerSeed 1: the seller
        handler.warpToDeadline(0, 3, 1); // the effective inspection end, extension included
        handler.acceptSplit(0, 0, 1); // the buyer, the proposed share: lapsed
        require(handler.successes("lapsedOfferRefused") == 1, "v2: lapsed offer");
        handler.releaseAfterInspection(0, 0);
        require(handler.tradesFinished() == 1, "v2: release failed");
        handler.withdrawTo(1, 5, false); // seller1's credit to buyer1's... any actor
        require(handler.successes("withdrawTo") == 1, "v2: withdrawTo");
        invariant_escrowIsSound();
    }

    // ------------------------------------------------------------------ properties

    function _solvent(address token, EscrowHandler.Books memory b, uint256[9] memory credits) internal {
        uint256 creditSum;
        uint256 ghostCreditSum;
        for (uint256 i = 0; i < credits.length; ++i) {
            _check(credits[i] == b.credits[i], "solvent: a credit differs from the model");
            creditSum += credits[i];
            ghostCreditSum += b.credits[i];
        }
        uint256 fees = escrow.accruedPlatformFees(token);
        _check(fees == b.fees, "solvent: accrued fees differ from the model");
        uint256 balance = _balanceOf(token, address(escrow));
        _check(balance == b.open + creditSum + fees, "solvent: balance != open trades + credits + fees");
        _check(balance == b.open + ghostCreditSum + b.fees, "solvent: balance != what the model says is owed");
    }

    function _nobodyOverpaid(address token, EscrowHandler.Books memory b, uint256[9] memory credits)
        internal
    {
        for (uint256 i = 0; i < credits.length; ++i) {
            // still held for it: its credit, and for the fee recipient the accrued fees
            uint256 held = credits[i];
            if (i == FEE_RECIPIENT) held += escrow.accruedPlatformFees(token);
            // forge-lint: disable-next-line(unsafe-typecast)
            int256 entitled = int256(b.entitled[i]);
            _check(b.received[i] <= entitled, "overpaid: received more than was escrowed for it");
            // forge-lint: disable-next-line(unsafe-typecast)
            _check(b.received[i] + int256(held) == entitled, "overpaid: received + still held != entitled");
        }
        _check(b.reentries == 0, "overpaid: a re-entrant withdraw went through");
    }

    function _stateMachine(EscrowHandler.Slot[8] memory slots) internal {
        if (handler.violations() != 0) _check(false, string.concat("state machine: ", handler.firstViolation()));
        for (uint256 i = 0; i < slots.length; ++i) {
            EscrowHandler.Slot memory s = slots[i];
            if (s.id == 0) continue;
            IP2PEscrow.TradeState memory st = escrow.tradeState(s.id, s.terms);
            _check(st.status == s.status, "state machine: status differs from the model");
            _check(st.deadline == s.deadline, "state machine: deadline differs from the model");
            _check(uint8(st.splitProposer) == s.proposer && st.proposedBuyerBps == s.proposedBps,
                "state machine: split proposal differs from the model");
            _tradeViewMatches(s);
        }
    }

    function _tradeViewMatches(EscrowHandler.Slot memory s) internal {
        IP2PEscrow.TradeView memory v = escrow.tradeView(s.id, s.terms);
        _check(!v.superseded && v.status == s.status, "tradeView: status differs from the model");
        if (_isOpen(s.status)) {
            uint256 deadline = handler.liveDeadline(s);
            _check(v.deadline == deadline && v.endedInBlock == 0, "tradeView: deadline differs from the model");
            bool live = vm.getBlockTimestamp() < deadline;
            _check(uint8(v.splitProposer) == (live ? s.proposer : 0)
                && v.proposedBuyerBps == (live ? s.proposedBps : 0),
                "tradeView: live split offer differs from the model (a lapsed offer must read none)");
            if (s.status == IP2PEscrow.Status.Shipped) {
                _check(v.inspectionStarted == (s.received || vm.getBlockTimestamp() >= s.windowEnd),
                    "tradeView: inspectionStarted differs from the model");
                _check(v.extensionDays == s.extensionDays && v.extensionGranted == s.extensionGranted,
                    "tradeView: extension differs from the model");
            }
        } else {
            _check(v.deadline == 0 && v.endedInBlock == s.deadline, "tradeView: final trade's fields differ");
        }
    }

    function _timeoutsFinishEveryTrade(EscrowHandler.Slot[8] memory slots) internal {
        // Reverting to the snapshot also rolls back this contract's storage, so the findings
        // are kept in memory and reported after it.
        // beyond the bound, exit reverted, still open, money left, a party action still open,
        // a lapsed split offer accepted
        bool[6] memory bad;
        uint256 snapshot = vm.snapshotState();
        uint256 savedTime = vm.getBlockTimestamp();
        uint256 savedBlock = block.number;
        address stranger = handler.actors(STRANGER);
        // One warp past every deadline at once: ship-by, inspection end (delivery window,
        // receipt and granted extension included) and ruling deadline.
        uint256 latest = savedTime;
        for (uint256 i = 0; i < slots.length; ++i) {
            EscrowHandler.Slot memory s = slots[i];
            if (s.id == 0 || !_isOpen(s.status)) continue;
            uint256 exitAt = handler.liveDeadline(s);
            if (exitAt > s.fundedAt + MAX_LIFETIME) bad[0] = true;
            if (exitAt > latest) latest = exitAt;
        }
        vm.warp(latest);
        vm.roll(block.number + 1);
        // Each open status has exactly one way out left, its timeout exit, which anybody can
        // call and which leads to a final status.
        for (uint256 i = 0; i < slots.length; ++i) {
            EscrowHandler.Slot memory s = slots[i];
            if (s.id == 0 || !_isOpen(s.status)) continue;
            if (s.proposer != 0) {
                address counterparty = s.proposer == 1 ? s.terms.seller : s.terms.buyer;
                if (_succeeds(counterparty, abi.encodeCall(escrow.acceptSplit, (s.id, s.terms, s.proposedBps)))) {
                    bad[5] = true;
                }
            }
            if (_partyCanAct(s)) bad[4] = true;
            bytes memory exit = abi.encodeCall(
                s.status == IP2PEscrow.Status.Funded ? escrow.refundAfterDeadline
                    : s.status == IP2PEscrow.Status.Shipped ? escrow.releaseAfterInspection
                    : escrow.resolveAfterRulingTimeout,
                (s.id, s.terms)
            );
            vm.prank(stranger);
            (bool ok, ) = address(escrow).call(exit);
            if (!ok) bad[1] = true;
            if (_isOpen(escrow.tradeState(s.id, s.terms).status)) bad[2] = true;
        }
        for (uint256 k = 0; k < 2; ++k) {
            address token = tokens[k];
            uint256[9] memory credits = _credits(token);
            uint256 creditSum;
            for (uint256 i = 0; i < credits.length; ++i) creditSum += credits[i];
            if (_balanceOf(token, address(escrow)) != creditSum + escrow.accruedPlatformFees(token)) bad[3] = true;
        }
        vm.revertToState(snapshot);
        vm.warp(savedTime);
        vm.roll(savedBlock);
        _check(!bad[0], "timeouts: a deadline lies beyond the bound from funding");
        _check(!bad[1], "timeouts: a timeout exit reverted");
        _check(!bad[2], "timeouts: a trade is still open after its timeout exit");
        _check(!bad[3], "timeouts: money left in the escrow after every trade ended");
        _check(!bad[4], "timeouts: a party action still works after the state's timeout");
        _check(!bad[5], "timeouts: a lapsed split offer was accepted");
    }

    /// @dev After the state's timeout, whether any party action the timeout replaces still works.
    /// No attempt should work; one that does changes the state, but the whole check is rolled
    /// back and already failed, so the attempts skip their own snapshots (they cost time).
    function _partyCanAct(EscrowHandler.Slot memory s) internal returns (bool) {
        IP2PEscrow.Terms memory t = s.terms;
        if (_succeeds(t.buyer, abi.encodeCall(escrow.proposeSplit, (s.id, t, 5_000)))) return true;
        if (s.status == IP2PEscrow.Status.Funded) {
            return _succeeds(t.seller, abi.encodeCall(escrow.markShipped, (s.id, t, bytes32("late"))))
                || _succeeds(t.buyer, abi.encodeCall(escrow.openDispute, (s.id, t)));
        }
        if (s.status == IP2PEscrow.Status.Shipped) {
            return _succeeds(t.buyer, abi.encodeCall(escrow.openDispute, (s.id, t)))
                || _succeeds(t.buyer, abi.encodeCall(escrow.markReceived, (s.id, t)))
                || _succeeds(t.buyer, abi.encodeCall(escrow.requestInspectionExtension, (s.id, t, 1)))
                || _succeeds(t.seller, abi.encodeCall(escrow.grantInspectionExtension, (s.id, t)));
        }
        return _succeeds(t.arbitrator, abi.encodeCall(escrow.rule, (s.id, t, 5_000)));
    }

    /// @dev Calls the escrow as `caller`; whether it succeeded (not rolled back).
    function _succeeds(address caller, bytes memory data) internal returns (bool ok) {
        vm.prank(caller);
        (ok, ) = address(escrow).call(data);
    }

    function _credits(address token) internal view returns (uint256[9] memory credits) {
        for (uint256 i = 0; i < credits.length; ++i) credits[i] = escrow.credits(token, actors[i]);
    }

    function _isOpen(IP2PEscrow.Status status) internal pure returns (bool) {
        return status == IP2PEscrow.Status.Funded || status == IP2PEscrow.Status.Shipped
            || status == IP2PEscrow.Status.Disputed;
    }

    function _check(bool ok, string memory why) internal {
        if (ok || reported[keccak256(bytes(why))]) return;
        reported[keccak256(bytes(why))] = true;
        failures = string.concat(failures, why, "; ");
    }

    function _balanceOf(address token, address account) internal view returns (uint256) {
        return token == address(0) ? account.balance : coin.balanceOf(account);
    }
}

/// @notice The suite with every account accepting ETH at the start.
contract EscrowInvariantsTest is EscrowInvariants {
    function _receiversRefuseEth() internal pure override returns (bool) {
        return false;
    }
}

/// @notice The same suite with the contract accounts refusing ETH at the start, so that the
/// credit and withdraw paths carry more of the money. Forge runs the two suites in parallel.
contract EscrowInvariantsRefusingTest is EscrowInvariants {
    function _receiversRefuseEth() internal pure override returns (bool) {
        return true;
    }
}
