"""Listings: browse, search, create, edit, pause and delete."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("listings", __name__)


@bp.get("/")
def index() -> str:
    return render_template("listings/index.html")
