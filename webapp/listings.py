"""Listings: browse, search, create, edit, pause and delete; listing photos.

The browse page runs on every visit, so it is two indexed queries (a count and one page of
listings joined to their sellers), whatever the filters.
"""

from __future__ import annotations

import io
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf.file import MultipleFileField
from PIL import Image, ImageOps
from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import contains_eager
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response
from wtforms import (
    BooleanField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from escrow.amounts import show_units, strip_amount
from escrow.db.models import Listing, ListingStatus, Trade, User
from webapp import checkout, db, search, trust
from webapp.auth import current_address, current_user, login_required
from webapp.chain import gateway
from webapp.checkout import DEFAULT_DELIVERY_DAYS, MAX_DELIVERY_DAYS, MIN_DELIVERY_DAYS
from webapp.forms import Form
from webapp.quotas import listing_refusal
from webapp.security_headers import FILE_POLICY
from webapp.views import (
    CARD_COLUMNS,
    DECIMALS,
    Card,
    CardSeller,
    counted_page,
    tenge_unit_rates,
    to_units,
)

bp = Blueprint("listings", __name__)

#: Category key (stored in ``listings.category``) -> the name shown, in the reader's language.
CATEGORIES: dict[str, Any] = {
    "electronics": _l("Electronics"),
    "phones": _l("Phones"),
    "furniture": _l("Furniture"),
    "clothing": _l("Clothing"),
    "bikes": _l("Bikes"),
    "books": _l("Books"),
    "kids": _l("Kids"),
    "home": _l("Home"),
    "other": _l("Other"),
}
CURRENCIES = ("KZT", "ETH", "USD")
SORTS: dict[str, Any] = {
    "newest": _l("Newest first"),
    "price_asc": _l("Price: low to high"),
    "price_desc": _l("Price: high to low"),
}
#: Listing status (stored value) -> the word shown to people.
STATUSES: dict[str, Any] = {
    ListingStatus.ACTIVE.value: _l("active"),
    ListingStatus.RESERVED.value: _l("reserved"),
    ListingStatus.SOLD.value: _l("sold"),
    ListingStatus.WITHDRAWN.value: _l("withdrawn"),
}
MAX_PHOTOS = 6
MAX_PRICE_TEXT = 60
PHOTO_NAME = re.compile(r"^[0-9a-f]{32}\.(?:jpg|png|webp)$")
#: What Pillow calls each photo type, and what the uploads route serves it as.
PHOTO_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
PHOTO_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


# ---------------------------------------------------------------------------- helpers


def tx_url(endpoint: str, **values: Any) -> str | None:
    """The URL of another blueprint's transaction endpoint, or None while it does not exist."""
    if endpoint not in current_app.view_functions:
        return None
    return url_for(endpoint, **values)


def parse_amount(text: str, currency: str) -> int:
    """``views.to_units`` for the price field and the price filters: empty and overlong text
    get their own message. ``static/js/amount_preview.js`` ``parsePrice`` mirrors this."""
    text = strip_amount(text or "")
    if not text:
        raise ValueError(_("Enter a price."))
    if len(text) > MAX_PRICE_TEXT:
        raise ValueError(_("That price is too long."))
    return to_units(text, currency)


def amount_message(exc: ValueError) -> str:
    """The message of a refused price in the reader's language. An ``escrow.amounts`` error
    carries its English template (marked for translation where it is written) and values;
    any other error's text is already translated."""
    template = getattr(exc, "template", None)
    if not isinstance(template, str):
        return str(exc)
    params = getattr(exc, "params", None) or {}
    return _(template, **params)


def understood_price(units: int, currency: str) -> str:
    """``'1 500.5 ETH'``: a price as the parser understood it, shown back to who typed it."""
    return f"{show_units(units, DECIMALS.get(currency, 18))} {currency}"


def reserved_by_other(listing: Listing, address: str | None, now: datetime | None = None) -> bool:
    return checkout.held_until(listing, now) is not None and listing.reserved_by != address


def can_buy(listing: Listing, address: str | None) -> bool:
    if address is None or listing.seller.address == address:
        return False
    if listing.status not in (ListingStatus.ACTIVE.value, ListingStatus.RESERVED.value):
        return False
    return not reserved_by_other(listing, address)


def _photo_kind(head: bytes) -> str | None:
    """The image type from its first bytes (the extension and the browser's word are ignored)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def _upload_dir() -> Path:
    path = Path(current_app.config["UPLOAD_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class CheckedPhoto:
    data: bytes
    kind: str


class PhotoRefused(ValueError):
    """A photo that cannot be stored: ``reason`` ("pixels", "too_many_pixels", "unreadable")
    and the numbers of the message, which ``message`` words as a whole sentence."""

    def __init__(self, reason: str, **values: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.values = values

    def message(self, name: str) -> str:
        """The sentence for the seller, naming the file."""
        if self.reason == "pixels":
            return _(
                "%(name)s has %(width)s × %(height)s pixels; "
                "at most %(millions)s million are accepted.",
                name=name,
                **self.values,
            )
        if self.reason == "too_many_pixels":
            return _("%(name)s has too many pixels.", name=name)
        return _("%(name)s could not be read as an image; it may be damaged.", name=name)


def clean_photo(data: bytes, kind: str, max_pixels: int) -> bytes:
    """The photo decoded and encoded again from its pixels alone.

    What a camera or phone writes next to the pixels (EXIF with the GPS position, the time and
    the device, XMP, comments, text chunks) is not carried over; the EXIF orientation is
    applied to the pixels first, so the photo still stands the right way up. Only the colour
    profile is kept. A file that does not decode as the type its first bytes claim is refused,
    and so is one with more than ``max_pixels`` pixels, which is read from the header before
    any pixel is decoded (a small file can unpack to gigabytes).
    """
    fmt = PHOTO_FORMATS[kind]
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise PhotoRefused(
                    "pixels", width=width, height=height, millions=f"{max_pixels / 1_000_000:g}"
                )
            image.load()
            icc_profile = image.info.get("icc_profile")
            transparency = image.info.get("transparency")
            upright = ImageOps.exif_transpose(image)
    except PhotoRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoRefused("too_many_pixels") from None
    except Exception:  # Pillow raises many kinds of errors for damaged files
        raise PhotoRefused("unreadable") from None
    pixels = upright  # a new image: exif_transpose copies
    pixels.info = {}  # nothing from the original file goes along
    options: dict[str, Any] = {}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if fmt == "JPEG":
        if pixels.mode not in ("L", "RGB"):
            pixels = pixels.convert("RGB")
        options.update(quality=90)
    elif fmt == "PNG":
        if transparency is not None and pixels.mode in ("P", "L", "RGB"):
            options["transparency"] = transparency
    else:
        if pixels.mode not in ("RGB", "RGBA"):
            pixels = pixels.convert("RGBA" if pixels.has_transparency_data else "RGB")
        options.update(quality=90)
    out = io.BytesIO()
    pixels.save(out, fmt, **options)
    return out.getvalue()


def check_photos(files: list[FileStorage]) -> tuple[list[CheckedPhoto], list[str]]:
    limit = int(current_app.config["MAX_PHOTO_BYTES"])
    max_pixels = int(current_app.config["MAX_PHOTO_PIXELS"])
    photos: list[CheckedPhoto] = []
    errors: list[str] = []
    for storage in files:
        if not isinstance(storage, FileStorage) or not storage.filename:
            continue
        name = storage.filename[:80]
        data = storage.stream.read(limit + 1)
        if len(data) > limit:
            errors.append(
                _("%(name)s is larger than %(size)s MB.", name=name, size=limit // (1024 * 1024))
            )
            continue
        kind = _photo_kind(data[:16])
        if kind is None:
            errors.append(_("%(name)s is not a JPEG, PNG or WebP image.", name=name))
            continue
        try:
            photos.append(CheckedPhoto(clean_photo(data, kind, max_pixels), kind))
        except PhotoRefused as refused:
            errors.append(refused.message(name))
    return photos, errors


def owned_photos(listing: Listing, names: list[str]) -> set[str]:
    """The names among ``names`` that are this listing's photos: a form can name any file."""
    return set(names) & set(listing.photos or [])


def photo_space_errors(new: list[CheckedPhoto], freed: set[str] | None = None) -> list[str]:
    """The seller's photos on disk, over all their listings, stay within PHOTO_BYTES_PER_SELLER
    (``freed``: the names this change removes)."""
    if not new:
        return []
    folder = Path(current_app.config["UPLOAD_DIR"])
    used = 0
    for photos in db.session().scalars(
        select(Listing.photos)
        .join(User, Listing.seller_id == User.id)
        .where(User.address == current_address())
    ):
        for name in photos or []:
            if name in (freed or ()) or not PHOTO_NAME.match(name):
                continue
            try:
                used += (folder / name).stat().st_size
            except OSError:
                continue
    limit = int(current_app.config["PHOTO_BYTES_PER_SELLER"])
    if used + sum(len(p.data) for p in new) <= limit:
        return []
    return [
        _(
            "Your photos would take more than the %(limit)s MB allowed per seller "
            "(%(used)s MB in use). Remove photos from other listings, or add smaller ones.",
            limit=limit // (1024 * 1024),
            used=used // (1024 * 1024),
        )
    ]


def save_photo(photo: CheckedPhoto) -> str:
    name = f"{secrets.token_hex(16)}.{photo.kind}"
    (_upload_dir() / name).write_bytes(photo.data)
    return name


def delete_photo_files(names: list[str]) -> None:
    folder = Path(current_app.config["UPLOAD_DIR"])
    for name in names:
        if PHOTO_NAME.match(name):
            (folder / name).unlink(missing_ok=True)


def _owned_listing(listing_id: int) -> Listing:
    listing = db.session().get(Listing, listing_id)
    if listing is None:
        abort(404, _("There is no such listing."))
    if listing.seller.address != current_address():
        abort(403, _("Only the seller can change this listing."))
    return listing


# ---------------------------------------------------------------------------- forms


class ListingForm(Form):
    title = StringField(
        _l("Title"),
        validators=[
            DataRequired(_l("Give the listing a title.")),
            Length(3, 200, _l("The title needs 3 to 200 characters.")),
        ],
    )
    description = TextAreaField(
        _l("Description"),
        validators=[
            Optional(),
            Length(max=5000, message=_l("The description can be at most 5,000 characters.")),
        ],
    )
    price = StringField(_l("Price"), validators=[DataRequired(_l("Enter a price."))])
    currency = SelectField(_l("Currency"), choices=[SelectChoice(c) for c in CURRENCIES])
    quantity = IntegerField(
        _l("Quantity"),
        default=1,
        validators=[
            InputRequired(_l("Enter how many you sell.")),
            NumberRange(1, 1000, _l("The quantity must be between 1 and 1,000.")),
        ],
    )
    category = SelectField(
        _l("Category"), choices=[SelectChoice(k, v) for k, v in CATEGORIES.items()]
    )
    city = StringField(
        _l("City"),
        validators=[
            Optional(),
            Length(max=100, message=_l("The city can be at most 100 characters.")),
        ],
    )
    delivery_days = StringField(_l("Delivery time (days)"), default=str(DEFAULT_DELIVERY_DAYS))
    photos = MultipleFileField(_l("Photos"))

    def delivery_days_value(self) -> int:
        """The delivery time in whole days; ValueError with a message for the seller."""
        text = str(self.delivery_days.data if self.delivery_days.data is not None else "")
        text = text.strip()
        if not text:
            raise ValueError(
                _(
                    "Enter the delivery time in days (%(min)s to %(max)s).",
                    min=MIN_DELIVERY_DAYS,
                    max=MAX_DELIVERY_DAYS,
                )
            )
        if not text.isascii() or not text.isdigit() or len(text) > 3:
            raise ValueError(
                _(
                    "Enter the delivery time as a whole number of days, from %(min)s to %(max)s.",
                    min=MIN_DELIVERY_DAYS,
                    max=MAX_DELIVERY_DAYS,
                )
            )
        days = int(text)
        if not MIN_DELIVERY_DAYS <= days <= MAX_DELIVERY_DAYS:
            raise ValueError(
                _(
                    "The delivery time must be between %(min)s and %(max)s days.",
                    min=MIN_DELIVERY_DAYS,
                    max=MAX_DELIVERY_DAYS,
                )
            )
        return days

    def validate_delivery_days(self, field: StringField) -> None:
        from wtforms.validators import ValidationError

        try:
            self.delivery_days_value()
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def price_units(self) -> int:
        return parse_amount(self.price.data or "", self.currency.data or "ETH")

    def validate_price(self, field: StringField) -> None:
        from wtforms.validators import ValidationError

        try:
            self.price_units()
        except ValueError as exc:
            raise ValidationError(amount_message(exc)) from None


class ConfirmForm(Form):
    confirm = BooleanField(_l("Confirm"))


# ---------------------------------------------------------------------------- browse


@dataclass
class Filters:
    q: str = ""
    category: str = ""
    currency: str = ""
    city: str = ""
    min_price: str = ""
    max_price: str = ""
    sort: str = "newest"
    page: int = 1

    def args(self, **override: Any) -> str:
        values = {
            "q": self.q,
            "category": self.category,
            "currency": self.currency,
            "city": self.city,
            "min": self.min_price,
            "max": self.max_price,
            "sort": self.sort if self.sort != "newest" else "",
            "page": self.page,
        }
        values.update(override)
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 1)})


