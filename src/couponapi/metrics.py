"""Prometheus metrics: requests, claims by strategy and outcome, batches, pool, database errors.

With several server workers each process counts on its own; `serve` points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start, prometheus_client
then keeps every process's values in memory-mapped files there, and /metrics adds them up,
so the figures are the whole server's whichever worker answers. Without that variable (tests,
one process) the default in-memory registry is used.

Kept cheap for the hot path: label children are looked up once and cached (every label is
bounded: route templates, methods, statuses, strategies, refusal names).
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

from couponapi.db.pool import TRANSIENT
from couponapi.domain.errors import CouponError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client chose its value store when it was imported: files there, or memory.
MULTIPROC_DIR = os.environ.get(MULTIPROC_ENV)
CONTENT_TYPE = CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
REQUEST_SECONDS = Histogram(
    "couponapi_http_request_duration_seconds",
    "Time to answer a request, by route template, method and status (its _count counts them).",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
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


@cache
def request_child(route: str, method: str, status: int) -> Histogram:
    """The latency histogram of one (route template, method, status): looked up once."""
    return REQUEST_SECONDS.labels(route, method, str(status))


@cache
def claims_child(strategy: str, outcome: str) -> Counter:
    """The claims counter of one (strategy, outcome): looked up once."""
    return CLAIMS.labels(strategy, outcome)


@cache
def outcome_name(error_class: str) -> str:
    """`SoldOut` -> `sold_out`: the outcome label of a domain error."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", error_class).lower()


class ClaimCount:
    """Counts the give or claim run inside it by strategy and outcome: granted, the refusal's
    name (sold_out, limit_reached, ...), unavailable (a transient database failure) or error."""

    __slots__ = ("strategy",)

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: object, trace: object) -> None:
        if kind is None:
            outcome = "granted"
        elif issubclass(kind, CouponError):
            outcome = outcome_name(kind.__name__)
        elif issubclass(kind, TRANSIENT):
            outcome = "unavailable"
        else:
            outcome = "error"
        claims_child(self.strategy, outcome).inc()


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
    """Drop the live gauges of workers that died (the server restarts them with a new pid)."""
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
