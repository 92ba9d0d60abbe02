"""Operations routes: /healthz (the process answers), /readyz (the database is usable and
migrated), /metrics (Prometheus text format).

/readyz compares `schema_migrations` with the migrations this build ships: a server whose
database lacks one is not ready (503), whatever else works. Its database check waits at most
one second for a connection, so a load balancer polling it never queues behind a crowd.
"""

from __future__ import annotations

from functools import cache

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from couponapi import metrics
from couponapi.api.openapi import operation
from couponapi.api.responses import json_response
from couponapi.db.migrate import migration_files
from couponapi.db.queries import query
from couponapi.db.supervisor import read_state

TAGS = ("operations",)
READY_TIMEOUT_SECONDS = 1.0


class Health(msgspec.Struct):
    """The process is up."""

    status: str


class Readiness(msgspec.Struct):
    """Whether this process can serve claims, and if not, why."""

    status: str
    missing_migrations: list[str] = []
    error: str | None = None


@cache
def shipped_migrations() -> tuple[str, ...]:
    """The migration versions this build ships."""
    return tuple(version for version, _ in migration_files())


@operation(
    summary="Liveness: the process answers.",
    tags=TAGS,
    responses={200: (Health, "Alive.")},
)
async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return json_response(Health(status="ok"))


@operation(
    summary="Readiness: the database answers and has every migration.",
    tags=TAGS,
    responses={
        200: (Readiness, "Ready to serve claims."),
        503: (Readiness, "Database unreachable or not migrated; Retry-After says when to ask."),
    },
)
async def readyz(request: Request) -> Response:
    """Readiness: the database answers and has every migration."""
    pool: asyncpg.Pool = request.app.state.pool
    try:
        async with pool.acquire(timeout=READY_TIMEOUT_SECONDS) as connection:
            rows = await connection.fetch(
                query("applied_migrations"), timeout=READY_TIMEOUT_SECONDS
            )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return _not_ready(Readiness(status="unavailable", error=type(error).__name__))
    applied = {row["version"] for row in rows}
    missing = [version for version in shipped_migrations() if version not in applied]
    if missing:
        return _not_ready(Readiness(status="not_migrated", missing_migrations=missing))
    return json_response(Readiness(status="ready"))


def _not_ready(readiness: Readiness) -> Response:
    response = json_response(readiness, status=503)
    response.headers["Retry-After"] = "1"
    return response


@operation(
    summary="Prometheus metrics of the whole server (every worker).",
    tags=TAGS,
    responses={200: (None, "Prometheus text exposition format.")},
)
async def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics of the whole server (every worker)."""
    body = metrics.exposition()
    supervised = read_state(request.app.state.settings.supervisor_state)
    if supervised is not None:
        # Counted by serve's supervisor process (db/supervisor), read from its state file.
        body += (
            b"# HELP couponapi_postgres_restarts_total Times serve started its private "
            b"PostgreSQL again after it died.\n"
            b"# TYPE couponapi_postgres_restarts_total counter\n"
            b"couponapi_postgres_restarts_total %d\n" % int(str(supervised["restarts"]))
        )
    return Response(body, media_type=metrics.CONTENT_TYPE)


def routes() -> list[BaseRoute]:
    """/healthz, /readyz and /metrics."""
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
