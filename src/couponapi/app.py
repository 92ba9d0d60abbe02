"""The ASGI application: built by create_app(settings); its lifespan owns the pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from couponapi import metrics
from couponapi.api import health
from couponapi.api.errors import exception_handlers
from couponapi.api.fastpath import ClaimLane, tune_garbage_collector
from couponapi.api.middleware import middleware_stack
from couponapi.api.openapi import SWAGGER_PAGE, DocumentGenerator, docs_routes
from couponapi.api.v1 import routes as v1
from couponapi.api.v2 import audit as v2_audit
from couponapi.api.v2 import claims as v2_claims
from couponapi.api.v2 import coupons as v2_coupons
from couponapi.api.v2 import events as v2_events
from couponapi.api.v2 import keys as v2_keys
from couponapi.api.v2 import me as v2_me
from couponapi.api.v2 import webhooks as v2_webhooks
from couponapi.config import Settings
from couponapi.dashboard.routes import Dashboard
from couponapi.db.pool import create_pool
from couponapi.db.session_defaults import apply_timeouts_if_reachable
from couponapi.identity.authenticator import Authenticator, verifier_of
from couponapi.identity.keyring import KeyRing
from couponapi.services.claims import sweep_expired_keys_forever
from couponapi.services.holds import sweep_holds_forever
from couponapi.services.keys import live_keys
from couponapi.services.webhook_sender import policy_of
from couponapi.strategies import check_claim_strategy

API_INFO = {
    "title": "couponapi",
    "version": "1.0.0",
    "description": "Hands out a limited coupon to a crowd, and never one too many.",
}


def create_app(settings: Settings) -> Starlette:
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
        tune_garbage_collector()
        sampler = asyncio.create_task(metrics.sample_pool_forever(app.state.pool))
        sweeper = asyncio.create_task(sweep_expired_keys_forever(app.state.pool))
        # Every expiry's ledger row within seconds, in every worker (services/holds.py).
        holds = asyncio.create_task(sweep_holds_forever(app.state.pool))
        keys = asyncio.create_task(keyring.refresh_forever())
        try:
            yield
        finally:
            for task in (sampler, sweeper, holds, keys):
                task.cancel()
            await app.state.pool.close()

    # Who is asking (couponapi.identity): the key ring reads the pool the lifespan opens.
    keyring = KeyRing(lambda: live_keys(app.state.pool))
    admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
    authenticator = Authenticator(admin_token, keyring, verifier_of(settings))
    v1_on = settings.v1_access != "off"  # off: v1's routes are not served at all (404)

    generator = DocumentGenerator(API_INFO)

    @cache
    def document() -> dict[str, Any]:
        return generator.get_schema(app.routes)

    dashboard = Dashboard()  # the live page, its stats and the race button
    handlers = dashboard.count_refusals(exception_handlers())
    claim_routes = [v2_claims.claim_route(), *(v1.give_routes() if v1_on else [])]
    app = Starlette(
        routes=[
            *(v1.routes() if v1_on else []),
            *v2_coupons.routes(),
            *v2_claims.routes(),
            *v2_audit.routes(),
            *v2_me.routes(),
            *v2_keys.routes(),
            *v2_events.routes(),
            *v2_webhooks.routes(),
            *docs_routes(document),
            *health.routes(),
            *dashboard.routes(),
        ],
        exception_handlers=handlers,
        middleware=[
            *middleware_stack(settings, html_pages=[SWAGGER_PAGE, dashboard.page]),
            # Innermost: request ids, metrics, headers, CORS and the rate limit wrap it.
            Middleware(ClaimLane, routes=claim_routes, handlers=handlers),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.authenticator = authenticator
    app.state.keyring = keyring
    # Webhooks are delivered by serve's sender process (services/webhook_sender.py).
    app.state.webhook_policy = policy_of(settings)
    return app


def app_from_environment() -> Starlette:
    """Factory for the server's workers: settings come from the environment `serve` prepared."""
    return create_app(Settings())
