"""The HTTP servers `serve` can run the app with: uvicorn (uvloop + httptools) or granian.

Both run `couponapi.app:app_from_environment` as a factory in `settings.workers` processes
that read their settings from the environment `serve` prepared. Which one is the default is
decided by measurement (benchmarks/, README "Performance"); the other stays selectable with
`serve --server` / `COUPONAPI_SERVER`.
"""

from __future__ import annotations

from typing import Any

from couponapi.config import Settings

APP = "couponapi.app:app_from_environment"
SERVERS = ("uvicorn", "granian")
BACKLOG = 2048  # a crowd of 1,000 connecting at once must not overflow the accept queue


def run_granian(settings: Settings, log_config: dict[str, Any] | None = None) -> None:
    """Serve with granian (Rust HTTP, asyncio + uvloop workers) until SIGINT or SIGTERM."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    Granian(
        APP,
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
