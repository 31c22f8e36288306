"""The language switch and the JavaScript message catalogues (see :mod:`webapp.i18n`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, redirect, request, session
from flask_babel import force_locale

from webapp.i18n import LANGUAGES, SESSION_KEY, js_catalogue
from webapp.urls import safe_next

bp = Blueprint("languages", __name__)


@bp.get("/i18n/<lang>.js")
def catalogue(lang: str) -> Response:
    if lang not in LANGUAGES:
        abort(404)
    with force_locale(LANGUAGES[lang][0]):
        body = js_catalogue(lang)
    response = Response(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.post("/lang")
def choose() -> Any:
    """The switch in the header: keeps the choice in the session and the user's profile."""
    lang = request.form.get("lang", "")
    if lang not in LANGUAGES:
        abort(400)
    session[SESSION_KEY] = lang
    from webapp import db
    from webapp.auth import current_user

    user = current_user()
    if user is not None:
        user.locale = lang
        db.session().commit()
    return redirect(safe_next(request.form.get("next"), "/"))
