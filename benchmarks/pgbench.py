"""PostgreSQL's own ceiling on this machine: pgbench running the service's claim SQL directly.

Same server, same durable settings, one hot coupon. Scripts are in pgbench/; a batched
script grants BATCH claims per transaction, so claims/s = transactions/s x BATCH.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from couponapi.db.embedded import find_binaries
from couponapi.db.migrate import function_as_created

SCRIPTS = Path(__file__).with_name("pgbench")
BATCH = 50

# (name, script, clients, claims per transaction, api)
RUNS = [
    ("locking (FOR UPDATE txn), 100 clients", "locking.sql", 100, 1, "v1"),
    ("function, 100 clients", "function.sql", 100, 1, "v1"),
    ("atomic statement, 100 clients", "atomic.sql", 100, 1, "v1"),
    ("atomic statement, 10 clients", "atomic.sql", 10, 1, "v1"),
    (f"v1 batch of {BATCH}, 2 clients", "batch.sql", 2, BATCH, "v1"),
    ("unit pool (SKIP LOCKED), 100 clients", "unit_pool.sql", 100, 1, "units"),
    ("v2 claim_coupons_v1 one, 100 clients", "v2_one.sql", 100, 1, "v2"),
    (f"v2 claim_coupons_v1 batch of {BATCH}, 2 clients", "v2_batch.sql", 2, BATCH, "v2"),
    # The loop that migration 0004 replaced, run right after the set-based function.
    (f"v2 0002's loop, batch of {BATCH}, 2 clients", "v2_batch_0002.sql", 2, BATCH, "v2"),
]
REPLACED = ("0002_current_api", "claim_coupons_v1", "claim_coupons_v1_0002")


UNIT_POOL_ROWS = 400_000


async def make_unit_pool(connection: asyncpg.Connection, coupon: UUID) -> None:
    """The pre-made units of `coupon` for unit_pool.sql (a benchmark-only table)."""
    await connection.execute(
        """CREATE TABLE IF NOT EXISTS bench_coupon_unit (
               id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
               coupon_id uuid NOT NULL, user_id text);
           CREATE INDEX IF NOT EXISTS bench_coupon_unit_free
               ON bench_coupon_unit (coupon_id, id) WHERE user_id IS NULL"""
    )
    await connection.execute(
        "INSERT INTO bench_coupon_unit (coupon_id) SELECT $1 FROM generate_series(1, $2)",
        coupon,
        UNIT_POOL_ROWS,
    )
    await connection.execute("VACUUM ANALYZE bench_coupon_unit")


async def load_replaced_loop(connection: asyncpg.Connection) -> None:
    """0002's claim_coupons_v1, as claim_coupons_v1_0002, for v2_batch_0002.sql."""
    await connection.execute(f"DROP FUNCTION IF EXISTS {REPLACED[2]}")
    await connection.execute(function_as_created(*REPLACED))


def pgbench_binary() -> str | None:
    beside_server = find_binaries() / "pgbench"
    if beside_server.exists():
        return str(beside_server)
    return shutil.which("pgbench")


def run_pgbench(
    url: str, script: str, clients: int, seconds: float, coupon: UUID
) -> dict[str, Any]:
    """One pgbench run of `script` against `coupon`; transactions/s and mean latency (ms)."""
    binary = pgbench_binary()
    if binary is None:
        raise RuntimeError("pgbench not found")
    command = [
        binary, "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
        "-T", str(max(1, round(seconds))), "-D", f"coupon={coupon}", "-D", f"batch={BATCH}",
        "-f", str(SCRIPTS / script), url,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", result.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", result.stdout)
    if tps is None or result.returncode != 0:
        raise RuntimeError(f"pgbench failed:\n{result.stdout}\n{result.stderr}")
    return {
        "transactions_per_s": float(tps.group(1)),
        "latency_ms": float(latency.group(1)) if latency else None,
        "failed": int(failed.group(1)) if failed else 0,
    }
