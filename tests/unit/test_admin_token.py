"""The admin token `serve` makes when none is configured: made once, kept 0600, printed once."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from couponapi import cli
from couponapi.admin_token import kept_or_new_token, token_file
from couponapi.config import Settings


@pytest.fixture
def no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No COUPONAPI_ADMIN_TOKEN now, and whatever serve puts there is undone afterwards."""
    monkeypatch.setenv("COUPONAPI_ADMIN_TOKEN", "placeholder")
    monkeypatch.delenv("COUPONAPI_ADMIN_TOKEN")


def test_made_once_then_kept(tmp_path: Path) -> None:
    token, made = kept_or_new_token(tmp_path / "data")
    assert made
    assert len(token) >= 40
    path = token_file(tmp_path / "data")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert kept_or_new_token(tmp_path / "data") == (token, False)


@pytest.mark.usefixtures("no_token_in_env")
def test_serve_prints_it_only_when_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=tmp_path, admin_token=None)
    cli._admin_token(settings)
    token = os.environ["COUPONAPI_ADMIN_TOKEN"]
    assert token in capsys.readouterr().out
    cli._admin_token(settings)
    assert token not in capsys.readouterr().out
    assert os.environ["COUPONAPI_ADMIN_TOKEN"] == token


@pytest.mark.usefixtures("no_token_in_env")
def test_a_configured_token_is_used_as_is(tmp_path: Path) -> None:
    cli._admin_token(Settings(data_dir=tmp_path, admin_token=SecretStr("given")))
    assert "COUPONAPI_ADMIN_TOKEN" not in os.environ
    assert not token_file(tmp_path).exists()
