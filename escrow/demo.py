"""Every trade path, run end to end on a chain; used by ``escrow demo`` and the gas benchmark.

Each scenario returns the transactions it sent, with the gas each used, so the caller can
print them or add them up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.signers.local import LocalAccount

from escrow.chain import Chain
from escrow.client import ETH, EscrowClient, Funded, Status, Terms, TxResult
from escrow.deploy import Deployment
from escrow.transactions import Sender

DAY = 24 * 3600
SHIP_WITHIN = 3 * DAY
INSPECTION = 2 * DAY  # the contract (v2) requires at least a day
DELIVERY_WINDOW = 4 * DAY  # for the delivery scenario: parcel days after shipping
ARBITRATOR_FEE_BPS = 200


@dataclass
class Step:
    actor: str
    action: str
    gas_used: int
    tx_hash: str


@dataclass
class ScenarioResult:
    name: str
    token_symbol: str
    final_status: Status
    steps: list[Step] = field(default_factory=list)

    @property
    def total_gas(self) -> int:
        return sum(s.gas_used for s in self.steps)


@dataclass(frozen=True)
class Cast:
    """Who plays which part. ``buyer_signer`` signs permits (a key, or the node's account)."""

    buyer: str
    seller: str
    arbitrator: str
    keeper: str  # a third party that triggers timeouts
    buyer_signer: Sender


def dev_cast(chain: Chain, deployment: Deployment) -> Cast:
    accounts = chain.accounts
    signer: Sender = accounts[1]
    if chain.is_tester:
        signer = tester_key(accounts[1])
    return Cast(
        buyer=accounts[1],
        seller=accounts[2],
        keeper=accounts[3],
        arbitrator=deployment.arbitrators[-1],
        buyer_signer=signer,
    )


def tester_key(address: str) -> LocalAccount:
    """The embedded chain's key for one of its accounts (it cannot sign typed data itself)."""
    from eth_tester.backends.pyevm.main import get_default_account_keys

    for key in get_default_account_keys():
        account: LocalAccount = Account.from_key(key.to_bytes())
        if account.address == address:
            return account
    raise LookupError(f"{address} is not an account of the embedded chain")


class Scenarios:
    """Runs the trade paths with one client and cast."""

    def __init__(
        self,
        client: EscrowClient,
        cast: Cast,
        *,
        amount_eth: int = 10**17,
        amount_usd: int = 250 * 10**6,
        on_step: Callable[[str, Step], None] | None = None,
    ) -> None:
        self.client = client
        self.cast = cast
        self.amount = {"ETH": amount_eth, "tUSD": amount_usd}
        self.on_step = on_step

    def token(self, symbol: str) -> str:
        if symbol == "ETH":
            return ETH
        if self.client.stablecoin is None:
            raise LookupError("this deployment has no stablecoin")
        return self.client.stablecoin.address

    # --------------------------------------------------------------- building blocks

    def _record(self, result: ScenarioResult, actor: str, action: str, tx: TxResult) -> None:
        step = Step(actor, action, tx.gas_used, tx.tx_hash)
        result.steps.append(step)
        if self.on_step:
            self.on_step(result.name, step)

    def _fund(
        self,
        result: ScenarioResult,
        symbol: str,
        *,
        permit: bool = False,
        approve: bool = True,
        delivery_window: int = 0,
    ) -> Funded:
        c, cast = self.client, self.cast
        token, amount = self.token(symbol), self.amount[symbol]
        common: dict[str, object] = dict(
            seller=cast.seller,
            arbitrator=cast.arbitrator,
            amount=amount,
            ship_by=c.chain.latest_timestamp() + SHIP_WITHIN,
            inspection_period=INSPECTION,
            arbitrator_fee_bps=ARBITRATOR_FEE_BPS,
            listing_ref=b"demo-listing",
        )
        if c.version >= 2:
            # The buyer accepts the platform fee it was shown (v2 caps it at funding).
            common["delivery_window"] = delivery_window
            common["max_platform_fee_bps"] = c.platform_fee()[1]
        if permit:
            funded = c.fund_with_permit(token=token, sender=cast.buyer_signer, **common)  # type: ignore[arg-type]
            self._record(result, "buyer", "fund with permit", funded)
            return funded
        if symbol != "ETH" and approve:
            self._record(result, "buyer", "approve", c.approve(token, amount, sender=cast.buyer))
        funded = c.fund(token=token, sender=cast.buyer, **common)  # type: ignore[arg-type]
        self._record(result, "buyer", "fund", funded)
        return funded

    def _finish(self, result: ScenarioResult, trade_id: int, terms: Terms) -> ScenarioResult:
        result.final_status = self.client.trade_state(trade_id, terms).status
        return result

    def _new(self, name: str, symbol: str) -> ScenarioResult:
        return ScenarioResult(name=name, token_symbol=symbol, final_status=Status.NONE)

    def _wait_past_deadline(self, trade_id: int, terms: Terms) -> None:
        """Moves chain time to the first second the current state's timeout has passed."""
        c = self.client
        state = c.trade_state(trade_id, terms)
        # While Funded the timeout is the ship-by time (the state's deadline field is unused).
        deadline = terms.ship_by if state.status == Status.FUNDED else state.deadline
        c.chain.increase_time(max(deadline - c.chain.latest_timestamp(), 0) + 1)

    # --------------------------------------------------------------- the paths

    def confirm(self, symbol: str = "ETH", *, permit: bool = False) -> ScenarioResult:
        """Fund, then the buyer confirms receipt at once (the shortest happy path)."""
        r = self._new("buyer confirms receipt" + (" (permit)" if permit else ""), symbol)
        f = self._fund(r, symbol, permit=permit)
        assert f.terms is not None
        self._record(
            r,
            "buyer",
            "confirm receipt",
            self.client.confirm_receipt(f.trade_id, f.terms, sender=self.cast.buyer),
        )
        return self._finish(r, f.trade_id, f.terms)

    def ship_and_confirm(self, symbol: str = "ETH") -> ScenarioResult:
        r = self._new("seller ships, buyer confirms", symbol)
        f = self._fund(r, symbol)
        assert f.terms is not None
        c, cast = self.client, self.cast
        self._record(
            r,
            "seller",
            "mark shipped",
            c.mark_shipped(f.trade_id, f.terms, sender=cast.seller, shipment_ref=b"tracking-123"),
        )
        self._record(
            r, "buyer", "confirm receipt", c.confirm_receipt(f.trade_id, f.terms, sender=cast.buyer)
        )
        return self._finish(r, f.trade_id, f.terms)

    def release_after_inspection(self, symbol: str = "ETH") -> ScenarioResult:
        r = self._new("inspection period passes, anyone releases", symbol)
        f = self._fund(r, symbol)
        assert f.terms is not None
        c, cast = self.client, self.cast
        self._record(
            r, "seller", "mark shipped", c.mark_shipped(f.trade_id, f.terms, sender=cast.seller)
        )
        self._wait_past_deadline(f.trade_id, f.terms)
        self._record(
            r,
            "keeper",
            "release after inspection",
            c.release_after_inspection(f.trade_id, f.terms, sender=cast.keeper),
        )
        return self._finish(r, f.trade_id, f.terms)

    def deliver_and_confirm(self, symbol: str = "ETH") -> ScenarioResult:
        """v2: the seller ships with a delivery window, the buyer marks the parcel received
        (its inspection starts), then confirms."""
        r = self._new("seller ships, buyer marks received, then confirms", symbol)
        f = self._fund(r, symbol, delivery_window=DELIVERY_WINDOW)
        assert f.terms is not None
        c, cast = self.client, self.cast
        self._record(
            r,
            "seller",
            "mark shipped",
            c.mark_shipped(f.trade_id, f.terms, sender=cast.seller, shipment_ref=b"tracking-456"),
        )
        c.chain.increase_time(DAY)  # the parcel travels
        self._record(
            r, "buyer", "mark received", c.mark_received(f.trade_id, f.terms, sender=cast.buyer)
        )
        self._record(
            r, "buyer", "confirm receipt", c.confirm_receipt(f.trade_id, f.terms, sender=cast.buyer)
        )
        return self._finish(r, f.trade_id, f.terms)

    def refund_after_deadline(self, symbol: str = "ETH") -> ScenarioResult:
        r = self._new("not shipped in time, buyer refunded", symbol)
        f = self._fund(r, symbol)
        assert f.terms is not None
        self._wait_past_deadline(f.trade_id, f.terms)
        self._record(
            r,
            "buyer",
            "refund after deadline",
            self.client.refund_after_deadline(f.trade_id, f.terms, sender=self.cast.buyer),
        )
        return self._finish(r, f.trade_id, f.terms)

    def refund_by_seller(self, symbol: str = "ETH") -> ScenarioResult:
        r = self._new("seller refunds the buyer", symbol)
        f = self._fund(r, symbol)
        assert f.terms is not None
        self._record(
            r,
            "seller",
            "refund by seller",
            self.client.refund_by_seller(f.trade_id, f.terms, sender=self.cast.seller),
        )
        return self._finish(r, f.trade_id, f.terms)

    def settle(self, symbol: str = "ETH", buyer_bps: int = 3_000) -> ScenarioResult:
        r = self._new(f"parties settle {buyer_bps / 100:.0f}% to the buyer", symbol)
        f = self._fund(r, symbol)
        assert f.terms is not None
        c, cast = self.client, self.cast
        self._record(
            r, "seller", "mark shipped", c.mark_shipped(f.trade_id, f.terms, sender=cast.seller)
        )
        self._record(
            r,
            "buyer",
            "propose split",
            c.propose_split(f.trade_id, f.terms, buyer_bps, sender=cast.buyer),
        )
        self._record(
            r,
            "seller",
            "accept split",
            c.accept_split(f.trade_id, f.terms, buyer_bps, sender=cast.seller),
        )
        return self._finish(r, f.trade_id, f.terms)

    def dispute(
        self,
        symbol: str = "ETH",
        buyer_bps: int = 7_000,
        *,
        evidence: bool = True,
        ship: bool = True,
    ) -> ScenarioResult:
        r = self._new(f"dispute, arbitrator rules {buyer_bps / 100:.0f}% to the buyer", symbol)
        f = self._fund(r, symbol)
        assert f.terms is not None
        c, cast = self.client, self.cast
        if ship:
            self._record(
                r, "seller", "mark shipped", c.mark_shipped(f.trade_id, f.terms, sender=cast.seller)
            )
        self._record(
            r, "buyer", "open dispute", c.open_dispute(f.trade_id, f.terms, sender=cast.buyer)
        )
        if evidence:
            self._record(
                r,
                "buyer",
                "submit evidence",
                c.submit_evidence(
                    f.trade_id, f.terms, "ipfs://demo-photo", b"\x01" * 32, sender=cast.buyer
                ),
            )
        self._record(
            r, "arbitrator", "rule", c.rule(f.trade_id, f.terms, buyer_bps, sender=cast.arbitrator)
        )
        return self._finish(r, f.trade_id, f.terms)

    def ruling_timeout(self, symbol: str = "ETH") -> ScenarioResult:
        r = self._new("arbitrator never rules, 50/50 after the ruling period", symbol)
        f = self._fund(r, symbol)
        assert f.terms is not None
        c, cast = self.client, self.cast
        self._record(
            r, "seller", "mark shipped", c.mark_shipped(f.trade_id, f.terms, sender=cast.seller)
        )
        self._record(
            r, "seller", "open dispute", c.open_dispute(f.trade_id, f.terms, sender=cast.seller)
        )
        self._wait_past_deadline(f.trade_id, f.terms)
        self._record(
            r,
            "keeper",
            "resolve after ruling timeout",
            c.resolve_after_ruling_timeout(f.trade_id, f.terms, sender=cast.keeper),
        )
        return self._finish(r, f.trade_id, f.terms)

    def all(self, symbols: tuple[str, ...] = ("ETH", "tUSD")) -> list[ScenarioResult]:
        results: list[ScenarioResult] = []
        for symbol in symbols:
            results += [
                self.confirm(symbol),
                self.ship_and_confirm(symbol),
                self.release_after_inspection(symbol),
            ]
            if self.client.version >= 2:
                results.append(self.deliver_and_confirm(symbol))
            results += [
                self.refund_after_deadline(symbol),
                self.refund_by_seller(symbol),
                self.settle(symbol),
                self.dispute(symbol),
                self.ruling_timeout(symbol),
            ]
            if symbol != "ETH":
                results.append(self.confirm(symbol, permit=True))
        return results
