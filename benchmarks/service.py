"""What a benchmark drives: a fresh database on the private PostgreSQL, and `couponapi serve`."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import asyncpg

from couponapi.config import Settings
from couponapi.db.embedded import EmbeddedPostgres
from couponapi.db.migrate import ensure_database, migrate_url

BENCH_ADMIN_TOKEN = "benchmark-admin-token-not-secret"  # noqa: S105 (loopback only)
BENCH_JWT_SECRET = "benchmark-jwt-secret-not-secret-0123456789"  # noqa: S105 (loopback only)


@contextmanager
def fresh_database(keep: bool = False) -> Iterator[str]:
    """A new, migrated database on the private PostgreSQL (started if needed, and then
    stopped again); dropped afterwards unless `keep`."""
    server = EmbeddedPostgres(Settings().data_dir)
    started = server.start()
    info = server.info()
    name = f"bench_{time.strftime('%Y%m%d_%H%M%S')}_{uuid4().hex[:6]}"
    url = info.url(name)

    async def create() -> None:
        await ensure_database(url)
        await migrate_url(url)

    async def drop() -> None:
        admin = await asyncpg.connect(info.url("postgres"))
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()

    asyncio.run(create())
    try:
        yield url
    finally:
        if not keep:
            asyncio.run(drop())
        if started:
            server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_service(
    url: str,
    server: str,
    workers: int,
    settings: dict[str, str] | None = None,
    program: str = "couponapi serve",
) -> Iterator[str]:
    """`couponapi serve --port P --workers N --server S` on a free port, with extra
    COUPONAPI_* `settings` in its environment (an empty value removes one); yields its base
    URL. User tokens are HS256 with BENCH_JWT_SECRET unless `settings` say otherwise.
    `program` may name another module that takes these options (`benchmarks.ceiling_app`)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "COUPONAPI_ADMIN_TOKEN": BENCH_ADMIN_TOKEN}
    env["COUPONAPI_JWT_SECRET"] = BENCH_JWT_SECRET
    env |= settings or {}
    env = {name: value for name, value in env.items() if value != ""}
    command = [sys.executable, "-m", *program.split(), "--port", str(port)]
    command += ["--workers", str(workers), "--server", server]
    log = tempfile.NamedTemporaryFile(prefix="couponapi-bench-", suffix=".log", delete=False)  # noqa: SIM115 (lives as long as the server)
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                tail = Path(log.name).read_text()[-3000:]
                raise RuntimeError(f"{server} exited with {process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{base}/openapi.json", timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server} did not answer within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)


def serve_pid(base_url: str) -> int:
    """The pid of the process `running_service` started to answer at `base_url` (its
    workers are its children)."""
    port = base_url.rsplit(":", 1)[1]
    found = subprocess.run(
        ["pgrep", "-f", f" --port {port} --workers "], capture_output=True, text=True,
        check=True,
    ).stdout.split()  # fmt: skip
    return int(found[0])