def _read_filters() -> tuple[Filters, list[str]]:
    args = request.args
    errors: list[str] = []
    filters = Filters(
        q=args.get("q", "").strip()[:100],
        category=args.get("category", "") if args.get("category", "") in CATEGORIES else "",
        currency=args.get("currency", "") if args.get("currency", "") in CURRENCIES else "",
        city=args.get("city", "").strip()[:100],
        # One character more than a price may have, so that overlong text is refused by
        # parse_amount, not cut into a different amount.
        min_price=args.get("min", "").strip()[: MAX_PRICE_TEXT + 1],
        max_price=args.get("max", "").strip()[: MAX_PRICE_TEXT + 1],
        sort=args.get("sort", "newest") if args.get("sort") in SORTS else "newest",
    )
    page = args.get("page", "1")
    filters.page = int(page) if page.isdigit() and 0 < int(page) < 10**6 else 1
    if (filters.min_price or filters.max_price) and not filters.currency:
        errors.append(_("Choose a currency to filter by price."))
    return filters, errors


def _apply_filters(query: Select[Any], filters: Filters, errors: list[str]) -> Select[Any]:
    query = query.where(Listing.status == ListingStatus.ACTIVE.value)
    # Words in any script and case, cities in any of their spellings (webapp/search.py).
    query = search.apply_search(query, db.session(), filters.q)
    if filters.category:
        query = query.where(Listing.category == filters.category)
    if filters.currency:
        query = query.where(Listing.currency == filters.currency)
        for text, is_min in ((filters.min_price, True), (filters.max_price, False)):
            if not text:
                continue
            try:
                units = parse_amount(text, filters.currency)
            except ValueError as exc:
                if is_min:
                    errors.append(_("Minimum price: %(error)s", error=amount_message(exc)))
                else:
                    errors.append(_("Maximum price: %(error)s", error=amount_message(exc)))
                continue
            query = query.where(Listing.price >= units if is_min else Listing.price <= units)
    if filters.city:
        city = search.city_condition(db.session(), filters.city)
        if city is not None:
            query = query.where(city)
    return query


