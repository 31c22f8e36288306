"""What the market knows about a person, and the warnings it shows buyers.

Everything here is computed from the database (the indexer's projection of the chain plus the
ratings people left), never from what a user wrote about themselves. A person's figures are
read from the rows the indexer keeps per person (``party_stats``, see :mod:`escrow.db.stats`).
The functions take a session and return plain values so that any page, or a test, can use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext
from sqlalchemy import and_, bindparam, func, or_, select
from sqlalchemy.orm import Session, aliased

from escrow.db.models import (
    FINAL_STATUSES,
    Listing,
    ListingStatus,
    PartyStats,
    PartyVolume,
    Rating,
    Trade,
    TradeStatus,
    User,
)
from webapp.i18n import per_request

ZERO_ADDRESS = "0x" + "0" * 40
FINAL = tuple(sorted(s.value for s in FINAL_STATUSES))
NEW_ACCOUNT_DAYS = 7
CHEAP_SHARE = Decimal("0.5")  # below half the median price of similar listings
MIN_SIMILAR = 5  # fewer similar listings than this say nothing about a fair price
LOW_RATING = Decimal(3)
MIN_RATINGS_FOR_LOW = 2


@dataclass(frozen=True)
class RiskSignal:
    """A warning for buyers; ``title`` and ``explanation`` are lazy texts (``_l``), translated
    when a page shows them."""

    code: str
    title: str
    explanation: str


@dataclass(frozen=True)
class SellerRecord:
    """A person's verified record; the same numbers whether they sell or buy."""

    address: str
    display_name: str | None
    member_since: datetime | None
    account_age_days: int | None
    completed_as_seller: int
    completed_as_buyer: int
    #: Value of finished trades per currency ('ETH', 'USD' or a token address), smallest unit.
    volume: dict[str, int] = field(default_factory=dict)
    trades_total: int = 0
    disputes: int = 0
    open_disputes_as_seller: int = 0
    rating_count: int = 0
    rating_average: Decimal | None = None

    @property
    def completed(self) -> int:
        return self.completed_as_seller + self.completed_as_buyer

    @property
    def dispute_rate(self) -> Decimal | None:
        """Share of this person's trades that went to a dispute (None without trades)."""
        if not self.trades_total:
            return None
        return Decimal(self.disputes) / Decimal(self.trades_total)

    @property
    def dispute_percent(self) -> str:
        rate = self.dispute_rate
        if rate is None:
            return "—"
        return f"{(rate * 100).quantize(Decimal(1))}%"

    @property
    def rating_text(self) -> str:
        if self.rating_average is None:
            return _("no ratings yet")
        return f"{self.rating_average.quantize(Decimal('0.1'))} / 5 ({self.rating_count})"


def currency_of_token(
    token: str, stablecoin: str | None, listing_currency: str | None = None
) -> str:
    """'ETH' for the zero address, 'USD' for the stablecoin, else the token's address.

    Without the stablecoin's address, a trade bought from a USD listing is in USD: the market
    only funds a listing in its own currency.
    """
    token = token.lower()
    if token == ZERO_ADDRESS:
        return "ETH"
    if stablecoin and token == stablecoin.lower():
        return "USD"
    if stablecoin is None and listing_currency == "USD":
        return "USD"
    return token


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# Statements every listing, trade and profile page runs, built once: building a statement
# costs SQLAlchemy more than SQLite takes to answer it.
USER_BY_ADDRESS = select(User).where(User.address == bindparam("address"))
VOLUMES = select(PartyVolume.token, PartyVolume.listing_currency, PartyVolume.amount).where(
    PartyVolume.address == bindparam("address")
)


