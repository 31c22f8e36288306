"""Deployer: the per-chain registry, reuse of a live deployment, refusal to overwrite it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from escrow.chain import Chain, connect
from escrow.compiler import load_artifact
from escrow.deploy import (
    DEMO_ARBITRATOR_MAX_FEE_BPS,
    DEMO_PLATFORM_FEE_BPS,
    deploy,
    ensure_deployment,
    load_deployment,
    registry_path,
)
from escrow.errors import ContractRevert, DeploymentError, revert_classes


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
        for name in ("P2PEscrow", "TestStablecoin")
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
