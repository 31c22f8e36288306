"""The web app's view of the chain: one connection and escrow client per process.

Views never build ABI calls: they ask the client for unsigned transactions (``prepare``) and
read trade state from the database the indexer keeps. Tests inject a ``Chain`` and a
``Deployment`` through ``app.config["CHAIN"]`` / ``app.config["DEPLOYMENT"]``.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, current_app

from escrow.chain import Chain, connect
from escrow.client import EscrowClient
from escrow.deploy import LOCAL_CHAIN_IDS, Deployment, load_deployment
from escrow.errors import ChainUnavailable, DeploymentError
from escrow.transactions import PreparedCall


class ChainGateway:
    def __init__(self, app: Flask) -> None:
        self._config = app.config
        self._lock = threading.RLock()  # client() and deployment() call chain() holding it
        self._chain: Chain | None = app.config.get("CHAIN")
        self._deployment: Deployment | None = app.config.get("DEPLOYMENT")
        self._client: EscrowClient | None = None
        self._older: dict[str, EscrowClient] = {}

    def chain(self) -> Chain:
        with self._lock:
            if self._chain is None:
                url = self._config.get("RPC_URL")
                if not url:
                    raise ChainUnavailable("no chain is configured (set ESCROW_RPC_URL)")
                self._chain = connect(url, timeout=10)
            return self._chain

    def deployment(self) -> Deployment:
        chain = self.chain()
        with self._lock:
            if self._deployment is None:
                try:
                    self._deployment = load_deployment(chain)
                except Exception as exc:  # node went away while we asked
                    raise ChainUnavailable(f"the chain node did not answer: {exc}") from exc
                if self._deployment is None:
                    raise DeploymentError(
                        f"the escrow is not deployed on chain {chain.chain_id}; run `escrow deploy`"
                    )
            return self._deployment

    def client(self) -> EscrowClient:
        deployment = self.deployment()
        with self._lock:
            if self._client is None:
                self._client = deployment.client(self.chain())
            return self._client

    def client_for(self, contract_address: str) -> EscrowClient:
        """The client of the escrow a trade lives in: the current one, or an older version
        this deployment still follows (its open trades are finished there)."""
        deployment = self.deployment()
        if contract_address.lower() == deployment.escrow.address.lower():
            return self.client()
        with self._lock:
            client = self._older.get(contract_address.lower())
            if client is None:
                client = deployment.client_for(self.chain(), contract_address)
                self._older[contract_address.lower()] = client
            return client

    def escrow_addresses(self) -> list[str]:
        """Every escrow this market follows (lower case), the current one first."""
        return [r.address.lower() for r in self.deployment().escrows]

    def stablecoin_address(self) -> str | None:
        """The dollar token's address, or None when the chain is down or has none: pages that
        only label currencies must still render without the chain."""
        try:
            coin = self.deployment().stablecoin
        except (ChainUnavailable, DeploymentError):
            return None
        return coin.address if coin else None

    def token_of(self, currency: str) -> str | None:
        """The token a listing's currency is paid in: the zero address for ETH, the deployment's
        dollar or tenge stablecoin for USD and KZT; None when this chain has none."""
        if currency == "ETH":
            return "0x" + "00" * 20
        deployment = self.deployment()
        record = {"USD": deployment.stablecoin, "KZT": deployment.tenge}.get(currency)
        return record.address if record is not None else None

    def currency_of(self, token: str) -> str:
        """The currency a trade's token stands for (the token's address if it is none of ours)."""
        if int(token, 16) == 0:
            return "ETH"
        deployment = self.deployment()
        for currency, record in (("USD", deployment.stablecoin), ("KZT", deployment.tenge)):
            if record is not None and record.address.lower() == token.lower():
                return currency
        return token

    def is_dev_chain(self) -> bool:
        try:
            return self.chain().chain_id in LOCAL_CHAIN_IDS
        except ChainUnavailable:
            return False

    def prepare(
        self, call: PreparedCall, sender: str, client: EscrowClient | None = None
    ) -> dict[str, Any]:
        """An unsigned transaction as JSON for the browser wallet (hex quantities).

        ``client``: the escrow the call goes to when it is not the current one."""
        try:
            tx = (client or self.client()).unsigned(call, sender)
        except (ConnectionError, OSError) as exc:
            raise ChainUnavailable(f"the chain node did not answer: {exc}") from exc
        out: dict[str, Any] = {
            "from": tx["from"],
            "data": tx["data"],
            "value": hex(int(tx.get("value", 0))),
            "gas": hex(int(tx["gas"])),
            "chainId": hex(int(tx["chainId"])),
        }
        if tx.get("to"):
            out["to"] = tx["to"]
        return out


def init_app(app: Flask) -> None:
    app.extensions["escrow_chain"] = ChainGateway(app)


def gateway() -> ChainGateway:
    return current_app.extensions["escrow_chain"]
