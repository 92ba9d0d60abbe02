"""The dashboard's routes: the page (at / and /dashboard), its static files, the stats it
polls, and the race button's start and status. Thin, like every route here."""

from __future__ import annotations

from pathlib import Path

import asyncpg
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ExceptionHandler

from couponapi.api.auth import require_admin
from couponapi.api.inputs import convert, decode_json_object, read_body
from couponapi.api.openapi import operation
from couponapi.api.responses import json_response
from couponapi.api.v1.wire import ErrorV1
from couponapi.config import Settings
from couponapi.dashboard import race_job, stats
from couponapi.domain.errors import CouponError
from couponapi.loadtest.credentials import Credentials

STATIC = Path(__file__).parent / "static"
TAGS = ("dashboard",)
LOOPBACK = {"0.0.0.0", "::", "", "localhost"}  # noqa: S104 (we only read it, never bind it)


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def own_credentials(settings: Settings) -> Credentials:
    """What the race proves itself with: this server's admin token and JWT secret."""
    admin, secret = settings.admin_token, settings.jwt_secret
    return Credentials(
        admin=admin.get_secret_value() if admin else None,
        jwt_secret=secret.get_secret_value() if secret else None,
    )


async def may_watch(request: Request) -> None:
    """The dashboard's data is the admin's unless COUPONAPI_DASHBOARD_PUBLIC opens it."""
    settings: Settings = request.app.state.settings
    if not settings.dashboard_public:
        await require_admin(request)


def own_base_url(request: Request) -> str:
    """This server as seen from itself: the race claims through the loopback address."""
    host, port = request.scope.get("server") or ("127.0.0.1", 1323)
    host = "127.0.0.1" if host in LOOPBACK else host
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


class Dashboard:
    """The dashboard of one app: its refusal counter, its race job and its routes."""

    def __init__(self) -> None:
        self.refusals = stats.RefusalCounter()
        self.race = race_job.RaceJob()
        self.page = (STATIC / "index.html").read_text()

    def count_refusals(
        self, handlers: dict[int | type[Exception], ExceptionHandler]
    ) -> dict[int | type[Exception], ExceptionHandler]:
        """The app's exception handlers with refusals counted (grants are never touched)."""
        handlers = dict(handlers)
        handlers[CouponError] = stats.counting_refusals(handlers[CouponError], self.refusals)
        return handlers

    def routes(self) -> list[BaseRoute]:
        """The dashboard's routes."""

        @operation(summary="The live dashboard page (HTML).", tags=TAGS,
                   responses={200: (None, "The page.")})  # fmt: skip
        async def page(request: Request) -> Response:
            return HTMLResponse(self.page, headers={"Cache-Control": "no-cache"})

        @operation(
            summary="Coupons with what is left, claims/s and refusals/s over the last minutes.",
            description="Claims are counted from the ledgers' timestamps; refusals in memory "
            "by the server process that answers (per worker).",
            tags=TAGS,
            admin=True,
            responses={
                200: (stats.Stats, "The dashboard's picture now."),
                401: (ErrorV1, "No admin bearer token (and COUPONAPI_DASHBOARD_PUBLIC is off)."),
                403: (ErrorV1, "Not the admin credential."),
            },
        )
        async def stats_now(request: Request) -> Response:
            await may_watch(request)
            return json_response(await stats.snapshot(_pool(request), self.refusals))

        @operation(
            summary="Run the race demo against this server, in the background.",
            description="Creates one coupon per strategy and rushes each with the same crowd. "
            "One race at a time per database; poll GET /dashboard/race for the table. Admin only "
            "(Authorization: Bearer <token>): a race makes the server fire thousands of claims "
            "at itself.",
            tags=TAGS,
            body=race_job.RaceRequest,
            admin=True,
            responses={
                202: (race_job.RaceStatus, "Started."),
                401: (ErrorV1, "No admin bearer token."),
                403: (ErrorV1, "Wrong token, or the race demo is switched off."),
                400: (ErrorV1, "Body is not a JSON object."),
                409: (ErrorV1, "A race is already running."),
                422: (ErrorV1, "quantity, users or concurrency out of range."),
            },
        )
        async def start_race(request: Request) -> Response:
            settings: Settings = request.app.state.settings
            if not settings.enable_race:
                message = "the race demo is switched off on this server (COUPONAPI_ENABLE_RACE)"
                return json_response(ErrorV1(code=403, errorDescription=message), 403)
            await require_admin(request)
            data = decode_json_object(await read_body(request, settings.max_body_bytes))
            wanted = convert(data or {}, race_job.RaceRequest)
            assert settings.database_url is not None  # create_app requires it
            try:
                started = await self.race.start(
                    settings.database_url, own_base_url(request), wanted, own_credentials(settings)
                )
            except race_job.RaceBusy as busy:
                return json_response(ErrorV1(code=409, errorDescription=str(busy)), 409)
            return json_response(started, 202)

        @operation(
            summary="The race's status: rows so far and the strategy running now.",
            tags=TAGS,
            admin=True,
            responses={
                200: (race_job.RaceStatus, "The race as it stands."),
                401: (ErrorV1, "No admin bearer token (and COUPONAPI_DASHBOARD_PUBLIC is off)."),
                403: (ErrorV1, "Not the admin credential."),
            },
        )
        async def race_status(request: Request) -> Response:
            await may_watch(request)
            elsewhere = self.race.status.state == "idle" and await race_job.locked_elsewhere(
                _pool(request)
            )
            return json_response(self.race.current(elsewhere))

        return [
            Route("/", page, methods=["GET"]),
            Route("/dashboard", page, methods=["GET"]),
            Route("/dashboard/stats", stats_now, methods=["GET"]),
            Route("/dashboard/race", start_race, methods=["POST"]),
            Route("/dashboard/race", race_status, methods=["GET"]),
            Mount("/dashboard/static", StaticFiles(directory=str(STATIC)), name="dashboard"),
        ]
