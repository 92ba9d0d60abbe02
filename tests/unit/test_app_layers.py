"""CouponApp runs our middleware around Starlette's ServerErrorMiddleware, not inside it."""

from __future__ import annotations

import httpx
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from couponapi.api.middleware import SECURITY_HEADERS, RequestContext
from couponapi.app import CouponApp


async def fails(request: Request) -> Response:
    raise RuntimeError("a bug")


async def app_of(request: Request) -> Response:
    return JSONResponse({"same_app": request.app is request.scope["app"]})


async def internal_error(request: Request, error: Exception) -> Response:
    return JSONResponse({"detail": "internal error"}, status_code=500)


def client() -> httpx.AsyncClient:
    app = CouponApp(
        routes=[Route("/fails", fails), Route("/app", app_of)],
        exception_handlers={Exception: internal_error},
        outer=[Middleware(RequestContext, csp="default-src 'self'")],
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_a_500_goes_out_through_our_middleware() -> None:
    async with client() as http:
        answer = await http.get("/fails", headers={"X-Request-ID": "req-500"})
    assert (answer.status_code, answer.json()) == (500, {"detail": "internal error"})
    assert answer.headers["x-request-id"] == "req-500"
    for name, value in SECURITY_HEADERS:
        assert answer.headers[name.decode()] == value.decode()


async def test_endpoints_see_the_app_in_their_scope() -> None:
    async with client() as http:
        answer = await http.get("/app")
    assert (answer.status_code, answer.json()) == (200, {"same_app": True})
