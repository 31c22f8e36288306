"""Every deadline of escrow v2, probed at t - 1, t and t + 1.

For each deadline a scene is built (the trade in the right state, an offer from the other party
open, an extension requested where it matters), then each action is sent as a real transaction
in a block whose timestamp is pinned to exactly t - 1, t or t + 1, from a snapshot that is
restored afterwards. The tables say which actions each moment allows: None, or the error the
action reverts with. A deadline t is the first second at which only the timeout exit (and the
concessions the losing party may always make: the buyer's confirmReceipt, the seller's
refundBySeller, withdrawing one's own offer) is open, so at t exactly ``markShipped`` and
``rule`` must be refused and ``refundAfterDeadline`` / ``resolveAfterRulingTimeout`` allowed:
a ``>=`` turned into ``>`` in the contract fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from test_contract_v2 import INSPECTION, block_time, fund, pin_next_block, read_at, terms_of

from escrow.chain import Chain
from escrow.client import EscrowClient, Funded, Status, Terms, TxResult
from escrow.errors import (
    ContractRevert,
    DeadlineNotReached,
    DeadlinePassed,
    ExtensionAlreadyRequested,
    InspectionAlreadyStarted,
    InvalidStatus,
    NoExtensionRequested,
)
from helpers import DAY, Roles

WINDOW = 3 * DAY
EXTENSION_DAYS = 2
OFFER_BPS = 4_000

DP, DNR, IAS = DeadlinePassed, DeadlineNotReached, InspectionAlreadyStarted
Outcome = type[ContractRevert] | None
ALLOWED: tuple[Outcome, Outcome, Outcome] = (None, None, None)
CLOSES: tuple[Outcome, Outcome, Outcome] = (None, DP, DP)  # open before t, refused from t on
OPENS: tuple[Outcome, Outcome, Outcome] = (DNR, None, None)  # the timeout exit, from t on


@dataclass
class Scene:
    client: EscrowClient
    roles: Roles
    trade_id: int
    terms: Terms
    deadline: int  # t
    offerer: str  # who made the open offer; the other party accepts it


Action = Callable[[Scene], TxResult]


def _other(s: Scene) -> str:
    return s.roles.seller if s.offerer == s.roles.buyer else s.roles.buyer


ACTIONS: dict[str, Action] = {
    "markShipped": lambda s: s.client.mark_shipped(s.trade_id, s.terms, sender=s.roles.seller),
    "markReceived": lambda s: s.client.mark_received(s.trade_id, s.terms, sender=s.roles.buyer),
    "requestExtension": lambda s: s.client.request_inspection_extension(
        s.trade_id, s.terms, EXTENSION_DAYS, sender=s.roles.buyer),
    "grantExtension": lambda s: s.client.grant_inspection_extension(
        s.trade_id, s.terms, sender=s.roles.seller),
    "openDispute": lambda s: s.client.open_dispute(s.trade_id, s.terms, sender=_other(s)),
    "proposeSplit": lambda s: s.client.propose_split(
        s.trade_id, s.terms, 1_234, sender=_other(s)),
    "acceptSplit": lambda s: s.client.accept_split(
        s.trade_id, s.terms, OFFER_BPS, sender=_other(s)),
    "cancelSplit": lambda s: s.client.cancel_split(s.trade_id, s.terms, sender=s.offerer),
    "confirmReceipt": lambda s: s.client.confirm_receipt(
        s.trade_id, s.terms, sender=s.roles.buyer),
    "refundBySeller": lambda s: s.client.refund_by_seller(
        s.trade_id, s.terms, sender=s.roles.seller),
    "submitEvidence": lambda s: s.client.submit_evidence(
        s.trade_id, s.terms, "ipfs://late", b"\x02" * 32, sender=s.roles.buyer),
    "refundAfterDeadline": lambda s: s.client.refund_after_deadline(
        s.trade_id, s.terms, sender=s.roles.stranger),
    "releaseAfterInspection": lambda s: s.client.release_after_inspection(
        s.trade_id, s.terms, sender=s.roles.stranger),
    "rule": lambda s: s.client.rule(s.trade_id, s.terms, 7_000, sender=s.roles.arbitrator),
    "resolveAfterRulingTimeout": lambda s: s.client.resolve_after_ruling_timeout(
        s.trade_id, s.terms, sender=s.roles.stranger),
}  # fmt: skip


# ------------------------------------------------------------------ the scenes


def _scene(c: EscrowClient, r: Roles, funded: Funded, deadline: int, offerer: str) -> Scene:
    scene = Scene(c, r, funded.trade_id, terms_of(funded), deadline, offerer)
    c.propose_split(scene.trade_id, scene.terms, OFFER_BPS, sender=offerer)
    return scene


def ship_by(c: EscrowClient, r: Roles) -> Scene:
    funded = fund(c, r, window=WINDOW)
    return _scene(c, r, funded, terms_of(funded).ship_by, r.buyer)


def _shipped(c: EscrowClient, r: Roles) -> tuple[Funded, int]:
    funded = fund(c, r, window=WINDOW)
    result = c.mark_shipped(funded.trade_id, terms_of(funded), sender=r.seller)
    ends = result.event("TradeShipped").args["inspectionEndsAt"]
    assert ends == block_time(c, result) + WINDOW + INSPECTION
    return funded, block_time(c, result)


def inspection_end_from_window(c: EscrowClient, r: Roles) -> Scene:
    """Never marked received: the inspection ends a window plus an inspection after shipping."""
    funded, shipped_at = _shipped(c, r)
    return _scene(c, r, funded, shipped_at + WINDOW + INSPECTION, r.seller)


def inspection_end_after_receipt(c: EscrowClient, r: Roles) -> Scene:
    funded, shipped_at = _shipped(c, r)
    pin_next_block(c.chain, shipped_at + DAY)
    result = c.mark_received(funded.trade_id, terms_of(funded), sender=r.buyer)
    end = shipped_at + DAY + INSPECTION
    assert result.event("TradeReceived").args["inspectionEndsAt"] == end
    return _scene(c, r, funded, end, r.seller)


def inspection_end_after_extension(c: EscrowClient, r: Roles) -> Scene:
    """Received, then an extension requested and granted: the end moves by exactly its days."""
    funded, shipped_at = _shipped(c, r)
    tid, terms = funded.trade_id, terms_of(funded)
    pin_next_block(c.chain, shipped_at + DAY)
    c.mark_received(tid, terms, sender=r.buyer)
    c.request_inspection_extension(tid, terms, EXTENSION_DAYS, sender=r.buyer)
    result = c.grant_inspection_extension(tid, terms, sender=r.seller)
    end = shipped_at + DAY + INSPECTION + EXTENSION_DAYS * DAY
    assert result.event("InspectionExtended").args["inspectionEndsAt"] == end
    return _scene(c, r, funded, end, r.seller)


def inspection_end_extension_pending(c: EscrowClient, r: Roles) -> Scene:
    """Requested but not granted: the end does not move, and the seller can grant only
    before it."""
    funded, shipped_at = _shipped(c, r)
    tid, terms = funded.trade_id, terms_of(funded)
    c.request_inspection_extension(tid, terms, EXTENSION_DAYS, sender=r.buyer)
    return _scene(c, r, funded, shipped_at + WINDOW + INSPECTION, r.buyer)


def delivery_window_end(c: EscrowClient, r: Roles) -> Scene:
    funded, shipped_at = _shipped(c, r)
    return _scene(c, r, funded, shipped_at + WINDOW, r.buyer)


def _disputed(c: EscrowClient, r: Roles, ship: bool) -> Scene:
    funded = fund(c, r, window=WINDOW)
    tid, terms = funded.trade_id, terms_of(funded)
    if ship:
        c.mark_shipped(tid, terms, sender=r.seller)
    opened = c.open_dispute(tid, terms, sender=r.buyer)
    deadline = opened.event("DisputeOpened").args["rulingDeadline"]
    assert deadline == block_time(c, opened) + c.ruling_period()
    return _scene(c, r, funded, deadline, r.seller)


def ruling_deadline_shipped(c: EscrowClient, r: Roles) -> Scene:
    return _disputed(c, r, ship=True)


def ruling_deadline_unshipped(c: EscrowClient, r: Roles) -> Scene:
    return _disputed(c, r, ship=False)


# ------------------------------------------------------------------ what each moment allows

# action -> (t - 1, t, t + 1)
Row = dict[str, tuple[Outcome, Outcome, Outcome]]
SHIPPED_INSPECTION_END: Row = {
    "openDispute": CLOSES,
    "proposeSplit": CLOSES,
    "acceptSplit": CLOSES,
    "requestExtension": CLOSES,
    "releaseAfterInspection": OPENS,
    "markReceived": (IAS, IAS, IAS),
    "markShipped": (InvalidStatus,) * 3,
    "confirmReceipt": ALLOWED,
    "refundBySeller": ALLOWED,
    "cancelSplit": ALLOWED,
    "submitEvidence": ALLOWED,
}
RULING: Row = {
    "rule": CLOSES,
    "resolveAfterRulingTimeout": OPENS,
    "proposeSplit": CLOSES,
    "acceptSplit": CLOSES,
    "openDispute": (InvalidStatus,) * 3,
    "submitEvidence": ALLOWED,
    "cancelSplit": ALLOWED,
    "confirmReceipt": ALLOWED,
    "refundBySeller": ALLOWED,
}
DEADLINES: dict[str, tuple[Callable[[EscrowClient, Roles], Scene], Row]] = {
    "ship-by": (ship_by, {
        "markShipped": CLOSES,
        "openDispute": CLOSES,
        "proposeSplit": CLOSES,
        "acceptSplit": CLOSES,
        "refundAfterDeadline": OPENS,
        "confirmReceipt": ALLOWED,
        "refundBySeller": ALLOWED,
        "cancelSplit": ALLOWED,
        "markReceived": (InvalidStatus,) * 3,
        "requestExtension": (InvalidStatus,) * 3,
        "rule": (InvalidStatus,) * 3,
    }),
    "inspection-end-from-window": (inspection_end_from_window, SHIPPED_INSPECTION_END),
    "inspection-end-after-receipt": (inspection_end_after_receipt, SHIPPED_INSPECTION_END),
    "inspection-end-after-extension": (inspection_end_after_extension, {
        **SHIPPED_INSPECTION_END,
        "requestExtension": (ExtensionAlreadyRequested, DP, DP),
        "grantExtension": (NoExtensionRequested, DP, DP),  # granted already
    }),
    "extension-request-pending": (inspection_end_extension_pending, {
        **SHIPPED_INSPECTION_END,
        "requestExtension": (ExtensionAlreadyRequested, DP, DP),
        "grantExtension": CLOSES,
    }),
    "delivery-window-end": (delivery_window_end, {
        "markReceived": (None, IAS, IAS),
        "openDispute": ALLOWED,
        "proposeSplit": ALLOWED,
        "acceptSplit": ALLOWED,
        "requestExtension": ALLOWED,
        "releaseAfterInspection": (DNR, DNR, DNR),
        "confirmReceipt": ALLOWED,
    }),
    "ruling-deadline-shipped": (ruling_deadline_shipped, RULING),
    "ruling-deadline-unshipped": (ruling_deadline_unshipped, RULING),
}  # fmt: skip


CASES = [(name, action) for name, (_, row) in DEADLINES.items() for action in row]
OFFSETS = (-1, 0, 1)


def outcome(chain: Chain, timestamp: int, action: Callable[[], TxResult]) -> Outcome:
    """What ``action`` does as the only transaction of a block at ``timestamp``; undone after."""
    snapshot = chain.snapshot()
    try:
        pin_next_block(chain, timestamp)
        try:
            result = action()
        except ContractRevert as exc:
            return type(exc)
        assert int(chain.w3.eth.get_block(result.block_number)["timestamp"]) == timestamp
        return None
    finally:
        chain.revert(snapshot)


@pytest.mark.parametrize(("deadline", "action"), CASES, ids=[f"{d}-{a}" for d, a in CASES])
def test_action_at_deadline_boundary(
    client: EscrowClient, roles: Roles, deadline: str, action: str
) -> None:
    build, row = DEADLINES[deadline]
    scene = build(client, roles)
    t = scene.deadline
    got = tuple(outcome(client.chain, t + d, lambda: ACTIONS[action](scene)) for d in OFFSETS)
    want = row[action]
    assert got == want, {f"t{d:+d}": (g and g.__name__, w and w.__name__)
                         for d, g, w in zip(OFFSETS, got, want, strict=True)}  # fmt: skip


def test_every_timed_action_is_probed() -> None:
    """Each function with a deadline check is probed at every deadline that bounds it."""
    probed = {action for _, row in DEADLINES.values() for action in row}
    assert probed == set(ACTIONS)


@pytest.mark.parametrize("deadline", list(DEADLINES))
def test_trade_view_deadline_and_lapsed_offer_at_the_boundary(
    client: EscrowClient, roles: Roles, deadline: str
) -> None:
    """tradeView names the deadline the actions obey; the open offer reads none from t on."""
    scene = DEADLINES[deadline][0](client, roles)
    t = scene.deadline

    def view(at: int) -> object:
        return read_at(client.chain, at, lambda: client.trade_view(scene.trade_id, scene.terms))

    before, at, after = (view(t + d) for d in OFFSETS)
    if deadline == "delivery-window-end":
        # The deadline is the inspection end; what changes at t is that inspection started.
        started = [v.inspection_started for v in (before, at, after)]  # type: ignore[attr-defined]
        assert started == [False, True, True]
        assert before.deadline == t + INSPECTION  # type: ignore[attr-defined]
        assert at.split_proposer == before.split_proposer != 0  # type: ignore[attr-defined]
        return
    assert before.deadline == at.deadline == after.deadline == t  # type: ignore[attr-defined]
    proposers = [v.split_proposer for v in (before, at, after)]  # type: ignore[attr-defined]
    assert proposers[0] != 0 and proposers[1:] == [0, 0]
    if before.status == Status.SHIPPED:  # type: ignore[attr-defined]
        assert before.inspection_started  # type: ignore[attr-defined]


@pytest.mark.parametrize(("shipped", "buyer_bps"), [(True, 5_000), (False, 10_000)])
def test_ruling_timeout_at_t_exactly_pays_the_fallback(
    client: EscrowClient, roles: Roles, shipped: bool, buyer_bps: int
) -> None:
    scene = (ruling_deadline_shipped if shipped else ruling_deadline_unshipped)(client, roles)
    pin_next_block(client.chain, scene.deadline)
    result = client.resolve_after_ruling_timeout(scene.trade_id, scene.terms, sender=roles.stranger)
    assert block_time(client, result) == scene.deadline
    resolved = result.event("DisputeResolved").args
    assert (resolved["byTimeout"], resolved["buyerBps"], resolved["arbitratorFee"]) == (
        True, buyer_bps, 0)  # fmt: skip
