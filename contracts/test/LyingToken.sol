// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/**
 * @title LyingToken
 * @notice Test double, never for real money: an ERC-20 whose `transfer` return value can be
 * made to lie by its owner, to check that the escrow counts what left its balance instead of
 * trusting the token's answer.
 *
 *   Honest          transfer moves the tokens and returns true (plain ERC-20)
 *   FalseAfterMove  transfer moves the tokens, then returns false
 *   TrueWithoutMove transfer moves nothing and returns true
 *
 * `transferFrom`, `approve` and `balanceOf` are always honest, so funding works in every mode.
 */
contract LyingToken is ERC20, Ownable {
    enum Mode {
        Honest,
        FalseAfterMove,
        TrueWithoutMove
    }

    Mode public mode;

    event ModeSet(Mode mode);

    constructor(address initialOwner) ERC20("Lying Token", "LIE") Ownable(initialOwner) {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 value) external onlyOwner {
        _mint(to, value);
    }

    function setMode(Mode newMode) external onlyOwner {
        mode = newMode;
        emit ModeSet(newMode);
    }

    function transfer(address to, uint256 value) public override returns (bool) {
        Mode current = mode;
        if (current == Mode.TrueWithoutMove) return true;
        bool ok = super.transfer(to, value);
        if (current == Mode.FalseAfterMove) return false;
        return ok;
    }
}
