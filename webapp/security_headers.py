"""Browser security headers on every response: pages, JSON, static files and uploads.

The Content-Security-Policy allows scripts, styles and images from this site only, with no
inline script, no inline ``style`` attribute and no ``javascript:`` URL: page behaviour lives
in ``static/js`` and takes its data from ``data-`` attributes; all styling is in
``static/css/app.css``. A route that sets its own, stricter policy (evidence downloads and
uploaded photos: ``default-src 'none'; sandbox``) keeps it.
"""

from __future__ import annotations

from flask import Flask, current_app, request
from werkzeug.wrappers import Response

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
#: A file someone uploaded: shown as an image or downloaded, never run as a page.
FILE_POLICY = "default-src 'none'; sandbox"

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def add_security_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure or current_app.config.get("HSTS_ALWAYS"):
        max_age = int(current_app.config.get("HSTS_MAX_AGE", 365 * 24 * 3600))
        response.headers.setdefault("Strict-Transport-Security", f"max-age={max_age}")
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