@bp.get("/")
def index() -> str:
    filters, errors = _read_filters()
    session = db.session()
    page_size = int(current_app.config["PAGE_SIZE"])
    columns = cast("Select[Any]", select(*CARD_COLUMNS, User.address, User.display_name))
    base = _apply_filters(columns, filters, errors)
    count = base.with_only_columns(func.count(Listing.id)).order_by(None)
    if filters.sort in ("price_asc", "price_desc"):
        # Across currencies by their value in tenge at the site's rates (ETH and USD mixed).
        descending = filters.sort == "price_desc"
        order: tuple[Any, ...] = (
            *search.price_order(tenge_unit_rates(), descending=descending),
            Listing.id.desc(),
        )
    else:
        order = (Listing.created_at.desc(), Listing.id.desc())
    # Cards as plain rows of the columns they show, with their sellers' names (no ORM objects).
    page_of = base.join(Listing.seller).order_by(*order).limit(page_size)
    # The page and the number of all matches in one statement: an uncorrelated count is
    # evaluated once, and a search's full-text match runs once for both (search._sqlite_fts).
    counted = page_of.add_columns(count.correlate(None).scalar_subquery().label("total"))
    paged = counted_page(
        filters.page,
        page_size,
        lambda skip: session.execute(counted.offset(skip)).all(),
        lambda skip: session.execute(page_of.offset(skip)).all(),
        lambda: session.scalar(count),
    )
    listings = [
        Card._make((*row[:8], CardSeller(row.address, row.display_name))) for row in paged.rows
    ]
    filters.page, pages, total = paged.page, paged.pages, paged.total
    return render_template(
        "listings/index.html",
        listings=listings,
        filters=filters,
        errors=errors,
        total=total,
        pages=pages,
        categories=CATEGORIES,
        currencies=CURRENCIES,
        sorts=SORTS,
    )


