"""Deploy the escrow (and on a local chain the test tokens and demo arbitrators).

Each deployment is recorded per chain id in ``<data dir>/deployments/<chain id>.json``:
address, transaction hash, block and constructor arguments of every contract, plus the
chain's genesis hash. On a local chain the record also names the test tokens: ``stablecoin``
(tUSD, 6 decimals, what USD listings are paid in) and ``tenge`` (tKZT, 2 decimals, what KZT
listings are paid in; records written before it existed have none). Later runs reuse a live
deployment; deploying over one needs ``force=True``. A record whose contract code is gone (the
chain was reset) is stale.

Upgrades: when the recorded escrow runs an older contract version, :func:`ensure_deployment`
deploys the current version beside it and records both: ``escrow`` is the one new trades go
to, ``previous_escrows`` the older ones, which keep their open trades (every exit stays open)
and get their funding paused. The indexer follows them all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes

from escrow import settings
from escrow.chain import Chain
from escrow.client import CONTRACT_VERSIONS, CURRENT_VERSION, EscrowClient
from escrow.compiler import load_artifact
from escrow.errors import DeploymentError
from escrow.transactions import (
    ErrorDecoder,
    PreparedCall,
    Sender,
    TransactionSender,
    sender_address,
)

DEFAULT_RULING_PERIOD = 7 * 24 * 3600
LOCAL_CHAIN_IDS = {31337, 1337, 131277322940537}  # anvil/hardhat, geth dev, eth-tester
DEMO_ARBITRATOR_MAX_FEE_BPS = 500
DEMO_PLATFORM_FEE_BPS = 100
DEMO_STABLECOIN_PER_ACCOUNT = 100_000 * 10**6
TENGE_DECIMALS = 2
DEMO_TENGE_PER_ACCOUNT = 50_000_000 * 10**TENGE_DECIMALS  # 50 million tenge


@dataclass(frozen=True)
class ContractRecord:
    name: str
    address: str
    tx_hash: str
    block_number: int
    args: list[Any]
    #: escrow contract version (records written before versions existed are version 1)
    version: int = 1


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    genesis_hash: str
    owner: str
    escrow: ContractRecord
    stablecoin: ContractRecord | None = None
    arbitrators: list[str] = field(default_factory=list)
    #: older escrow contracts on this chain, newest first; their trades can still be finished
    previous_escrows: list[ContractRecord] = field(default_factory=list)
    #: the test tenge (tKZT) on a local chain: the token KZT listings are paid in
    tenge: ContractRecord | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def escrows(self) -> list[ContractRecord]:
        """Every escrow contract of this deployment, the current one first."""
        return [self.escrow, *self.previous_escrows]

    def escrow_record(self, address: str) -> ContractRecord | None:
        for record in self.escrows:
            if record.address.lower() == address.lower():
                return record
        return None

    def client_for(self, chain: Chain, address: str) -> EscrowClient:
        """A client for one of this deployment's escrows (with that contract's version)."""
        record = self.escrow_record(address)
        if record is None:
            raise DeploymentError(f"{address} is not an escrow of this deployment")
        return EscrowClient(
            chain,
            record.address,
            self.stablecoin.address if self.stablecoin else None,
            version=record.version,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        coin = data.get("stablecoin")
        tenge = data.get("tenge")
        return cls(
            chain_id=data["chain_id"],
            genesis_hash=data["genesis_hash"],
            owner=data["owner"],
            escrow=ContractRecord(**data["escrow"]),
            stablecoin=ContractRecord(**coin) if coin else None,
            arbitrators=list(data.get("arbitrators", [])),
            previous_escrows=[ContractRecord(**r) for r in data.get("previous_escrows", [])],
            tenge=ContractRecord(**tenge) if tenge else None,
        )

    def client(self, chain: Chain) -> EscrowClient:
        """A client for the current escrow, where new trades go."""
        return self.client_for(chain, self.escrow.address)


def registry_path(chain_id: int, registry_dir: Path | None = None) -> Path:
    return (registry_dir or settings.data_dir() / "deployments") / f"{chain_id}.json"


def genesis_hash(chain: Chain) -> str:
    return HexBytes(chain.w3.eth.get_block(0)["hash"]).to_0x_hex()


def read_deployment(chain_id: int, registry_dir: Path | None = None) -> Deployment | None:
    """The recorded deployment of a chain id, live or not (None without a record)."""
    path = registry_path(chain_id, registry_dir)
    if not path.is_file():
        return None
    return Deployment.from_json(json.loads(path.read_text()))


def load_deployment(chain: Chain, registry_dir: Path | None = None) -> Deployment | None:
    """The recorded deployment on this chain if it is still live, else None."""
    deployment = read_deployment(chain.chain_id, registry_dir)
    return deployment if deployment is not None and is_live(chain, deployment) else None


def code_version(code: bytes) -> int | None:
    """Which escrow contract version ``code`` is (compiler metadata aside), or None."""
    for version, name in CONTRACT_VERSIONS.items():
        if load_artifact(name).matches_code(code, ignore_metadata=True):
            return version
    return None


def same_chain(chain: Chain, deployment: Deployment) -> bool:
    """True when ``chain`` is the chain the deployment was recorded on.

    The genesis hash is the quick answer, but anvil does not keep it: a node restarted from
    its state file (``make run`` after Ctrl-C) keeps the recent blocks, every transaction and
    the accounts, and makes a new genesis block. Then the escrow's deployment transaction
    decides: it is still there, with the contract it created, on the same chain only.
    """
    if deployment.genesis_hash == genesis_hash(chain):
        return True
    try:
        receipt = chain.w3.eth.get_transaction_receipt(HexBytes(deployment.escrow.tx_hash))
    except Exception:  # TransactionNotFound, or a node that cannot look it up
        return False
    created = receipt.get("contractAddress")
    return created is not None and created.lower() == deployment.escrow.address.lower()


def recorded_version(chain: Chain, deployment: Deployment) -> int | None:
    """The contract version the recorded escrow runs on this chain; None when the record is
    of another chain or the escrow's code is not one of ours (a reset chain)."""
    if not same_chain(chain, deployment):
        return None
    code = chain.w3.eth.get_code(to_checksum_address(deployment.escrow.address))
    return code_version(bytes(code))


