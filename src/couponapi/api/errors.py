"""One place that turns every failure into a status code and a body, never a stack trace.

Domain errors carry their own status; client mistakes arrive as InvalidRequest; a database
that cannot be reached is 503 with Retry-After; anything else is a 500 with a fixed message
(the details go to the server log only).
"""

from __future__ import annotations

import logging

import asyncpg
import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from couponapi.api.bodies import InvalidRequest
from couponapi.api.v1_schemas import ErrorV1
from couponapi.domain import (
    CouponError,
    CouponNotFound,
    DatabaseUnavailable,
    DuplicateCoupon,
    SoldOut,
    StrategyDisabled,
)

log = logging.getLogger(__name__)

STATUS_OF: dict[type[CouponError], int] = {
    CouponNotFound: 404,
    SoldOut: 409,
    DuplicateCoupon: 409,
    StrategyDisabled: 403,
    DatabaseUnavailable: 503,
}
RETRY_AFTER_SECONDS = "1"

# Failures that mean "PostgreSQL is not there right now", as opposed to a bug.
UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error in the v1 shape `{"code": ..., "errorDescription": ...}`."""
    body = msgspec.json.encode(ErrorV1(code=status, errorDescription=message))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def _domain(request: Request, error: Exception) -> Response:
    assert isinstance(error, CouponError)
    status = STATUS_OF.get(type(error), 400)
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else None
    return error_response(status, str(error), headers)


async def _invalid(request: Request, error: Exception) -> Response:
    assert isinstance(error, InvalidRequest)
    return error_response(error.status, str(error))


async def _http(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return error_response(error.status_code, str(error.detail), dict(error.headers or {}))


async def _unavailable(request: Request, error: Exception) -> Response:
    log.warning("database unavailable: %r", error)
    return error_response(
        503, "the database is unavailable, retry shortly", {"Retry-After": RETRY_AFTER_SECONDS}
    )


async def _unexpected(request: Request, error: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error")


def exception_handlers() -> dict[int | type[Exception], ExceptionHandler]:
    """The handlers create_app installs, most specific first."""
    handlers: dict[int | type[Exception], ExceptionHandler] = {
        CouponError: _domain,
        InvalidRequest: _invalid,
        HTTPException: _http,
        Exception: _unexpected,
    }
    for kind in UNAVAILABLE:
        handlers[kind] = _unavailable
    return handlers
