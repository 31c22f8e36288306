"""Per-person figures (``party_stats``, ``party_volumes``, ``arbitrator_stats``).

The pages read one row per person instead of adding up trades per request. The rows are kept
right three ways, all inside the transaction that changes what they count:

* The indexer's forward path adds each batch's difference (:class:`StatsDelta`: every trade
  row it writes counts minus, as it was, plus, as it is now), in a few statements per batch.
* After a reorganisation, ``escrow index --reset`` or a reconcile repair the affected people's
  rows are computed again from the trades (:func:`recompute`), which is exact by definition.
* Any write of a ``Trade``, ``Dispute`` or ``Rating`` through the ORM (the web app's ratings,
  scripts, tests) recomputes the people concerned when the session flushes (the hooks at the
  end of this module).

Money is summed in Python ``int`` and stored in :class:`~escrow.db.types.Uint256` columns:
exact on SQLite and PostgreSQL, above 2**64 too (SQL ``SUM`` would be a float on SQLite).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, delete, event, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from escrow.db.models import (
    FINAL_STATUSES,
    ArbitratorStats,
    Dispute,
    Listing,
    PartyStats,
    PartyVolume,
    Rating,
    Trade,
    TradeStatus,
)

FINAL = frozenset(s.value for s in FINAL_STATUSES)
DISPUTED = TradeStatus.DISPUTED.value
CHUNK = 500
PARTY_COUNTS = (
    "trades_total",
    "disputes",
    "open_disputes_as_seller",
    "completed_as_seller",
    "completed_as_buyer",
)
ARBITRATOR_FIGURES = (
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
_party_table = cast(Table, PartyStats.__table__)
_volume_table = cast(Table, PartyVolume.__table__)
_arbitrator_table = cast(Table, ArbitratorStats.__table__)


def _chunks(items: list[Any], size: int = CHUNK) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------- one trade's part


def party_part(
    trade: Mapping[str, Any] | None, listing_currency: str | None
) -> tuple[dict[str, dict[str, int]], dict[tuple[str, str, str], int]]:
    """What one trade row adds to its buyer's and seller's figures: counts per address, and
    volume per (address, token, listing currency)."""
    counts: dict[str, dict[str, int]] = {}
    volume: dict[tuple[str, str, str], int] = {}
    if trade is None:
        return counts, volume
    seller, status = trade["seller"], trade["status"]
    final = status in FINAL
    for address in {trade["buyer"], seller}:
        counts[address] = {
            "trades_total": 1,
            "disputes": 1 if trade["disputed_at"] is not None else 0,
            "open_disputes_as_seller": 1 if status == DISPUTED and seller == address else 0,
            "completed_as_seller": 1 if final and seller == address else 0,
            "completed_as_buyer": 1 if final and seller != address else 0,
        }
        if final:
            key = (address, trade["token"].lower(), listing_currency or "")
            volume[key] = volume.get(key, 0) + int(trade["amount"])
    return counts, volume


@dataclass
class StatsDelta:
    """The change a batch makes to people's figures (see the module's docstring)."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    volume: dict[tuple[str, str, str], int] = field(default_factory=dict)
    arbitrator_trades: dict[str, int] = field(default_factory=dict)
    #: Arbitrators whose disputes changed: their dispute figures are computed again.
    arbitrators: set[str] = field(default_factory=set)
    #: Everyone whose trades changed (their counted ratings may have too).
    parties: set[str] = field(default_factory=set)

    def add(
        self,
        old: Mapping[str, Any] | None,
        old_currency: str | None,
        new: Mapping[str, Any] | None,
        new_currency: str | None,
        *,
        dispute_changed: bool = False,
    ) -> None:
        """Counts a trade row that was ``old`` (None: did not exist) and is now ``new``."""
        for sign, row, currency in ((-1, old, old_currency), (1, new, new_currency)):
            if row is None:
                continue
            counts, volume = party_part(row, currency)
            for address, values in counts.items():
                self.parties.add(address)
                mine = self.counts.setdefault(address, dict.fromkeys(PARTY_COUNTS, 0))
                for name, value in values.items():
                    mine[name] += sign * value
            for key, amount in volume.items():
                self.volume[key] = self.volume.get(key, 0) + sign * amount
            arbitrator = row["arbitrator"]
            self.arbitrator_trades[arbitrator] = self.arbitrator_trades.get(arbitrator, 0) + sign
            if dispute_changed:
                self.arbitrators.add(arbitrator)

    def apply(self, session: Session) -> None:
        connection = session.connection()
        addresses = sorted(a for a, c in self.counts.items() if any(c.values()))
        if addresses:
            current = _stored_parties(connection, addresses)
            rows = []
            for address in addresses:
                values = current.get(address, dict.fromkeys(PARTY_COUNTS, 0))
                rows.append(
                    {"address": address}
                    | {n: values[n] + self.counts[address][n] for n in PARTY_COUNTS}
                )
            _upsert(connection, _party_table, rows, ["address"], list(PARTY_COUNTS))
        volume_keys = sorted(k for k, v in self.volume.items() if v)
        if volume_keys:
            stored = _stored_volumes(connection, sorted({k[0] for k in volume_keys}))
            rows = []
            for key in volume_keys:
                amount = stored.get(key, 0) + self.volume[key]
                if amount < 0:
                    raise ValueError(f"volume of {key} would be negative ({amount})")
                rows.append(
                    {
                        "address": key[0],
                        "token": key[1],
                        "listing_currency": key[2],
                        "amount": amount,
                    }
                )
            _upsert(
                connection,
                _volume_table,
                rows,
                ["address", "token", "listing_currency"],
                ["amount"],
            )
        trade_counts = {a: n for a, n in self.arbitrator_trades.items() if n}
        plain = sorted(set(trade_counts) - self.arbitrators)
        if plain:
            stored_trades = dict(
                connection.execute(
                    select(ArbitratorStats.address, ArbitratorStats.trades).where(
                        ArbitratorStats.address.in_(plain)
                    )
                ).all()
            )
            _upsert(
                connection,
                _arbitrator_table,
                [
                    {"address": a, "trades": stored_trades.get(a, 0) + trade_counts[a]}
                    | dict.fromkeys(ARBITRATOR_FIGURES[:-1], 0)
                    | {"median_ruling_ms": None}
                    for a in plain
                ],
                ["address"],
                ["trades"],
            )
        if self.arbitrators:
            recompute_arbitrators(session, self.arbitrators)
        if self.parties:
            recompute_ratings(session, self.parties)


