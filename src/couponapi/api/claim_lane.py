"""The claim routes' own lane: the crowd's requests skip Starlette's router and its
ExceptionMiddleware (and, in the app, its ServerErrorMiddleware).

Starlette reaches an endpoint through ExceptionMiddleware (a send wrapper and a handler
lookup per request) and the Router (a regex per route tried, then a child scope): for a claim,
about a sixth of the application's CPU (docs/performance.md, `benchmarks.inprocess`).
`ClaimLane` is the innermost middleware, so request ids, metrics, security headers, CORS and
the rate limit wrap it as before. It recognises a POST to a claim route by the route's fixed
text around its one path parameter, fills the scope as the router would (`route`,
`endpoint`, `path_params`) and calls the endpoint. What the endpoint raises is answered by
the app's own exception handlers, chosen as ExceptionMiddleware chooses them (by the error's
class, most derived first). An error with no handler of its own gets the 500 handler and is
raised on, as ServerErrorMiddleware does (the server logs it): in the app, Starlette's
ServerErrorMiddleware sits inside the lane, not around it (app.CouponApp). Every other request
goes on to Starlette untouched, and the routes stay in the router too: the OpenAPI document
lists them, and a GET gets the router's 405.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from couponapi.api.asgi_route import AsgiRoute

Handler = Callable[[Request, Exception], Awaitable[Response]]


class ClaimLane:
    """Serves POSTs to `routes` directly; answers their errors with `handlers`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[AsgiRoute],
        handlers: Mapping[int | type[Exception], ExceptionHandler],
    ) -> None:
        self.app = app
        self._routes = [(*_around_parameter(route.path), route) for route in routes]
        # As Starlette does, a handler for Exception (or 500) answers what no other handler
        # does, as ServerErrorMiddleware would. The app's handlers are all async HTTP handlers
        # (api/errors.py).
        self._handlers = {
            kind: cast(Handler, handler)
            for kind, handler in handlers.items()
            if isinstance(kind, type) and kind is not Exception
        }
        server_error = handlers.get(Exception, handlers.get(500))
        self._server_error = None if server_error is None else cast(Handler, server_error)
        self._handler_of: dict[type[Exception], Handler | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            for prefix, suffix, name, route in self._routes:
                if path.startswith(prefix) and path.endswith(suffix):
                    value = path[len(prefix) : len(path) - len(suffix)]
                    if value and "/" not in value:  # what Starlette's {name} matches
                        scope["route"] = route
                        scope["endpoint"] = route.endpoint
                        scope["path_params"] = {name: value}
                        await self._serve(route, scope, receive, send)
                        return
        await self.app(scope, receive, send)

    async def _serve(self, route: AsgiRoute, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def noting_start(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await route.app(scope, receive, noting_start)
        except Exception as error:
            handler = self._handler_for(type(error))
            unexpected = handler is None
            handler = handler or self._server_error
            if handler is None or started:  # nothing to answer with, or too late to answer
                raise
            response = await handler(Request(scope, receive), error)
            await response(scope, receive, send)
            if unexpected:  # answered 500; raised on for the server to log, as Starlette does
                raise

    def _handler_for(self, kind: type[Exception]) -> Handler | None:
        if kind not in self._handler_of:
            found = (self._handlers.get(cls) for cls in kind.__mro__)
            self._handler_of[kind] = next((h for h in found if h is not None), None)
        return self._handler_of[kind]


def _around_parameter(path: str) -> tuple[str, str, str]:
    """`/a/{name}/b` -> ("/a/", "/b", "name"): a lane route has exactly one parameter."""
    prefix, _, rest = path.partition("{")
    name, _, suffix = rest.partition("}")
    if not name or "{" in suffix or ":" in name:
        raise ValueError(f"a claim lane route needs exactly one plain parameter: {path}")
    return prefix, suffix, name
