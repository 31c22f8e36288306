"""The database: the indexer's projection of the contract's events plus the market's own records.

Conventions:

* Addresses are lower-case ``0x`` hex (42 characters) everywhere, so they compare as strings.
* Money and other uint256 values are Python ``int`` in :class:`~escrow.db.types.Uint256` columns,
  in the token's smallest unit (wei for ETH). Never floats.
* Times are UTC. Chain times (``funded_at``, deadlines) are block times, not wall-clock times.
* Columns marked "projected" are written only by the indexer; everything else is off-chain.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from escrow.db.types import Uint256

ADDRESS = String(42)
HASH32 = String(66)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TradeStatus(enum.StrEnum):
    """Mirror of ``IP2PEscrow.Status`` (same order: the value's index is the on-chain number)."""

    NONE = "None"
    FUNDED = "Funded"
    SHIPPED = "Shipped"
    DISPUTED = "Disputed"
    RELEASED = "Released"
    REFUNDED = "Refunded"
    SETTLED = "Settled"
    RESOLVED = "Resolved"

    @classmethod
    def from_chain(cls, number: int) -> TradeStatus:
        return list(cls)[number]

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {TradeStatus.RELEASED, TradeStatus.REFUNDED, TradeStatus.SETTLED, TradeStatus.RESOLVED}
)


class ListingStatus(enum.StrEnum):
    ACTIVE = "active"
    RESERVED = "reserved"
    SOLD = "sold"
    WITHDRAWN = "withdrawn"


class Currency(enum.StrEnum):
    ETH = "ETH"
    USD = "USD"  # the platform's dollar stablecoin (6 decimals)
    KZT = "KZT"  # the platform's tenge stablecoin (2 decimals)


class Side(enum.StrEnum):
    BUYER = "buyer"
    SELLER = "seller"


def _in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


# ---------------------------------------------------------------------------- people


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(ADDRESS, unique=True)
    display_name: Mapped[str | None] = mapped_column(String(64))
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The market's language for this user (``kk``, ``ru`` or ``en``; NULL: the browser's).
    locale: Mapped[str | None] = mapped_column(String(8))
    #: IANA time zone times are shown in (NULL: Asia/Almaty).
    time_zone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    listings: Mapped[list[Listing]] = relationship(back_populates="seller")


