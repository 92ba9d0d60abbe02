"""`serve` heals its private PostgreSQL: the postmaster alone SIGKILLed under a crowd (as the
OOM killer picks one process), and the test does nothing else. The supervisor starts it again,
claims answer again within seconds, and every acknowledged claim is in the database.

And the other half of ownership: a server that was already running when `serve` started
(`couponapi db start`) is not serve's, so serve leaves it running when it exits.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import asyncpg
import httpx
import pytest

from couponapi.db.embedded import EmbeddedPostgres
from tests.faults.helpers import Answer, Crowd, assert_nothing_lost, claim, new_coupon, record
from tests.faults.helpers import wait_until as wait_for
from tests.faults.test_sigterm import wait_for_http
from tests.support import CREDENTIALS_ENV, free_port

pytestmark = pytest.mark.concurrency

ROUTES = ("v2", "v1-function")
CLIENTS = 8
ENOUGH = 60  # acknowledged claims before the kill, and again after it
MAX_CLAIMS = 20_000  # the crowd's bound, whatever happens
HEALED_WITHIN = 30.0  # the promise; measured is a few seconds


@contextmanager
def serve(data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`couponapi serve` on the private PostgreSQL in `data_dir`; its log file."""
    port, log = free_port(), data_dir / "serve.log"
    env = {
        **os.environ,
        **CREDENTIALS_ENV,
        "COUPONAPI_DATA_DIR": str(data_dir),
        "DATABASE_URL": "",
        "COUPONAPI_POOL_TIMEOUT": "2",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "couponapi", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", process, log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.pgdata / "postmaster.pid").read_text().split()[0])


async def test_a_killed_postmaster_is_restarted_and_nothing_is_lost() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="couponapi-supervised-"))
    postgres = EmbeddedPostgres(data_dir)
    crowd, after = Crowd(), list[Answer]()
    killed_at: float | None = None
    stop, counter = asyncio.Event(), itertools.count()
    try:
        with serve(data_dir) as (base_url, process, log):
            await wait_for_http(f"{base_url}/readyz", process)
            pool = await asyncpg.create_pool(postgres.info().url(), min_size=1, max_size=2)
            coupons = {route: await new_coupon(pool, MAX_CLAIMS) for route in ROUTES}
            await pool.close()

            async def client(session: aiohttp.ClientSession, number: int) -> None:
                routes = itertools.cycle(ROUTES[number % 2 :] + ROUTES[: number % 2])
                while not stop.is_set() and next(counter) < MAX_CLAIMS:
                    started_after = killed_at is not None
                    route = next(routes)
                    answer = await claim(session, base_url, route, coupons[route], seconds=15)
                    crowd.answers.append(answer)
                    if started_after:
                        after.append(answer)
                    if answer.status not in (200, 201):
                        await asyncio.sleep(0.05)  # as a client honouring Retry-After would

            connector = aiohttp.TCPConnector(limit=CLIENTS, force_close=True)
            async with aiohttp.ClientSession(connector=connector) as session:
                clients = [asyncio.create_task(client(session, n)) for n in range(CLIENTS)]

                async def enough_before() -> bool:
                    return len(crowd.acknowledged("v2")) >= ENOUGH

                assert await wait_for(enough_before)
                os.kill(postmaster_pid(postgres), signal.SIGKILL)  # the postmaster only
                killed_at = time.monotonic()
                async with httpx.AsyncClient() as http:

                    async def not_ready() -> bool:
                        return (await http.get(f"{base_url}/readyz", timeout=2)).status_code == 503

                    saw_503 = await wait_for(not_ready, seconds=5)

                    async def healed() -> bool:
                        return sum(a.status in (200, 201) for a in after) >= ENOUGH

                    assert await wait_for(healed, HEALED_WITHIN + 5), crowd.statuses()
                    first_ok = next(i for i, a in enumerate(after) if a.status in (200, 201))
                    healed_after = time.monotonic() - killed_at
                    ready = (await http.get(f"{base_url}/readyz")).json()
                    metrics = (await http.get(f"{base_url}/metrics")).text
                stop.set()
                await asyncio.gather(*clients)
            said = log.read_text()
        assert process.returncode == 0
        assert saw_503, "/readyz did not answer 503 while PostgreSQL was down"
        assert ready == {"status": "ready", "missing_migrations": [], "error": None}
        assert healed_after < HEALED_WITHIN
        assert "couponapi_postgres_restarts_total 1\n" in metrics
        assert '"event":"postgres_restarted"' in said, said[-3000:]
        assert 500 not in crowd.statuses()
        assert not postgres.is_running(), "serve started it, so serve stops it"
        postgres.start()
        pool = await asyncpg.create_pool(postgres.info().url(), min_size=1, max_size=2)
        try:
            for route in ROUTES:
                await assert_nothing_lost(pool, coupons[route], crowd, route)
        finally:
            await pool.close()
        record(
            "postgres_postmaster_sigkill_supervised",
            {
                "claims_sent": len(crowd.answers),
                "acknowledged": sum(len(crowd.acknowledged(r)) for r in ROUTES),
                "refused_after_kill_before_healed": first_ok,
                "seconds_until_claims_answered_again": round(healed_after, 2),
                "acknowledged_but_lost": 0,
            },
        )
    finally:
        postgres.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_serve_leaves_a_server_it_did_not_start_running() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="couponapi-notours-"))
    postgres = EmbeddedPostgres(data_dir)
    try:
        assert postgres.start()  # as `couponapi db start` does
        with serve(data_dir) as (base_url, process, _):
            await wait_for_http(f"{base_url}/readyz", process)
            assert not _supervises(postgres.data_dir)
        assert process.returncode == 0
        assert postgres.is_running(), "serve stopped a server it had not started"
    finally:
        postgres.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _supervises(data_dir: Path) -> bool:
    """Whether some supervisor process watches `data_dir`."""
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"couponapi.db.supervisor" in args and str(data_dir).encode() in args:
            return True
    return False
