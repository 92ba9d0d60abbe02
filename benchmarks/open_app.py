"""The service with authentication taken out: the yardstick the identity runs compare to.

Every request arrives already authenticated as the admin (the principal an authenticated
request leaves in its scope, api/auth.py), so a v2 claim runs the very code `serve` runs,
minus verifying a credential: the unauthenticated claim of before identity, measured in the
same run as the authenticated ones (benchmarks.run, "identity"). Benchmark-only: it opens
everything to everyone. `python -m benchmarks.open_app --port P --workers N --server granian`.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from starlette.types import ASGIApp, Receive, Scope, Send

from couponapi.api.auth import PRINCIPAL
from couponapi.app import app_from_environment
from couponapi.config import Settings
from couponapi.identity.principal import ADMIN_TOKEN
from couponapi.servers import run_granian


def app() -> ASGIApp:
    """The factory granian's workers call."""
    inner = app_from_environment()

    async def open_to_all(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[PRINCIPAL] = ADMIN_TOKEN
        await inner(scope, receive, send)

    return open_to_all


def main() -> None:
    """Serve `app` as `couponapi serve --server granian` serves the service."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.open_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--server", choices=["granian"], default="granian")
    options = parser.parse_args()
    # As `serve` does: each worker keeps its metrics in files here, so they cost the same.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="couponapi-open-"))
    run_granian(Settings(port=options.port, workers=options.workers), app="benchmarks.open_app:app")


if __name__ == "__main__":
    main()