# ---------------------------------------------------------------------------- one listing


#: The listing page's statement, built once (building costs more than SQLite's answer): the
#: listing with its seller, the seller's record (trust.record_columns) and the number of
#: listings like it (for the price warning).
LISTING_PAGE = (
    select(Listing, *trust.record_columns(User.address), trust.similar_count(Listing))
    .join(Listing.seller)
    .options(contains_eager(Listing.seller))
    .where(Listing.id == bindparam("listing_id"))
)


@bp.get("/listings/<int:listing_id>")
def detail(listing_id: int) -> str:
    session = db.session()
    row = session.execute(LISTING_PAGE, {"listing_id": listing_id}).first()
    if row is None:
        abort(404, _("There is no such listing."))
    listing: Listing = row[0]
    seller = listing.seller
    address = current_address()
    is_owner = seller.address == address
    if listing.status == ListingStatus.WITHDRAWN.value and not is_owner:
        abort(404, _("This listing was withdrawn by the seller."))
    volume = trust.volumes_of(
        session,
        seller.address,
        stablecoin=gateway().stablecoin_address(),
        trades_total=row.trades_total,
    )
    record = trust.record_from_row(seller.address, row, user=seller, volume=volume)
    signals = trust.risk_signals_for_listing(
        session, listing, record=record, similar=row.similar_count
    )
    buy_url = tx_url("trades.buy", listing_id=listing.id) if can_buy(listing, address) else None
    return render_template(
        "listings/detail.html",
        listing=listing,
        record=record,
        signals=signals,
        buy_url=buy_url,
        is_owner=is_owner,
        reserved=reserved_by_other(listing, address),
        delivery_days=checkout.delivery_days_of(listing),
        offer=checkout.offer_terms(listing),
        offered=checkout.page_arbitrators(listing),
        categories=CATEGORIES,
        statuses=STATUSES,
        form=ConfirmForm(),
    )


