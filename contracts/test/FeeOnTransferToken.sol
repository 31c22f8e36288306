// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/**
 * @title FeeOnTransferToken
 * @notice Test double, never for real money: an ERC-20 that burns 1% of every transfer between
 * two accounts, so the receiver gets less than the amount sent.
 */
contract FeeOnTransferToken is ERC20 {
    uint256 public constant FEE_BPS = 100;

    address public immutable minter;

    error NotMinter(address caller);

    constructor() ERC20("Fee On Transfer", "FOT") {
        minter = msg.sender;
    }

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 value) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _mint(to, value);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            uint256 fee = (value * FEE_BPS) / 10_000;
            super._update(from, address(0), fee);
            value -= fee;
        }
        super._update(from, to, value);
    }
}
