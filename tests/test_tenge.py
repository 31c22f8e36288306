"""The test tenge (tKZT) on local chains: deployed, allowed and minted beside tUSD, kept on an
upgrade, paid into a trade with a permit, and recognised by the indexer as a KZT listing's
money."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from escrow.chain import Chain
from escrow.client import DAY, EscrowClient, Funded
from escrow.db.models import Currency, Listing, ListingStatus, Trade, User
from escrow.deploy import (
    DEMO_TENGE_PER_ACCOUNT,
    TENGE_DECIMALS,
    ContractRecord,
    Deployment,
    _deploy_contract,
    genesis_hash,
    read_deployment,
    registry_path,
    upgrade,
)
from escrow.indexer.scanner import Indexer, recorded_tenge
from helpers import Roles

TENGE = 10**TENGE_DECIMALS  # one tenge in tiyn
PRICE = 125_000 * TENGE + 50  # 125 000,50 ₸


def test_local_deployment_has_a_tenge_beside_the_dollar(
    chain: Chain, deployment: Deployment, client: EscrowClient
) -> None:
    assert deployment.tenge is not None and deployment.stablecoin is not None
    assert deployment.tenge.name == "TestTenge"
    assert deployment.tenge.address != deployment.stablecoin.address
    token = client.token(deployment.tenge.address)
    assert token.functions.name().call() == "Test Tenge"
    assert token.functions.symbol().call() == "tKZT"
    assert token.functions.decimals().call() == 2
    assert token.functions.owner().call() == deployment.owner
    assert client.is_token_allowed(deployment.tenge.address)
    for account in chain.accounts:
        assert client.token_balance(deployment.tenge.address, account) == DEMO_TENGE_PER_ACCOUNT
    assert DEMO_TENGE_PER_ACCOUNT == 50_000_000 * TENGE


def test_only_the_owner_mints(chain: Chain, deployment: Deployment, roles: Roles) -> None:
    assert deployment.tenge is not None
    token = deployment.client(chain).token(deployment.tenge.address)
    with pytest.raises(TransactionFailed):
        token.functions.mint(roles.buyer, 1).transact({"from": roles.buyer})


def test_the_record_keeps_the_tenge_and_old_records_have_none(
    deployment: Deployment, tmp_path: Path
) -> None:
    data = deployment.to_json()
    assert data["tenge"]["address"] == deployment.tenge.address  # type: ignore[union-attr]
    assert Deployment.from_json(json.loads(json.dumps(data))) == deployment
    old = {k: v for k, v in data.items() if k != "tenge"}  # written before the tenge existed
    assert Deployment.from_json(old).tenge is None
    path = registry_path(deployment.chain_id, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(old))
    recorded = read_deployment(deployment.chain_id, tmp_path)
    assert recorded is not None and recorded.tenge is None


def test_a_trade_is_funded_in_tenge_with_a_permit(
    client: EscrowClient,
    deployment: Deployment,
    roles: Roles,
    keys: dict[str, LocalAccount],
) -> None:
    assert deployment.tenge is not None
    tenge = deployment.tenge.address
    buyer = keys[roles.buyer]
    before = client.token_balance(tenge, buyer.address)
    funded = _fund_with_permit(client, roles, buyer, tenge, PRICE, b"\x01" * 32)
    assert funded.terms is not None
    assert funded.terms.token.lower() == tenge.lower()
    assert funded.terms.amount == PRICE
    assert client.token_balance(tenge, buyer.address) == before - PRICE
    assert client.token_balance(tenge, client.address) >= PRICE
    # The escrow took the permit, so no allowance is left over.
    token = client.token(tenge)
    assert token.functions.allowance(buyer.address, client.address).call() == 0


def test_upgrade_keeps_the_tenge_allowed(
    chain: Chain, deployment: Deployment, roles: Roles
) -> None:
    old = _v1_deployment(chain, tenge=deployment.tenge)
    upgraded = upgrade(chain, old, record=False)
    assert upgraded.tenge == deployment.tenge
    new = upgraded.client(chain)
    assert deployment.tenge is not None
    assert new.is_token_allowed(deployment.tenge.address)


def test_upgrade_gives_an_old_local_record_a_tenge(chain: Chain, roles: Roles) -> None:
    old = _v1_deployment(chain, tenge=None)
    upgraded = upgrade(chain, old, record=False)
    assert upgraded.tenge is not None
    new = upgraded.client(chain)
    assert new.is_token_allowed(upgraded.tenge.address)
    assert new.token_balance(upgraded.tenge.address, roles.buyer) == DEMO_TENGE_PER_ACCOUNT
    assert upgraded.to_json()["tenge"]["address"] == upgraded.tenge.address


def test_the_indexer_links_a_tenge_trade_to_a_kzt_listing(
    app: Flask,
    client: EscrowClient,
    deployment: Deployment,
    roles: Roles,
    keys: dict[str, LocalAccount],
) -> None:
    assert deployment.tenge is not None and deployment.stablecoin is not None
    listing_id, ref = _kzt_listing(app, roles.seller)
    # The same number of units in the dollar token does not buy a tenge listing.
    client.approve(deployment.stablecoin.address, PRICE, sender=roles.stranger)
    in_dollars = client.fund(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        token=deployment.stablecoin.address,
        amount=PRICE,
        ship_by=client.chain.latest_timestamp() + DAY,
        inspection_period=DAY,
        listing_ref=ref,
        sender=roles.stranger,
    )
    _index(app, deployment)
    assert _linked(app, in_dollars) is None
    in_tenge = _fund_with_permit(
        client, roles, keys[roles.buyer], deployment.tenge.address, PRICE, ref
    )
    _index(app, deployment)
    assert _linked(app, in_tenge) == listing_id
    with Session(app.extensions["escrow_engine"]) as session:
        listing = session.get(Listing, listing_id)
        assert listing is not None and listing.status == ListingStatus.SOLD.value


def test_the_tenge_comes_from_the_deployment_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCROW_DATA_DIR", str(tmp_path))
    escrow, tenge = "0x" + "aa" * 20, "0x" + "BB" * 20
    folder = tmp_path / "deployments"
    folder.mkdir()
    (folder / "5.json").write_text(
        json.dumps({"escrow": {"address": escrow}, "tenge": {"address": tenge}})
    )
    (folder / "6.json").write_text(json.dumps({"escrow": {"address": escrow}}))  # an old record
    assert recorded_tenge(5, escrow) == tenge.lower()
    assert recorded_tenge(5, "0x" + "99" * 20) is None  # another contract's record
    assert recorded_tenge(6, escrow) is None
    assert recorded_tenge(7, escrow) is None


# ---------------------------------------------------------------------------- helpers


def _fund_with_permit(
    client: EscrowClient,
    roles: Roles,
    buyer: LocalAccount,
    token: str,
    amount: int,
    ref: bytes,
) -> Funded:
    return client.fund_with_permit(
        seller=roles.seller,
        arbitrator=roles.arbitrator,
        token=token,
        amount=amount,
        ship_by=client.chain.latest_timestamp() + 3 * DAY,
        inspection_period=2 * DAY,
        listing_ref=ref,
        sender=buyer,
    )


def _v1_deployment(chain: Chain, *, tenge: ContractRecord | None) -> Deployment:
    """A version 1 escrow as an old record has it (allowing the given tenge, if any)."""
    owner = chain.accounts[0]
    record = _deploy_contract(chain, "P2PEscrowV1", [owner, 7 * DAY], owner)
    old = EscrowClient(chain, record.address, None, version=1)
    if tenge is not None:
        old.set_token_allowed(tenge.address, True, sender=owner)
    return Deployment(
        chain_id=chain.chain_id,
        genesis_hash=genesis_hash(chain),
        owner=owner,
        escrow=record,
        tenge=tenge,
    )


def _kzt_listing(app: Flask, seller: str) -> tuple[int, bytes]:
    with Session(app.extensions["escrow_engine"]) as session:
        user = session.scalar(select(User).where(User.address == seller.lower()))
        if user is None:
            user = User(address=seller.lower())
            session.add(user)
            session.flush()
        ref = secrets.token_bytes(32)
        listing = Listing(
            ref="0x" + ref.hex(),
            seller_id=user.id,
            title="Samovar",
            price=PRICE,
            currency=Currency.KZT.value,
            quantity=1,
        )
        session.add(listing)
        session.commit()
        return listing.id, ref


def _index(app: Flask, deployment: Deployment) -> None:
    gateway = app.extensions["escrow_chain"]
    assert deployment.tenge is not None and deployment.stablecoin is not None
    Indexer(
        gateway.chain().w3,
        app.extensions["escrow_engine"],
        deployment.escrow.address.lower(),
        start_block=deployment.escrow.block_number,
        stablecoin=deployment.stablecoin.address,
        tenge=deployment.tenge.address,
    ).sync()


def _linked(app: Flask, funded: Funded) -> int | None:
    with Session(app.extensions["escrow_engine"]) as session:
        trade = session.scalar(select(Trade).where(Trade.onchain_id == funded.trade_id))
        assert trade is not None
        return trade.listing_id