def _stored_parties(connection: Connection, addresses: list[str]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for chunk in _chunks(addresses):
        for row in connection.execute(
            select(_party_table).where(_party_table.c.address.in_(chunk))
        ).mappings():
            found[row["address"]] = {n: row[n] for n in PARTY_COUNTS}
    return found


def _stored_volumes(
    connection: Connection, addresses: list[str]
) -> dict[tuple[str, str, str], int]:
    found: dict[tuple[str, str, str], int] = {}
    for chunk in _chunks(addresses):
        for address, token, currency, amount in connection.execute(
            select(
                PartyVolume.address,
                PartyVolume.token,
                PartyVolume.listing_currency,
                PartyVolume.amount,
            ).where(PartyVolume.address.in_(chunk))
        ):
            found[(address, token, currency)] = amount
    return found


def _upsert(
    connection: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    keys: list[str],
    columns: list[str],
) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET columns (SQLite and PostgreSQL)."""
    if not rows:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=keys, set_={c: statement.excluded[c] for c in columns}
    )
    connection.execute(statement, rows)


# ---------------------------------------------------------------------------- from scratch


def compute_parties(
    session: Session | Connection, addresses: Iterable[str]
) -> tuple[dict[str, dict[str, int]], dict[tuple[str, str, str], int]]:
    """Everyone's figures (counts without ratings, volumes) computed from the trades."""
    wanted = sorted(set(addresses))
    counts: dict[str, dict[str, int]] = {a: dict.fromkeys(PARTY_COUNTS, 0) for a in wanted}
    volume: dict[tuple[str, str, str], int] = {}
    seen: set[int] = set()
    for chunk in _chunks(wanted):
        rows = session.execute(
            select(
                Trade.id,
                Trade.buyer,
                Trade.seller,
                Trade.status,
                Trade.token,
                Trade.amount,
                Trade.disputed_at,
                Trade.arbitrator,
                Listing.currency,
            )
            .outerjoin(Listing, Listing.id == Trade.listing_id)
            .where(or_(Trade.seller.in_(chunk), Trade.buyer.in_(chunk)))
        ).all()
        for pk, buyer, seller, status, token, amount, disputed_at, arbitrator, currency in rows:
            if pk in seen:
                continue
            seen.add(pk)
            row = {
                "buyer": buyer,
                "seller": seller,
                "status": status,
                "token": token,
                "amount": amount,
                "disputed_at": disputed_at,
                "arbitrator": arbitrator,
            }
            part_counts, part_volume = party_part(row, currency)
            for address, values in part_counts.items():
                if address in counts:
                    for name, value in values.items():
                        counts[address][name] += value
            for key, amount_part in part_volume.items():
                if key[0] in counts:
                    volume[key] = volume.get(key, 0) + amount_part
    return counts, volume


def compute_ratings(
    session: Session | Connection, addresses: Iterable[str]
) -> dict[str, tuple[int, int]]:
    """(count, sum of scores) of the ratings that count for each address: left by the other
    party of a finished trade."""
    wanted = sorted(set(addresses))
    found = {a: (0, 0) for a in wanted}
    for chunk in _chunks(wanted):
        for ratee, count, total in session.execute(
            select(Rating.ratee, func.count(Rating.id), func.sum(Rating.score))
            .join(Trade, Trade.id == Rating.trade_id)
            .where(
                Rating.ratee.in_(chunk),
                Trade.status.in_(sorted(FINAL)),
                or_(
                    and_(Rating.rater == Trade.buyer, Trade.seller == Rating.ratee),
                    and_(Rating.rater == Trade.seller, Trade.buyer == Rating.ratee),
                ),
            )
            .group_by(Rating.ratee)
        ):
            found[ratee] = (int(count or 0), int(total or 0))
    return found


def compute_arbitrators(
    session: Session | Connection, addresses: Iterable[str]
) -> dict[str, dict[str, int | None]]:
    wanted = sorted(set(addresses))
    figures: dict[str, dict[str, int | None]] = {}
    durations: dict[str, list[int]] = {a: [] for a in wanted}
    for address in wanted:
        figures[address] = {"trades": 0, **dict.fromkeys(ARBITRATOR_FIGURES[:-1], 0)}
    for chunk in _chunks(wanted):
        for address, count in session.execute(
            select(Trade.arbitrator, func.count(Trade.id))
            .where(Trade.arbitrator.in_(chunk))
            .group_by(Trade.arbitrator)
        ):
            figures[address]["trades"] = int(count)
        for address, opened_at, resolved_at, by_timeout, buyer_bps in session.execute(
            select(
                Trade.arbitrator,
                Dispute.opened_at,
                Dispute.resolved_at,
                Dispute.by_timeout,
                Dispute.buyer_bps,
            )
            .join(Dispute, Dispute.trade_id == Trade.id)
            .where(Trade.arbitrator.in_(chunk))
        ):
            entry = cast(dict[str, int], figures[address])
            entry["cases"] += 1
            if resolved_at is None:
                entry["open_cases"] += 1
                continue
            entry["resolved"] += 1
            if by_timeout:
                entry["by_timeout"] += 1
                continue
            if buyer_bps == 10_000:
                entry["for_buyer"] += 1
            elif buyer_bps == 0:
                entry["for_seller"] += 1
            else:
                entry["split"] += 1
            delta = _aware(resolved_at) - _aware(opened_at)
            micro = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
            entry["ruling_seconds_total"] += micro // 1_000_000
            durations[address].append(micro)
    for address, values in durations.items():
        if not values:
            figures[address]["median_ruling_ms"] = None
            continue
        values.sort()
        middle = len(values) // 2
        micro2 = 2 * values[middle] if len(values) % 2 else values[middle - 1] + values[middle]
        figures[address]["median_ruling_ms"] = (micro2 + 1_000) // 2_000  # rounded
    return figures


def recompute(session: Session, parties: Iterable[str], arbitrators: Iterable[str]) -> None:
    """Computes these people's rows again from the trades and ratings (exact by definition)."""
    recompute_parties(session, parties)
    recompute_arbitrators(session, arbitrators)


def recompute_parties(session: Session, addresses: Iterable[str]) -> None:
    wanted = sorted({a for a in addresses if a})
    if not wanted:
        return
    connection = session.connection()
    counts, volume = compute_parties(connection, wanted)
    ratings = compute_ratings(connection, wanted)
    rows = [
        {"address": a, **counts[a], "rating_count": ratings[a][0], "rating_total": ratings[a][1]}
        for a in wanted
    ]
    _upsert(
        connection,
        _party_table,
        rows,
        ["address"],
        [*PARTY_COUNTS, "rating_count", "rating_total"],
    )
    for chunk in _chunks(wanted):
        connection.execute(delete(PartyVolume).where(PartyVolume.address.in_(chunk)))
    if volume:
        connection.execute(
            _volume_table.insert(),
            [
                {"address": a, "token": t, "listing_currency": c, "amount": v}
                for (a, t, c), v in sorted(volume.items())
            ],
        )


def recompute_ratings(session: Session, addresses: Iterable[str]) -> None:
    wanted = sorted({a for a in addresses if a})
    if not wanted:
        return
    connection = session.connection()
    ratings = compute_ratings(connection, wanted)
    _upsert(
        connection,
        _party_table,
        [
            {"address": a, "rating_count": n, "rating_total": total}
            | dict.fromkeys(PARTY_COUNTS, 0)
            for a, (n, total) in ratings.items()
        ],
        ["address"],
        ["rating_count", "rating_total"],
    )


def recompute_arbitrators(session: Session, addresses: Iterable[str]) -> None:
    wanted = sorted({a for a in addresses if a})
    if not wanted:
        return
    connection = session.connection()
    figures = compute_arbitrators(connection, wanted)
    columns = ["trades", *ARBITRATOR_FIGURES]
    _upsert(
        connection,
        _arbitrator_table,
        [{"address": a, **f} for a, f in figures.items()],
        ["address"],
        columns,
    )


def parties_of_trades(session: Session, condition: Any) -> tuple[set[str], set[str]]:
    """(buyers and sellers, arbitrators) of the trades matching ``condition``."""
    parties: set[str] = set()
    arbitrators: set[str] = set()
    for buyer, seller, arbitrator in session.execute(
        select(Trade.buyer, Trade.seller, Trade.arbitrator).where(condition).distinct()
    ):
        parties.update((buyer, seller))
        arbitrators.add(arbitrator)
    return parties, arbitrators


def recompute_all(session: Session) -> None:
    """Every row again from scratch (after a migration or for a check)."""
    connection = session.connection()
    parties = set(connection.execute(select(Trade.buyer).distinct()).scalars())
    parties |= set(connection.execute(select(Trade.seller).distinct()).scalars())
    parties |= set(connection.execute(select(Rating.ratee).distinct()).scalars())
    arbitrators = set(connection.execute(select(Trade.arbitrator).distinct()).scalars())
    connection.execute(delete(PartyVolume))
    connection.execute(delete(PartyStats).where(PartyStats.address.not_in(parties or {""})))
    connection.execute(
        delete(ArbitratorStats).where(ArbitratorStats.address.not_in(arbitrators or {""}))
    )
    recompute(session, parties, arbitrators)


def snapshot(session: Session) -> dict[str, Any]:
    """Every stored figure, zero rows left out (for comparing with a from-scratch copy)."""
    parties = {
        row["address"]: {k: v for k, v in row.items() if k != "address"}
        for row in session.execute(select(_party_table)).mappings()
        if any(v for k, v in row.items() if k != "address")
    }
    volumes = {
        (a, t, c): v
        for a, t, c, v in session.execute(
            select(
                PartyVolume.address,
                PartyVolume.token,
                PartyVolume.listing_currency,
                PartyVolume.amount,
            )
        )
        if v
    }
    arbitrators = {
        row["address"]: {k: v for k, v in row.items() if k != "address"}
        for row in session.execute(select(_arbitrator_table)).mappings()
        if any(v for k, v in row.items() if k != "address")
    }
    return {"parties": parties, "volumes": volumes, "arbitrators": arbitrators}


# ---------------------------------------------------------------------------- ORM writes

_PENDING = "escrow_stats_pending"


@event.listens_for(Session, "before_flush")
def _note_orm_writes(session: Session, _context: Any, _instances: Any) -> None:
    pending = session.info.setdefault(_PENDING, (set(), set(), set(), set()))
    parties, arbitrators, ratees, dispute_trades = pending
    for obj in chain(session.new, session.dirty, session.deleted):
        if isinstance(obj, Trade):
            parties.update(a for a in (obj.buyer, obj.seller) if a)
            if obj.arbitrator:
                arbitrators.add(obj.arbitrator)
        elif isinstance(obj, Dispute):
            if obj.trade_id is not None:
                dispute_trades.add(obj.trade_id)
        elif isinstance(obj, Rating):
            if obj.ratee:
                ratees.add(obj.ratee)


@event.listens_for(Session, "after_flush")
def _apply_orm_writes(session: Session, _context: Any) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending is None:
        return
    parties, arbitrators, ratees, dispute_trades = pending
    if not (parties or arbitrators or ratees or dispute_trades):
        return
    connection = session.connection()
    for chunk in _chunks(sorted(dispute_trades)):
        arbitrators.update(
            connection.execute(select(Trade.arbitrator).where(Trade.id.in_(chunk))).scalars()
        )
    recompute_parties(session, parties)
    recompute_ratings(session, ratees - parties)
    recompute_arbitrators(session, arbitrators)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
