// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Escrow} from "oz-contracts-v4/utils/escrow/Escrow.sol";

/// @notice OpenZeppelin 4.9.6's `Escrow`, unchanged, compiled here only as a gas baseline for
/// scripts/bench_gas.py. It is not part of the product.
contract OZEscrowBaseline is Escrow {}
