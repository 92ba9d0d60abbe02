"""The HTTP servers `serve` can run the app with: granian (the default) or uvicorn.

Both run `couponapi.app:app_from_environment` as a factory in `settings.workers` processes
that read their settings from the environment `serve` prepared. granian is the default by
measurement (benchmarks/, docs/performance.md): its HTTP parsing and socket writes run in
Rust, where uvicorn's run in the worker's Python (two write calls per response), which on a
crowd leaves the workers more CPU for the app; uvicorn stays selectable with
`serve --server uvicorn` / `COUPONAPI_SERVER=uvicorn`.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from couponapi.config import Settings

APP = "couponapi.app:app_from_environment"
SERVERS = ("granian", "uvicorn")
BACKLOG = 2048  # a crowd of 1,000 connecting at once must not overflow the accept queue


def run(settings: Settings, log_config: dict[str, Any] | None = None) -> None:
    """Serve with `settings.server` until SIGINT or SIGTERM."""
    if settings.server == "granian":
        run_granian(settings, log_config)
    else:
        run_uvicorn(settings, log_config)


def run_uvicorn(settings: Settings, log_config: dict[str, Any] | None = None) -> None:
    """Serve with uvicorn (uvloop + httptools) until SIGINT or SIGTERM."""
    import uvicorn

    uvicorn.run(
        APP,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        timeout_graceful_shutdown=10,
        proxy_headers=False,  # the app honours X-Forwarded-For from trusted proxies only
        backlog=BACKLOG,
        log_config=log_config,
    )


def run_granian(
    settings: Settings, log_config: dict[str, Any] | None = None, app: str = APP
) -> None:
    """Serve with granian (Rust HTTP, asyncio + uvloop workers) until SIGINT or SIGTERM.

    `app` names the factory the workers call (benchmarks.ceiling serves another app this way,
    with the same server settings)."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    # Workers start as fresh interpreters, not forks of this one: this process has imported
    # prometheus_client already (the CLI's imports reach couponapi.metrics), which chose its
    # in-memory store then; a forked worker would keep it and /metrics would show one
    # worker's figures. A spawned one imports it anew, under PROMETHEUS_MULTIPROC_DIR.
    multiprocessing.set_start_method("spawn", force=True)

    Granian(
        app,
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        backlog=BACKLOG,
        log_access=False,
        log_dictconfig=log_config,
        workers_kill_timeout=10,
        respawn_failed_workers=True,  # as uvicorn's supervisor does: a killed worker comes back
    ).serve()