def record_columns(address: Any) -> list[Any]:
    """The columns of the record of the person at ``address`` (an address column, or a
    parameter): their account's name and creation, their figures (``party_stats``) and their
    first trade as buyer, as seller and first listing (NULL: none), each a subquery of one index
    step (ix_trades_buyer_funded, ix_trades_seller_funded, ix_listings_seller_created). A page
    can read a record in its own statement; :func:`record_from_row` makes it a record. The
    subqueries read aliases, so that a statement about trades or users is not mixed in."""
    person, figures = aliased(User), aliased(PartyStats)
    trades, listings = aliased(Trade), aliased(Listing)

    def of_person(column: Any) -> Any:
        return select(column).where(person.address == address).scalar_subquery()

    def figure(name: str) -> Any:
        column = getattr(figures, name)
        return select(column).where(figures.address == address).scalar_subquery().label(name)

    return [
        of_person(person.display_name).label("display_name"),
        of_person(person.created_at).label("created_at"),
        figure("trades_total"),
        figure("disputes"),
        figure("open_disputes_as_seller"),
        figure("completed_as_seller"),
        figure("completed_as_buyer"),
        figure("rating_count"),
        figure("rating_total"),
        select(func.min(trades.funded_at))
        .where(trades.buyer == address)
        .scalar_subquery()
        .label("first_bought"),
        select(func.min(trades.funded_at))
        .where(trades.seller == address)
        .scalar_subquery()
        .label("first_sold"),
        select(func.min(listings.created_at))
        .join(person, person.id == listings.seller_id)
        .where(person.address == address)
        .scalar_subquery()
        .label("first_listed"),
    ]


#: A person's record in one statement, built once, since pages ask it on every view.
RECORD = select(*record_columns(bindparam("address")))


def seller_record(
    session: Session,
    address: str,
    *,
    stablecoin: str | None = None,
    now: datetime | None = None,
    user: User | None = None,
    volume: bool = True,
) -> SellerRecord:
    """The record of ``address`` from finished trades, disputes and ratings received.

    Reads the figures the indexer keeps per person (``party_stats``, ``party_volumes``): one
    row and the person's few volume rows, however many trades they have: one statement
    (:data:`RECORD`), and one more for the volumes unless ``volume`` is False (risk signals do
    not need them). ``user`` is the person's account when the caller has it loaded already.
    """
    address = address.lower()
    row = session.execute(RECORD, {"address": address}).one()
    volumes = (
        volumes_of(session, address, stablecoin=stablecoin, trades_total=row.trades_total)
        if volume
        else {}
    )
    return record_from_row(address, row, now=now, user=user, volume=volumes)


def volumes_of(
    session: Session, address: str, *, stablecoin: str | None, trades_total: int | None
) -> dict[str, int]:
    """The value of the finished trades of ``address`` per currency (its record's ``volume``),
    from the person's few ``party_volumes`` rows; ``trades_total`` is their number of trades
    (their record's): without trades nothing is read."""
    volumes: dict[str, int] = {}
    if not trades_total:
        return volumes
    for token, listing_currency, amount in session.execute(VOLUMES, {"address": address}):
        if amount:
            currency = currency_of_token(token, stablecoin, listing_currency or None)
            volumes[currency] = volumes.get(currency, 0) + int(amount)
    return volumes


def record_from_row(
    address: str,
    row: Any,
    *,
    now: datetime | None = None,
    user: User | None = None,
    volume: dict[str, int] | None = None,
) -> SellerRecord:
    """The record of ``address`` from a row with the columns of :func:`record_columns`;
    ``user`` is the person's account when the caller has it loaded (its name and creation are
    used), ``volume`` their volumes (none when not given)."""
    now = now or datetime.now(UTC)
    if user is not None and user.address == address:
        display_name, created_at = user.display_name, user.created_at
    else:
        display_name, created_at = row.display_name, row.created_at
    count = row.rating_count or 0
    average = Decimal(row.rating_total) / Decimal(count) if count else None
    member_since = first_activity(created_at, row.first_bought, row.first_sold, row.first_listed)
    return SellerRecord(
        address=address,
        display_name=display_name,
        member_since=member_since,
        account_age_days=(now - member_since).days if member_since else None,
        completed_as_seller=row.completed_as_seller or 0,
        completed_as_buyer=row.completed_as_buyer or 0,
        volume=volume or {},
        trades_total=row.trades_total or 0,
        disputes=row.disputes or 0,
        open_disputes_as_seller=row.open_disputes_as_seller or 0,
        rating_count=count,
        rating_average=average,
    )