def is_live(chain: Chain, deployment: Deployment) -> bool:
    """True when the chain is the one deployed to and the current escrow runs the current
    contract version (an older version there needs :func:`upgrade`)."""
    return recorded_version(chain, deployment) == CURRENT_VERSION


def needs_upgrade(chain: Chain, deployment: Deployment) -> bool:
    """True when the recorded escrow is live on this chain but runs an older version."""
    version = recorded_version(chain, deployment)
    return version is not None and version < CURRENT_VERSION


def deploy(
    chain: Chain,
    *,
    deployer: Sender | None = None,
    ruling_period: int = DEFAULT_RULING_PERIOD,
    arbitrators: list[tuple[str, int]] | None = None,
    platform_fee: tuple[str, int] | None = None,
    with_stablecoin: bool | None = None,
    with_tenge: bool | None = None,
    registry_dir: Path | None = None,
    record: bool | None = None,
    force: bool = False,
) -> Deployment:
    """Deploys the escrow and configures it.

    On a local chain (anvil, eth-tester) the defaults also deploy the test stablecoin (tUSD)
    and the test tenge (tKZT), allow both on the escrow, mint some of each to the dev accounts
    and register the last two dev accounts as demo arbitrators.
    ``record`` writes the registry file (default: when ``registry_dir`` is given or the chain
    is not the embedded one, which lives only in this process).
    """
    local = chain.chain_id in LOCAL_CHAIN_IDS
    if record is None:
        record = registry_dir is not None or not chain.is_tester
    if record and not force:
        existing_path = registry_path(chain.chain_id, registry_dir)
        if existing_path.is_file():
            existing = Deployment.from_json(json.loads(existing_path.read_text()))
            if is_live(chain, existing):
                raise DeploymentError(
                    f"a live deployment exists on chain {chain.chain_id} at "
                    f"{existing.escrow.address} (recorded in {existing_path}); "
                    "pass force=True (--force) to deploy a new one"
                )
    if deployer is None:
        if not chain.accounts:
            raise DeploymentError("no deployer: set ESCROW_PRIVATE_KEY or use a dev chain")
        deployer = chain.accounts[0]
    owner = sender_address(deployer)
    dev_accounts = chain.accounts if local else []
    if arbitrators is None:
        arbitrators = [(a, DEMO_ARBITRATOR_MAX_FEE_BPS) for a in dev_accounts[-2:]]
    if platform_fee is None and local:
        platform_fee = (owner, DEMO_PLATFORM_FEE_BPS)
    if with_stablecoin is None:
        with_stablecoin = local
    if with_tenge is None:
        with_tenge = local

    escrow_record = _deploy_contract(
        chain, CONTRACT_VERSIONS[CURRENT_VERSION], [owner, ruling_period], deployer
    )
    coin_record = (
        _deploy_contract(chain, "TestStablecoin", [owner], deployer) if with_stablecoin else None
    )
    tenge_record = _deploy_contract(chain, "TestTenge", [owner], deployer) if with_tenge else None
    deployment = Deployment(
        chain_id=chain.chain_id,
        genesis_hash=genesis_hash(chain),
        owner=owner,
        escrow=escrow_record,
        stablecoin=coin_record,
        arbitrators=[to_checksum_address(a) for a, _ in arbitrators],
        tenge=tenge_record,
    )
    client = deployment.client(chain)
    for arbitrator, max_fee in arbitrators:
        client.register_arbitrator(arbitrator, max_fee, sender=deployer)
    if platform_fee is not None:
        client.set_platform_fee(platform_fee[0], platform_fee[1], sender=deployer)
    if coin_record is not None:
        client.set_token_allowed(coin_record.address, True, sender=deployer)
        assert client.stablecoin is not None
        for account in dev_accounts:
            mint = client.stablecoin.functions.mint(account, DEMO_STABLECOIN_PER_ACCOUNT)
            client.send(PreparedCall(mint), deployer)
    if tenge_record is not None:
        client.set_token_allowed(tenge_record.address, True, sender=deployer)
        _mint(client, tenge_record.address, dev_accounts, DEMO_TENGE_PER_ACCOUNT, deployer)
    if record:
        write_deployment(deployment, registry_dir)
    return deployment


