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
from starlette.routing import Match
from starlette.types import ExceptionHandler

from couponapi import metrics
from couponapi.api.inputs import InvalidRequest
from couponapi.api.middleware import headers_outside
from couponapi.api.v1.wire import ErrorV1
from couponapi.api.v2 import problems
from couponapi.db.pool import TIMED_OUT, UNAVAILABLE
from couponapi.domain.errors import CouponError
from couponapi.logs import Throttle

log = logging.getLogger(__name__)
_quiet = Throttle()  # an outage answered 10,000 times a second logs once a second
RETRY_AFTER_SECONDS = "1"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error in the v1 shape `{"code": ..., "errorDescription": ...}`."""
    body = msgspec.json.encode(ErrorV1(code=status, errorDescription=message))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _answer(
    request: Request,
    error: Exception,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """/api/v2 answers RFC 9457 problem details (api/problems.py); other paths keep v1's shape."""
    if problems.is_v2(request):
        return problems.problem_for(error, status, message, headers)
    return error_response(status, message, headers)


async def _domain(request: Request, error: Exception) -> Response:
    assert isinstance(error, CouponError)
    status = error.status
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else error.headers
    return _answer(request, error, status, str(error), headers)


async def _invalid(request: Request, error: Exception) -> Response:
    assert isinstance(error, InvalidRequest)
    return _answer(request, error, error.status, str(error))


async def _http(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return _answer(request, error, error.status_code, str(error.detail), headers)


def allowed_methods(request: Request) -> str:
    """The methods served at this path: those of every route with the template of the first
    route whose path matched. Starlette's router answers 405 with that route's methods only,
    and a template here has a route per method."""
    template = next(
        (r for r in request.app.routes if r.matches(request.scope)[0] is not Match.NONE),
        None,
    )
    methods: set[str] = set()
    for route in request.app.routes:
        if getattr(route, "path", None) == getattr(template, "path", ""):
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def _unavailable(request: Request, error: Exception) -> Response:
    metrics.database_error("unavailable")
    if (held := _quiet.allow()) is not None:
        log.warning("database unavailable: %r (and %d more since the last line)", error, held)
    return _answer(
        request,
        error,
        503,
        "the database is unavailable, retry shortly",
        {"Retry-After": RETRY_AFTER_SECONDS},
    )


async def _timed_out(request: Request, error: Exception) -> Response:
    """A bounded wait ran out: the pool's (no free connection), PostgreSQL's lock_timeout or
    statement_timeout. The transaction was rolled back: nothing was written. Retry later."""
    if isinstance(error, asyncpg.LockNotAvailableError):
        kind, message = "lock_timeout", "timed out waiting for a lock on the coupon"
    elif isinstance(error, asyncpg.QueryCanceledError):
        kind, message = "statement_timeout", "the database took too long to answer"
    else:
        kind, message = "pool_timeout", "the server is busy: no database connection came free"
    metrics.database_error(kind)
    if (held := _quiet.allow()) is not None:
        log.warning("%s: %r (and %d more since the last line)", kind, error, held)
    retry = {"Retry-After": RETRY_AFTER_SECONDS}
    return _answer(request, error, 503, f"{message}, retry shortly", retry)


async def _bad_text(request: Request, error: Exception) -> Response:
    """PostgreSQL refused a string (a NUL byte, which `text` cannot hold): the client's."""
    metrics.database_error("bad_text")
    message = "a text field holds a character PostgreSQL cannot store (NUL)"
    return _answer(request, error, 422, message)


async def _unexpected(request: Request, error: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _answer(request, error, 500, "internal error", headers_outside())


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
    for timeout in TIMED_OUT:
        handlers[timeout] = _timed_out
    for text in (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError):
        handlers[text] = _bad_text
    return handlers
