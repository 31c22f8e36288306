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
        }
    }

    function _timeoutsFinishEveryTrade(EscrowHandler.Slot[8] memory slots) internal {
        // Reverting to the snapshot also rolls back this contract's storage, so the findings
        // are kept in memory and reported after it.
        bool[4] memory bad; // beyond the bound, exit reverted, still open, money left
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
            if (exitAt > s.fundedAt + MAX_LIFETIME) bad[0] = true;
            if (block.timestamp < exitAt) vm.warp(exitAt);
            bytes memory exit = abi.encodeCall(
                st.status == IP2PEscrow.Status.Funded ? escrow.refundAfterDeadline
                    : st.status == IP2PEscrow.Status.Shipped ? escrow.releaseAfterInspection
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
