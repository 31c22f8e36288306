// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The few Foundry cheatcodes the suite uses (forge-std is not available offline).
interface Vm {
    function warp(uint256 timestamp) external;
    function roll(uint256 blockNumber) external;
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function deal(address account, uint256 balance) external;
    function expectRevert(bytes4 selector) external;
    function assume(bool condition) external pure;
    function label(address account, string calldata name) external;
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function snapshotState() external returns (uint256 snapshotId);
    function revertToState(uint256 snapshotId) external returns (bool success);
    /// @dev The current timestamp, read through the cheatcode: with viaIR the optimizer may treat
    /// `block.timestamp` as constant within a test and move its reads across `warp`.
    function getBlockTimestamp() external view returns (uint256);
    function revertToStateAndDelete(uint256 snapshotId) external returns (bool success);
    function expectRevert(bytes calldata revertData) external;
    function expectRevert() external;
}

/// @dev The cheatcode address every Foundry test uses: address(bytes20(keccak256("hevm cheat code"))).
Vm constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);
