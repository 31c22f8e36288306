// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IP2PEscrow} from "../../contracts/IP2PEscrow.sol";
import {P2PEscrow} from "../../contracts/P2PEscrow.sol";
import {Receiver} from "./Receiver.sol";
import {vm} from "./Vm.sol";

/**
 * @title EscrowDeadlinesTest
 * @notice Every deadline of the v2 escrow, probed at the three seconds around it (t-1, t, t+1).
 * At each second every listed action is tried on a snapshot (and rolled back), and the set of
 * actions that work must be exactly the intended one:
 *
 * - a party action (Before) works at t-1 only, the timeout exit that replaces it (AtOrAfter)
 *   works at t and t+1 only: there is no second at which both work and none at which neither
 *   does;
 * - an action unaffected by this deadline (Always) works at all three, one that cannot work in
 *   this state (Never) at none.
 *
 * Deadlines: ship-by; inspection end after the delivery window, after a receipt and after a
 * granted extension; the end of the window to grant an extension; the ruling deadline (dispute
 * opened before and after shipping); the delivery window end (receipt possible at t-1 only).
 */
contract EscrowDeadlinesTest {
    enum When {
        Before, // a party action: only before the deadline
        AtOrAfter, // the timeout exit: from the deadline on
        Always,
        Never
    }

    struct Action {
        string name;
        address caller;
        bytes data;
        When when;
    }

    uint32 internal constant RULING = 7 days;
    uint32 internal constant INSPECTION = 2 days;
    uint32 internal constant WINDOW = 3 days;
    uint256 internal constant AMOUNT = 1 ether + 7;

    P2PEscrow internal escrow;
    address internal buyer;
    address internal seller;
    address internal arbitrator;
    address internal stranger;

    Action[] internal actions;

    function setUp() public {
        buyer = vm.addr(0xB0B);
        seller = vm.addr(0x5E11);
        arbitrator = vm.addr(0xA4B);
        stranger = vm.addr(0x5742);
        escrow = new P2PEscrow(address(this), RULING);
        escrow.registerArbitrator(arbitrator, 500);
        escrow.setPlatformFee(vm.addr(0xFEE), 100);
        vm.warp(1_750_000_000);
        vm.roll(100);
        vm.deal(buyer, 10 ether);
    }

    // ------------------------------------------------------------------ ship-by

    function test_shipBy() public {
        (uint256 id, IP2PEscrow.Terms memory t) = _fund(WINDOW);
        _as(buyer, abi.encodeCall(escrow.proposeSplit, (id, t, 3_000)));
        _add("markShipped", seller, abi.encodeCall(escrow.markShipped, (id, t, bytes32("p"))), When.Before);
        _add("openDispute by buyer", buyer, abi.encodeCall(escrow.openDispute, (id, t)), When.Before);
        _add("openDispute by seller", seller, abi.encodeCall(escrow.openDispute, (id, t)), When.Before);
        _add("proposeSplit", seller, abi.encodeCall(escrow.proposeSplit, (id, t, 4_000)), When.Before);
        _add("acceptSplit", seller, abi.encodeCall(escrow.acceptSplit, (id, t, 3_000)), When.Before);
        _add("refundAfterDeadline", stranger, abi.encodeCall(escrow.refundAfterDeadline, (id, t)), When.AtOrAfter);
        _add("refundBySeller", seller, abi.encodeCall(escrow.refundBySeller, (id, t)), When.Always);
        _add("confirmReceipt", buyer, abi.encodeCall(escrow.confirmReceipt, (id, t)), When.Always);
        _add("cancelSplit", buyer, abi.encodeCall(escrow.cancelSplit, (id, t)), When.Always);
        _add("cancelSplit by the other party", seller, abi.encodeCall(escrow.cancelSplit, (id, t)), When.Never);
        _add("releaseAfterInspection", stranger, abi.encodeCall(escrow.releaseAfterInspection, (id, t)), When.Never);
        _add("markReceived", buyer, abi.encodeCall(escrow.markReceived, (id, t)), When.Never);
        _probe("ship-by", t.shipBy, id, t);
    }

    // ------------------------------------------------------------------ inspection end

    /// @dev No receipt: the inspection starts when the delivery window ends.
    function test_inspectionEndAfterDeliveryWindow() public {
        (uint256 id, IP2PEscrow.Terms memory t) = _fund(WINDOW);
        uint256 shippedAt = _now();
        _as(seller, abi.encodeCall(escrow.markShipped, (id, t, bytes32("p"))));
        _as(seller, abi.encodeCall(escrow.proposeSplit, (id, t, 2_500)));
        _inspectionActions(id, t, 2_500, true);
        _probe("inspection end (delivery window)", shippedAt + WINDOW + INSPECTION, id, t);
    }

    /// @dev A receipt starts the inspection early.
    function test_inspectionEndAfterReceipt() public {
        (uint256 id, IP2PEscrow.Terms memory t) = _fund(WINDOW);
        _as(seller, abi.encodeCall(escrow.markShipped, (id, t, bytes32("p"))));
        vm.warp(_now() + 1 days + 5);
        uint256 receivedAt = _now();
        _as(buyer, abi.encodeCall(escrow.markReceived, (id, t)));
        _as(seller, abi.encodeCall(escrow.proposeSplit, (id, t, 2_500)));
        _inspectionActions(id, t, 2_500, true);
        _probe("inspection end (receipt)", receivedAt + INSPECTION, id, t);
    }

    /// @dev With no delivery window the inspection starts at shipping.
    function test_inspectionEndWithoutDeliveryWindow() public {
        (uint256 id, IP2PEscrow.Terms memory t) = _fund(0);
        uint256 shippedAt = _now();
        _as(seller, abi.encodeCall(escrow.markShipped, (id, t, bytes32("p"))));
        _as(seller, abi.encodeCall(escrow.proposeSplit, (id, t, 2_500)));
        _inspectionActions(id, t, 2_500, true);
        _probe("inspection end (no window)", shippedAt + INSPECTION, id, t);
    }

    /// @dev A granted extension moves the inspection end; the old end no longer counts.
    function test_inspectionEndWithGrantedExtension() public {
        (uint256 id, IP2PEscrow.Terms memory t) = _fund(WINDOW);
        uint256 shippedAt = _now();
        _as(seller, abi.encodeCall(escrow.markShipped, (id, t, bytes32("p"))));
        vm.warp(_now() + 3 hours);
        _as(buyer, abi.encodeCall(escrow.requestInspectionExtension, (id, t, 3)));
        _as(seller, abi.encodeCall(escrow.grantInspectionExtension, (id, t)));
        _as(seller, abi.encodeCall(escrow.proposeSplit, (id, t, 2_500)));
        _inspectionActions(id, t, 2_500, false);
        _add("grantInspectionExtension again", seller, abi.encodeCall(escrow.grantInspectionExtension, (id, t)),
            When.Never);
        uint256 baseEnd = shippedAt + WINDOW + INSPECTION;
        // around the old end every party action still works and the release does not
        _probeNoDeadline("old inspection end (extension granted)", baseEnd, id, t);
        _probe("inspection end (extension granted)", baseEnd + 3 days, id, t);
    }

    /// @dev The seller can grant a pending request only before the inspection ends.
    function test_grantExtensionBeforeInspectionEnd() public {
        (uint256 id, IP2PEscrow.Terms memory t) = _fund(WINDOW);
        _as(seller, abi.encodeCall(escrow.markShipped, (id, t, bytes32("p"))));
        vm.warp(_now() + 1 days);
        uint256 receivedAt = _now();
        _as(buyer, abi.encodeCall(escrow.markReceived, (id, t)));
        _as(buyer, abi.encodeCall(escrow.requestInspectionExtension, (id, t, 7)));
        _add("grantInspectionExtension", seller, abi.encodeCall(escrow.grantInspectionExtension, (id, t)), When.Before);
        _add("openDispute", buyer, abi.encodeCall(escrow.openDispute, (id, t)), When.Before);
        _add("proposeSplit", buyer, abi.encodeCall(escrow.proposeSplit, (id, t, 1)), When.Before);
        _add("releaseAfterInspection", stranger, abi.encodeCall(escrow.releaseAfterInspection, (id, t)), When.AtOrAfter);
        _add("requestInspectionExtension again", buyer,
            abi.encodeCall(escrow.requestInspectionExtension, (id, t, 1)), When.Never);
        _add("markReceived again", buyer, abi.encodeCall(escrow.markReceived, (id, t)), When.Never);
        _probe("inspection end (extension pending)", receivedAt + INSPECTION, id, t);
    }

    // ------------------------------------------------------------------ ruling deadline

    function test_rulingDeadlineAfterShipping() public {
        _rulingDeadline(true);
    }

    function test_rulingDeadlineBeforeShipping() public {
        _rulingDeadline(false);
    }

    // ------------------------------------------------------------------ delivery window end

    /// @dev The buyer can mark the item received at the window's last second only, not at its
    /// end (inspection has started by itself then); it is not a timeout, so nothing replaces it.
    function test_deliveryWindowEnd() public {
        (uint256 id, IP2PEscrow.Terms memory t) = _fund(WINDOW);
        uint256 shippedAt = _now();
        _as(seller, abi.encodeCall(escrow.markShipped, (id, t, bytes32("p"))));
        _add("markReceived", buyer, abi.encodeCall(escrow.markReceived, (id, t)), When.Before);
        _add("markReceived by seller", seller, abi.encodeCall(escrow.markReceived, (id, t)), When.Never);
        _add("openDispute", buyer, abi.encodeCall(escrow.openDispute, (id, t)), When.Always);
        _add("requestInspectionExtension", buyer,
            abi.encodeCall(escrow.requestInspectionExtension, (id, t, 1)), When.Always);
        _add("releaseAfterInspection", stranger, abi.encodeCall(escrow.releaseAfterInspection, (id, t)), When.Never);
        uint256 windowEnd = shippedAt + WINDOW;
        _probe("delivery window end", windowEnd, id, t);
        // the view agrees: inspection has started from the window's end on
        vm.warp(windowEnd - 1);
        require(!escrow.tradeView(id, t).inspectionStarted, "tradeView: inspection started before window end");
        vm.warp(windowEnd);
        require(escrow.tradeView(id, t).inspectionStarted, "tradeView: inspection not started at window end");
    }

    /// @dev With no delivery window a receipt is never possible: inspection starts at shipping.
    function test_noDeliveryWindowNoReceipt() public {
        (uint256 id, IP2PEscrow.Terms memory t) = _fund(0);
        _as(seller, abi.encodeCall(escrow.markShipped, (id, t, bytes32("p"))));
        require(!_succeeds(buyer, abi.encodeCall(escrow.markReceived, (id, t))), "markReceived with no window");
        require(escrow.tradeView(id, t).inspectionStarted, "tradeView: inspection not started at shipping");
    }

    /// @dev A receipt within the window's last second still moves the inspection end earlier by
    /// exactly one second, and a second receipt is refused.
    function test_receiptAtLastSecondOfWindow() public {
        (uint256 id, IP2PEscrow.Terms memory t) = _fund(WINDOW);
        uint256 shippedAt = _now();
        _as(seller, abi.encodeCall(escrow.markShipped, (id, t, bytes32("p"))));
        vm.warp(shippedAt + WINDOW - 1);
        _as(buyer, abi.encodeCall(escrow.markReceived, (id, t)));
        require(escrow.tradeState(id, t).deadline == shippedAt + WINDOW + INSPECTION - 1, "receipt: inspection end");
        require(!_succeeds(buyer, abi.encodeCall(escrow.markReceived, (id, t))), "second receipt went through");
    }

    // ------------------------------------------------------------------ withdrawTo

    /// @dev A payee that refuses ETH sends its own credit to another address.
    function test_withdrawToSendsTheCallersCredit() public {
        Receiver refusing = new Receiver(address(escrow));
        refusing.configure(true, false);
        seller = address(refusing);
        (uint256 id, IP2PEscrow.Terms memory t) = _fund(WINDOW);
        _as(buyer, abi.encodeCall(escrow.confirmReceipt, (id, t)));
        uint256 owed = AMOUNT - AMOUNT / 100;
        require(escrow.credits(address(0), seller) == owed, "withdrawTo: no credit after a refused payout");
        require(!_succeeds(stranger, abi.encodeCall(escrow.withdrawTo, (address(0), stranger))),
            "withdrawTo: a stranger took a credit it does not have");
        require(!_succeeds(seller, abi.encodeCall(escrow.withdrawTo, (address(0), address(0)))), "withdrawTo: to zero");
        require(!_succeeds(seller, abi.encodeCall(escrow.withdrawTo, (address(0), address(escrow)))),
            "withdrawTo: to the escrow");
        uint256 before = stranger.balance;
        _as(seller, abi.encodeCall(escrow.withdrawTo, (address(0), stranger)));
        require(stranger.balance == before + owed, "withdrawTo: the receiver did not get the credit");
        require(escrow.credits(address(0), seller) == 0, "withdrawTo: the credit was not cleared");
        require(!_succeeds(seller, abi.encodeCall(escrow.withdrawTo, (address(0), stranger))), "withdrawTo: twice");
    }

    // ------------------------------------------------------------------ helpers

    function _rulingDeadline(bool shipFirst) internal {
        (uint256 id, IP2PEscrow.Terms memory t) = _fund(WINDOW);
        if (shipFirst) _as(seller, abi.encodeCall(escrow.markShipped, (id, t, bytes32("p"))));
        vm.warp(_now() + 1 hours);
        uint256 openedAt = _now();
        _as(buyer, abi.encodeCall(escrow.openDispute, (id, t)));
        _as(buyer, abi.encodeCall(escrow.proposeSplit, (id, t, 7_000)));
        _add("rule", arbitrator, abi.encodeCall(escrow.rule, (id, t, 6_000)), When.Before);
        _add("acceptSplit", seller, abi.encodeCall(escrow.acceptSplit, (id, t, 7_000)), When.Before);
        _add("proposeSplit", seller, abi.encodeCall(escrow.proposeSplit, (id, t, 8_000)), When.Before);
        _add("resolveAfterRulingTimeout", stranger,
            abi.encodeCall(escrow.resolveAfterRulingTimeout, (id, t)), When.AtOrAfter);
        _add("refundBySeller", seller, abi.encodeCall(escrow.refundBySeller, (id, t)), When.Always);
        _add("submitEvidence", arbitrator, abi.encodeCall(escrow.submitEvidence, (id, t, "ipfs://x", bytes32(0))),
            When.Always);
        _add("openDispute again", seller, abi.encodeCall(escrow.openDispute, (id, t)), When.Never);
        _add("releaseAfterInspection", stranger, abi.encodeCall(escrow.releaseAfterInspection, (id, t)), When.Never);
        _add("refundAfterDeadline", stranger, abi.encodeCall(escrow.refundAfterDeadline, (id, t)), When.Never);
        _probe(shipFirst ? "ruling deadline (shipped)" : "ruling deadline (not shipped)", openedAt + RULING, id, t);
    }

    /// @dev The actions around an inspection end; `bps` is the seller's open offer.
    function _inspectionActions(uint256 id, IP2PEscrow.Terms memory t, uint16 bps, bool canRequest) internal {
        _add("openDispute by buyer", buyer, abi.encodeCall(escrow.openDispute, (id, t)), When.Before);
        _add("openDispute by seller", seller, abi.encodeCall(escrow.openDispute, (id, t)), When.Before);
        _add("acceptSplit", buyer, abi.encodeCall(escrow.acceptSplit, (id, t, bps)), When.Before);
        _add("proposeSplit", buyer, abi.encodeCall(escrow.proposeSplit, (id, t, 9_000)), When.Before);
        _add("requestInspectionExtension", buyer, abi.encodeCall(escrow.requestInspectionExtension, (id, t, 2)),
            canRequest ? When.Before : When.Never);
        _add("grantInspectionExtension (nothing pending)", seller,
            abi.encodeCall(escrow.grantInspectionExtension, (id, t)), When.Never);
        _add("releaseAfterInspection", stranger, abi.encodeCall(escrow.releaseAfterInspection, (id, t)), When.AtOrAfter);
        _add("confirmReceipt", buyer, abi.encodeCall(escrow.confirmReceipt, (id, t)), When.Always);
        _add("refundBySeller", seller, abi.encodeCall(escrow.refundBySeller, (id, t)), When.Always);
        _add("cancelSplit", seller, abi.encodeCall(escrow.cancelSplit, (id, t)), When.Always);
        _add("markShipped again", seller, abi.encodeCall(escrow.markShipped, (id, t, bytes32("p"))), When.Never);
        _add("refundAfterDeadline", stranger, abi.encodeCall(escrow.refundAfterDeadline, (id, t)), When.Never);
        _add("resolveAfterRulingTimeout", stranger, abi.encodeCall(escrow.resolveAfterRulingTimeout, (id, t)),
            When.Never);
    }

    /// @dev Tries every action at deadline-1, deadline and deadline+1 and checks the set that works.
    function _probe(string memory what, uint256 deadline, uint256 id, IP2PEscrow.Terms memory t) internal {
        _probeAt(what, deadline, id, t, true);
        delete actions;
    }

    /// @dev Around a time that is not a deadline (any more): Before actions work at all three
    /// seconds, AtOrAfter actions at none.
    function _probeNoDeadline(string memory what, uint256 at, uint256 id, IP2PEscrow.Terms memory t) internal {
        _probeAt(what, at, id, t, false);
    }

    function _probeAt(string memory what, uint256 deadline, uint256 id, IP2PEscrow.Terms memory t, bool isDeadline)
        internal
    {
        require(deadline > _now() + 1, string.concat(what, ": deadline already near"));
        string[3] memory labels = ["t-1", "t", "t+1"];
        uint256 savedTime = _now();
        for (uint256 dt = 0; dt < 3; ++dt) {
            uint256 at = deadline - 1 + dt;
            vm.warp(at);
            bool before = !isDeadline || at < deadline;
            bool anyParty;
            bool anyTimeout;
            for (uint256 k = 0; k < actions.length; ++k) {
                Action storage a = actions[k];
                bool ok = _succeeds(a.caller, a.data);
                bool expected = a.when == When.Always || (a.when == When.Before && before)
                    || (a.when == When.AtOrAfter && !before);
                if (ok != expected) {
                    revert(string.concat(what, " at ", labels[dt], ": ", a.name, ok ? " works" : " fails"));
                }
                if (ok && a.when == When.Before) anyParty = true;
                if (ok && a.when == When.AtOrAfter) anyTimeout = true;
            }
            if (isDeadline) {
                require(!(anyParty && anyTimeout), string.concat(what, ": party action and timeout both work"));
                require(anyParty || anyTimeout || !_hasTimeout(),
                    string.concat(what, ": neither party action nor timeout works"));
                // the view's deadline is this one while it is the state's timeout
                IP2PEscrow.TradeView memory v = escrow.tradeView(id, t);
                if (v.deadline == deadline) {
                    require((v.splitProposer != IP2PEscrow.Party.None) == (before && _hasOffer(id, t)),
                        string.concat(what, " at ", labels[dt], ": tradeView shows a lapsed offer or hides a live one"));
                }
            }
        }
        vm.warp(savedTime);
    }

    /// @dev Whether a timeout exit replaces the party actions at this deadline (not so at the
    /// delivery window's end: inspection just starts).
    function _hasTimeout() internal view returns (bool) {
        for (uint256 k = 0; k < actions.length; ++k) {
            if (actions[k].when == When.AtOrAfter) return true;
        }
        return false;
    }

    function _now() internal view returns (uint256) {
        return vm.getBlockTimestamp();
    }

    function _hasOffer(uint256 id, IP2PEscrow.Terms memory t) internal view returns (bool) {
        return escrow.tradeState(id, t).splitProposer != IP2PEscrow.Party.None;
    }

    function _fund(uint32 window) internal returns (uint256 id, IP2PEscrow.Terms memory t) {
        t = IP2PEscrow.Terms({
            buyer: buyer,
            seller: seller,
            arbitrator: arbitrator,
            token: address(0),
            amount: AMOUNT,
            shipBy: uint64(_now() + 5 days),
            inspectionPeriod: INSPECTION,
            arbitratorFeeBps: 300,
            platformFeeBps: 100,
            deliveryWindow: window
        });
        vm.prank(buyer);
        id = escrow.fund{value: AMOUNT}(seller, arbitrator, address(0), AMOUNT, t.shipBy, INSPECTION, window, 300, 100,
            0, bytes32("listing"));
    }

    function _add(string memory name, address caller, bytes memory data, When when) internal {
        actions.push(Action(name, caller, data, when));
    }

    /// @dev A call that must work.
    function _as(address caller, bytes memory data) internal {
        vm.prank(caller);
        (bool ok, bytes memory ret) = address(escrow).call(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
    }

    /// @dev Calls the escrow as `caller` on a snapshot; whether it worked.
    function _succeeds(address caller, bytes memory data) internal returns (bool ok) {
        uint256 snap = vm.snapshotState();
        vm.prank(caller);
        (ok, ) = address(escrow).call(data);
        vm.revertToStateAndDelete(snap);
    }
}
