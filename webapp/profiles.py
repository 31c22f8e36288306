"""Profiles: public records, one's own name and languages, arbitrators, and ratings.

A rating may only be left by the buyer or the seller of a finished trade, once per side, about
the other party; profiles count only such ratings.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from eth_utils import is_address
from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_decimal, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, cast, select
from sqlalchemy.exc import IntegrityError
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from escrow.db.models import (
    ADDRESS,
    ArbitratorProfile,
    Listing,
    ListingStatus,
    Rating,
    Side,
    Trade,
    User,
)
from escrow.db.models import ArbitratorStats as ArbitratorStatsRow
from webapp import db, i18n, trust
from webapp.auth import current_address, login_required, wants_json
from webapp.chain import gateway
from webapp.forms import Form
from webapp.urls import safe_next
from webapp.views import CARD_COLUMNS, Card

bp = Blueprint("profiles", __name__)

MAX_LANGUAGES = 8
LANGUAGE = re.compile(r"^[^\W\d_][^\W\d_ \-]*(?:[ \-][^\W\d_]+)*$")
# Characters drawn like 0 and x in other scripts (Cyrillic, Greek, signs); NFKC already folds
# full-width and mathematical forms.
ZERO_LIKE = "ОоΟο〇٠۰߀"
X_LIKE = "хХχΧ×ⅹⅩᕁ"
ADDRESS_LIKE_NAME = str.maketrans({**dict.fromkeys(ZERO_LIKE, "0"), **dict.fromkeys(X_LIKE, "x")})
#: An ``0x`` and a few hex digits anywhere in the name, with a Latin o for the zero too.
ADDRESS_TOKEN = re.compile(r"(?<![0-9a-z])[0o]x[0-9a-f]{4}")
ADDRESS_NAME_ERROR = _l(
    "A display name cannot look like a wallet address (0x…): people could take it for "
    "someone else's address."
)


def looks_like_address(name: str) -> bool:
    """Whether a display name starts like an address (``0x``, in any case, also with
    look-alike letters such as Cyrillic ``х``) or holds an ``0x1234``-like token."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf").strip()
    text = text.translate(ADDRESS_LIKE_NAME).casefold()
    return text.startswith("0x") or ADDRESS_TOKEN.search(text) is not None


# ---------------------------------------------------------------------------- forms


class ProfileForm(Form):
    display_name = StringField(
        _l("Display name"),
        validators=[
            Optional(),
            Length(max=64, message=_l("The name can be at most 64 characters.")),
        ],
    )
    languages = StringField(
        _l("Languages (comma-separated)"),
        validators=[Optional(), Length(max=300, message=_l("Too many languages."))],
    )
    #: Choices are set per request (their names are in the page's language).
    time_zone = SelectField(
        _l("Time zone for the times you see"), choices=[], validate_choice=False
    )

    def validate_time_zone(self, field: SelectField) -> None:
        if field.data and field.data not in i18n.TIME_ZONES:
            raise ValidationError(_("Choose a time zone from the list."))

    def validate_display_name(self, field: StringField) -> None:
        if field.data and looks_like_address(field.data):
            raise ValidationError(ADDRESS_NAME_ERROR)

    def language_list(self) -> list[str]:
        parts = [p.strip() for p in (self.languages.data or "").split(",")]
        return [p for p in parts if p]

    def validate_languages(self, field: StringField) -> None:
        names = self.language_list()
        if len(names) > MAX_LANGUAGES:
            raise ValidationError(
                ngettext(
                    "List at most %(num)d language.",
                    "List at most %(num)d languages.",
                    MAX_LANGUAGES,
                )
            )
        for name in names:
            if len(name) > 30 or not LANGUAGE.match(name):
                raise ValidationError(_("Write languages as words, separated by commas."))


class RatingForm(Form):
    score = IntegerField(
        _l("Score"),
        validators=[
            InputRequired(_l("Choose a score from 1 to 5.")),
            NumberRange(1, 5, _l("Choose a score from 1 to 5.")),
        ],
    )
    comment = TextAreaField(
        _l("Comment"),
        validators=[
            Optional(),
            Length(max=1000, message=_l("The comment can be at most 1,000 characters.")),
        ],
    )


# ---------------------------------------------------------------------------- profiles


