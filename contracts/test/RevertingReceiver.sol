// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title RevertingReceiver
 * @notice Test double, never for real money: a contract account that refuses every incoming ETH
 * transfer while its switch is on. It acts through {forward} (as a buyer, seller or arbitrator),
 * so tests can check that its refusal never blocks the other payees and that its own share is
 * credited and can be withdrawn once it accepts ETH again.
 */
contract RevertingReceiver {
    address public immutable controller;
    bool public reverting = true;

    error Refused(uint256 value);
    error NotController(address caller);

    constructor() {
        controller = msg.sender;
    }

    function setReverting(bool on) external {
        if (msg.sender != controller) revert NotController(msg.sender);
        reverting = on;
    }

    /// @notice Calls `target` as this contract with the ETH sent along; bubbles reverts.
    function forward(address target, bytes calldata data) external payable returns (bytes memory) {
        if (msg.sender != controller) revert NotController(msg.sender);
        return _call(target, data, msg.value);
    }

    /// @notice Several calls in one transaction (so in one block); `values[i]` goes with `calls[i]`.
    function forwardAll(
        address target,
        bytes[] calldata calls,
        uint256[] calldata values
    ) external payable {
        if (msg.sender != controller) revert NotController(msg.sender);
        for (uint256 i = 0; i < calls.length; ++i) {
            _call(target, calls[i], values[i]);
        }
    }

    receive() external payable {
        if (reverting) revert Refused(msg.value);
    }

    function _call(address target, bytes calldata data, uint256 value) private returns (bytes memory) {
        (bool ok, bytes memory result) = target.call{value: value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
        return result;
    }
}
