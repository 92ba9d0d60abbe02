"""The ASGI application: built by create_app(settings); its lifespan owns the pool."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from couponapi import metrics
from couponapi.api import health
from couponapi.api.claim_lane import ClaimLane
from couponapi.api.errors import exception_handlers
from couponapi.api.middleware import middleware_stack
from couponapi.api.openapi import SWAGGER_PAGE, DocumentGenerator, docs_routes
from couponapi.api.v1 import routes as v1
from couponapi.api.v2 import claims as v2_claims
from couponapi.api.v2 import coupons as v2_coupons
from couponapi.config import Settings
from couponapi.dashboard.routes import Dashboard
from couponapi.db.pool import create_pool
from couponapi.db.session_defaults import apply_timeouts_if_reachable
from couponapi.services.claims import sweep_expired_keys_forever
from couponapi.strategies import check_claim_strategy

API_INFO = {
    "title": "couponapi",
    "version": "1.0.0",
    "description": "Hands out a limited coupon to a crowd, and never one too many.",
}


class CouponApp(Starlette):
    """Starlette with our middleware outside its own ServerErrorMiddleware, not inside it.

    Starlette runs ServerErrorMiddleware -> user middleware -> ExceptionMiddleware -> router,
    so the 500 it answers skips the user middleware: no X-Request-ID for the client to quote,
    no security headers. Here it is `outer` (outermost first) -> ServerErrorMiddleware ->
    ExceptionMiddleware -> router: a 500 goes out through RequestContext like any answer. A
    claim, served by ClaimLane (the innermost of `outer`), passes no Starlette layer at all;
    ClaimLane answers its routes' 500s itself (api/claim_lane).
    """

    def __init__(self, *, outer: Sequence[Middleware], **options: Any) -> None:
        super().__init__(**options)
        front: ASGIApp = super().__call__  # Starlette's own stack, behind `outer`
        for cls, args, kwargs in reversed(outer):
            front = cls(front, *args, **kwargs)
        self._front = front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # what Starlette's __call__ does first; endpoints read app.state
        await self._front(scope, receive, send)


def create_app(settings: Settings) -> CouponApp:
    """The app for `settings`; `settings.database_url` must name the database to use."""
    if settings.database_url is None:
        raise ValueError("create_app needs settings.database_url (serve sets it)")
    database_url = settings.database_url
    check_claim_strategy(settings.claim_strategy)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # First: a session takes the role's timeouts when it starts, so before any exists.
        await apply_timeouts_if_reachable(settings)
        app.state.pool = await create_pool(database_url, settings)
        # Everything loaded so far lives as long as the process: out of the garbage
        # collector's sight, a full collection no longer walks it (measured: the collector
        # took ~6% of a worker under a crowd, docs/performance.md).
        gc.freeze()
        # A claim allocates hundreds of short-lived containers: at the default threshold
        # (700) the young generation was collected every few requests, ~6% of a worker's
        # samples; every 50,000 allocations costs a few MB and saved ~13% of the event
        # loop's CPU per v1 claim (docs/performance.md).
        gc.set_threshold(50_000, 20, 100)
        sampler = asyncio.create_task(metrics.sample_pool_forever(app.state.pool))
        sweeper = asyncio.create_task(sweep_expired_keys_forever(app.state.pool))
        try:
            yield
        finally:
            sampler.cancel()
            sweeper.cancel()
            await app.state.pool.close()

    generator = DocumentGenerator(API_INFO)

    @cache
    def document() -> dict[str, Any]:
        return generator.get_schema(app.routes)

    dashboard = Dashboard()  # the live page, its stats and the race button
    handlers = dashboard.count_refusals(exception_handlers())
    claim_routes = [*v2_claims.claim_routes(), *v1.claim_routes()]
    app = CouponApp(
        routes=[
            *claim_routes,  # served by ClaimLane; listed for the OpenAPI document and 405s
            *v1.routes(),
            *v2_coupons.routes(),
            *v2_claims.routes(),
            *docs_routes(document),
            *health.routes(),
            *dashboard.routes(),
        ],
        exception_handlers=handlers,
        outer=[
            *middleware_stack(settings, html_pages=[SWAGGER_PAGE, dashboard.page]),
            Middleware(ClaimLane, routes=claim_routes, handlers=handlers),  # innermost
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


def app_from_environment() -> CouponApp:
    """Factory for the server's workers: settings come from the environment `serve` prepared."""
    return create_app(Settings())