# The profile page's statements, built once (building costs more than SQLite's answer).
#: The address the page is about, as the one row the page's statement starts from.
_WANTED = select(cast(bindparam("address"), ADDRESS).label("address")).subquery("wanted")
#: The person's account, their record (trust.record_columns) and, if they are or were named an
#: arbitrator, their arbitrator profile and figures, in one statement (NULL: none).
PROFILE_PAGE = (
    select(User, ArbitratorProfile, ArbitratorStatsRow, *trust.record_columns(_WANTED.c.address))
    .select_from(_WANTED)
    .outerjoin(User, User.address == _WANTED.c.address)
    .outerjoin(ArbitratorProfile, ArbitratorProfile.address == _WANTED.c.address)
    .outerjoin(ArbitratorStatsRow, ArbitratorStatsRow.address == _WANTED.c.address)
)
#: The ratings the page lists, as plain rows of the shown columns, with the name each rater
#: chose (kept for the page's party() links).
PROFILE_RATINGS = (
    select(
        Rating.score,
        Rating.rater_side,
        Rating.rater,
        Rating.created_at,
        Rating.comment,
        select(User.display_name)
        .where(User.address == Rating.rater)
        .scalar_subquery()
        .label("rater_name"),
    )
    .join(Trade, Trade.id == Rating.trade_id)
    .where(*trust.counted_ratings_filter(bindparam("address")))  # type: ignore[arg-type]
    .order_by(Rating.created_at.desc())
    .limit(50)
)
PROFILE_LISTINGS = (
    select(*CARD_COLUMNS)
    .where(Listing.seller_id == bindparam("user_id"), Listing.status == ListingStatus.ACTIVE.value)
    .order_by(Listing.created_at.desc())
    .limit(48)
)


@bp.get("/u/<address>")
def profile(address: str) -> str:
    if not is_address(address):
        abort(404, _("That is not a wallet address."))
    address = address.lower()
    session = db.session()
    row = session.execute(PROFILE_PAGE, {"address": address}).one()
    user, arbitrator_profile, arbitrator_row = row[:3]
    # Somebody who has used the market: an account, or a trade as buyer, seller or arbitrator
    # (from the figures the indexer keeps per person).
    if (
        user is None
        and not row.trades_total
        and not (arbitrator_row is not None and arbitrator_row.trades > 0)
    ):
        abort(404, _("Nobody with this address has used the market yet."))
    volume = trust.volumes_of(
        session, address, stablecoin=gateway().stablecoin_address(), trades_total=row.trades_total
    )
    record = trust.record_from_row(address, row, user=user, volume=volume)
    ratings = session.execute(PROFILE_RATINGS, {"address": address}).all()
    trust.remember_party_names(session, (), known={r.rater: r.rater_name for r in ratings})
    listings = (
        [Card(*r, user) for r in session.execute(PROFILE_LISTINGS, {"user_id": user.id})]
        if user is not None
        else []
    )
    arbitration = None
    if arbitrator_profile is not None or arbitrator_row is not None:
        arbitration = _figures(
            arbitrator_profile or ArbitratorProfile(address=address, languages=[]),
            user.display_name if user is not None else None,
            arbitrator_row,
        )
    return render_template(
        "profiles/profile.html",
        user=user,
        address=address,
        record=record,
        ratings=ratings,
        listings=listings,
        arbitration=arbitration,
        is_me=address == current_address(),
    )


@bp.route("/me", methods=["GET", "POST"])
@login_required
def me() -> Any:
    session = db.session()
    address = current_address()
    user = session.scalar(select(User).where(User.address == address))
    if user is None:
        user = User(address=address, languages=[])
        session.add(user)
        session.flush()
    form = ProfileForm()
    form.time_zone.choices = i18n.time_zone_choices()
    if request.method == "GET":
        form.display_name.data = user.display_name or ""
        form.languages.data = ", ".join(user.languages or [])
        form.time_zone.data = user.time_zone or i18n.DEFAULT_TIME_ZONE
    if form.validate_on_submit():
        user.display_name = (form.display_name.data or "").strip() or None
        user.languages = form.language_list()
        if "time_zone" in request.form:  # a form without the menu keeps the zone
            zone = form.time_zone.data
            user.time_zone = None if zone in (None, "", i18n.DEFAULT_TIME_ZONE) else zone
        session.commit()
        flash(_("Profile saved."), "success")
        return redirect(url_for("profiles.profile", address=user.address))
    status = 400 if request.method == "POST" else 200
    return render_template("profiles/me.html", form=form, user=user), status


# ---------------------------------------------------------------------------- arbitrators


@dataclass
class ArbitratorStats:
    address: str
    name: str | None
    profile: ArbitratorProfile
    cases: int = 0
    open_cases: int = 0
    resolved: int = 0
    by_timeout: int = 0
    median_ruling: timedelta | None = None
    for_buyer: int = 0
    for_seller: int = 0
    split: int = 0
    ruling_seconds_total: int = 0

    @property
    def rulings(self) -> int:
        """Disputes ended by the arbitrator's ruling (not by the ruling deadline passing)."""
        return self.for_buyer + self.for_seller + self.split

    @property
    def timeout_percent(self) -> str:
        if not self.resolved:
            return "—"
        return f"{round(100 * self.by_timeout / self.resolved)}%"

    def ruling_percent(self, count: int) -> str:
        """``count`` as a share of the rulings ('—' without rulings)."""
        if not self.rulings:
            return "—"
        return f"{round(100 * count / self.rulings)}%"

    @property
    def median_text(self) -> str:
        return _time_text(self.median_ruling)

    @property
    def mean_text(self) -> str:
        if not self.rulings:
            return "—"
        return _time_text(timedelta(seconds=self.ruling_seconds_total / self.rulings))


