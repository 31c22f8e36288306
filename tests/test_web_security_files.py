"""Uploaded files: listing photos (only a listing's own photos can be removed; metadata such as
the GPS position is dropped; files that do not decode or decode to too many pixels are
refused), how photos and evidence are served, and who may add evidence to a trade."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import ExifTags, Image
from PIL.PngImagePlugin import PngInfo
from PIL.TiffImagePlugin import IFDRational
from sqlalchemy import func, select

from escrow.client import EscrowClient
from escrow.db.models import EvidenceFile, Listing, Message, Trade, User
from helpers import Roles
from web_fixtures import WebUser, db_session, funded_trade, index_now, listing_form

FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
SECRETS = (b"SpyCam", b"SpyXMP", b"SpyNote")
PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n"
HTML_AS_TEXT = b"<html><script>alert(1)</script></html>\n"
LISTING = listing_form()


def photo(kind: str = "jpg", size: tuple[int, int] = (16, 12), orientation: int = 1) -> bytes:
    """A real image that carries what phones write: EXIF with camera and GPS, XMP, a note."""
    image = Image.new("RGB", size, (30, 120, 200))
    image.paste((255, 0, 0), (0, 0, size[0] // 2, size[1] // 2))  # a red quarter, top left
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SpyCam"
    exif[ExifTags.Base.Model] = "SpyCam 3000"
    exif[ExifTags.Base.Orientation] = orientation
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (IFDRational(43), IFDRational(15), IFDRational(1234, 100))
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (IFDRational(76), IFDRational(54), IFDRational(7, 10))
    options: dict[str, Any] = {"exif": exif, "xmp": b"<x:xmpmeta>SpyXMP</x:xmpmeta>"}
    if kind == "jpg":
        options["comment"] = b"SpyNote"
    if kind == "png":
        text = PngInfo()
        text.add_text("Comment", "SpyNote")
        options["pnginfo"] = text
    out = io.BytesIO()
    image.save(out, FORMATS[kind], **options)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` × ``height`` pixels and holds almost none of them."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def new_listing(user: WebUser, *files: tuple[bytes, str]) -> Any:
    return user.post_form(
        "/listings/new",
        {**LISTING, "photos": [(io.BytesIO(data), name) for data, name in files]},
        content_type="multipart/form-data",
    )


def listing_of(app: Flask, seller: str) -> Listing:
    with db_session(app) as session:
        listing = session.scalars(
            select(Listing)
            .join(Listing.seller)
            .where(User.address == seller.lower())
            .order_by(Listing.id.desc())
        ).first()
        assert listing is not None
        session.expunge(listing)
        return listing


def stored_files(app: Flask) -> set[str]:
    folder = Path(app.config["UPLOAD_DIR"])
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


# ---------------------------------------------------------------------------- removing photos


def test_a_seller_cannot_remove_another_listings_photos(app: Flask, web: Any, roles: Roles) -> None:
    victim = web("buyer", roles)
    assert new_listing(victim, (photo("png"), "lamp.png")).status_code == 302
    (theirs,) = listing_of(app, roles.buyer).photos
    seller = web("seller", roles)
    assert new_listing(seller, (photo("jpg"), "bike.jpg")).status_code == 302
    mine = listing_of(app, roles.seller)

    # The other listing's photo name is public (it is in the page); naming it changes nothing.
    response = seller.post_form(
        f"/listings/{mine.id}/edit",
        {**LISTING, "remove_photo": theirs},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    assert (Path(app.config["UPLOAD_DIR"]) / theirs).is_file()
    assert listing_of(app, roles.buyer).photos == [theirs]
    assert listing_of(app, roles.seller).photos == mine.photos
    served = web(None).client.get(f"/uploads/{theirs}")
    assert served.status_code == 200
    served.close()


def test_a_seller_still_removes_their_own_photo(app: Flask, web: Any, roles: Roles) -> None:
    seller = web("seller", roles)
    new_listing(seller, (photo("jpg"), "a.jpg"), (photo("png"), "b.png"))
    listing = listing_of(app, roles.seller)
    first, second = listing.photos
    response = seller.post_form(
        f"/listings/{listing.id}/edit",
        {**LISTING, "remove_photo": [first, "0" * 32 + ".jpg"]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    assert listing_of(app, roles.seller).photos == [second]
    assert stored_files(app) == {second}


# ---------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("kind", ["jpg", "png", "webp"])
def test_photo_metadata_and_gps_position_are_removed(
    app: Flask, web: Any, roles: Roles, kind: str
) -> None:
    original = photo(kind)
    with Image.open(io.BytesIO(original)) as image:  # the test photo really carries them
        assert image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert sum(secret in original for secret in SECRETS) >= 2  # EXIF and XMP or a note

    seller = web("seller", roles)
    assert new_listing(seller, (original, f"holiday.{kind}")).status_code == 302
    (name,) = listing_of(app, roles.seller).photos
    assert name.endswith("." + kind)
    stored = (Path(app.config["UPLOAD_DIR"]) / name).read_bytes()
    served = web(None).client.get(f"/uploads/{name}")
    try:
        assert served.status_code == 200 and served.data == stored
    finally:
        served.close()
    for secret in SECRETS:
        assert secret not in stored
    assert b"Exif" not in stored and b"eXIf" not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == FORMATS[kind]
        assert image.size == (16, 12)
        assert not image.getexif()
        assert "exif" not in image.info and "xmp" not in image.info
        red, _, blue = image.convert("RGB").getpixel((2, 2))
        assert red > 200 and blue < 60  # still the same picture


def test_photo_is_turned_as_its_orientation_said(app: Flask, web: Any, roles: Roles) -> None:
    """The orientation tag goes with the metadata, so it is applied to the pixels first."""
    seller = web("seller", roles)
    rotated = photo("jpg", size=(16, 8), orientation=6)  # "rotate 90° clockwise to view"
    assert new_listing(seller, (rotated, "upright.jpg")).status_code == 302
    (name,) = listing_of(app, roles.seller).photos
    with Image.open(Path(app.config["UPLOAD_DIR"]) / name) as image:
        assert image.size == (8, 16)
        assert not image.getexif()


# ---------------------------------------------------------------------------- refused photos


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        pytest.param(
            b"\xff\xd8\xff\xe0" + b"\x00" * 64, "a.jpg", "could not be read", id="jpeg-header"
        ),
        pytest.param(
            b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "a.png", "could not be read", id="png-header"
        ),
        pytest.param(photo("jpg")[:200], "a.jpg", "could not be read", id="cut-off-jpeg"),
        pytest.param(
            b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 64,
            "a.webp",
            "could not be read",
            id="webp-header",
        ),
        # A small file that unpacks to 10 billion pixels (a decompression bomb).
        pytest.param(png_header_only(100_000, 100_000), "bomb.png", "pixels", id="bomb"),
    ],
)
def test_photos_that_do_not_decode_are_refused(
    app: Flask, web: Any, roles: Roles, data: bytes, name: str, message: str
) -> None:
    seller = web("seller", roles)
    response = new_listing(seller, (data, name))
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert stored_files(app) == set()
    with db_session(app) as session:
        assert session.scalar(select(func.count(Listing.id))) == 0


def test_pixel_limit_is_checked_before_decoding(app: Flask, web: Any, roles: Roles) -> None:
    app.config["MAX_PHOTO_PIXELS"] = 100 * 100
    seller = web("seller", roles)
    refused = new_listing(seller, (photo("png", size=(200, 60)), "wide.png"))
    assert refused.status_code == 400
    assert "200 × 60 pixels" in refused.get_data(as_text=True)
    assert new_listing(seller, (photo("png", size=(100, 100)), "fits.png")).status_code == 302


# ---------------------------------------------------------------------------- serving


@pytest.mark.parametrize(
    ("kind", "content_type"), [("jpg", "image/jpeg"), ("png", "image/png"), ("webp", "image/webp")]
)
def test_photos_are_served_as_images_only(
    app: Flask, web: Any, roles: Roles, kind: str, content_type: str
) -> None:
    new_listing(web("seller", roles), (photo(kind), f"x.{kind}"))
    (name,) = listing_of(app, roles.seller).photos
    served = web(None).client.get(f"/uploads/{name}")
    try:
        assert served.status_code == 200
        assert served.headers["Content-Type"] == content_type
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    finally:
        served.close()


def upload_evidence(user: WebUser, trade_pk: int, data: bytes, name: str) -> Any:
    return user.client.post(
        f"/trades/{trade_pk}/evidence",
        data={"file": (io.BytesIO(data), name), "note": ""},
        headers={"X-CSRFToken": user.csrf(), "Accept": "application/json"},
        content_type="multipart/form-data",
    )


def test_evidence_is_kept_byte_for_byte(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    """Unlike a listing photo, an evidence file is not re-encoded: its sha256 goes on chain,
    and the file the arbitrator opens must be the one whose hash was committed."""
    pk = funded_trade(app, client, roles)
    original = photo("jpg")
    response = upload_evidence(web("buyer", roles), pk, original, "parcel.jpg")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["sha256"] == hashlib.sha256(original).hexdigest()
    download = web("seller", roles).client.get(f"/evidence/{response.get_json()['evidence_id']}")
    try:
        assert download.data == original
    finally:
        download.close()


@pytest.mark.parametrize(
    ("data", "name", "content_type", "inline"),
    [
        pytest.param(photo("png"), "parcel.png", "image/png", True, id="png"),
        pytest.param(photo("jpg"), "parcel.jpg", "image/jpeg", True, id="jpeg"),
        pytest.param(PDF, "receipt.pdf", "application/pdf", False, id="pdf"),
        pytest.param(HTML_AS_TEXT, "page.html", "text/plain", False, id="text"),
    ],
)
def test_evidence_downloads(
    app: Flask,
    web: Any,
    roles: Roles,
    client: EscrowClient,
    data: bytes,
    name: str,
    content_type: str,
    inline: bool,
) -> None:
    """Images open in the browser; anything else is downloaded, never shown as a page."""
    pk = funded_trade(app, client, roles)
    evidence_id = upload_evidence(web("buyer", roles), pk, data, name).get_json()["evidence_id"]
    response = web("arbitrator", roles).client.get(f"/evidence/{evidence_id}")
    try:
        assert response.status_code == 200 and response.data == data
        assert response.mimetype == content_type
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
        disposition = response.headers["Content-Disposition"]
        assert disposition.startswith("inline" if inline else "attachment"), disposition
    finally:
        response.close()


# ---------------------------------------------------------------------------- who may post


def counts(app: Flask) -> tuple[int, int]:
    with db_session(app) as session:
        return (
            int(session.scalar(select(func.count(EvidenceFile.id))) or 0),
            int(session.scalar(select(func.count(Message.id))) or 0),
        )


def test_arbitrator_adds_evidence_only_once_there_is_a_dispute(
    app: Flask, web: Any, roles: Roles, client: EscrowClient
) -> None:
    pk = funded_trade(app, client, roles)
    arbitrator = web("arbitrator", roles)
    before, files = counts(app), stored_evidence(app)
    refused = upload_evidence(arbitrator, pk, b"Arbitrator's note\n", "note.txt")
    assert refused.status_code == 403
    assert "once a dispute is opened" in refused.get_json()["error"]
    message = arbitrator.post_json(f"/trades/{pk}/messages", {"body": "Hello"})
    assert message.status_code == 403
    assert refused.get_json()["error"] == message.get_json()["error"]  # one rule for both
    assert counts(app) == before and stored_evidence(app) == files

    with db_session(app) as session:
        onchain_id = session.get(Trade, pk).onchain_id
    terms, _ = client.terms_of(onchain_id)
    client.open_dispute(onchain_id, terms, sender=roles.buyer)
    index_now(app)
    assert upload_evidence(arbitrator, pk, b"Arbitrator's note\n", "note.txt").status_code == 200
    assert arbitrator.post_json(f"/trades/{pk}/messages", {"body": "Hello"}).status_code == 200


def stored_evidence(app: Flask) -> set[Path]:
    folder = Path(app.config["EVIDENCE_DIR"])
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()
