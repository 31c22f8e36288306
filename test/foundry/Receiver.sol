// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @notice A contract account that takes part in trades (the handler pranks as it). It can refuse
 * ETH, which sends its payouts down the escrow's credit path, and it can try to re-enter the
 * escrow's `withdraw` from inside a payment, which must never succeed.
 */
contract Receiver {
    address public immutable escrow;
    bool public rejecting;
    bool public reentering;
    /// @notice Re-entrant withdrawals the escrow let through; the invariant requires zero.
    uint256 public reentrySuccesses;

    error Refused(uint256 value);

    constructor(address escrow_) {
        escrow = escrow_;
    }

    function configure(bool rejecting_, bool reentering_) external {
        rejecting = rejecting_;
        reentering = reentering_;
    }

    receive() external payable {
        if (rejecting) revert Refused(msg.value);
        if (reentering) {
            (bool ok, ) = escrow.call(abi.encodeWithSignature("withdraw(address)", address(0)));
            if (ok) reentrySuccesses += 1;
        }
    }
}
