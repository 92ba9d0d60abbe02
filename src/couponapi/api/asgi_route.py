"""Routes whose endpoint is called as plain ASGI: the claim routes, which take the crowd.

Starlette wraps a function endpoint in `request_response`: per request an exception-handling
wrapper, a Request and a Response object, on a path that answers thousands of claims a second
(its cost: `benchmarks.inprocess`, docs/performance.md). An `AsgiRoute` calls
`endpoint(scope, receive, send)` directly; the endpoint may still build a Request from the
scope to read its input with the usual helpers, and answers with a Response it calls as an ASGI app.
`api.claim_lane.ClaimLane` serves these routes ahead of the router and answers what they
raise with the app's exception handlers. They stay plain functions, so the OpenAPI generator
documents them like any other (`@operation`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

AsgiEndpoint = Callable[[Scope, Receive, Send], Awaitable[None]]


class AsgiRoute(Route):
    """A Route whose function endpoint is the ASGI app itself (no request_response)."""

    def __init__(self, path: str, endpoint: AsgiEndpoint, *, methods: list[str]) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.app = endpoint
