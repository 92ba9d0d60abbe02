"""Helpers the tests share: a real server process on a free port, and database checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import httpx

from couponapi.app import create_app
from couponapi.config import Settings

# The credentials of every test server (tests.v2_support mints user tokens with the secret).
TOKEN = "test-admin-token"
JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789"
# Webhooks may be delivered to this machine only: no test server sends anywhere else, whatever
# URL a test (or the fuzzer) registers.
LOOPBACK_HOSTS = "127.0.0.1,localhost"
CREDENTIALS_ENV = {
    "COUPONAPI_ADMIN_TOKEN": TOKEN,
    "COUPONAPI_JWT_SECRET": JWT_SECRET,
    "COUPONAPI_WEBHOOK_HOSTS": LOOPBACK_HOSTS,
}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningServer:
    """A `couponapi serve` process the test started."""

    base_url: str
    process: subprocess.Popen[bytes]


@contextmanager
def running_server(
    database_url: str, workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[RunningServer]:
    """Run `couponapi serve --workers N` against `database_url` until the block ends, with
    the tests' admin token and JWT secret unless `env` says otherwise."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "couponapi",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env={**os.environ, "DATABASE_URL": database_url, **CREDENTIALS_ENV, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(base_url, process)
        yield RunningServer(base_url=base_url, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_ready(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"server exited with {process.returncode}:\n{stderr}")
        try:
            if httpx.get(f"{base_url}/openapi.json", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not answer within 30 s")


@dataclass(frozen=True)
class LedgerState:
    """What the database says about one coupon after a run."""

    quantity_left: int
    ledger_rows: int
    distinct_users: int


async def ledger_state(pool: asyncpg.Pool, coupon_id: UUID) -> LedgerState:
    """Quantity left, v1 ledger rows and distinct users in the ledger for one coupon."""
    row = await pool.fetchrow(
        """SELECT (SELECT quantity FROM coupon WHERE id = $1) AS quantity_left,
                  count(*) AS ledger_rows, count(DISTINCT userid) AS distinct_users
             FROM coupon_given_events WHERE couponid = $1::uuid::text""",
        coupon_id,
    )
    assert row is not None
    return LedgerState(row["quantity_left"], row["ledger_rows"], row["distinct_users"])


class DefaultCredential(httpx.Auth):
    """`Authorization: Bearer <credential>` on every request that carries none of its own."""

    def __init__(self, credential: str) -> None:
        self.credential = credential

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        if "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {self.credential}"
        yield request


@asynccontextmanager
async def app_client(
    settings: Settings, client: str = "127.0.0.1", auth: str | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with `settings`, its lifespan (and pool) running, as seen from the
    address `client`; with `auth`, requests without credentials of their own carry it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(client, 5555))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            auth=DefaultCredential(auth) if auth else None,
        ) as http:
            yield http
