"""What holds that expire cost: the hot claim with a hold beside one without, and the sweeper.

`python -m benchmarks.holds [--seconds S] [--rounds N] [--rows N]`, or the `holds` section of
`benchmarks.run`. Three figures:

1. The v2 hot claim (HOT_100, the default strategy, a user token per request) on a coupon
   with `hold_seconds` (an hour, so nothing expires during the run) beside the same claim on
   a coupon without, in turn, HOLD_ROUNDS times, each on a fresh coupon: the ratio of their
   medians (goal: >= 0.9x). The hold adds the due-hold probe under the coupon lock, the
   expires_at column and the claim_hold_idx entry of every claim.
2. The sweeper alone: a coupon with `--rows` (a million) due holds, swept in this process by
   couponapi.services.holds.sweep_once until none is left: rows/s, ledger rows included.
3. The hot claim while the sweepers run: the same million due holds on the claimed coupon
   itself, with the server's own sweepers (one per worker) expiring them during the wrk run;
   claims/s, and the rows/s the sweepers expired meanwhile. After each, the coupon's audit
   must balance (a broken book is a failure, not a figure).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from benchmarks import identity
from benchmarks.scenarios import HOT_100, HOT_QUANTITY, V2_GROUP_COMMIT, Scenario, Target
from benchmarks.wrk import Load, run_wrk
from couponapi.services.audit import audit
from couponapi.services.holds import sweep_once

HOLD_S = 3_600
HOLD_ROUNDS = 3
SWEEP_ROWS = 1_000_000
SCENARIO: Scenario = HOT_100
WAYS: dict[str, int | None] = {"no hold": None, f"hold {HOLD_S} s": HOLD_S}

Measure = Callable[..., dict[str, Any]]  # benchmarks.run.measure


def target(way: str) -> Target:
    """The hot v2 claim, named for the way its coupon holds."""
    base = V2_GROUP_COMMIT
    return Target(f"v2 {base.strategy}, {way}", "v2", base.strategy, base.path, base.kind)


def side_by_side(
    url: str, base: str, seconds: float, measure: Measure, rounds: int = HOLD_ROUNDS
) -> list[dict[str, Any]]:
    """The hot claim without and with a hold, in turn, `rounds` times (records of measure)."""
    records = []
    for round_ in range(1, rounds + 1):
        for way, hold in WAYS.items():
            record = measure(url, base, target(way), SCENARIO, seconds, hold_seconds=hold)
            records.append({"round": round_, "way": way, "hold_seconds": hold, **record})
    return records


def ratio(records: list[dict[str, Any]]) -> float:
    """The held claim's median ok/s as a fraction of the one without a hold."""
    medians = {
        way: statistics.median(r["ok_per_s"] for r in records if r["way"] == way) for way in WAYS
    }
    base = medians["no hold"]
    return round(medians[f"hold {HOLD_S} s"] / base, 3) if base else 0.0


async def make_due_holds(url: str, rows: int, quantity: int = 0) -> UUID:
    """A coupon with `rows` holds that ended a minute ago (claims and their grant rows, made
    in SQL), and `quantity` more left to claim."""
    coupon_id = uuid4()
    # A direct connection of the benchmark's own: no statement timeout for the bulk insert.
    connection = await asyncpg.connect(
        url, command_timeout=3_600, server_settings={"statement_timeout": "0"}
    )
    try:
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO coupon (id, name, type, quantity, total_quantity, hold_seconds)"
                " VALUES ($1, 'bench-holds', 'percent', $2, $3, 60)",
                coupon_id, quantity, quantity + rows,
            )  # fmt: skip
            await connection.execute(
                """WITH made AS (
                     INSERT INTO claim (id, coupon_id, user_id, code, claimed_at, expires_at)
                     SELECT gen_random_uuid(), $1::uuid, 'due-' || n, 'DUE' || $1::text || n,
                            now() - interval '2 minutes', now() - interval '1 minute'
                       FROM generate_series(1, $2::integer) AS n
                     RETURNING id, user_id)
                   INSERT INTO claim_event (claim_id, coupon_id, user_id, kind, occurred_at)
                   SELECT id, $1::uuid, user_id, 'granted', now() - interval '2 minutes'
                     FROM made""",
                coupon_id, rows,
            )  # fmt: skip
        await connection.execute("VACUUM ANALYZE claim")
    finally:
        await connection.close()
    return coupon_id