@bp.get("/listings/mine")
@login_required
def mine() -> str:
    user = current_user()
    listings: list[Listing] = []
    if user is not None:
        listings = list(
            db.session().scalars(
                select(Listing)
                .where(Listing.seller_id == user.id)
                .order_by(Listing.created_at.desc(), Listing.id.desc())
            )
        )
    return render_template(
        "listings/mine.html",
        listings=listings,
        form=ConfirmForm(),
        categories=CATEGORIES,
        statuses=STATUSES,
    )


@bp.route("/listings/new", methods=["GET", "POST"])
@login_required
def create() -> Any:
    form = ListingForm()
    if request.method == "GET":
        form.currency.data = (
            request.args.get("currency", "ETH")
            if request.args.get("currency") in CURRENCIES
            else "ETH"
        )
    if form.validate_on_submit():
        refusal = listing_refusal(db.session(), current_address() or "")
        if refusal:
            flash(refusal, "error")
            return render_template(
                "listings/form.html", form=form, listing=None, max_photos=MAX_PHOTOS
            ), 429
        photos, photo_errors = check_photos(request.files.getlist(form.photos.name))
        if len(photos) > MAX_PHOTOS:
            photo_errors.append(
                ngettext(
                    "At most %(num)d photo per listing.",
                    "At most %(num)d photos per listing.",
                    MAX_PHOTOS,
                )
            )
        photo_errors += photo_space_errors(photos)
        if photo_errors:
            form.photos.errors = photo_errors
        else:
            session = db.session()
            user = _ensure_user(session)
            listing = Listing(
                ref="0x" + secrets.token_hex(32),
                seller_id=user.id,
                title=form.title.data.strip(),
                description=(form.description.data or "").strip(),
                price=form.price_units(),
                currency=form.currency.data,
                quantity=form.quantity.data,
                category=form.category.data,
                city=(form.city.data or "").strip() or None,
                delivery_days=form.delivery_days_value(),
                photos=[save_photo(p) for p in photos],
                status=ListingStatus.ACTIVE.value,
            )
            session.add(listing)
            session.commit()
            flash(
                _(
                    "Your listing is on the market. Price: %(price)s.",
                    price=understood_price(listing.price, listing.currency),
                ),
                "success",
            )
            return redirect(url_for("listings.detail", listing_id=listing.id))
    status = 400 if request.method == "POST" else 200
    return render_template(
        "listings/form.html", form=form, listing=None, max_photos=MAX_PHOTOS
    ), status


