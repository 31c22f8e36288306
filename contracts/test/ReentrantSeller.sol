// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title ReentrantSeller
 * @notice Test double, never for real money: a contract account that trades through the escrow
 * (its controller forwards calls such as `markShipped`) and, whenever it receives ETH, calls the
 * escrow again with a prepared call. Tests use it to check that a re-entering payee can neither
 * block another payout nor take more than its share.
 */
contract ReentrantSeller {
    address public immutable escrow;
    address public immutable controller;

    /// @notice Calldata sent back to the escrow on receiving ETH; empty means no re-entry.
    bytes public reentryCall;
    /// @notice Revert the incoming payment when the re-entry fails (the payout then fails too).
    bool public revertOnFailedReentry;
    /// @notice Burn all the gas of an incoming payment instead of re-entering.
    bool public burnGas;

    event ReentryAttempted(bool success, bytes returnData, uint256 valueReceived);

    error NotController(address caller);

    constructor(address escrow_) {
        escrow = escrow_;
        controller = msg.sender;
    }

    /// @notice Calls the escrow as this contract (with any ETH sent along); bubbles reverts.
    function forward(bytes calldata data) external payable returns (bytes memory result) {
        if (msg.sender != controller) revert NotController(msg.sender);
        bool ok;
        (ok, result) = escrow.call{value: msg.value}(data);
        if (!ok) _bubble(result);
    }

    function setAttack(bytes calldata call, bool revertOnFailure, bool burnAllGas) external {
        if (msg.sender != controller) revert NotController(msg.sender);
        reentryCall = call;
        revertOnFailedReentry = revertOnFailure;
        burnGas = burnAllGas;
    }

    receive() external payable {
        if (burnGas) {
            // Loop until the gas the payer forwarded is gone.
            while (true) {}
        }
        bytes memory call = reentryCall;
        if (call.length == 0) return;
        (bool ok, bytes memory returnData) = escrow.call(call);
        emit ReentryAttempted(ok, returnData, msg.value);
        if (!ok && revertOnFailedReentry) _bubble(returnData);
    }

    function _bubble(bytes memory returnData) private pure {
        assembly ("memory-safe") {
            revert(add(returnData, 0x20), mload(returnData))
        }
    }
}
