"""Template helpers that replace costlier Jinja/Flask calls on long pages: ``link`` (url_for
built once per request and endpoint) and ``party`` (a person's linked name)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, render_template_string, url_for

from escrow.db.models import User
from web_fixtures import app_settings
from webapp import create_app, db
from webapp.views import link, party

ADDRESS = "0x" + "ab" * 20


@pytest.fixture
def app(web_db_url: str, tmp_path: Path) -> Iterator[Flask]:
    made = create_app(app_settings(web_db_url, tmp_path))
    yield made
    made.extensions["escrow_engine"].dispose()


@pytest.mark.parametrize("root", ["", "/market"])
def test_link_builds_what_url_for_builds(app: Flask, root: str) -> None:
    cases = [
        ("arbitration.case", {"trade_pk": 12}),
        ("arbitration.case", {"trade_pk": 987654}),
        ("trades.show", {"trade_pk": 1}),
        ("profiles.profile", {"address": ADDRESS}),
        ("profiles.profile", {"address": ADDRESS.upper().replace("0X", "0x")}),
        # Not a number or an address: url_for itself, which quotes it.
        ("profiles.profile", {"address": "a b/c?d"}),
        ("profiles.profile", {"address": ""}),
        ("listings.index", {}),
        ("profiles.arbitrators", {}),
        # An argument that is not in the path goes to the query string, where url_for encodes.
        ("arbitration.index", {"page": 2}),
        ("auth.signin", {"next": "/listings/5"}),
        ("static", {"filename": "css/app.css"}),
        ("static", {"filename": "js/wallet.js"}),
        ("static", {"filename": "we ird/ü.css"}),
        ("listings.upload", {"name": "ab12.webp"}),
        ("trades.show", {"trade_pk": 3, "_anchor": "timeline"}),
    ]
    with app.test_request_context("/", base_url=f"http://localhost{root}"):
        for endpoint, values in cases * 2:  # the second time from the request's shapes
            assert link(endpoint, **values) == url_for(endpoint, **values), (endpoint, values)
        assert link("arbitration.case", trade_pk=5).startswith(f"{root}/arbitration/")
    # Built once per worker and site root: another root gets its own links.
    with app.test_request_context("/", base_url="http://localhost/other"):
        assert link("static", filename="css/app.css") == "/other/static/css/app.css"


def test_party_links_the_chosen_name_and_escapes_it(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        session.add(User(address=ADDRESS, display_name='<b>Ann & "Bo"</b>'))
        session.commit()
    with app.test_request_context("/"):
        html = str(party(ADDRESS, "buyer"))
        assert html == (
            f'<a class="party" href="/u/{ADDRESS}" title="{ADDRESS}">'
            "&lt;b&gt;Ann &amp; &#34;Bo&#34;&lt;/b&gt;</a>"
            ' <span class="party-role">(buyer)</span>'
        )
        assert str(party(None)) == "—"
        other = "0x" + "cd" * 20
        assert str(party(other)) == (
            f'<a class="party" href="/u/{other}" title="{other}">0xcdcd…cdcd</a>'
        )
        # Templates import it from the shared macros file, as before.
        page = render_template_string(
            '{% from "_macros.html" import party %}{{ party(a, "seller") }}', a=other
        )
        assert page.endswith('<span class="party-role">(seller)</span>')