def first_activity(*moments: datetime | None) -> datetime | None:
    """When a person first used the market: the earliest of ``moments`` (the web account's
    creation, the first listing and the first trade paid on chain as buyer or seller; None
    for what is not there). A person who traded before they ever signed in here (or whose
    account row was made later) is not new."""
    known = [m for m in (_aware(m) for m in moments) if m is not None]
    return min(known) if known else None


def counted_ratings_filter(address: str) -> list[object]:
    """Ratings of ``address`` that count: left by the other party of a finished trade."""
    return [
        Rating.ratee == address,
        Trade.status.in_(FINAL),
        or_(
            and_(Rating.rater == Trade.buyer, Trade.seller == address),
            and_(Rating.rater == Trade.seller, Trade.buyer == address),
        ),
    ]


# ---------------------------------------------------------------------------- risk signals


def is_new_account(record: SellerRecord, now: datetime) -> bool:
    """Whether the person first used the market less than :data:`NEW_ACCOUNT_DAYS` ago (or never
    did: nothing is known of them)."""
    return record.member_since is None or now - record.member_since < timedelta(
        days=NEW_ACCOUNT_DAYS
    )


def _person_signals(
    record: SellerRecord, now: datetime, *, skip_open_dispute: int = 0
) -> list[RiskSignal]:
    signals: list[RiskSignal] = []
    if is_new_account(record, now):
        signals.append(
            RiskSignal(
                "new_account",
                _l("New account"),
                lazy_ngettext(
                    "This seller joined less than %(num)d day ago. That is not wrong in itself, "
                    "but there is no track record to go on: keep all payment inside the escrow "
                    "and check the item before you confirm delivery.",
                    "This seller joined less than %(num)d days ago. That is not wrong in itself, "
                    "but there is no track record to go on: keep all payment inside the escrow "
                    "and check the item before you confirm delivery.",
                    NEW_ACCOUNT_DAYS,
                ),
            )
        )
    elif record.completed == 0:
        signals.append(
            RiskSignal(
                "no_finished_trades",
                _l("No finished trades yet"),
                _l(
                    "This seller has not finished a trade here yet. That is not wrong in itself, "
                    "but there is no track record to go on: keep all payment inside the escrow "
                    "and check the item before you confirm delivery."
                ),
            )
        )
    if record.open_disputes_as_seller - skip_open_dispute > 0:
        signals.append(
            RiskSignal(
                "open_disputes",
                _l("Seller has open disputes"),
                _l(
                    "Another buyer is in a dispute with this seller right now. Read the seller's "
                    "ratings and ask questions before you buy."
                ),
            )
        )
    if (
        record.rating_average is not None
        and record.rating_count >= MIN_RATINGS_FOR_LOW
        and record.rating_average < LOW_RATING
    ):
        signals.append(
            RiskSignal(
                "low_rating",
                _l("Low rating"),
                _l(
                    "People who traded with this seller rated them %(rating)s, below %(low)s on "
                    "average.",
                    rating=record.rating_text,
                    low=str(LOW_RATING),
                ),
            )
        )
    return signals


SIMILAR = (
    Listing.status == ListingStatus.ACTIVE.value,
    Listing.category == bindparam("category"),
    Listing.currency == bindparam("currency"),
    Listing.id != bindparam("exclude"),
)
SIMILAR_COUNT = select(func.count(Listing.id)).where(*SIMILAR)


def similar_count(listing: Any) -> Any:
    """A column: the number of listings similar to the row of ``listing`` (the Listing class or
    an alias), as :func:`similar_median` counts them, for a page that reads the listing to
    count them in the same statement (a subquery reading ix_listings_status_category_currency_
    price). A listing without a category has none."""
    other = aliased(Listing)
    return (
        select(func.count(other.id))
        .where(
            other.status == ListingStatus.ACTIVE.value,
            other.category == listing.category,
            other.currency == listing.currency,
            other.id != listing.id,
        )
        .scalar_subquery()
        .label("similar_count")
    )


SIMILAR_MIDDLE = (
    select(Listing.price)
    .where(*SIMILAR)
    .order_by(Listing.price)
    .offset(bindparam("skip"))
    .limit(bindparam("take"))
)