def _ensure_user(session: Any) -> User:
    address = current_address()
    user = session.scalar(select(User).where(User.address == address))
    if user is None:
        user = User(address=address, languages=[])
        session.add(user)
        session.flush()
    return user


@bp.route("/listings/<int:listing_id>/edit", methods=["GET", "POST"])
@login_required
def edit(listing_id: int) -> Any:
    listing = _owned_listing(listing_id)
    if listing.status == ListingStatus.SOLD.value:
        flash(_("A sold listing cannot be changed."), "error")
        return redirect(url_for("listings.detail", listing_id=listing.id))
    form = ListingForm(obj=listing if request.method == "GET" else None)
    if request.method == "POST" and form.delivery_days.name not in request.form:
        # A form from before the field existed keeps the listing's delivery time.
        form.delivery_days.data = str(checkout.delivery_days_of(listing))
    if request.method == "GET":
        form.price.data = _plain_amount(listing.price, listing.currency)
        form.city.data = listing.city or ""
        form.delivery_days.data = str(checkout.delivery_days_of(listing))
    if form.validate_on_submit():
        remove = owned_photos(listing, request.form.getlist("remove_photo"))
        kept = [p for p in listing.photos if p not in remove]
        photos, photo_errors = check_photos(request.files.getlist(form.photos.name))
        if len(kept) + len(photos) > MAX_PHOTOS:
            photo_errors.append(
                ngettext(
                    "At most %(num)d photo per listing; remove some first.",
                    "At most %(num)d photos per listing; remove some first.",
                    MAX_PHOTOS,
                )
            )
        photo_errors += photo_space_errors(photos, freed=remove)
        locked = _terms_change_refused(listing, form)
        if locked:
            form.price.errors = [*form.price.errors, locked]
        elif photo_errors:
            form.photos.errors = photo_errors
        else:
            session = db.session()
            _bump_version(listing, form, photos_changed=bool(remove or photos))
            listing.title = form.title.data.strip()
            listing.description = (form.description.data or "").strip()
            listing.price = form.price_units()
            listing.currency = form.currency.data
            listing.quantity = form.quantity.data
            listing.category = form.category.data
            listing.city = (form.city.data or "").strip() or None
            listing.delivery_days = form.delivery_days_value()
            listing.photos = kept + [save_photo(p) for p in photos]
            session.commit()
            # Photos a buyer saw stay on disk: the trade page shows the listing as bought.
            seen = checkout.kept_photos(session, listing.id)
            delete_photo_files([p for p in remove if p not in kept and p not in seen])
            flash(
                _(
                    "Listing saved. Price: %(price)s.",
                    price=understood_price(listing.price, listing.currency),
                ),
                "success",
            )
            return redirect(url_for("listings.detail", listing_id=listing.id))
    status = 400 if request.method == "POST" else 200
    return render_template(
        "listings/form.html", form=form, listing=listing, max_photos=MAX_PHOTOS
    ), status


