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
