"""The claim routes' fast path: every bypass of the framework that earned its place, here only.

The crowd's routes (v2's POST .../claims, v1's POST .../give*) pay per request what Starlette
does for every request. Each bypass below was measured by removing it alone, in turn, in one
alternated run (`python -m benchmarks.ab`, results/ab-bypasses.json: the v2 hot claim, 100
connections, granian with 2 workers, 4 rounds, order rotated; medians of the server's CPU
per claim; docs/performance.md has the table). Kept, because each bought >= 10 µs:
- `ClaimLane`: a claim route is found by its fixed text and its endpoint called directly, ahead
  of Starlette's router (a regex per route) and its per-route `request_response` wrapper
  (an exception-handling layer per request): 53 µs with the plain-ASGI claim routes it
  replaces. The endpoints stay ordinary `Request -> Response` functions, and the routes stay
  in the router too, for the OpenAPI document and the 405s.
- `read_body`: the body read straight from ASGI messages, stopping at Content-Length instead of
  waiting for granian's closing empty message (each receive() is a hand-over between its Rust
  threads and the event loop), with the other hand parsing it replaced: 20 µs.
- `tune_garbage_collector`: 16 µs.
Taken out again, because they bought less than that: metrics written into prometheus_client's
private fields (-14 µs, within the noise), our middleware reordered around Starlette's
ServerErrorMiddleware (-4 µs), a hand-split query string (~5 µs, measured in process).
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import cast

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, ExceptionHandler, Receive, Scope, Send

Handler = Callable[[Request, Exception], Awaitable[Response]]


class BodyTooLarge(Exception):
    """The body passed the limit (api.inputs answers it with 413)."""


Endpoint = Callable[[Request], Awaitable[Response]]


class ClaimLane:
    """Serves POSTs to `routes` (one path parameter each) directly; answers what they raise
    with the app's own `handlers`, chosen as Starlette's ExceptionMiddleware chooses them (by
    the error's class, most derived first). An error with no handler of its own goes on to
    Starlette's ServerErrorMiddleware (500, logged), as from any other route."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[Route],
        handlers: Mapping[int | type[Exception], ExceptionHandler],
    ) -> None:
        self.app = app
        self._routes = [(*_around_parameter(route.path), route) for route in routes]
        # The app's handlers are all async HTTP handlers (api/errors.py); the one for
        # Exception belongs to ServerErrorMiddleware.
        self._handlers = {
            kind: cast(Handler, handler)
            for kind, handler in handlers.items()
            if isinstance(kind, type) and kind is not Exception
        }
        self._handler_of: dict[type[Exception], Handler | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            for prefix, suffix, name, route in self._routes:
                if path.startswith(prefix) and path.endswith(suffix):
                    value = path[len(prefix) : len(path) - len(suffix)]
                    if value and "/" not in value:  # what Starlette's {name} matches
                        # What the router would have put in the scope.
                        scope["route"] = route
                        scope["endpoint"] = route.endpoint
                        scope["path_params"] = {name: value}
                        await self._serve(cast(Endpoint, route.endpoint), scope, receive, send)
                        return
        await self.app(scope, receive, send)

    async def _serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as error:
            handler = self._handler_for(type(error))
            if handler is None:
                raise
            response = await handler(request, error)
        await response(scope, receive, send)

    def _handler_for(self, kind: type[Exception]) -> Handler | None:
        if kind not in self._handler_of:
            found = (self._handlers.get(cls) for cls in kind.__mro__)
            self._handler_of[kind] = next((h for h in found if h is not None), None)
        return self._handler_of[kind]


def _around_parameter(path: str) -> tuple[str, str, str]:
    """`/a/{name}/b` -> ("/a/", "/b", "name"): a lane route has exactly one plain parameter."""
    prefix, _, rest = path.partition("{")
    name, _, suffix = rest.partition("}")
    if not name or "{" in suffix or ":" in name:
        raise ValueError(f"a claim lane route needs exactly one plain parameter: {path}")
    return prefix, suffix, name


def header(request: Request, name: bytes) -> str | None:
    """The first value of the header `name` (lower case, as ASGI servers give names), as
    `request.headers.get` reads it, without building a Headers object."""
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body; BodyTooLarge as soon as it passes `limit` bytes (a declared
    Content-Length over it before anything is read)."""
    declared = header(request, b"content-length")
    length = (
        int(declared)
        if declared is not None and declared.isascii() and declared.isdigit()
        else None
    )
    if length is not None and length > limit:
        raise BodyTooLarge(limit)
    if length == 0:
        return b""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        # HTTP ends the body after Content-Length bytes: stop there, without the closing
        # empty message granian sends after it.
        more = message.get("more_body", False) and size != length
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def tune_garbage_collector() -> None:
    """Fewer collections under a crowd (the app's lifespan calls it once, after start-up).

    Everything loaded so far lives as long as the process: frozen, out of the collector's
    sight, so a full collection no longer walks it. A claim allocates hundreds of short-lived
    containers: at the default threshold (700) the young generation was collected every few
    requests; every 50,000 allocations costs a few MB."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