def _time_text(value: timedelta | None) -> str:
    if value is None:
        return "—"
    hours = value.total_seconds() / 3600
    if hours < 48:
        return _("%(hours)s h", hours=format_decimal(round(hours, 1), format="0.0"))
    return _("%(days)s days", days=format_decimal(round(hours / 24, 1), format="0.0"))


def arbitrator_stats(session: Any) -> list[ArbitratorStats]:
    """Every arbitrator with a profile, with the figures the indexer keeps for them."""
    profiles = session.scalars(select(ArbitratorProfile).order_by(ArbitratorProfile.id)).all()
    addresses = [p.address for p in profiles]
    names = dict(
        session.execute(
            select(User.address, User.display_name).where(User.address.in_(addresses))
        ).all()
    )
    kept = {
        row.address: row
        for row in session.scalars(
            select(ArbitratorStatsRow).where(ArbitratorStatsRow.address.in_(addresses))
        )
    }
    return [_figures(p, names.get(p.address), kept.get(p.address)) for p in profiles]


def _figures(
    profile: ArbitratorProfile, name: str | None, row: ArbitratorStatsRow | None
) -> ArbitratorStats:
    entry = ArbitratorStats(profile.address, name, profile)
    if row is not None:
        entry.cases, entry.open_cases = row.cases, row.open_cases
        entry.resolved, entry.by_timeout = row.resolved, row.by_timeout
        entry.for_buyer, entry.for_seller, entry.split = row.for_buyer, row.for_seller, row.split
        entry.ruling_seconds_total = int(row.ruling_seconds_total or 0)
        if row.median_ruling_ms is not None:
            entry.median_ruling = timedelta(milliseconds=row.median_ruling_ms)
    return entry


@bp.get("/arbitrators")
def arbitrators() -> str:
    return render_template("profiles/arbitrators.html", arbitrators=arbitrator_stats(db.session()))


# ---------------------------------------------------------------------------- ratings


@dataclass(frozen=True)
class RatingState:
    side: str | None
    can_rate: bool
    given: Rating | None
    ratee: str | None


def rating_state(trade: Trade) -> RatingState:
    """What the signed-in user may do about rating ``trade`` (for ``_rating_form.html``)."""
    address = current_address()
    if address == trade.buyer:
        side, ratee = Side.BUYER.value, trade.seller
    elif address == trade.seller:
        side, ratee = Side.SELLER.value, trade.buyer
    else:
        return RatingState(None, False, None, None)
    given = db.session().scalar(
        select(Rating).where(Rating.trade_id == trade.id, Rating.rater_side == side)
    )
    final = trade.status in trust.FINAL
    return RatingState(side, final and given is None, given, ratee)


@bp.app_context_processor
def _rating_helpers() -> dict[str, Any]:
    return {"rating_state": rating_state}


@bp.post("/trades/<int:trade_pk>/rating")
@login_required
def rate_trade(trade_pk: int) -> Any:
    session = db.session()
    trade = session.get(Trade, trade_pk)
    if trade is None:
        abort(404, _("There is no such trade."))
    state = rating_state(trade)
    if state.side is None:
        abort(403, _("Only the buyer and the seller of this trade can rate it."))
    form = RatingForm()
    error: str | None = None
    if state.given is not None:
        error = _("You have already rated this trade.")
    elif not state.can_rate:
        error = _("You can rate the trade once it is finished.")
    elif not form.validate_on_submit():
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)
    if error is None:
        session.add(
            Rating(
                trade_id=trade.id,
                rater_side=state.side,
                rater=current_address(),
                ratee=state.ratee,
                score=form.score.data,
                comment=(form.comment.data or "").strip() or None,
            )
        )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            error = _("You have already rated this trade.")
    status = 400 if error else 201
    if wants_json():
        return (jsonify(error=error), status) if error else (jsonify(ok=True), status)
    if error:
        flash(error, "error")
    else:
        flash(_("Thank you for rating this trade."), "success")
    return redirect(_safe_next(request.form.get("next"), state.ratee))


def _safe_next(value: str | None, ratee: str | None) -> str:
    default = url_for("profiles.profile", address=ratee) if ratee else url_for("listings.index")
    return safe_next(value, default)
