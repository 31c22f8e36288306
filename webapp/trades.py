"""Trades."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("trades", __name__)
