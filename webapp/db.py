"""One database session per request, from the engine the app was created with."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from escrow.db.engine import make_engine, session_factory


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["escrow_engine"] = engine
    app.extensions["escrow_sessions"] = session_factory(engine)
    app.teardown_appcontext(_close_session)


def engine() -> Engine:
    return current_app.extensions["escrow_engine"]


def session() -> Session:
    """The request's session; committed explicitly by the view, rolled back on teardown."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["escrow_sessions"]()
    return g.db_session


def _close_session(_exc: Any) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()
