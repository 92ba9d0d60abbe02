"""What an endpoint takes from the app: its pool and its settings (create_app puts both there)."""

from __future__ import annotations

import asyncpg
from starlette.requests import Request

from couponapi.config import Settings


def pool_of(request: Request) -> asyncpg.Pool:
    """The app's pool (the lifespan opened it)."""
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def settings_of(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings
