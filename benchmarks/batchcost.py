"""`python -m benchmarks.batchcost`: PostgreSQL's CPU per claim of a v2 batch, on one coupon
and spread over many, decided all at once or coupon by coupon.

One connection calls, with batches of BATCH new users on a fresh database (no HTTP, no lock
to wait for), claim_coupons_many_v1 (the whole batch decided at once by claim_batch_v1) and
claim_each_coupon_apart_v1 (its fallback: one subtransaction and one call per coupon, as
every batch was decided before), each on a batch whose claims are all for one coupon (hot)
and on one whose claims are each for another of 1,000 coupons (spread). Its backend's CPU
time (user + system, from /proc) over the calls, divided by the claims, is what PostgreSQL
spends on one claim. The four runs alternate, ROUNDS times. Result: results/batchcost.json.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from benchmarks.ledger import make_coupons
from benchmarks.pgcost import backend_cpu
from benchmarks.run import write_results
from benchmarks.service import fresh_database

ROUNDS = 5
BATCH = 23  # claims per batch: what a spread-100 batch held in the service's runs
CLAIMS = 11_500  # per measurement
WARM_CALLS = 20  # plans are made on a connection's first calls
SPREAD_COUPONS = 1_000
FUNCTIONS = {
    "at once": "claim_coupons_many_v1",
    "coupon by coupon": "claim_each_coupon_apart_v1",
}


async def _cpu_per_claim(
    connection: asyncpg.Connection, function: str, coupons: list[UUID]
) -> float:
    """Backend CPU µs per claim over CLAIMS claims in batches of BATCH, all granted, the
    claims of a batch taking `coupons` in turn."""
    call = f"SELECT count(*) FILTER (WHERE outcome = 'granted') FROM {function}($1, $2, $3, $4, $5)"
    batches = []
    for n in range(WARM_CALLS + CLAIMS // BATCH):
        ids = [coupons[(n * BATCH + i) % len(coupons)] for i in range(BATCH)]
        users = [str(uuid4()) for _ in range(BATCH)]
        codes = [secrets.token_hex(6) for _ in range(BATCH)]
        batches.append((ids, users, codes, [None] * BATCH, [None] * BATCH))
    for arguments in batches[:WARM_CALLS]:
        await connection.fetchval(call, *arguments)
    before = backend_cpu(connection)
    for arguments in batches[WARM_CALLS:]:
        granted = await connection.fetchval(call, *arguments)
        assert granted == BATCH, f"{function}: {granted} of {BATCH} granted"
    return (backend_cpu(connection) - before) / (CLAIMS // BATCH * BATCH) * 1e6


async def _measure(url: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(url)
    runs = [(how, load) for load in ("hot", "spread") for how in FUNCTIONS]
    found: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
    try:
        for round_ in range(1, ROUNDS + 1):
            for how, load in runs[round_ % len(runs) :] + runs[: round_ % len(runs)]:
                count = 1 if load == "hot" else SPREAD_COUPONS
                coupons = await make_coupons(url, count, 10_000_000)
                us = await _cpu_per_claim(connection, FUNCTIONS[how], coupons)
                found[how, load].append(us)
                print(f"  round {round_}: {load:6} {how:16}: {us:6.1f} µs/claim", flush=True)
    finally:
        await connection.close()
    return [
        {"load": load, "decided": how, "function": FUNCTIONS[how],
         "us_cpu_per_claim": round(statistics.median(us), 1),
         "rounds_us": [round(x, 1) for x in us]}
        for (how, load), us in found.items()
    ]  # fmt: skip


def main() -> None:
    """Measure the four runs, alternated, ROUNDS times; write results/batchcost.json."""
    print(f"PostgreSQL backend CPU per v2 claim, batches of {BATCH}, one connection:", flush=True)
    with fresh_database() as url:
        runs = asyncio.run(_measure(url))
    for run in runs:
        print(f"  {run['load']:6} {run['decided']:16}: {run['us_cpu_per_claim']} µs/claim (median)")
    write_results("batchcost", {"batch": BATCH, "claims_per_measurement": CLAIMS, "rounds": ROUNDS,
                                "runs": runs})  # fmt: skip


if __name__ == "__main__":
    main()