def write_deployment(deployment: Deployment, registry_dir: Path | None = None) -> None:
    path = registry_path(deployment.chain_id, registry_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(deployment.to_json(), indent=2))
    tmp.replace(path)


def upgrade(
    chain: Chain,
    deployment: Deployment,
    *,
    deployer: Sender | None = None,
    registry_dir: Path | None = None,
    record: bool = True,
) -> Deployment:
    """Deploys the current escrow version beside the recorded (older) one.

    The new escrow gets the old one's owner, ruling period, arbitrators (with their fee caps),
    platform fee and allowed stablecoin and tenge. A local chain whose record has no tenge yet
    (recorded before it existed) gets one, minted to the dev accounts. The old escrow's funding
    is paused, so new trades go to the new one; every exit of its open trades stays open. The
    record keeps both.
    """
    if deployer is None:
        if not chain.accounts:
            raise DeploymentError("no deployer: set ESCROW_PRIVATE_KEY or use a dev chain")
        deployer = chain.accounts[0]
    old = deployment.client(chain)
    owner = to_checksum_address(old.contract.functions.owner().call())
    if to_checksum_address(sender_address(deployer)) != owner:
        raise DeploymentError(
            f"upgrading needs the escrow owner {owner} as deployer, not {sender_address(deployer)}"
        )
    ruling_period = old.ruling_period()
    new_record = _deploy_contract(
        chain, CONTRACT_VERSIONS[CURRENT_VERSION], [owner, ruling_period], deployer
    )
    new = EscrowClient(
        chain,
        new_record.address,
        deployment.stablecoin.address if deployment.stablecoin else None,
        version=CURRENT_VERSION,
    )
    for arbitrator in deployment.arbitrators:
        info = old.arbitrator_info(arbitrator)
        if info.registered:
            new.register_arbitrator(arbitrator, info.max_fee_bps, sender=deployer)
    recipient, fee_bps = old.platform_fee()
    if fee_bps or int(recipient, 16):
        new.set_platform_fee(recipient, fee_bps, sender=deployer)
    coin = deployment.stablecoin
    if coin is not None and old.is_token_allowed(coin.address):
        new.set_token_allowed(coin.address, True, sender=deployer)
    tenge = deployment.tenge
    if tenge is not None:
        if old.is_token_allowed(tenge.address):
            new.set_token_allowed(tenge.address, True, sender=deployer)
    elif chain.chain_id in LOCAL_CHAIN_IDS:
        tenge = _deploy_contract(chain, "TestTenge", [owner], deployer)
        new.set_token_allowed(tenge.address, True, sender=deployer)
        _mint(new, tenge.address, chain.accounts, DEMO_TENGE_PER_ACCOUNT, deployer)
    if not old.contract.functions.fundingPaused().call():
        old.set_funding_paused(True, sender=deployer)
    upgraded = Deployment(
        chain_id=deployment.chain_id,
        genesis_hash=deployment.genesis_hash,
        owner=deployment.owner,
        escrow=new_record,
        stablecoin=deployment.stablecoin,
        arbitrators=list(deployment.arbitrators),
        previous_escrows=[deployment.escrow, *deployment.previous_escrows],
        tenge=tenge,
    )
    if record:
        write_deployment(upgraded, registry_dir)
    return upgraded


