"""party stats: per-person figures kept by the indexer, filled from the existing trades

``party_stats`` (a person's trades as buyer and seller, disputes, counted ratings),
``party_volumes`` (value of their finished trades per token, exact) and ``arbitrator_stats``
(cases, rulings, timeouts, time to rule). The pages read these rows instead of adding up
trades per request. The tables are filled here from the trades, disputes and ratings already
stored, so an old data folder shows the same figures after the upgrade. The backfill is written
out here (not imported from the application) so that it stays what it was at this revision.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from escrow.db.types import Uint256

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINAL = ("Refunded", "Released", "Resolved", "Settled")
COUNTS = (
    "trades_total",
    "disputes",
    "open_disputes_as_seller",
    "completed_as_seller",
    "completed_as_buyer",
)


def upgrade() -> None:
    op.create_table(
        "party_stats",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("trades_total", sa.Integer(), nullable=False),
        sa.Column("disputes", sa.Integer(), nullable=False),
        sa.Column("open_disputes_as_seller", sa.Integer(), nullable=False),
        sa.Column("completed_as_seller", sa.Integer(), nullable=False),
        sa.Column("completed_as_buyer", sa.Integer(), nullable=False),
        sa.Column("rating_count", sa.Integer(), nullable=False),
        sa.Column("rating_total", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_party_stats")),
    )
    op.create_table(
        "party_volumes",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("token", sa.String(length=42), nullable=False),
        sa.Column("listing_currency", sa.String(length=8), nullable=False),
        sa.Column("amount", Uint256(), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_party_volumes_amount_not_negative")),
        sa.PrimaryKeyConstraint(
            "address", "token", "listing_currency", name=op.f("pk_party_volumes")
        ),
    )
    op.create_table(
        "arbitrator_stats",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("trades", sa.Integer(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("open_cases", sa.Integer(), nullable=False),
        sa.Column("resolved", sa.Integer(), nullable=False),
        sa.Column("by_timeout", sa.Integer(), nullable=False),
        sa.Column("for_buyer", sa.Integer(), nullable=False),
        sa.Column("for_seller", sa.Integer(), nullable=False),
        sa.Column("split", sa.Integer(), nullable=False),
        sa.Column("ruling_seconds_total", sa.BigInteger(), nullable=False),
        sa.Column("median_ruling_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_arbitrator_stats")),
    )
    _backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table("arbitrator_stats")
    op.drop_table("party_volumes")
    op.drop_table("party_stats")


# ---------------------------------------------------------------------------- backfill

_meta = sa.MetaData()
trades = sa.Table(
    "trades",
    _meta,
    sa.Column("id", sa.Integer),
    sa.Column("listing_id", sa.Integer),
    sa.Column("buyer", sa.String),
    sa.Column("seller", sa.String),
    sa.Column("arbitrator", sa.String),
    sa.Column("token", sa.String),
    sa.Column("amount", Uint256()),
    sa.Column("status", sa.String),
    sa.Column("disputed_at", sa.DateTime(timezone=True)),
)
listings = sa.Table(
    "listings", _meta, sa.Column("id", sa.Integer), sa.Column("currency", sa.String)
)
disputes = sa.Table(
    "disputes",
    _meta,
    sa.Column("trade_id", sa.Integer),
    sa.Column("opened_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("by_timeout", sa.Boolean),
    sa.Column("buyer_bps", sa.Integer),
)
ratings = sa.Table(
    "ratings",
    _meta,
    sa.Column("id", sa.Integer),
    sa.Column("trade_id", sa.Integer),
    sa.Column("rater", sa.String),
    sa.Column("ratee", sa.String),
    sa.Column("score", sa.Integer),
)
party_stats = sa.Table(
    "party_stats",
    _meta,
    sa.Column("address", sa.String),
    *(sa.Column(name, sa.Integer) for name in (*COUNTS, "rating_count", "rating_total")),
)
party_volumes = sa.Table(
    "party_volumes",
    _meta,
    sa.Column("address", sa.String),
    sa.Column("token", sa.String),
    sa.Column("listing_currency", sa.String),
    sa.Column("amount", Uint256()),
)
arbitrator_stats = sa.Table(
    "arbitrator_stats",
    _meta,
    sa.Column("address", sa.String),
    *(
        sa.Column(name, sa.BigInteger)
        for name in (
            "trades",
            "cases",
            "open_cases",
            "resolved",
            "by_timeout",
            "for_buyer",
            "for_seller",
            "split",
            "ruling_seconds_total",
            "median_ruling_ms",
        )
    ),
)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _backfill(bind: sa.Connection) -> None:
    people: dict[str, dict[str, int]] = {}
    volume: dict[tuple[str, str, str], int] = {}
    arbitrators: dict[str, dict[str, Any]] = {}
    final_trades: dict[int, tuple[str, str]] = {}
    query = sa.select(
        trades.c.id,
        trades.c.buyer,
        trades.c.seller,
        trades.c.arbitrator,
        trades.c.token,
        trades.c.amount,
        trades.c.status,
        trades.c.disputed_at,
        listings.c.currency,
    ).select_from(trades.outerjoin(listings, listings.c.id == trades.c.listing_id))
    for pk, buyer, seller, arbitrator, token, amount, status, disputed_at, currency in bind.execute(
        query
    ):
        final = status in FINAL
        if final:
            final_trades[pk] = (buyer, seller)
        for address in {buyer, seller}:
            entry = people.setdefault(address, dict.fromkeys(COUNTS, 0))
            entry["trades_total"] += 1
            entry["disputes"] += disputed_at is not None
            entry["open_disputes_as_seller"] += status == "Disputed" and seller == address
            entry["completed_as_seller"] += final and seller == address
            entry["completed_as_buyer"] += final and seller != address
            if final:
                key = (address, token.lower(), currency or "")
                volume[key] = volume.get(key, 0) + int(amount)
        arbitrators.setdefault(arbitrator, {"trades": 0, "durations": []})["trades"] += 1

    counted: dict[str, list[int]] = {}
    for trade_id, rater, ratee, score in bind.execute(
        sa.select(ratings.c.trade_id, ratings.c.rater, ratings.c.ratee, ratings.c.score)
    ):
        parties = final_trades.get(trade_id)
        if parties is None or (rater, ratee) not in (parties, parties[::-1]):
            continue
        counted.setdefault(ratee, []).append(int(score))

    figures = (
        "cases",
        "open_cases",
        "resolved",
        "by_timeout",
        "for_buyer",
        "for_seller",
        "split",
        "ruling_seconds_total",
    )
    for case in arbitrators.values():
        case.update(dict.fromkeys(figures, 0))
    for arbitrator, opened_at, resolved_at, by_timeout, buyer_bps in bind.execute(
        sa.select(
            trades.c.arbitrator,
            disputes.c.opened_at,
            disputes.c.resolved_at,
            disputes.c.by_timeout,
            disputes.c.buyer_bps,
        ).select_from(disputes.join(trades, trades.c.id == disputes.c.trade_id))
    ):
        case = arbitrators[arbitrator]
        case["cases"] += 1
        if resolved_at is None:
            case["open_cases"] += 1
            continue
        case["resolved"] += 1
        if by_timeout:
            case["by_timeout"] += 1
            continue
        side = {10_000: "for_buyer", 0: "for_seller"}.get(buyer_bps, "split")
        case[side] += 1
        delta = _aware(resolved_at) - _aware(opened_at)
        micro = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        case["ruling_seconds_total"] += micro // 1_000_000
        case["durations"].append(micro)

    for address in counted:
        people.setdefault(address, dict.fromkeys(COUNTS, 0))
    if people:
        bind.execute(
            party_stats.insert(),
            [
                {
                    "address": address,
                    **values,
                    "rating_count": len(counted.get(address, [])),
                    "rating_total": sum(counted.get(address, [])),
                }
                for address, values in sorted(people.items())
            ],
        )
    if volume:
        bind.execute(
            party_volumes.insert(),
            [
                {"address": a, "token": t, "listing_currency": c, "amount": v}
                for (a, t, c), v in sorted(volume.items())
            ],
        )
    rows = []
    for address, figures_of in sorted(arbitrators.items()):
        durations = sorted(figures_of.pop("durations"))
        median = None
        if durations:
            middle = len(durations) // 2
            micro2 = (
                2 * durations[middle]
                if len(durations) % 2
                else durations[middle - 1] + durations[middle]
            )
            median = (micro2 + 1_000) // 2_000
        rows.append({"address": address, **figures_of, "median_ruling_ms": median})
    if rows:
        bind.execute(arbitrator_stats.insert(), rows)
