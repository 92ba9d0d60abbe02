"""SIGTERM to `couponapi serve`: it stops taking requests, finishes those in flight, exits 0,
and the private PostgreSQL it started shuts down cleanly (its log says so)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import asyncpg
import httpx
import pytest

from couponapi.db.embedded import EmbeddedPostgres
from tests.faults.helpers import Crowd, assert_nothing_lost, claim, new_coupon, record
from tests.support import free_port

pytestmark = pytest.mark.concurrency

IN_FLIGHT = 10


async def wait_for_http(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            assert process.poll() is None, "serve exited"
            try:
                if (await http.get(url, timeout=1)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("serve did not become ready")


async def test_sigterm_drains_and_stops_postgres_cleanly() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="couponapi-sigterm-"))
    log = data_dir / "serve.log"
    port = free_port()
    env = {**os.environ, "COUPONAPI_DATA_DIR": str(data_dir), "DATABASE_URL": ""}
    with log.open("wb") as output:
        serve = subprocess.Popen(  # noqa: ASYNC220 (started once, not awaited)
            [sys.executable, "-m", "couponapi", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    postgres = EmbeddedPostgres(data_dir)
    try:
        await wait_for_http(f"{base_url}/readyz", serve)
        pool = await asyncpg.create_pool(postgres.info().url(), min_size=1, max_size=2)
        coupon_id = await new_coupon(pool, 100)
        crowd = Crowd()
        async with aiohttp.ClientSession() as session:
            async with pool.acquire() as lock:
                transaction = lock.transaction()
                await transaction.start()
                # The claims wait for this lock: they are in flight when SIGTERM comes.
                await lock.execute("SELECT 1 FROM coupon WHERE id = $1 FOR UPDATE", coupon_id)
                in_flight = [
                    asyncio.create_task(claim(session, base_url, "v1-function", coupon_id, 20))
                    for _ in range(IN_FLIGHT)
                ]
                await asyncio.sleep(0.3)
                serve.send_signal(signal.SIGTERM)
                # Under load the supervisor relays SIGTERM to its workers late: wait until
                # both say they are shutting down (in uvicorn's or granian's words), then try
                # to get in.
                for _ in range(200):
                    said = log.read_text()
                    if said.count("Shutting down") + said.count("Stopping worker-") >= 2:
                        break
                    await asyncio.sleep(0.05)
                # Not served: refused, or (several workers: the supervisor still holds the
                # listening socket until it exits) left unanswered until it closes.
                late = await claim(session, base_url, "v1-function", coupon_id, 0.3)
                await transaction.rollback()
            crowd.answers = list(await asyncio.gather(*in_flight))
        code = await asyncio.to_thread(serve.wait, 30)
        assert code == 0
        assert [a.status for a in crowd.answers] == [200] * IN_FLIGHT, (
            crowd.statuses(),
            log.read_text()[-3000:],
        )
        assert late.status is None, "a request was taken after SIGTERM"
        assert not postgres.is_running()
        server_log = postgres.log_file.read_text()
        assert "received fast shutdown request" in server_log
        assert server_log.rstrip().endswith("database system is shut down")
        # Started again, it finds a clean shutdown (no crash recovery) and every grant.
        postgres.start()
        assert (
            "database system was shut down at" in postgres.log_file.read_text()[len(server_log) :]
        )
        state = await assert_nothing_lost(pool, coupon_id, crowd, "v1-function")
        assert state.ledger_rows == IN_FLIGHT
        await pool.close()
        record(
            "sigterm",
            {
                "claims_in_flight_at_sigterm": IN_FLIGHT,
                "finished_with_200": IN_FLIGHT,
                "request_after_sigterm": late.error,
                "exit_code": code,
                "postgres_log": "fast shutdown request ... database system is shut down",
            },
        )
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        postgres.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