class ArbitratorProfile(Base):
    """An arbitrator's public profile; the ``onchain_*`` columns are projected."""

    __tablename__ = "arbitrator_profiles"
    __table_args__ = (
        CheckConstraint("fee_bps IS NULL OR (fee_bps >= 0 AND fee_bps <= 10000)", name="fee_bps"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(ADDRESS, unique=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    bio: Mapped[str | None] = mapped_column(Text)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    fee_bps: Mapped[int | None] = mapped_column(Integer)
    onchain_registered: Mapped[bool] = mapped_column(Boolean, default=False)
    onchain_max_fee_bps: Mapped[int | None] = mapped_column(Integer)
    onchain_updated_block: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# ---------------------------------------------------------------------------- market


class Listing(Base):
    __tablename__ = "listings"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint(_in("currency", Currency), name="currency"),
        CheckConstraint(_in("status", ListingStatus), name="status"),
        # The market's two orders (newest first; by price within a currency) read straight
        # from these indexes instead of sorting every active listing.
        Index("ix_listings_status_created", "status", "created_at", "id"),
        Index("ix_listings_status_currency_price", "status", "currency", "price", "id"),
        # A category page by price, and the median price of similar listings (risk signal).
        Index(
            "ix_listings_status_category_currency_price",
            "status",
            "category",
            "currency",
            "price",
            "id",
        ),
        # A seller's first listing (when they joined the market, ``trust.first_activity``).
        Index("ix_listings_seller_created", "seller_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: bytes32 (0x hex) that buyers pass to ``fund`` as ``listingRef``; links trades to listings.
    ref: Mapped[str] = mapped_column(HASH32, unique=True)
    seller_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[int] = mapped_column(Uint256)
    currency: Mapped[str] = mapped_column(String(8), default=Currency.ETH.value)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    category: Mapped[str | None] = mapped_column(String(64), index=True)
    city: Mapped[str | None] = mapped_column(String(100), index=True)
    location: Mapped[str | None] = mapped_column(String(200))
    photos: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=ListingStatus.ACTIVE.value, index=True)
    #: While a buyer's funding transaction is in flight, the listing is held for that buyer
    #: until ``reserved_until``; the indexer ends the hold when the trade appears on chain.
    reserved_by: Mapped[str | None] = mapped_column(ADDRESS)
    reserved_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Bumped whenever what a buyer agrees to (title, description, price, currency) changes; a
    #: checkout quotes the version it showed and is refused when it is no longer current.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: Days after shipping the seller promises delivery in (the trade's delivery window);
    #: the buyer's inspection starts at receipt or when they are over.
    delivery_days: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    seller: Mapped[User] = relationship(back_populates="listings")


class HoldState(enum.StrEnum):
    """A checkout hold: ``wallet`` while the wallet is open, ``payment`` once a transaction
    hash was reported, ``ended`` after that (``CheckoutHold.end_reason`` says why)."""

    WALLET = "wallet"
    PAYMENT = "payment"
    ENDED = "ended"


class CheckoutHold(Base):
    """One buyer's checkout of one listing: what was quoted and how long the item is held.

    The quoted seller, token and amount are what the buyer was shown and signed; the indexer
    links a trade to a listing only when the trade matches the listing or one of these quotes.
    Rows are kept after they end: they are the record of who abandoned how many holds.
    """

    __tablename__ = "checkout_holds"
    __table_args__ = (
        CheckConstraint(_in("state", HoldState), name="state"),
        Index("ix_checkout_holds_buyer_state", "buyer", "state"),
        Index("ix_checkout_holds_listing_state", "listing_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"))
    buyer: Mapped[str] = mapped_column(ADDRESS)
    seller: Mapped[str] = mapped_column(ADDRESS)
    token: Mapped[str] = mapped_column(ADDRESS)
    amount: Mapped[int] = mapped_column(Uint256)
    currency: Mapped[str] = mapped_column(String(8))
    listing_version: Mapped[int] = mapped_column(Integer)
    arbitrator: Mapped[str | None] = mapped_column(ADDRESS)
    state: Mapped[str] = mapped_column(String(16), default=HoldState.WALLET.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    tx_hash: Mapped[str | None] = mapped_column(HASH32)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: 'refused', 'signed_out', 'closed', 'expired', 'failed', 'funded', 'replaced'
    end_reason: Mapped[str | None] = mapped_column(String(16))
    #: The listing as the buyer saw it (title, description, category, city, photos, version):
    #: what the trade page and the arbitrator show after the seller edits the listing.
    listing_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# ---------------------------------------------------------------------------- trades (projected)


class Trade(Base):
    """One escrow trade, as the contract's events describe it."""

    __tablename__ = "trades"
    __table_args__ = (
        UniqueConstraint("chain_id", "contract_address", "onchain_id"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("buyer_amount IS NULL OR buyer_amount >= 0", name="buyer_amount"),
        CheckConstraint("seller_amount IS NULL OR seller_amount >= 0", name="seller_amount"),
        CheckConstraint("platform_fee IS NULL OR platform_fee >= 0", name="platform_fee"),
        CheckConstraint("arbitrator_fee IS NULL OR arbitrator_fee >= 0", name="arbitrator_fee"),
        CheckConstraint(_in("status", TradeStatus), name="status"),
        CheckConstraint(
            "split_proposer IS NULL OR " + _in("split_proposer", Side), name="split_proposer"
        ),
        # A person's first trade on each side (``trust.first_activity``): one index step each.
        Index("ix_trades_buyer_funded", "buyer", "funded_at"),
        Index("ix_trades_seller_funded", "seller", "funded_at"),
        # An arbitrator's open cases, most urgent first (the arbitration queue, paginated).
        Index("ix_trades_arbitrator_status_deadline", "arbitrator", "status", "ruling_deadline"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract_address: Mapped[str] = mapped_column(ADDRESS)
    #: ``buyer << 96 | lane << 64 | funding block``: needs all 256 bits.
    onchain_id: Mapped[int] = mapped_column(Uint256)
    listing_id: Mapped[int | None] = mapped_column(
        ForeignKey("listings.id", ondelete="SET NULL"), index=True
    )
    listing_ref: Mapped[str] = mapped_column(HASH32)
    # Terms, fixed at funding.
    buyer: Mapped[str] = mapped_column(ADDRESS, index=True)
    seller: Mapped[str] = mapped_column(ADDRESS, index=True)
    arbitrator: Mapped[str] = mapped_column(ADDRESS, index=True)
    token: Mapped[str] = mapped_column(ADDRESS)
    amount: Mapped[int] = mapped_column(Uint256)
    ship_by: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    inspection_period: Mapped[int] = mapped_column(Integer)
    arbitrator_fee_bps: Mapped[int] = mapped_column(Integer)
    platform_fee_bps: Mapped[int] = mapped_column(Integer)
    #: Seconds after shipping the seller promised delivery in; NULL for a trade of the
    #: version 1 contract, whose terms have none (inspection starts at shipping).
    delivery_window: Mapped[int | None] = mapped_column(Integer)
    terms_hash: Mapped[str] = mapped_column(String(50))
    # State.
    status: Mapped[str] = mapped_column(String(16), index=True)
    #: The deadline the contract applies in the current status (inspection end while Shipped,
    #: ruling deadline while Disputed), as the contract stores it; NULL when there is none.
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    shipment_ref: Mapped[str | None] = mapped_column(HASH32)
    inspection_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ruling_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    split_proposer: Mapped[str | None] = mapped_column(String(8))
    proposed_buyer_bps: Mapped[int | None] = mapped_column(Integer)
    #: The buyer's one request for a longer inspection (days), and whether the seller granted it.
    extension_days: Mapped[int | None] = mapped_column(Integer)
    extension_granted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Outcome.
    released_by_buyer: Mapped[bool | None] = mapped_column(Boolean)
    refunded_after_deadline: Mapped[bool | None] = mapped_column(Boolean)
    buyer_bps: Mapped[int | None] = mapped_column(Integer)
    buyer_amount: Mapped[int | None] = mapped_column(Uint256)
    seller_amount: Mapped[int | None] = mapped_column(Uint256)
    platform_fee: Mapped[int | None] = mapped_column(Uint256)
    arbitrator_fee: Mapped[int | None] = mapped_column(Uint256)
    # When (block times).
    funded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the buyer marked the item received (the inspection started then).
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    split_proposed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disputed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Block of the final event (the contract keeps it as the final state's "deadline").
    finished_block: Mapped[int | None] = mapped_column(BigInteger)
    funded_block: Mapped[int] = mapped_column(BigInteger)
    funded_tx: Mapped[str] = mapped_column(HASH32)
    last_event_block: Mapped[int] = mapped_column(BigInteger)

    listing: Mapped[Listing | None] = relationship()
    dispute: Mapped[Dispute | None] = relationship(back_populates="trade", passive_deletes=True)

    @property
    def trade_status(self) -> TradeStatus:
        return TradeStatus(self.status)


class TradeEvent(Base):
    """One decoded log of the escrow contract. Rows above a reorganised block are deleted."""

    __tablename__ = "trade_events"
    __table_args__ = (
        UniqueConstraint("chain_id", "tx_hash", "log_index"),
        Index("ix_trade_events_scope_block", "chain_id", "contract_address", "block_number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract_address: Mapped[str] = mapped_column(ADDRESS)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(HASH32)
    block_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tx_hash: Mapped[str] = mapped_column(HASH32)
    log_index: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(40))
    #: The trade the event is about (NULL for money and admin events).
    trade_id: Mapped[int | None] = mapped_column(
        ForeignKey("trades.id", ondelete="CASCADE"), index=True
    )
    onchain_trade_id: Mapped[int | None] = mapped_column(Uint256, index=True)
    #: The address a non-trade event is about (arbitrator, payee, token), for look-ups.
    account: Mapped[str | None] = mapped_column(ADDRESS, index=True)
    args: Mapped[dict[str, Any]] = mapped_column(JSON)


class Dispute(Base):
    """A trade's dispute. Projected from the chain, plus the opener's written statement."""

    __tablename__ = "disputes"
    __table_args__ = (
        CheckConstraint("buyer_amount IS NULL OR buyer_amount >= 0", name="buyer_amount"),
        CheckConstraint("seller_amount IS NULL OR seller_amount >= 0", name="seller_amount"),
        CheckConstraint("arbitrator_fee IS NULL OR arbitrator_fee >= 0", name="arbitrator_fee"),
        CheckConstraint("platform_fee IS NULL OR platform_fee >= 0", name="platform_fee"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trade_id: Mapped[int] = mapped_column(ForeignKey("trades.id", ondelete="CASCADE"), unique=True)
    opened_by: Mapped[str] = mapped_column(ADDRESS)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    opened_block: Mapped[int] = mapped_column(BigInteger)
    ruling_deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    statement: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    by_timeout: Mapped[bool | None] = mapped_column(Boolean)
    buyer_bps: Mapped[int | None] = mapped_column(Integer)
    buyer_amount: Mapped[int | None] = mapped_column(Uint256)
    seller_amount: Mapped[int | None] = mapped_column(Uint256)
    arbitrator_fee: Mapped[int | None] = mapped_column(Uint256)
    platform_fee: Mapped[int | None] = mapped_column(Uint256)

    trade: Mapped[Trade] = relationship(back_populates="dispute")


class DetachedFromTrade:
    """Columns of a person's record (message, rating, evidence file) that outlive its trade.

    Trades are projected from the chain and a reorganisation can delete one; what people wrote
    about it must not go with it. The indexer then sets ``trade_id`` to NULL and remembers here
    which trade it was, and attaches the record again when a trade with the same funding
    transaction (or the same on-chain id, between the same people) appears.
    """

    detached_chain_id: Mapped[int | None] = mapped_column(BigInteger)
    detached_contract: Mapped[str | None] = mapped_column(ADDRESS)
    detached_onchain_id: Mapped[int | None] = mapped_column(Uint256)
    detached_funded_tx: Mapped[str | None] = mapped_column(HASH32)
    detached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EvidenceFile(DetachedFromTrade, Base):
    """An uploaded file. Its sha256 is what goes on chain; ``onchain_*`` is projected.

    The file on disk is never deleted, not even when a reorganisation removes the trade.
    """

    __tablename__ = "evidence_files"
    __table_args__ = (
        UniqueConstraint("trade_id", "sha256"),
        CheckConstraint("size_bytes >= 0", name="size_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: NULL while the trade is gone after a reorganisation (see :class:`DetachedFromTrade`).
    trade_id: Mapped[int | None] = mapped_column(
        ForeignKey("trades.id", ondelete="SET NULL"), index=True
    )
    uploaded_by: Mapped[str] = mapped_column(ADDRESS)
    original_name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    #: Path relative to the evidence folder (``<data>/evidence``).
    storage_path: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    onchain_uri: Mapped[str | None] = mapped_column(String(500))
    onchain_tx_hash: Mapped[str | None] = mapped_column(HASH32)
    onchain_block: Mapped[int | None] = mapped_column(BigInteger)


class Message(DetachedFromTrade, Base):
    """A message in a trade's conversation (buyer, seller and, in a dispute, the arbitrator)."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: NULL while the trade is gone after a reorganisation (see :class:`DetachedFromTrade`).
    trade_id: Mapped[int | None] = mapped_column(
        ForeignKey("trades.id", ondelete="SET NULL"), index=True
    )
    sender: Mapped[str] = mapped_column(ADDRESS, index=True)
    body: Mapped[str] = mapped_column(Text)
    evidence_file_id: Mapped[int | None] = mapped_column(
        ForeignKey("evidence_files.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Rating(DetachedFromTrade, Base):
    """A rating of one party by the other after a finished trade; one per side per trade."""

    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("trade_id", "rater_side"),
        CheckConstraint("score >= 1 AND score <= 5", name="score_range"),
        CheckConstraint(_in("rater_side", Side), name="rater_side"),
        CheckConstraint("rater <> ratee", name="not_self"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: NULL while the trade is gone after a reorganisation (see :class:`DetachedFromTrade`).
    trade_id: Mapped[int | None] = mapped_column(
        ForeignKey("trades.id", ondelete="SET NULL"), index=True
    )
    rater_side: Mapped[str] = mapped_column(String(8))
    rater: Mapped[str] = mapped_column(ADDRESS)
    ratee: Mapped[str] = mapped_column(ADDRESS, index=True)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PendingStatement(Base):
    """A party's statement for a dispute they are opening, kept on the server until the
    indexer has seen their ``DisputeOpened``; then it becomes the dispute's statement and a
    message, once. Until then it is shown nowhere."""

    __tablename__ = "pending_statements"
    __table_args__ = (Index("ix_pending_statements_trade_sender", "trade_id", "sender"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trade_id: Mapped[int] = mapped_column(ForeignKey("trades.id", ondelete="CASCADE"))
    sender: Mapped[str] = mapped_column(ADDRESS)
    body: Mapped[str] = mapped_column(Text)
    #: The openDispute transaction the wallet reported sending (None until it does).
    tx_hash: Mapped[str | None] = mapped_column(HASH32)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# ---------------------------------------------------------------------------- chat before buying


class Conversation(Base):
    """A buyer's questions to a seller about one listing, before any trade: one per listing and
    buyer. It outlives the listing (``listing_id`` becomes NULL when the listing is deleted;
    ``listing_title`` is the title when the conversation began). ``*_read_id`` is the last
    message each side has seen: later messages of the other side are unread."""

    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("listing_id", "buyer_id"),
        CheckConstraint("buyer_id <> seller_id", name="not_self"),
        # The inbox: a user's conversations, latest first, as buyer and as seller.
        Index("ix_conversations_buyer_last", "buyer_id", "last_message_at"),
        Index("ix_conversations_seller_last", "seller_id", "last_message_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    listing_id: Mapped[int | None] = mapped_column(ForeignKey("listings.id", ondelete="SET NULL"))
    listing_title: Mapped[str] = mapped_column(String(200))
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    seller_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    buyer_read_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    seller_read_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    listing: Mapped[Listing | None] = relationship()
    buyer: Mapped[User] = relationship(foreign_keys=[buyer_id])
    seller: Mapped[User] = relationship(foreign_keys=[seller_id])


class ConversationMessage(Base):
    """One message of a :class:`Conversation` (the trade's own messages are :class:`Message`)."""

    __tablename__ = "conversation_messages"
    __table_args__ = (
        # A conversation's messages in order, and its unread ones (id above a read mark).
        Index("ix_conversation_messages_conversation_id", "conversation_id", "id"),
        # The sender's messages of the last hour (the rate limit).
        Index("ix_conversation_messages_sender_created", "sender_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# ---------------------------------------------------------------------------- sign-in


class LoginNonce(Base):
    """A single-use Sign-In with Ethereum nonce, issued for one address."""

    __tablename__ = "login_nonces"

    id: Mapped[int] = mapped_column(primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(ADDRESS)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateLimitCounter(Base):
    """One fixed-window request counter of Flask-Limiter (webapp/ratelimit_storage.py), kept
    here so that every gunicorn worker counts in the same place.

    ``expires_at`` is seconds since the epoch (UTC) as a double, the unit ``limits`` works in:
    the window arithmetic and the comparison with the clock are plain number comparisons in
    SQL on both databases, with no time zone or SQLite date-string handling involved. A row
    whose ``expires_at`` has passed counts as absent and is deleted now and then.
    """

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[float] = mapped_column(Double, index=True)


# ---------------------------------------------------------------------------- indexer state


class IndexerCheckpoint(Base):
    """How far the indexer got on one contract, and which chain that was on."""

    __tablename__ = "indexer_checkpoints"
    __table_args__ = (UniqueConstraint("chain_id", "contract_address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract_address: Mapped[str] = mapped_column(ADDRESS)
    genesis_hash: Mapped[str] = mapped_column(HASH32)
    code_hash: Mapped[str] = mapped_column(HASH32)
    start_block: Mapped[int] = mapped_column(BigInteger)
    #: Last block whose events are all in the database, and its hash.
    last_block: Mapped[int] = mapped_column(BigInteger)
    last_block_hash: Mapped[str | None] = mapped_column(HASH32)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class UndecodedLog(Base):
    """A log of the escrow contract that could not be turned into an event, kept as it came.

    Anyone can make the contract emit a log, so one the decoder cannot read (or whose values the
    database cannot hold) must not stop the indexer: it is stored here, counted by ``/healthz``
    and ``escrow reconcile``, and removed like the events when its block is reorganised away.
    """

    __tablename__ = "undecoded_logs"
    __table_args__ = (
        UniqueConstraint("chain_id", "tx_hash", "log_index"),
        Index("ix_undecoded_logs_scope_block", "chain_id", "contract_address", "block_number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract_address: Mapped[str] = mapped_column(ADDRESS)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(HASH32)
    tx_hash: Mapped[str] = mapped_column(HASH32)
    log_index: Mapped[int] = mapped_column(Integer)
    #: The topics as 0x hex strings, as the node returned them.
    topics: Mapped[list[str]] = mapped_column(JSON)
    #: The data as 0x hex.
    data: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# ---------------------------------------------------------------------------- figures per person


class PartyStats(Base):
    """A person's record as buyer and seller, kept by the indexer (and by the ratings), so a
    page reads one row instead of adding up their trades.

    Projected: the indexer changes it in the same transaction as the trades it counts
    (:mod:`escrow.db.stats`); ``rating_*`` follow the ratings that count (left by the other
    party of a finished trade). Equal to :func:`escrow.db.stats.compute_parties` at all times.
    """

    __tablename__ = "party_stats"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    #: Trades with this person as buyer or seller (any status).
    trades_total: Mapped[int] = mapped_column(Integer, default=0)
    #: Of those, trades that went to a dispute (open or resolved).
    disputes: Mapped[int] = mapped_column(Integer, default=0)
    open_disputes_as_seller: Mapped[int] = mapped_column(Integer, default=0)
    completed_as_seller: Mapped[int] = mapped_column(Integer, default=0)
    completed_as_buyer: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Sum of the counted ratings' scores (the average is ``rating_total / rating_count``).
    rating_total: Mapped[int] = mapped_column(Integer, default=0)


class PartyVolume(Base):
    """Value of a person's finished trades in one token (exact, smallest unit), with the
    currency of the listing they bought when there was one (a USD listing's token is USD even
    when the stablecoin's address is not at hand)."""

    __tablename__ = "party_volumes"
    __table_args__ = (CheckConstraint("amount >= 0", name="amount_not_negative"),)

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    token: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    #: The linked listing's currency, '' for a trade without a listing.
    listing_currency: Mapped[str] = mapped_column(String(8), primary_key=True)
    amount: Mapped[int] = mapped_column(Uint256)


class ArbitratorStats(Base):
    """An arbitrator's cases and rulings, kept by the indexer like :class:`PartyStats`."""

    __tablename__ = "arbitrator_stats"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    #: Trades naming this arbitrator (any status).
    trades: Mapped[int] = mapped_column(Integer, default=0)
    cases: Mapped[int] = mapped_column(Integer, default=0)  # disputes
    open_cases: Mapped[int] = mapped_column(Integer, default=0)
    #: Disputes ended, by a ruling or by the ruling deadline passing (``by_timeout``).
    resolved: Mapped[int] = mapped_column(Integer, default=0)
    by_timeout: Mapped[int] = mapped_column(Integer, default=0)
    #: Rulings (not timeouts) giving the buyer everything, the seller everything, or a split.
    for_buyer: Mapped[int] = mapped_column(Integer, default=0)
    for_seller: Mapped[int] = mapped_column(Integer, default=0)
    split: Mapped[int] = mapped_column(Integer, default=0)
    #: Sum of the rulings' times from opening to ruling (mean = this / rulings), seconds.
    ruling_seconds_total: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Median time from opening to ruling, milliseconds; NULL without rulings.
    median_ruling_ms: Mapped[int | None] = mapped_column(BigInteger)


# ---------------------------------------------------------------------------- search

#: Search structures of migration 0011 that have no model: the SQLite FTS5 table (and its
#: shadow tables), and PostgreSQL's generated ``listings.search_text`` with its trigram index.
SEARCH_TABLE = "listings_search"
SEARCH_COLUMN = "search_text"
SEARCH_INDEX = "ix_listings_search_trgm"


def not_search_structure(name: str | None, type_: str, parent: dict[str, str | None]) -> bool:
    """For Alembic's ``include_name``: False for the search structures, which the models do
    not describe (autogenerate must not drop them; the models-vs-migrations test skips them)."""
    if type_ == "table" and name and (name == SEARCH_TABLE or name.startswith(SEARCH_TABLE + "_")):
        return False
    if type_ == "column" and name == SEARCH_COLUMN and parent.get("table_name") == "listings":
        return False
    return not (type_ == "index" and name == SEARCH_INDEX)


# The per-person figures follow every ORM write of a trade, dispute or rating (session hooks).
from escrow.db import stats as _stats  # noqa: E402,F401  (registers the hooks)

# ---------------------------------------------------------------------------- notifications


class Notification(Base):
    """Something that happened to or is due for one person (``recipient``), written by the
    notifier (``webapp/notify.py``). Only the kind and its parameters are stored: the text is
    written when it is shown, in the reader's language and time zone.

    ``key`` names what it is about (``ev:<chain>:<tx>:<log>`` for a contract event,
    ``msg:<id>``, ``chat:<id>``, ``rem:<trade>:<deadline kind>:<deadline>:<hours>`` for a
    reminder): one notification per person and key, however often the notifier runs.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("recipient", "key"),
        # The header's unread count and the centre's pages, newest first.
        Index("ix_notifications_recipient_read", "recipient", "read_at"),
        Index("ix_notifications_recipient_id", "recipient", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(ADDRESS)
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The trade it is about; NULL for a chat before buying, or once a reorganisation removed
    #: the trade (the notification stays, linking to the trades page).
    trade_id: Mapped[int | None] = mapped_column(
        ForeignKey("trades.id", ondelete="SET NULL"), index=True
    )
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NotificationSettings(Base):
    """A person's e-mail for notifications, and whether they want e-mails at all. ``locale``
    is the language the settings were saved in, used for e-mails when the user row names none.
    """

    __tablename__ = "notification_settings"

    address: Mapped[str] = mapped_column(ADDRESS, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254))
    email_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    locale: Mapped[str | None] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class EmailState(enum.StrEnum):
    """``queued`` until a sender claims it (``sending``), then ``sent``; ``failed`` when the
    server refused it for good; ``unknown`` when a sender stopped between claiming and
    marking (never sent again: at most once)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"


class EmailOutbox(Base):
    """One e-mail to send for one notification: at most one per (recipient, key)."""

    __tablename__ = "email_outbox"
    __table_args__ = (
        UniqueConstraint("recipient", "key"),
        CheckConstraint(_in("state", EmailState), name="state"),
        Index("ix_email_outbox_state_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(ADDRESS)
    key: Mapped[str] = mapped_column(String(200))
    notification_id: Mapped[int | None] = mapped_column(
        ForeignKey("notifications.id", ondelete="SET NULL")
    )
    to_email: Mapped[str] = mapped_column(String(254))
    state: Mapped[str] = mapped_column(String(16), default=EmailState.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class NotifierCursor(Base):
    """How far the notifier has read one source (``events``, ``messages``, ``chat``)."""

    __tablename__ = "notifier_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
