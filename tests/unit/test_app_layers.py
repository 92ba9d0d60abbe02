"""A 500 carries the request's id and the security headers, though Starlette's
ServerErrorMiddleware sends it from outside our middleware."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from couponapi.api.errors import exception_handlers
from couponapi.api.middleware import SECURITY_HEADERS, RequestContext


async def fails(request: Request) -> Response:
    raise RuntimeError("a bug")


async def app_of(request: Request) -> Response:
    return JSONResponse({"same_app": request.app is request.scope["app"]})


def client() -> httpx.AsyncClient:
    app = Starlette(
        routes=[Route("/fails", fails), Route("/app", app_of)],
        exception_handlers=exception_handlers(),
        middleware=[Middleware(RequestContext, csp="default-src 'self'")],
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_a_500_goes_out_through_our_middleware() -> None:
    async with client() as http:
        answer = await http.get("/fails", headers={"X-Request-ID": "req-500"})
    assert (answer.status_code, answer.json()) == (
        500,
        {"code": 500, "errorDescription": "internal error"},
    )
    assert answer.headers["x-request-id"] == "req-500"
    for name, value in SECURITY_HEADERS:
        assert answer.headers[name.decode()] == value.decode()


async def test_endpoints_see_the_app_in_their_scope() -> None:
    async with client() as http:
        answer = await http.get("/app")
    assert (answer.status_code, answer.json()) == (200, {"same_app": True})