def similar_median(
    session: Session,
    category: str | None,
    currency: str,
    exclude_listing_id: int | None = None,
    *,
    count: int | None = None,
) -> int | None:
    """Median price of active listings in a category and currency, if there are enough.

    The database finds the middle rows (ordered by price, read from an index); only one or
    two prices are decoded, not the whole category. ``count`` is their number when the caller
    read it already (:func:`similar_count`).
    """
    if not category:
        return None
    # Listing ids start at 1: excluding 0 excludes nothing.
    params = {"category": category, "currency": currency, "exclude": exclude_listing_id or 0}
    if count is None:
        count = session.scalar(SIMILAR_COUNT, params) or 0
    if count < MIN_SIMILAR:
        return None
    middle = [
        int(p)
        for p in session.scalars(
            SIMILAR_MIDDLE, {**params, "skip": (count - 1) // 2, "take": 1 if count % 2 else 2}
        )
    ]
    return middle[0] if len(middle) == 1 else (middle[0] + middle[1]) // 2  # exact integers


def _price_signal(
    session: Session,
    price: int,
    category: str | None,
    currency: str,
    listing_id: int | None,
    similar: int | None = None,
) -> list[RiskSignal]:
    median = similar_median(session, category, currency, listing_id, count=similar)
    if median is None or Decimal(price) >= CHEAP_SHARE * median:
        return []
    return [
        RiskSignal(
            "price_far_below",
            _l("Price far below similar listings"),
            _l(
                "This price is less than half of what similar items in this category usually "
                "cost. A price that looks too good is a common sign of a scam: never pay outside "
                "the escrow and do not confirm delivery before you have the item."
            ),
        )
    ]


def risk_signals_for_listing(
    session: Session,
    listing: Listing,
    *,
    now: datetime | None = None,
    record: SellerRecord | None = None,
    similar: int | None = None,
) -> list[RiskSignal]:
    """``record`` is the seller's record and ``similar`` the number of similar listings
    (:func:`similar_count`) when the caller already has them."""
    now = now or datetime.now(UTC)
    record = record or seller_record(session, listing.seller.address, now=now)
    return _price_signal(
        session, listing.price, listing.category, listing.currency, listing.id, similar
    ) + _person_signals(record, now)


def risk_signals_for_trade(
    session: Session,
    trade: Trade,
    *,
    now: datetime | None = None,
    record: SellerRecord | None = None,
) -> list[RiskSignal]:
    """Signals about the trade's seller; this trade's own dispute is not counted against them.
    ``record`` is the seller's record when the caller already has it (its volumes unused)."""
    now = now or datetime.now(UTC)
    record = record or seller_record(session, trade.seller, now=now, volume=False)
    own_dispute = 1 if trade.status == TradeStatus.DISPUTED.value else 0
    signals = _person_signals(record, now, skip_open_dispute=own_dispute)
    listing = trade.listing
    if listing is not None:
        signals = (
            _price_signal(session, trade.amount, listing.category, listing.currency, listing.id)
            + signals
        )
    return signals


# ---------------------------------------------------------------------------- names on a page


NAMES = select(User.address, User.display_name).where(
    User.address.in_(bindparam("addresses", expanding=True))
)


def remember_party_names(
    session: Session,
    addresses: Iterable[str | None],
    *,
    known: Mapping[str, str | None] | None = None,
) -> None:
    """Looks up the chosen names of ``addresses`` in one query and keeps them where
    ``views.party_name`` reads a request's names (``g._party_names``), so that a page naming
    many people (the arbitration queue, a trade's parties) does not ask once per person.
    ``known`` are names the caller has read already (address: name, None for none): they are
    kept without a query."""
    names: dict[str, str | None] = per_request("_party_names", dict)
    for address, name in (known or {}).items():
        names.setdefault(address, name)
    wanted = {a for a in addresses if a and a not in names}
    if not wanted:
        return
    found = dict(session.execute(NAMES, {"addresses": sorted(wanted)}).all())
    for address in wanted:
        names[address] = found.get(address)