async def _books(url: str, coupon_id: UUID) -> dict[str, Any]:
    async with asyncpg.create_pool(
        url, min_size=1, max_size=1, command_timeout=600, server_settings={"statement_timeout": "0"}
    ) as pool:
        books = await audit(pool, coupon_id)
    if books.problems:
        raise SystemExit(f"the books of {coupon_id} do not balance: {books.problems}")
    return {"expired": books.expired, "pending": books.expired_pending, "claims": books.claims}


async def sweep_alone(url: str, rows: int = SWEEP_ROWS) -> dict[str, Any]:
    """Sweep a coupon of `rows` due holds in this process, one batch after another."""
    coupon_id = await make_due_holds(url, rows)
    async with asyncpg.create_pool(url, min_size=1, max_size=2, command_timeout=600) as pool:
        started = time.monotonic()
        expired = 0
        while swept := await sweep_once(pool, budget_s=60.0):
            expired += swept
        elapsed = time.monotonic() - started
    books = await _books(url, coupon_id)
    if books["pending"]:
        raise SystemExit(f"the sweep left {books['pending']} due holds unmarked")
    return {"rows": expired, "seconds": round(elapsed, 2), "rows_per_s": round(expired / elapsed)}


def claims_while_sweeping(
    url: str, base: str, seconds: float, rows: int = SWEEP_ROWS
) -> dict[str, Any]:
    """wrk's hot claim on a coupon with `rows` due holds while the server's sweepers expire
    them: claims/s, and the rows/s expired during the run."""
    coupon_id = asyncio.run(make_due_holds(url, rows, HOT_QUANTITY))
    tokens = identity.hs256_tokens(identity.credentials_folder() / "holds.txt", seconds)
    before = asyncio.run(_books(url, coupon_id))
    tag = f"holds-sweep-{time.monotonic_ns()}"
    load = Load(base, V2_GROUP_COMMIT.path, "v2token", [coupon_id], SCENARIO.connections,
                seconds, tag, tokens)  # fmt: skip
    figures = run_wrk(load)
    after = asyncio.run(_books(url, coupon_id))
    swept = (after["expired"] - after["pending"]) - (before["expired"] - before["pending"])
    return {
        "due_holds": rows, "ok_per_s": figures["ok_per_s"], "p99_ms": figures["p99_ms"],
        "errors_5xx": figures["errors_5xx"], "swept_during_run": swept,
        "swept_rows_per_s": round(swept / figures["seconds"]) if figures["seconds"] else 0,
    }  # fmt: skip


def main() -> None:
    """Run the three measurements on a fresh database; write results/holds.json."""
    from benchmarks.run import WORKERS, measure, write_results
    from benchmarks.service import fresh_database, running_service

    parser = argparse.ArgumentParser(prog="python -m benchmarks.holds", description=__doc__)
    parser.add_argument("--seconds", type=float, default=SCENARIO.seconds_full)
    parser.add_argument("--rounds", type=int, default=HOLD_ROUNDS)
    parser.add_argument("--rows", type=int, default=SWEEP_ROWS, help="due holds to sweep")
    parser.add_argument("--server", default="granian")
    args = parser.parse_args()
    with fresh_database() as url:
        with running_service(url, args.server, WORKERS) as base:
            records = side_by_side(url, base, args.seconds, measure, args.rounds)
        print(f"hot claim with a hold: {ratio(records):.3f}x the one without", flush=True)
        alone = asyncio.run(sweep_alone(url, args.rows))
        print(f"sweeper alone: {alone}", flush=True)
        with running_service(url, args.server, WORKERS) as base:
            during = claims_while_sweeping(url, base, args.seconds, args.rows)
        print(f"hot claim while sweeping: {during}", flush=True)
    write_results(
        "holds",
        {"scenario": SCENARIO.name, "workers": WORKERS, "seconds": args.seconds,
         "ratio": ratio(records), "claims": records, "sweep_alone": alone,
         "claims_while_sweeping": during},
    )  # fmt: skip


if __name__ == "__main__":
    main()
