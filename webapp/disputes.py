"""Disputes."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("disputes", __name__)
