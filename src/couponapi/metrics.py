"""Prometheus metrics: requests, claims by strategy and outcome, batches, pool, database errors.

With several uvicorn workers each process counts on its own; `serve` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start, prometheus_client
then keeps every process's values in memory-mapped files there, and /metrics adds them up,
so the figures are the whole server's whichever worker answers. Without that variable (tests,
one process) the default in-memory registry is used.

Kept cheap for the hot path: label children are looked up once and cached.
"""

from __future__ import annotations

import asyncio
import os
import re
from contextlib import suppress
from functools import cache
from pathlib import Path

import asyncpg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client chose its value store when it was imported: files there, or memory.
MULTIPROC_DIR = os.environ.get(MULTIPROC_ENV)
CONTENT_TYPE = CONTENT_TYPE_LATEST

REQUEST_SECONDS = Histogram(
    "couponapi_http_request_duration_seconds",
    "Time to answer a request, by route template, method and status (its _count counts them).",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CLAIMS = Counter(
    "couponapi_claims",
    "Claims answered, by strategy and outcome (granted, sold_out, already_claimed, ...).",
    ["strategy", "outcome"],
)
BATCH_SIZE = Histogram(
    "couponapi_batch_size",
    "Claims committed together by one group commit.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
POOL_CONNECTIONS = Gauge(
    "couponapi_pool_connections",
    "PostgreSQL connections of the server's pools: open, idle (open minus in use), max.",
    ["state"],
    multiprocess_mode="livesum",
)
DATABASE_ERRORS = Counter(
    "couponapi_database_errors",
    "Requests that failed on the database: unavailable, pool_timeout, lock_timeout, "
    "statement_timeout, bad_text, other.",
    ["kind"],
)
RATE_LIMITED = Counter("couponapi_rate_limited", "Claims refused with 429 by the rate limit.")

# The claim routes: v1's POST .../give*/{id} and v2's POST /api/v2/coupons/{id}/claims
# (matched on a route template or on a request path alike).
CLAIM_ROUTE = re.compile(r"^/coupon/api/v1/(give[\w-]*)/[^/]+$|^/api/v2/coupons/[^/]+/claims$")
V2 = "v2"  # v2 routes pick their strategy per request (?strategy=) or by setting
_STRATEGY_OF_SEGMENT = {
    "give": "naive",
    "give-transaction": "locking",
    "give-transaction-pgfunction": "function",
    "give-atomic": "atomic",
    "give-group-commit": "group_commit",
}


@cache
def claim_strategy(route_path: str) -> str | None:
    """The strategy of a claim route (its path segment when unknown, V2 for v2's claim
    route); None for every other route."""
    match = CLAIM_ROUTE.match(route_path)
    if match is None:
        return None
    segment = match.group(1)
    return V2 if segment is None else _STRATEGY_OF_SEGMENT.get(segment, segment)


@cache
def outcome_name(error_class: str) -> str:
    """`SoldOut` -> `sold_out`: the outcome label of a domain error."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", error_class).lower()


def observe_batch(size: int) -> None:
    """One group commit of `size` claims (called by the batching strategy)."""
    BATCH_SIZE.observe(size)


def database_error(kind: str) -> None:
    """One request that failed on the database."""
    DATABASE_ERRORS.labels(kind).inc()


def sample_pool(pool: asyncpg.Pool) -> None:
    """Record the pool's connection counts now."""
    size = pool.get_size()
    POOL_CONNECTIONS.labels("open").set(size)
    POOL_CONNECTIONS.labels("idle").set(pool.get_idle_size())
    POOL_CONNECTIONS.labels("max").set(pool.get_max_size())


async def sample_pool_forever(pool: asyncpg.Pool, interval: float = 1.0) -> None:
    """Sample the pool every `interval` seconds until cancelled (the app's lifespan runs it)."""
    while True:
        sample_pool(pool)
        await asyncio.sleep(interval)


def _forget_dead_processes(directory: Path) -> None:
    """Drop the live gauges of workers that died (uvicorn restarts them with a new pid)."""
    for path in directory.glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
        except PermissionError:
            continue


def exposition() -> bytes:
    """The text format of every metric, summed over the server's processes."""
    directory = MULTIPROC_DIR
    if not directory:
        return generate_latest(REGISTRY)
    with suppress(OSError, ValueError):
        _forget_dead_processes(Path(directory))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
