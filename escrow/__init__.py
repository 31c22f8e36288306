"""Escrow for person-to-person trades: compile, deploy and use the escrow contracts."""

__version__ = "0.1.0"
