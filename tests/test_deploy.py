"""Deployer: the per-chain registry, reuse of a live deployment, refusal to overwrite it, and
the upgrade of a recorded v1 escrow (a v2 escrow deployed beside it, the old one kept)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from escrow.chain import Chain, connect
from escrow.client import ArbitratorInfo, EscrowClient, Status
from escrow.compiler import load_artifact
from escrow.deploy import (
    DEMO_ARBITRATOR_MAX_FEE_BPS,
    DEMO_PLATFORM_FEE_BPS,
    _deploy_contract,
    code_version,
    deploy,
    ensure_deployment,
    genesis_hash,
    is_live,
    load_deployment,
    needs_upgrade,
    read_deployment,
    registry_path,
    upgrade,
)
from escrow.errors import ContractRevert, DeploymentError, FundingPaused, revert_classes


@pytest.fixture
def fresh_chain() -> Chain:
    return connect(None)


def test_deploy_records_every_contract(fresh_chain: Chain, tmp_path: Path) -> None:
    deployment = deploy(fresh_chain, registry_dir=tmp_path, record=True)
    data = json.loads(registry_path(fresh_chain.chain_id, tmp_path).read_text())
    assert data["escrow"]["address"] == deployment.escrow.address
    assert data["escrow"]["tx_hash"].startswith("0x")
    assert data["escrow"]["block_number"] >= 1
    assert data["escrow"]["args"] == [deployment.owner, 7 * 24 * 3600]
    assert data["stablecoin"]["address"] == deployment.stablecoin.address  # type: ignore[union-attr]
    assert data["genesis_hash"].startswith("0x")

    client = deployment.client(fresh_chain)
    for arbitrator in deployment.arbitrators:
        info = client.arbitrator_info(arbitrator)
        assert info.registered and info.max_fee_bps == DEMO_ARBITRATOR_MAX_FEE_BPS
    assert client.platform_fee() == (deployment.owner, DEMO_PLATFORM_FEE_BPS)
    assert client.is_token_allowed(deployment.stablecoin.address)  # type: ignore[union-attr]
    assert client.token_balance(deployment.stablecoin.address, fresh_chain.accounts[5]) > 0  # type: ignore[union-attr]


def test_live_deployment_is_reused_not_overwritten(fresh_chain: Chain, tmp_path: Path) -> None:
    first = deploy(fresh_chain, registry_dir=tmp_path, record=True)
    with pytest.raises(DeploymentError, match="live deployment"):
        deploy(fresh_chain, registry_dir=tmp_path, record=True)
    again, created = ensure_deployment(fresh_chain, registry_dir=tmp_path)
    assert not created and again.escrow.address == first.escrow.address
    forced = deploy(fresh_chain, registry_dir=tmp_path, record=True, force=True)
    assert forced.escrow.address != first.escrow.address
    loaded = load_deployment(fresh_chain, tmp_path)
    assert loaded is not None and loaded.escrow.address == forced.escrow.address


def test_record_from_another_chain_is_stale(fresh_chain: Chain, tmp_path: Path) -> None:
    deploy(fresh_chain, registry_dir=tmp_path, record=True)
    other_chain = connect(None)  # same chain id, different history
    path = registry_path(fresh_chain.chain_id, tmp_path)
    data = json.loads(path.read_text())
    data["genesis_hash"] = "0x" + "11" * 32
    path.write_text(json.dumps(data))
    assert load_deployment(other_chain, tmp_path) is None
    deployment, created = ensure_deployment(other_chain, registry_dir=tmp_path)
    assert created
    assert load_deployment(other_chain, tmp_path) == deployment


def test_every_contract_error_has_a_python_exception() -> None:
    abi_errors = {
        item["name"]
        for name in ("P2PEscrow", "P2PEscrowV1", "TestStablecoin")
        for item in load_artifact(name).abi
        if item["type"] == "error"
    }
    classes = revert_classes()
    missing = {e for e in abi_errors if e not in classes}
    # Errors of OpenZeppelin internals that the escrow's own calls cannot reach are optional.
    reachable_only = {
        e
        for e in missing
        if not e.startswith(
            (
                "ECDSA",
                "Strings",
                "SafeCast",
                "InvalidShortString",
                "StringTooLong",
                "ERC20Invalid",
                "InvalidAccountNonce",
            )
        )
    }
    assert reachable_only == set()
    for name in abi_errors & set(classes):
        assert issubclass(classes[name], ContractRevert)
        assert classes[name].error_name == name


# ------------------------------------------------------------------ upgrade from v1

V1_RULING_PERIOD = 3 * 24 * 3600  # not the default, to see it carried over
V1_FEE_BPS = 150


def v1_registry(chain: Chain, registry_dir: Path) -> dict[str, Any]:
    """A v1 deployment recorded the way the code before v2 wrote it: no "version" keys, no
    "previous_escrows". Two arbitrators with their own caps (the first one later removed), a
    1.5% fee, the stablecoin allowed, and one open ETH trade."""
    owner = chain.accounts[0]
    escrow = _deploy_contract(chain, "P2PEscrowV1", [owner, V1_RULING_PERIOD], owner)
    coin = _deploy_contract(chain, "TestStablecoin", [owner], owner)
    arbitrators = chain.accounts[-2:]
    old = EscrowClient(chain, escrow.address, coin.address, version=1)
    old.register_arbitrator(arbitrators[0], 300, sender=owner)
    old.register_arbitrator(arbitrators[1], 450, sender=owner)
    old.set_platform_fee(owner, V1_FEE_BPS, sender=owner)
    old.set_token_allowed(coin.address, True, sender=owner)
    old.remove_arbitrator(arbitrators[0], sender=owner)
    record = {k: v for k, v in asdict(escrow).items() if k != "version"}
    data = {
        "chain_id": chain.chain_id,
        "genesis_hash": genesis_hash(chain),
        "owner": owner,
        "escrow": record,
        "stablecoin": {k: v for k, v in asdict(coin).items() if k != "version"},
        "arbitrators": list(arbitrators),
    }
    path = registry_path(chain.chain_id, registry_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return data


def test_old_registry_reads_as_version_1(fresh_chain: Chain, tmp_path: Path) -> None:
    data = v1_registry(fresh_chain, tmp_path)
    recorded = read_deployment(fresh_chain.chain_id, tmp_path)
    assert recorded is not None
    assert (recorded.escrow.version, recorded.previous_escrows) == (1, [])
    assert recorded.escrow.address == data["escrow"]["address"]
    # Not live as it is (an older version runs there), but upgradable.
    assert not is_live(fresh_chain, recorded)
    assert needs_upgrade(fresh_chain, recorded)
    assert load_deployment(fresh_chain, tmp_path) is None
    assert recorded.client(fresh_chain).version == 1


def test_code_version_tells_the_escrow_versions_apart(fresh_chain: Chain, tmp_path: Path) -> None:
    data = v1_registry(fresh_chain, tmp_path)
    new = deploy(fresh_chain, record=False)
    w3 = fresh_chain.w3
    assert code_version(bytes(w3.eth.get_code(data["escrow"]["address"]))) == 1
    assert code_version(bytes(w3.eth.get_code(new.escrow.address))) == 2
    assert code_version(bytes(w3.eth.get_code(data["stablecoin"]["address"]))) is None
    assert code_version(b"") is None
    assert code_version(bytes(w3.eth.get_code(fresh_chain.accounts[3]))) is None


def test_ensure_deployment_upgrades_a_v1_escrow_beside_it(
    fresh_chain: Chain, tmp_path: Path
) -> None:
    chain, owner = fresh_chain, fresh_chain.accounts[0]
    data = v1_registry(chain, tmp_path)
    old_address = data["escrow"]["address"]
    old = EscrowClient(chain, old_address, data["stablecoin"]["address"], version=1)
    removed, kept = data["arbitrators"]
    trade = old.fund(
        seller=chain.accounts[2],
        arbitrator=kept,
        amount=10**17,
        ship_by=chain.latest_timestamp() + 86400,
        inspection_period=0,  # v1 accepted it
        sender=chain.accounts[1],
    )
    assert trade.terms is not None and trade.terms.version == 1

    deployment, created = ensure_deployment(chain, registry_dir=tmp_path)

    assert created
    assert deployment.escrow.name == "P2PEscrow" and deployment.escrow.version == 2
    assert deployment.escrow.address != old_address
    assert deployment.escrow.args == [owner, V1_RULING_PERIOD]
    (previous,) = deployment.previous_escrows
    assert (previous.name, previous.address, previous.version) == ("P2PEscrowV1", old_address, 1)
    assert previous.tx_hash == data["escrow"]["tx_hash"]
    assert deployment.stablecoin is not None
    assert deployment.stablecoin.address == data["stablecoin"]["address"]
    assert deployment.arbitrators == data["arbitrators"]
    assert [r.address for r in deployment.escrows] == [deployment.escrow.address, old_address]

    # The new escrow has the old one's configuration.
    new = deployment.client(chain)
    assert new.version == 2 and new.address == deployment.escrow.address
    assert new.contract.functions.owner().call() == owner
    assert new.ruling_period() == V1_RULING_PERIOD
    assert new.platform_fee() == (owner, V1_FEE_BPS)
    assert new.arbitrator_info(kept) == ArbitratorInfo(True, 450)
    assert new.arbitrator_info(removed) == ArbitratorInfo(False, 0)  # removed stays removed
    assert new.is_token_allowed(deployment.stablecoin.address)
    assert not new.contract.functions.fundingPaused().call()

    # The old one takes no new trades, but its open trade can still be finished.
    assert old.contract.functions.fundingPaused().call()
    with pytest.raises(FundingPaused):
        old.fund(
            seller=chain.accounts[2],
            arbitrator=kept,
            amount=10**17,
            ship_by=chain.latest_timestamp() + 86400,
            inspection_period=86400,
            sender=chain.accounts[1],
        )
    old_client = deployment.client_for(chain, old_address.lower())
    assert old_client.version == 1 and old_client.address == old_address
    assert old_client.trade(trade.trade_id).terms == trade.terms
    old_client.confirm_receipt(trade.trade_id, trade.terms, sender=chain.accounts[1])
    assert old_client.trade_state(trade.trade_id, trade.terms).status == Status.RELEASED

    # New trades go to v2, with v2 terms.
    funded = new.fund(
        seller=chain.accounts[2],
        arbitrator=kept,
        amount=10**17,
        ship_by=chain.latest_timestamp() + 86400,
        inspection_period=86400,
        delivery_window=86400,
        sender=chain.accounts[1],
    )
    assert funded.terms is not None and funded.terms.version == 2
    assert funded.terms.platform_fee_bps == V1_FEE_BPS

    # The registry keeps both, with their versions; the next run reuses it.
    saved = json.loads(registry_path(chain.chain_id, tmp_path).read_text())
    assert saved["escrow"]["version"] == 2
    assert [(r["address"], r["version"]) for r in saved["previous_escrows"]] == [(old_address, 1)]
    assert read_deployment(chain.chain_id, tmp_path) == deployment
    assert is_live(chain, deployment) and not needs_upgrade(chain, deployment)
    assert load_deployment(chain, tmp_path) == deployment
    again, created = ensure_deployment(chain, registry_dir=tmp_path)
    assert not created and again == deployment


def test_client_for_knows_only_this_deployments_escrows(fresh_chain: Chain, tmp_path: Path) -> None:
    deployment = deploy(fresh_chain, registry_dir=tmp_path, record=True)
    assert deployment.previous_escrows == [] and deployment.escrow.version == 2
    assert deployment.client_for(fresh_chain, deployment.escrow.address).version == 2
    assert deployment.escrow_record(deployment.escrow.address.lower()) == deployment.escrow
    with pytest.raises(DeploymentError, match="not an escrow of this deployment"):
        deployment.client_for(fresh_chain, fresh_chain.accounts[3])
    assert deployment.escrow_record(fresh_chain.accounts[3]) is None


def test_upgrade_needs_the_owner_and_keeps_an_already_paused_escrow_paused(
    fresh_chain: Chain, tmp_path: Path
) -> None:
    chain = fresh_chain
    data = v1_registry(chain, tmp_path)
    recorded = read_deployment(chain.chain_id, tmp_path)
    assert recorded is not None
    with pytest.raises(DeploymentError, match="escrow owner"):
        upgrade(chain, recorded, deployer=chain.accounts[3], registry_dir=tmp_path)
    assert read_deployment(chain.chain_id, tmp_path) == recorded  # nothing written
    old = recorded.client(chain)
    old.set_funding_paused(True, sender=chain.accounts[0])
    upgraded = upgrade(chain, recorded, registry_dir=tmp_path)
    assert old.contract.functions.fundingPaused().call()
    assert [r.address for r in upgraded.previous_escrows] == [data["escrow"]["address"]]
    # A second upgrade (a v3 some day) would keep every older escrow, newest first.
    assert upgraded.escrows[1].version == 1


def test_record_from_another_chain_with_a_v1_escrow_is_stale(
    fresh_chain: Chain, tmp_path: Path
) -> None:
    v1_registry(fresh_chain, tmp_path)
    other_chain = connect(None)  # same chain id, different history: nothing to upgrade there
    recorded = read_deployment(fresh_chain.chain_id, tmp_path)
    assert recorded is not None
    assert not needs_upgrade(other_chain, recorded)
    deployment, created = ensure_deployment(other_chain, registry_dir=tmp_path)
    assert created and deployment.previous_escrows == []
    assert deployment.escrow.version == 2