def _terms_change_refused(listing: Listing, form: ListingForm) -> str | None:
    """Why the price or currency may not change now (a buyer is paying, or a trade is open)."""
    try:
        price = form.price_units()
    except ValueError:
        return None  # the price field reports its own error
    if price == listing.price and form.currency.data == listing.currency:
        return None
    reason = checkout.terms_locked(db.session(), listing)
    if reason is None:
        return None
    return f"{reason} " + _("The price and currency cannot change until it is over.")


def _bump_version(listing: Listing, form: ListingForm, *, photos_changed: bool) -> None:
    """A new version whenever what a buyer agrees to changes (the delivery time too, which
    becomes the trade's delivery window): open checkouts must re-confirm."""
    if (
        photos_changed
        or form.title.data.strip() != listing.title
        or (form.description.data or "").strip() != (listing.description or "")
        or form.price_units() != listing.price
        or form.currency.data != listing.currency
        or form.delivery_days_value() != checkout.delivery_days_of(listing)
    ):
        listing.version = int(listing.version or 1) + 1


def _plain_amount(units: int, currency: str) -> str:
    """The price as the edit form shows it, in the page's language, read back exactly."""
    from webapp.views import amount_input_value

    return amount_input_value(units, currency)


@bp.post("/listings/<int:listing_id>/pause")
@login_required
def pause(listing_id: int) -> Response:
    listing = _owned_listing(listing_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if checkout.listing_is_held(db.session(), listing.id):
        flash(_("A buyer is paying for this item right now; try again in a few minutes."), "error")
    elif listing.status == ListingStatus.ACTIVE.value:
        listing.status = ListingStatus.WITHDRAWN.value
        flash(_("Listing paused: buyers no longer see it."), "success")
    elif listing.status == ListingStatus.WITHDRAWN.value:
        listing.status = ListingStatus.ACTIVE.value
        flash(_("Listing is on the market again."), "success")
    else:
        flash(_("A listing that is reserved or sold cannot be paused."), "error")
    db.session().commit()
    return redirect(_back(listing))


@bp.post("/listings/<int:listing_id>/delete")
@login_required
def delete(listing_id: int) -> Response:
    listing = _owned_listing(listing_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    session = db.session()
    if checkout.listing_is_held(session, listing.id):
        flash(_("A buyer is paying for this item right now; try again in a few minutes."), "error")
        return redirect(_back(listing))
    used = session.scalar(select(func.count(Trade.id)).where(Trade.listing_id == listing.id))
    if used:
        if listing.status in (ListingStatus.ACTIVE.value, ListingStatus.RESERVED.value):
            listing.status = ListingStatus.WITHDRAWN.value
        session.commit()
        flash(
            _("This listing has trades, so it stays on record; it was withdrawn instead."),
            "warning",
        )
        return redirect(url_for("listings.mine"))
    photos = list(listing.photos or [])
    session.delete(listing)
    session.commit()
    delete_photo_files(photos)
    flash(_("Listing deleted."), "success")
    return redirect(url_for("listings.mine"))


def _back(listing: Listing) -> str:
    if request.form.get("next") == "mine":
        return url_for("listings.mine")
    return url_for("listings.detail", listing_id=listing.id)


# ---------------------------------------------------------------------------- photos


@bp.get("/uploads/<name>")
def upload(name: str) -> Response:
    if not PHOTO_NAME.match(name):
        abort(404)
    folder = Path(current_app.config["UPLOAD_DIR"])
    if not (folder / name).is_file():
        abort(404)
    kind = name.rsplit(".", 1)[1]
    response = send_from_directory(folder, name, mimetype=PHOTO_TYPES[kind], max_age=7 * 24 * 3600)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = FILE_POLICY
    return response