def ensure_deployment(
    chain: Chain, registry_dir: Path | None = None, **kwargs: Any
) -> tuple[Deployment, bool]:
    """The live recorded deployment (upgraded beside an older escrow version if need be), or a
    new one; the flag says whether anything was deployed."""
    recorded = read_deployment(chain.chain_id, registry_dir)
    version = recorded_version(chain, recorded) if recorded is not None else None
    if recorded is not None and version == CURRENT_VERSION:
        return recorded, False
    if recorded is not None and version is not None and version < CURRENT_VERSION:
        return upgrade(chain, recorded, registry_dir=registry_dir), True
    return deploy(chain, registry_dir=registry_dir, force=True, **kwargs), True


def _mint(
    client: EscrowClient, token: str, accounts: Iterable[str], amount: int, deployer: Sender
) -> None:
    """Mints ``amount`` of a test token (owned by ``deployer``) to each of ``accounts``."""
    contract = client.token(token)
    for account in accounts:
        client.send(PreparedCall(contract.functions.mint(account, amount)), deployer)


def _deploy_contract(chain: Chain, name: str, args: list[Any], deployer: Sender) -> ContractRecord:
    artifact = load_artifact(name)
    factory = chain.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    sender = TransactionSender(chain, ErrorDecoder([artifact.abi]))
    receipt = sender.send(PreparedCall(factory.constructor(*args)), deployer)
    address = receipt["contractAddress"]
    if address is None:
        raise DeploymentError(f"{name} deployment produced no contract address")
    versions = {n: v for v, n in CONTRACT_VERSIONS.items()}
    return ContractRecord(
        name=name,
        address=to_checksum_address(address),
        tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
        block_number=int(receipt["blockNumber"]),
        args=[str(a) if not isinstance(a, int) else a for a in args],
        version=versions.get(name, 1),
    )
