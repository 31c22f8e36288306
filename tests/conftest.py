"""Shared fixtures: one embedded chain per session, a snapshot restored after every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.backends.pyevm.main import get_default_account_keys

from escrow.chain import Chain, connect
from escrow.client import EscrowClient
from escrow.deploy import Deployment, deploy
from helpers import Roles

pytest_plugins = ["web_fixtures", "browser_fixtures"]


@pytest.fixture(scope="session")
def tester_chain() -> Chain:
    return connect(None)


@pytest.fixture(scope="session")
def tester_deployment(tester_chain: Chain) -> Deployment:
    return deploy(tester_chain)


@pytest.fixture
def chain(tester_chain: Chain, tester_deployment: Deployment) -> Iterator[Chain]:
    """The embedded chain, restored to the freshly deployed state after the test."""
    snapshot = tester_chain.snapshot()
    yield tester_chain
    tester_chain.revert(snapshot)


@pytest.fixture
def deployment(chain: Chain, tester_deployment: Deployment) -> Deployment:
    return tester_deployment


@pytest.fixture
def client(chain: Chain, deployment: Deployment) -> EscrowClient:
    return deployment.client(chain)


@pytest.fixture(scope="session")
def roles(tester_chain: Chain, tester_deployment: Deployment) -> Roles:
    a = tester_chain.accounts
    arbitrators = tester_deployment.arbitrators
    return Roles(
        owner=a[0],
        buyer=a[1],
        seller=a[2],
        stranger=a[3],
        buyer2=a[4],
        arbitrator=arbitrators[-1],
        arbitrator2=arbitrators[0],
    )


@pytest.fixture(scope="session")
def keys() -> dict[str, LocalAccount]:
    """Local signers for the embedded chain's accounts (it cannot sign typed data itself)."""
    accounts = [Account.from_key(k.to_bytes()) for k in get_default_account_keys()]
    return {acct.address: acct for acct in accounts}


@pytest.fixture
def stablecoin(deployment: Deployment) -> str:
    assert deployment.stablecoin is not None
    return deployment.stablecoin.address
