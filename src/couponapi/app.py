"""The ASGI application: built by create_app(settings); its lifespan owns the pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

from starlette.applications import Starlette

from couponapi.api import v1
from couponapi.api.errors import exception_handlers
from couponapi.api.openapi import DocumentGenerator, docs_routes
from couponapi.config import Settings
from couponapi.db.pool import create_pool

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

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.pool = await create_pool(database_url, settings)
        try:
            yield
        finally:
            await app.state.pool.close()

    generator = DocumentGenerator(API_INFO)

    @cache
    def document() -> dict[str, Any]:
        return generator.get_schema(app.routes)

    app = Starlette(
        routes=[*v1.routes(), *docs_routes(document)],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


def app_from_environment() -> Starlette:
    """Factory for uvicorn workers: settings come from the environment `serve` prepared."""
    return create_app(Settings())
