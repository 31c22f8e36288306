"""Keeps each listing's availability equal to the trades on chain that bought it.

A listing's ``quantity`` is its stock. A trade that references the listing and was not
refunded takes one unit; when the units are gone the listing is sold, and a refund (or a
trade undone by a reorganisation) puts it back on sale. The buyer's reservation ends when
their trade appears. Recomputed from the trades, never counted up or down, so replaying or
rolling back blocks cannot drift it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escrow.db.models import Listing, ListingStatus, Trade, TradeStatus


def refresh_listings(session: Session, listing_ids: Iterable[int | None]) -> None:
    ids = sorted({i for i in listing_ids if i is not None})
    if not ids:
        return
    taken = dict(
        session.execute(
            select(Trade.listing_id, func.count())
            .where(Trade.listing_id.in_(ids), Trade.status != TradeStatus.REFUNDED.value)
            .group_by(Trade.listing_id)
        ).all()
    )
    buyers: dict[int, set[str]] = {}
    for listing_id, buyer in session.execute(
        select(Trade.listing_id, Trade.buyer).where(Trade.listing_id.in_(ids))
    ).all():
        if listing_id is not None:
            buyers.setdefault(listing_id, set()).add(buyer)
    for listing in session.scalars(select(Listing).where(Listing.id.in_(ids))):
        if listing.reserved_by and listing.reserved_by in buyers.get(listing.id, set()):
            listing.reserved_by = None
            listing.reserved_until = None
            if listing.status == ListingStatus.RESERVED.value:
                listing.status = ListingStatus.ACTIVE.value
        units_taken = taken.get(listing.id, 0)
        if listing.status in (ListingStatus.ACTIVE.value, ListingStatus.RESERVED.value):
            if units_taken >= listing.quantity:
                listing.status = ListingStatus.SOLD.value
        elif listing.status == ListingStatus.SOLD.value and units_taken < listing.quantity:
            listing.status = ListingStatus.ACTIVE.value
    session.flush()
