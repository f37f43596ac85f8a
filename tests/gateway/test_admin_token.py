"""No installation ships a usable admin token: a placeholder or short token is a config error
naming the key; without one the gateway generates a private token once and reuses it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agola.config import ConfigError, parse_config
from agola.services.gateway.admintoken import admin_token


def _gateway_config(tmp_path: Path, token: str | None) -> str:
    text = f"dataDir: {tmp_path / 'data'}\n"
    if token is not None:
        text += f"gateway:\n  adminToken: {token}\n"
    return text


@pytest.mark.parametrize("token", ["change-me-admin-token", "CHANGE-ME-please-0123456789abcdefghijkl",
                                   "replace-with-the-admin-token"])
def test_a_placeholder_is_refused_naming_the_key(tmp_path: Path, token: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_gateway_config(tmp_path, token)).validate({"gateway"})
    assert any(p.startswith("gateway.adminToken: a placeholder") for p in err.value.problems)
    assert token not in str(err.value)


def test_a_short_token_is_refused_without_quoting_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_gateway_config(tmp_path, "s3cr3t-but-short")).validate({"gateway"})
    assert "gateway.adminToken: too short (16 characters, at least 32" in str(err.value)
    assert "s3cr3t-but-short" not in str(err.value)


def test_a_long_random_token_is_used_as_is(tmp_path: Path) -> None:
    token = "x" * 40
    cfg = parse_config(_gateway_config(tmp_path, token))
    cfg.validate({"gateway"})
    assert admin_token(cfg.gateway) == token
    assert not (tmp_path / "data" / "gateway" / "admin-token").exists()


def test_without_a_token_one_is_generated_private_and_reused(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = parse_config(_gateway_config(tmp_path, None))
    cfg.validate({"gateway"})
    with caplog.at_level(logging.INFO, logger="agola"):
        first = admin_token(cfg.gateway)
    path = tmp_path / "data" / "gateway" / "admin-token"
    assert len(first) >= 32 and path.read_text().strip() == first
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert str(path) in caplog.text and first not in caplog.text

    assert admin_token(cfg.gateway) == first  # a restart keeps it


def test_the_shipped_config_holds_no_token() -> None:
    root = Path(__file__).resolve().parents[2]
    cfg = parse_config((root / "config.yml").read_text())
    assert cfg.gateway.admin_token == ""
