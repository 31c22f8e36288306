"""Test helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from escrow.client import ETH, EscrowClient, Funded

DAY = 24 * 3600
ONE_ETH = 10**18
USD = 10**6


@dataclass(frozen=True)
class Roles:
    owner: str
    buyer: str
    seller: str
    arbitrator: str
    stranger: str
    arbitrator2: str
    buyer2: str

    def by_name(self, name: str) -> str:
        return str(getattr(self, name))


def open_trade(
    client: EscrowClient,
    roles: Roles,
    *,
    token: str = ETH,
    amount: int = ONE_ETH,
    ship_within: int = 3 * DAY,
    inspection_period: int = 2 * DAY,
    arbitrator_fee_bps: int = 200,
    buyer: str | None = None,
) -> Funded:
    """Funds a trade from ``roles.buyer`` to ``roles.seller`` (approving tokens first)."""
    buyer = buyer or roles.buyer
    if int(token, 16) != 0:
        client.approve(token, amount, sender=buyer)
    return client.fund(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        token=token,
        amount=amount,
        ship_by=client.chain.latest_timestamp() + ship_within,
        inspection_period=inspection_period,
        arbitrator_fee_bps=arbitrator_fee_bps,
        listing_ref=b"listing-1",
        sender=buyer,
    )


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (the scripts folder is not a package), loaded once."""
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
