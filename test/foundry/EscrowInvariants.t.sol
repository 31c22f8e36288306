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
 * 4. timeouts finish everything: on a snapshot, warping past each open trade's deadline (which
 *    must lie within a fixed bound of its funding) and calling the timeout exit as a stranger
 *    finishes every open trade, after which the escrow holds exactly the credits and fees.
 */
abstract contract EscrowInvariants {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    /// @dev The latest any trade can end: the whole shipping window, the longest inspection
    /// and the ruling period, counted from funding.
    uint256 internal constant MAX_LIFETIME = 180 days + 60 days + 7 days;
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
        bytes4[] memory selectors = new bytes4[](18);
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
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector(address(handler), selectors);
    }

    function invariant_escrowIsSound() public {
        EscrowHandler.Slot[8] memory slots = handler.allSlots();
        for (uint256 k = 0; k < 2; ++k) {
            EscrowHandler.Books memory b = handler.books(tokens[k]);
            uint256[9] memory credits = _credits(tokens[k]);
            _solvent(tokens[k], b, credits);
            _nobodyOverpaid(tokens[k], b, credits);
        }
        _stateMachine(slots);
        _timeoutsFinishEveryTrade(slots);
    }

    /// @dev A plain unit test so that a broken setup fails loudly rather than fuzzing nothing.
    function test_setUpFundsAndFinishesATrade() public {
        handler.fund(0, 0, 0, false, 1e18 + 3, 3 days, 2 days, 100, 0);
        require(handler.tradesFunded() == 1, "setup: fund failed");
        require(address(escrow).balance == 1e18 + 4, "setup: escrow balance");
        handler.markShipped(0, 0);
        handler.warp(2 days << 8 | 1);
        handler.releaseAfterInspection(0, 0);
        require(handler.tradesFinished() == 1, "setup: release failed");
        invariant_escrowIsSound();
    }

    // ------------------------------------------------------------------ properties

    function _solvent(address token, EscrowHandler.Books memory b, uint256[9] memory credits) internal view {
        uint256 creditSum;
        uint256 ghostCreditSum;
        for (uint256 i = 0; i < credits.length; ++i) {
            require(credits[i] == b.credits[i], "solvent: a credit differs from the model");
            creditSum += credits[i];
            ghostCreditSum += b.credits[i];
        }
        uint256 fees = escrow.accruedPlatformFees(token);
        require(fees == b.fees, "solvent: accrued fees differ from the model");
        uint256 balance = _balanceOf(token, address(escrow));
        require(balance == b.open + creditSum + fees, "solvent: balance != open trades + credits + fees");
        require(balance == b.open + ghostCreditSum + b.fees, "solvent: balance != what the model says is owed");
    }

    function _nobodyOverpaid(address token, EscrowHandler.Books memory b, uint256[9] memory credits)
        internal
        view
    {
        for (uint256 i = 0; i < credits.length; ++i) {
            // still held for it: its credit, and for the fee recipient the accrued fees
            uint256 held = credits[i];
            if (i == FEE_RECIPIENT) held += escrow.accruedPlatformFees(token);
            // forge-lint: disable-next-line(unsafe-typecast)
            int256 entitled = int256(b.entitled[i]);
            require(b.received[i] <= entitled, "overpaid: received more than was escrowed for it");
            // forge-lint: disable-next-line(unsafe-typecast)
            require(b.received[i] + int256(held) == entitled, "overpaid: received + still held != entitled");
        }
        require(b.reentries == 0, "overpaid: a re-entrant withdraw went through");
    }

    function _stateMachine(EscrowHandler.Slot[8] memory slots) internal view {
        if (handler.violations() != 0) revert(string.concat("state machine: ", handler.firstViolation()));
        for (uint256 i = 0; i < slots.length; ++i) {
            EscrowHandler.Slot memory s = slots[i];
            if (s.id == 0) continue;
            IP2PEscrow.TradeState memory st = escrow.tradeState(s.id, s.terms);
            require(st.status == s.status, "state machine: status differs from the model");
            require(st.deadline == s.deadline, "state machine: deadline differs from the model");
            require(uint8(st.splitProposer) == s.proposer && st.proposedBuyerBps == s.proposedBps,
                "state machine: split proposal differs from the model");
        }
    }

    function _timeoutsFinishEveryTrade(EscrowHandler.Slot[8] memory slots) internal {
        uint256 snapshot = vm.snapshotState();
        uint256 savedTime = block.timestamp;
        uint256 savedBlock = block.number;
        address stranger = handler.actors(STRANGER);
        // Each open status has exactly one timeout exit, and it leads to a final status.
        for (uint256 i = 0; i < slots.length; ++i) {
            EscrowHandler.Slot memory s = slots[i];
            if (s.id == 0 || !_isOpen(s.status)) continue;
            IP2PEscrow.TradeState memory st = escrow.tradeState(s.id, s.terms);
            uint256 exitAt = st.status == IP2PEscrow.Status.Funded ? s.terms.shipBy : st.deadline;
            require(exitAt <= s.fundedAt + MAX_LIFETIME, "timeouts: deadline beyond the bound");
            if (block.timestamp < exitAt) vm.warp(exitAt);
            vm.prank(stranger);
            if (st.status == IP2PEscrow.Status.Funded) {
                escrow.refundAfterDeadline(s.id, s.terms);
            } else if (st.status == IP2PEscrow.Status.Shipped) {
                escrow.releaseAfterInspection(s.id, s.terms);
            } else {
                escrow.resolveAfterRulingTimeout(s.id, s.terms);
            }
            require(!_isOpen(escrow.tradeState(s.id, s.terms).status), "timeouts: trade still open");
        }
        for (uint256 k = 0; k < 2; ++k) {
            address token = tokens[k];
            uint256[9] memory credits = _credits(token);
            uint256 creditSum;
            for (uint256 i = 0; i < credits.length; ++i) creditSum += credits[i];
            require(_balanceOf(token, address(escrow)) == creditSum + escrow.accruedPlatformFees(token),
                "timeouts: money left in the escrow after every trade ended");
        }
        vm.revertToState(snapshot);
        vm.warp(savedTime);
        vm.roll(savedBlock);
    }

    function _credits(address token) internal view returns (uint256[9] memory credits) {
        for (uint256 i = 0; i < credits.length; ++i) credits[i] = escrow.credits(token, actors[i]);
    }

    function _isOpen(IP2PEscrow.Status status) internal pure returns (bool) {
        return status == IP2PEscrow.Status.Funded || status == IP2PEscrow.Status.Shipped
            || status == IP2PEscrow.Status.Disputed;
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
