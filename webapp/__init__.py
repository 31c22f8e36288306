"""The market web app: ``create_app()`` is the factory gunicorn and the tests call."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from webapp import config


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Defaults, then the environment, then ``test_config``; extensions; blueprints."""
    app = Flask(__name__)
    app.config.from_mapping(config.from_environment())
    if test_config:
        app.config.update(test_config)
    from webapp import production

    # A real site (ESCROW_ENV=production) refuses unsafe or missing settings before anything
    # starts; test_config counts as set (a test can check the rule itself).
    production.check(app.config, os.environ)
    proxies = int(app.config.get("PROXY_COUNT") or 0)
    if proxies:
        # The client's address and scheme as the proxies in front saw them, believed for
        # exactly that many hops; the Host header is not taken from X-Forwarded-Host.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]

    from webapp import chain, db, errors, i18n, security_headers
    from webapp.extensions import csrf, fragments, limiter
    from webapp.ratelimit_storage import storage_uri  # also registers the db+ schemes

    if not app.config.get("RATELIMIT_STORAGE_URI"):
        # Rate-limit counts shared by every worker, in the database the app already uses.
        app.config["RATELIMIT_STORAGE_URI"] = storage_uri(app.config["DATABASE_URL"])

    db.init_app(app)
    i18n.init_app(app)
    chain.init_app(app)
    csrf.init_app(app)
    fragments.init_app(app)
    limiter.init_app(app)
    errors.init_app(app)
    security_headers.init_app(app)

    from webapp import (
        arbitration,
        auth,
        disputes,
        health,
        languages,
        listings,
        messages,
        notifications,
        profiles,
        trades,
        tx,
    )

    for module in (
        auth,
        listings,
        trades,
        disputes,
        arbitration,
        profiles,
        health,
        tx,
        languages,
        messages,
        notifications,
    ):
        app.register_blueprint(module.bp)

    from webapp.views import register_template_helpers

    register_template_helpers(app)
    return app
