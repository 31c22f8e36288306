"""The base form of every HTML form in the app.

Flask-WTF also fills forms from a JSON body, passing numbers, booleans, lists and objects
through to fields that expect text, where they raise instead of failing validation. Here a
JSON body is read the way a browser form would send it: scalar values as text; lists and
objects are refused with a 400, so every bad input ends with a message.
"""

from __future__ import annotations

import json
from typing import Any

from flask import abort, request
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from flask_wtf.form import _Auto, _is_submitted  # the sentinel and test FlaskForm itself uses
from werkzeug.datastructures import ImmutableMultiDict
from wtforms import BooleanField


class Form(FlaskForm):
    class Meta(FlaskForm.Meta):
        def wrap_formdata(self, form: Any, formdata: Any) -> Any:
            if (
                formdata is _Auto
                and _is_submitted()
                and request.is_json
                and not request.form
                and not request.files
            ):
                return json_as_form(request.get_json(silent=True), form)
            return super().wrap_formdata(form, formdata)


def json_as_form(payload: Any, form: Any = None) -> ImmutableMultiDict[str, str]:
    """A JSON object of scalars as form fields; anything else is refused with a 400.

    ``true``/``false`` are accepted only for check boxes (BooleanField)."""
    if not isinstance(payload, dict):
        abort(400, _("Send the form's fields as a JSON object of text values."))
    fields = getattr(form, "_fields", {}) or {}
    items: list[tuple[str, str]] = []
    for key, value in payload.items():
        if isinstance(value, bool):
            if not isinstance(fields.get(key), BooleanField):
                abort(
                    400,
                    _(
                        "The field %(name)s must be text, not true or false.",
                        name=repr(str(key)[:40]),
                    ),
                )
            items.append((str(key), "y" if value else ""))
        elif isinstance(value, str):
            items.append((str(key), value))
        elif isinstance(value, int | float):
            items.append((str(key), json.dumps(value)))  # 1e309 arrives as inf: not a number
        elif value is not None:
            abort(
                400,
                _(
                    "The field %(name)s must be text, not a list or an object.",
                    name=repr(str(key)[:40]),
                ),
            )
    return ImmutableMultiDict(items)
