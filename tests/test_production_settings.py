"""Production mode (ESCROW_ENV=production) refuses to start with unsafe or missing settings,
and every setting the code reads is documented in docs/configuration.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from webapp import create_app
from webapp.production import UnsafeSettings

ROOT = Path(__file__).resolve().parents[1]
SAFE = {
    "ESCROW_ENV": "production",
    "ESCROW_SECRET_KEY": "9f" * 32,
    "ESCROW_SITE_URL": "https://market.example.kz",
    "ESCROW_RPC_URL": "https://rpc.example.kz",
    "ESCROW_TENGE_PER_ETH": "1480000",
    "ESCROW_TENGE_PER_USD": "505.5",
    "ESCROW_TENGE_RATE_DATE": "2026-11-30",
    "ESCROW_PROXY_COUNT": "1",
}


@pytest.fixture
def production_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    for name in ("ESCROW_DEV_WALLET", "ESCROW_INSECURE_COOKIES", "ESCROW_RATELIMIT_STORAGE"):
        monkeypatch.delenv(name, raising=False)
    env = {
        **SAFE,
        "ESCROW_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'market.sqlite3'}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_safe_production_settings_start(production_env: dict[str, str]) -> None:
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["DEV_WALLET"] is False
    app.extensions["escrow_engine"].dispose()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"ESCROW_SECRET_KEY": None}, "ESCROW_SECRET_KEY is not set"),
        ({"ESCROW_SECRET_KEY": "short"}, "ESCROW_SECRET_KEY is too weak"),
        ({"ESCROW_SECRET_KEY": "test-secret-key"}, "ESCROW_SECRET_KEY is too weak"),
        ({"ESCROW_DEV_WALLET": "1"}, "ESCROW_DEV_WALLET=1"),
        ({"ESCROW_INSECURE_COOKIES": "1"}, "ESCROW_INSECURE_COOKIES=1"),
        ({"ESCROW_SITE_URL": "http://market.example.kz"}, "served over https"),
        ({"ESCROW_SITE_URL": "https://127.0.0.1:5000"}, "names this computer"),
        ({"ESCROW_SITE_URL": None}, "ESCROW_SITE_URL is not set"),
        ({"ESCROW_RPC_URL": None}, "ESCROW_RPC_URL is not set"),
        ({"DATABASE_URL": None}, "DATABASE_URL is not set"),
        ({"ESCROW_RATELIMIT_STORAGE": "memory://"}, "each worker would count on its own"),
        ({"ESCROW_TENGE_PER_ETH": None}, "ESCROW_TENGE_PER_ETH is not set"),
        ({"ESCROW_TENGE_RATE_DATE": None}, "ESCROW_TENGE_RATE_DATE is not set"),
    ],
)
def test_each_unsafe_setting_is_refused_by_name(
    production_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, str | None],
    expected: str,
) -> None:
    for name, value in change.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(UnsafeSettings) as info:
        create_app()
    assert any(expected in problem for problem in info.value.problems), info.value.problems
    assert len(info.value.problems) == 1, "only the changed setting is reported"


def test_every_problem_is_listed_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A bare production start names everything to fix in one message, not one per attempt."""
    for name in [*SAFE, "DATABASE_URL", "ESCROW_DEV_WALLET", "ESCROW_INSECURE_COOKIES"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ESCROW_ENV", "production")
    monkeypatch.setenv("ESCROW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ESCROW_DEV_WALLET", "1")
    monkeypatch.setenv("ESCROW_INSECURE_COOKIES", "1")
    with pytest.raises(UnsafeSettings) as info:
        create_app()
    assert len(info.value.problems) >= 9
    assert "docs/configuration.md" in str(info.value)


def test_outside_production_the_local_defaults_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ESCROW_ENV", raising=False)
    monkeypatch.delenv("ESCROW_SECRET_KEY", raising=False)
    monkeypatch.setenv("ESCROW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    app = create_app()
    assert len(app.config["SECRET_KEY"]) == 64
    app.extensions["escrow_engine"].dispose()


def _settings_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for folder in ("escrow", "webapp", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            names |= set(re.findall(r"\b(ESCROW_[A-Z][A-Z0-9_]+)\b", text))
            if re.search(r"environ\.get\(\s*\"DATABASE_URL\"", text):
                names.add("DATABASE_URL")
    from webapp.config import QUOTAS

    # Quotas are read as "ESCROW_" + the setting's name.
    names |= {"ESCROW_" + n for n in QUOTAS}
    return names


def test_every_setting_the_code_reads_is_documented() -> None:
    documented = set(
        re.findall(
            r"^\| `([A-Z][A-Z0-9_]+)` \|", (ROOT / "docs/configuration.md").read_text(), re.M
        )
    )
    missing = _settings_read_by_the_code() - documented
    assert not missing, f"add to docs/configuration.md: {sorted(missing)}"
