"""`python -m benchmarks.pgcost`: where PostgreSQL's CPU goes in a v2 claim batch.

One connection calls claim_coupons_v1 with batches of new users on a fresh database: no HTTP,
no lock to wait for, so its backend's CPU time (user + system, from /proc) over the calls,
divided by the claims, is what PostgreSQL spends on one claim. Measured for batches of 1, 25,
50 and 100 (a call's own cost shows in the batch of 1), and at 50 for two cut-down copies of
the function, loaded under other names: without the ledger (claim_event) INSERT, and without
both INSERTs (deciding the batch only); the differences are what each INSERT costs, its
indexes and foreign-key check included. Everything runs in turn, ROUNDS times. The copies
are benchmark-only: they write no ledger, so the service never calls them.
Result: results/pgcost.json.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from benchmarks.cpu import cpu_seconds
from benchmarks.ledger import make_coupons
from benchmarks.run import write_results
from benchmarks.service import fresh_database

ROUNDS = 3
CLAIMS = 20_000  # per measurement: ~1 s of a backend's CPU, 100 clock ticks
WARM_CALLS = 20  # plans are made on a connection's first calls
SIZES = (1, 25, 50, 100)
VARIANT_SIZE = 50
CLAIM_INSERT = "        INSERT INTO claim (id, coupon_id, user_id, code, status, claimed_at)"
LEDGER_INSERT = "        INSERT INTO claim_event (claim_id, coupon_id, user_id, kind, occurred_at)"
QUANTITY_UPDATE = "        UPDATE coupon SET quantity = quantity - v_granted"


def _without(definition: str, start: str, end: str) -> str:
    """`definition` with the statement from `start` up to `end` cut out (both must be there:
    a change to the function fails this benchmark loudly instead of measuring the wrong thing)."""
    if start not in definition or end not in definition:
        raise SystemExit(f"claim_coupons_v1 changed: {start.strip()!r} or {end.strip()!r} gone")
    return definition[: definition.index(start)] + definition[definition.index(end) :]


async def _load_variants(connection: asyncpg.Connection) -> dict[str, str]:
    """Function name by variant; the cut-down copies are created next to the real one."""
    definition: str = await connection.fetchval(
        "SELECT pg_get_functiondef('claim_coupons_v1'::regproc)"
    )
    no_ledger = _without(definition, LEDGER_INSERT, QUANTITY_UPDATE)
    deciding = _without(no_ledger, CLAIM_INSERT, QUANTITY_UPDATE)
    names = {"whole function": "claim_coupons_v1"}
    for variant, name, text in (
        ("without the ledger INSERT", "bench_claim_without_ledger", no_ledger),
        ("without both INSERTs (deciding only)", "bench_claim_deciding_only", deciding),
    ):
        await connection.execute(text.replace("claim_coupons_v1(", f"{name}(", 1))
        names[variant] = name
    return names


async def _cpu_per_claim(
    connection: asyncpg.Connection, function: str, coupon: UUID, size: int
) -> float:
    """Backend CPU µs per claim over CLAIMS claims in batches of `size`, all granted."""
    call = f"SELECT count(*) FROM {function}($1, $2, $3, $4, $5)"
    calls = WARM_CALLS + CLAIMS // size
    batches = [
        (coupon, [str(uuid4()) for _ in range(size)], [secrets.token_hex(6) for _ in range(size)],
         [None] * size, [None] * size)
        for _ in range(calls)
    ]  # fmt: skip
    for arguments in batches[:WARM_CALLS]:
        await connection.fetchval(call, *arguments)
    before = backend_cpu(connection)
    for arguments in batches[WARM_CALLS:]:
        await connection.fetchval(call, *arguments)
    return (backend_cpu(connection) - before) / (CLAIMS // size * size) * 1e6


def backend_cpu(connection: asyncpg.Connection) -> float:
    """CPU seconds so far of the connection's backend (PostgreSQL runs on this machine)."""
    return cpu_seconds(Path(f"/proc/{connection.get_server_pid()}/stat").read_text())


async def _measure(url: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(url)
    try:
        names = await _load_variants(connection)
        runs = [("whole function", size) for size in SIZES]
        runs += [(variant, VARIANT_SIZE) for variant in names if variant != "whole function"]
        found: dict[tuple[str, int], list[float]] = {run: [] for run in runs}
        for round_ in range(1, ROUNDS + 1):
            for variant, size in runs:
                coupon = (await make_coupons(url, 1, 100_000_000))[0]
                us = await _cpu_per_claim(connection, names[variant], coupon, size)
                found[variant, size].append(us)
                print(f"  round {round_}: {variant:38} batch {size:>3}: {us:6.1f} µs/claim",
                      flush=True)  # fmt: skip
    finally:
        await connection.close()
    return [
        {"variant": variant, "batch": size, "us_cpu_per_claim": round(statistics.median(us), 1),
         "rounds_us": [round(x, 1) for x in us]}
        for (variant, size), us in found.items()
    ]  # fmt: skip


def main() -> None:
    """Measure every run in turn, ROUNDS times; write results/pgcost.json."""
    print("PostgreSQL backend CPU per v2 claim, one connection:", flush=True)
    with fresh_database() as url:
        runs = asyncio.run(_measure(url))
    write_results("pgcost", {"claims_per_measurement": CLAIMS, "rounds": ROUNDS, "runs": runs})


if __name__ == "__main__":
    main()
