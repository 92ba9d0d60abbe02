"""ClaimLane answers its routes as Starlette's router, ExceptionMiddleware and
ServerErrorMiddleware would, as the innermost middleware, as in the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ExceptionHandler

from couponapi.api.fastpath import ClaimLane
from couponapi.api.inputs import InvalidRequest
from couponapi.api.responses import json_response

seen: list[tuple[object, dict[str, str]]] = []


async def endpoint(request: Request) -> Response:
    """Echoes its parameter, or fails as the parameter says."""
    seen.append((request.scope.get("route"), request.path_params))
    value = request.path_params["item"]
    if value == "invalid":
        raise InvalidRequest(422, "invalid item")
    if value == "unhandled":
        raise KeyError("no handler for this")
    return json_response({"item": value}, 201)


async def invalid(request: Request, error: Exception) -> Response:
    assert isinstance(error, InvalidRequest)
    return PlainTextResponse(f"handled: {error}", status_code=error.status)


async def unexpected(request: Request, error: Exception) -> Response:
    return PlainTextResponse("internal error", status_code=500)


ROUTE = Route("/items/{item}/claims", endpoint, methods=["POST"])


def client(root_path: str = "", raise_app_exceptions: bool = False) -> httpx.AsyncClient:
    """An app with the lane in front of ROUTE (handlers for InvalidRequest and for 500)."""
    handlers: dict[int | type[Exception], ExceptionHandler] = {
        InvalidRequest: invalid,
        Exception: unexpected,
    }
    app = Starlette(
        routes=[ROUTE],
        exception_handlers=handlers,
        middleware=[Middleware(ClaimLane, routes=[ROUTE], handlers=handlers)],
    )
    transport = httpx.ASGITransport(
        app=app, raise_app_exceptions=raise_app_exceptions, root_path=root_path
    )
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    seen.clear()
    async with client() as http:
        yield http


async def test_a_post_is_served_with_the_scope_the_router_would_give(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.post("/items/a%20b/claims")
    assert (answer.status_code, answer.json()) == (201, {"item": "a b"})
    assert seen == [(ROUTE, {"item": "a b"})]


async def test_an_error_gets_the_apps_handler(http: httpx.AsyncClient) -> None:
    answer = await http.post("/items/invalid/claims")
    assert (answer.status_code, answer.text) == (422, "handled: invalid item")


async def test_an_error_without_its_own_handler_gets_the_apps_500_handler(
    http: httpx.AsyncClient,
) -> None:
    answer = await http.post("/items/unhandled/claims")
    assert (answer.status_code, answer.text) == (500, "internal error")


async def test_an_error_without_its_own_handler_is_raised_on_for_the_server_to_log() -> None:
    async with client(raise_app_exceptions=True) as http:
        with pytest.raises(KeyError, match="no handler for this"):
            await http.post("/items/unhandled/claims")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/items/x/claims", 405),  # the router's answer: the lane takes POSTs only
        ("POST", "/items/x/y/claims", 404),  # {item} is one path segment
        ("POST", "/items//claims", 404),
        ("POST", "/items/x/claims/more", 404),
    ],
)
async def test_other_requests_go_to_the_router(
    http: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    answer = await http.request(method, path)
    assert answer.status_code == status
    assert seen == []


async def test_a_mounted_app_goes_through_the_router() -> None:
    seen.clear()
    async with client(root_path="/shop") as http:
        answer = await http.post("/shop/items/x/claims")
    assert (answer.status_code, answer.json()) == (201, {"item": "x"})
    assert seen == [(ROUTE, {"item": "x"})]


@pytest.mark.parametrize("path", ["/items/claims", "/items/{a}/{b}", "/items/{n:int}"])
def test_a_lane_route_has_exactly_one_plain_parameter(path: str) -> None:
    route = Route(path, endpoint, methods=["POST"])
    with pytest.raises(ValueError, match="exactly one plain parameter"):
        ClaimLane(Starlette(), routes=[route], handlers={})
