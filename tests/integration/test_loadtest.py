"""`couponapi loadtest`: its counting, its invariant checks (an oversold coupon is reported as
broken) and its errors, against a real server process and the real database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import pytest

from couponapi.loadtest import ledger
from couponapi.loadtest.crowd import Tally
from couponapi.loadtest.model import Outcome, Summary, classify, percentile
from couponapi.loadtest.run import Options, loadtest
from couponapi.loadtest.targets import BY_NAME
from tests.support import CREDENTIALS_ENV, free_port, running_server

pytestmark = pytest.mark.concurrency

# `couponapi race` and `loadtest` prove themselves with the test servers' credentials.
CLI_ENV = {**os.environ, **CREDENTIALS_ENV}


class Served:
    """A server process on its own database, shared by this module's tests."""

    def __init__(self, base_url: str, database_url: str) -> None:
        self.base_url = base_url
        self.database_url = database_url

    def coupon(self, quantity: int) -> UUID:
        """A new coupon with `quantity` left, inserted straight into the database."""
        coupon_id = uuid4()

        async def insert() -> None:
            connection = await asyncpg.connect(self.database_url)
            try:
                await connection.execute(
                    "INSERT INTO coupon (id, name, type, quantity) VALUES ($1, 'lt', 'x', $2)",
                    coupon_id,
                    quantity,
                )
            finally:
                await connection.close()

        asyncio.run(insert())
        return coupon_id

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`couponapi loadtest ...` against this server and database."""
        return subprocess.run(
            [sys.executable, "-m", "couponapi", "loadtest", *args, "--url", self.base_url,
             "--database-url", self.database_url],
            capture_output=True, text=True, env=CLI_ENV, timeout=120, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def served(module_database_url: str) -> Iterator[Served]:
    """One 2-worker server for the module, on a fresh copy of the migrated template."""
    with running_server(module_database_url, workers=2) as server:
        yield Served(server.base_url, module_database_url)


def test_statuses_are_counted_as_outcomes() -> None:
    assert [classify(s) for s in (200, 201, 409, 403, 422, 404, 500, 503)] == [
        Outcome.GRANTED, Outcome.GRANTED, Outcome.SOLD_OUT, Outcome.REFUSED,
        Outcome.REFUSED, Outcome.REFUSED, Outcome.ERROR, Outcome.ERROR,
    ]  # fmt: skip


def test_summary_counts_and_nearest_rank_percentiles() -> None:
    latencies = [n / 1000 for n in range(1, 101)]  # 1 ms .. 100 ms
    counts = {Outcome.GRANTED: 60, Outcome.SOLD_OUT: 30, Outcome.TIMEOUT: 6, Outcome.ERROR: 4}
    summary = Summary.of(counts, latencies, elapsed=2.0)
    assert (summary.requests, summary.granted, summary.sold_out) == (100, 60, 30)
    assert (summary.refused, summary.errors, summary.timeouts) == (0, 4, 6)
    assert summary.claims_per_s == 50.0
    assert (summary.p50_ms, summary.p90_ms, summary.p99_ms, summary.max_ms) == (50, 90, 99, 100)
    assert percentile([], 0.99) == 0.0


async def test_a_safe_run_is_counted_exactly_and_passes_every_check(served: Served) -> None:
    coupon_id = await asyncio.to_thread(served.coupon, 100)
    options = Options(
        base_url=served.base_url,
        target=BY_NAME["locking"],
        coupon_id=coupon_id,
        users=300,
        concurrency=50,
        database_url=served.database_url,
    )
    tally = Tally(planned=300)
    result = await loadtest(options, tally)
    s = result.summary
    assert (s.requests, s.granted, s.sold_out, s.refused, s.errors, s.timeouts) == (
        300, 100, 200, 0, 0, 0,
    )  # fmt: skip
    assert tally.done == 300
    assert result.ledger is not None
    check = result.ledger
    assert (check.quantity_before, check.quantity_after, check.consumed) == (100, 0, 100)
    assert (check.ledger_rows, check.users_over_limit) == (100, 0)
    assert result.problems == []


async def test_a_ledger_row_nobody_was_given_is_reported_as_an_oversell(
    served: Served,
) -> None:
    coupon_id = await asyncio.to_thread(served.coupon, 10)
    options = Options(
        base_url=served.base_url,
        target=BY_NAME["function"],
        coupon_id=coupon_id,
        users=10,
        concurrency=5,
    )
    result = await loadtest(options)  # no database: only the client's view
    assert result.ledger is None
    assert result.summary.granted == 10
    # Forge what an oversell leaves behind: one more grant row, and a user granted twice.
    connection = await asyncpg.connect(served.database_url)
    try:
        prefix = await connection.fetchval(
            "SELECT split_part(userid, '-', 1) || '-' || split_part(userid, '-', 2) || '-'"
            " FROM coupon_given_events WHERE couponid = $1::uuid::text LIMIT 1",
            coupon_id,
        )
        twice = f"{prefix}3"
        await connection.execute(
            "INSERT INTO coupon_given_events (couponid, userid, newquantity)"
            " VALUES ($1::uuid::text, $2, 0)",
            coupon_id,
            twice,
        )
        check = await ledger.check(connection, coupon_id, prefix, 10, result.summary)
    finally:
        await connection.close()
    assert (check.consumed, check.ledger_rows, check.users_over_limit) == (10, 11, 1)
    assert check.problems == [
        "oversold: the ledger holds 11 grants but the quantity went down by only 10 "
        "(1 coupons given that never existed)",
        "1 ledger rows were never acknowledged to any user",
        "1 users hold more than 1 coupon(s)",
    ]


def test_the_naive_route_under_a_crowd_is_reported_broken(served: Served, tmp_path: Path) -> None:
    coupon_id = served.coupon(20)
    out = tmp_path / "result.json"
    done = served.cli(str(coupon_id), "--route", "naive", "--users", "300",
                      "--concurrency", "100", "--json", str(out))  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BROKEN" in done.stdout
    assert "Traceback" not in done.stderr
    result = json.loads(out.read_text())
    assert result["route"] == "naive"
    assert result["summary"]["requests"] == 300
    assert result["summary"]["granted"] > 20  # users were told they won more than existed
    check = result["ledger"]
    assert check["ledger_rows"] == result["summary"]["granted"]
    assert check["ledger_rows"] > check["consumed"]
    assert any(p.startswith("oversold") for p in result["problems"])


def test_json_to_stdout_is_the_whole_result(served: Served) -> None:
    coupon_id = served.coupon(5)
    done = served.cli(str(coupon_id), "--route", "atomic", "--users", "20", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["summary"]["granted"] == 5
    assert result["summary"]["sold_out"] == 15
    assert result["ledger"]["ledger_rows"] == 5
    assert result["problems"] == []


@pytest.mark.parametrize("route", ["v2-function", "v2-group-commit"])
def test_v2_claims_are_checked_against_the_v2_ledger(served: Served, route: str) -> None:
    coupon_id = served.coupon(5)
    done = served.cli(str(coupon_id), "--route", route, "--users", "40", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["summary"]["granted"], result["summary"]["sold_out"]) == (5, 35)
    assert result["ledger"]["consumed"] == result["ledger"]["ledger_rows"] == 5
    assert result["problems"] == []


def test_unknown_coupon_is_a_clear_error(served: Served) -> None:
    missing = uuid4()
    done = served.cli(str(missing), "--users", "5")
    assert done.returncode == 3
    assert f"the server has no coupon {missing}" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_unreachable_server_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "couponapi", "loadtest", str(uuid4()), "--url", url],
        capture_output=True, text=True, env=CLI_ENV, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 3
    assert f"cannot reach the server at {url}" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "args", [["not-a-uuid"], [str(uuid4()), "--users", "0"], [str(uuid4()), "--route", "nope"]]
)
def test_bad_arguments_exit_2(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "couponapi", "loadtest", *args],
        capture_output=True, text=True, env=CLI_ENV, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
