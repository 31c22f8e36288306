"""Arbitration."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("arbitration", __name__)
