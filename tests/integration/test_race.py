"""`couponapi race` on a small crowd: the naive strategy oversells, every safe one gives
exactly the quantity, the ledger agrees; --json rows and --chart, against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import CREDENTIALS_ENV, running_server

pytestmark = pytest.mark.concurrency

QUANTITY, USERS, CONCURRENCY = 20, 200, 100
ROW_KEYS = {"strategy", "quantity", "granted", "oversold", "ledger_rows", "claims_per_s", "p99_ms"}

# `couponapi race` and `loadtest` prove themselves with the test servers' credentials.
CLI_ENV = {**os.environ, **CREDENTIALS_ENV}


def test_race_shows_the_naive_oversell_and_the_safe_strategies_exact(
    database_url: str, tmp_path: Path
) -> None:
    chart = tmp_path / "race.png"
    with running_server(database_url, workers=2) as server:
        done = subprocess.run(
            [sys.executable, "-m", "couponapi", "race", "--url", server.base_url,
             "--database-url", database_url, "--quantity", str(QUANTITY), "--users", str(USERS),
             "--concurrency", str(CONCURRENCY), "--json", "--chart", str(chart)],
            capture_output=True, text=True, env=CLI_ENV, timeout=180, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {row["strategy"]: row for row in json.loads(done.stdout)}
    assert {"naive", "locking", "function"} <= set(rows)
    for row in rows.values():
        assert set(row) >= ROW_KEYS
        assert row["quantity"] == QUANTITY
    naive = rows.pop("naive")
    assert naive["granted"] > QUANTITY  # users were told they won coupons that never existed
    assert naive["oversold"] == naive["granted"] - QUANTITY
    assert naive["ledger_rows"] == naive["granted"]
    assert naive["verdict"].startswith("OVERSOLD")
    for name, row in rows.items():
        assert (row["granted"], row["oversold"], row["ledger_rows"]) == (QUANTITY, 0, QUANTITY), (
            name
        )
        assert row["verdict"].startswith("safe"), name
    assert "The race" in done.stderr  # the table goes to stderr when --json takes stdout
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_race_refuses_an_unknown_strategy(database_url: str) -> None:
    with running_server(database_url, workers=1) as server:
        done = subprocess.run(
            [sys.executable, "-m", "couponapi", "race", "--url", server.base_url,
             "--strategies", "naive,teleport"],
            capture_output=True, text=True, env=CLI_ENV, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 3
    assert "not served here: teleport" in done.stdout


def test_race_and_loadtest_fill_the_ledger_from_the_audit_with_only_the_admin_token(
    database_url: str, tmp_path: Path
) -> None:
    # Another directory, no database URL, no JWT secret: only the admin credential.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COUPONAPI_", "DATABASE"))}
    env["COUPONAPI_ADMIN_TOKEN"] = CREDENTIALS_ENV["COUPONAPI_ADMIN_TOKEN"]
    with running_server(database_url, workers=2) as server:
        raced = subprocess.run(
            [sys.executable, "-m", "couponapi", "race", "--url", server.base_url,
             "--strategies", "naive,atomic,v2-group-commit", "--quantity", str(QUANTITY),
             "--users", str(USERS), "--concurrency", str(CONCURRENCY), "--json"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180, check=False,
        )  # fmt: skip
        assert raced.returncode == 0, raced.stderr
        rows = {row["strategy"]: row for row in json.loads(raced.stdout)}
        loaded = subprocess.run(
            [sys.executable, "-m", "couponapi", "loadtest", rows["v2-group-commit"]["coupon_id"],
             "--url", server.base_url, "--route", "v2-function", "--users", "10", "--json"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
        )  # fmt: skip
    assert "ledger columns unknown" not in raced.stderr
    naive = rows.pop("naive")
    assert naive["ledger_rows"] == naive["granted"] > QUANTITY
    assert (naive["ledger_agrees"], naive["verdict"][:8]) == (False, "OVERSOLD")
    for name, row in rows.items():
        assert (row["granted"], row["ledger_rows"], row["ledger_agrees"]) == (
            QUANTITY, QUANTITY, True,
        ), name  # fmt: skip
    # The sold-out coupon, rushed again: nothing granted, the audit's books still balance.
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    result = json.loads(loaded.stdout)
    assert result["ledger"] == {
        "quantity_before": 0, "quantity_after": 0, "consumed": 0, "ledger_rows": 0,
        "users_over_limit": 0, "problems": [],
    }  # fmt: skip
