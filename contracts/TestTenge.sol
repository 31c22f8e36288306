// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/**
 * @title TestTenge
 * @notice A tenge-like token for local chains and tests: 2 decimals (tiyn, like the tenge's
 * own fraction) and EIP-2612 permit. Only the owner mints. Never deploy it where real money
 * is meant.
 */
contract TestTenge is ERC20, ERC20Permit, Ownable {
    constructor(address initialOwner) ERC20("Test Tenge", "tKZT") ERC20Permit("Test Tenge") Ownable(initialOwner) {}

    function decimals() public pure override returns (uint8) {
        return 2;
    }

    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
