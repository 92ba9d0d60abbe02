"""PostgreSQL SIGKILLed in the middle of a crowd, then started again.

While it is down every claim is answered 503 with Retry-After (not 500, not a hang); when it
is back the server recovers by itself (asyncpg drops the dead connections and opens new
ones); afterwards every acknowledged claim is in the ledger and nothing is half-written.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter

import aiohttp
import asyncpg
import pytest

from couponapi.db.embedded import EmbeddedPostgres
from tests.faults.helpers import (
    Answer,
    Crowd,
    assert_nothing_lost,
    claim,
    kill_postgres,
    new_coupon,
    record,
    wait_until,
)
from tests.support import running_server

pytestmark = pytest.mark.concurrency

ROUTES = ("v1-locking", "v1-function", "v2")
CLIENTS = 12
QUANTITY = 20_000  # >= MAX_CLAIMS: no refusal here is a sell-out, every one is a fault's
ENOUGH = 80  # acknowledged claims before the kill, and again after the restart
MAX_CLAIMS = 20_000


async def test_postgres_killed_mid_load_then_restarted(own_postgres: EmbeddedPostgres) -> None:
    url = own_postgres.info().url()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    coupons = {route: await new_coupon(pool, QUANTITY) for route in ROUTES}
    await pool.close()
    phase = "before"
    # An answer counts in a phase when its request started and ended in it.
    # "restarting": pg_ctl start -w is still waiting while claims already succeed again.
    by_phase: dict[str, list[Answer]] = {
        "before": [],
        "down": [],
        "restarting": [],
        "after": [],
        "between": [],
    }
    crowd = Crowd()
    stop = asyncio.Event()
    counter = itertools.count()
    env = {"COUPONAPI_POOL_TIMEOUT": "2"}

    with running_server(url, workers=2, env=env) as server:

        async def client(session: aiohttp.ClientSession, number: int) -> None:
            routes = itertools.cycle(ROUTES[number % 3 :] + ROUTES[: number % 3])
            while not stop.is_set() and next(counter) < MAX_CLAIMS:
                started_in = phase
                route = next(routes)
                answer = await claim(session, server.base_url, route, coupons[route], seconds=15)
                crowd.answers.append(answer)
                settled = started_in == phase and phase in by_phase
                by_phase[phase if settled else "between"].append(answer)
                if answer.status == 503:
                    await asyncio.sleep(0.05)  # a polite client backs off (Retry-After is 1 s)

        def acknowledged(name: str) -> int:
            return sum(a.status in (200, 201) for a in by_phase[name])

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CLIENTS)) as session:
            clients = [asyncio.create_task(client(session, n)) for n in range(CLIENTS)]

            async def enough_before() -> bool:
                return acknowledged("before") >= ENOUGH

            assert await wait_until(enough_before)
            phase = "killing"
            killed = await asyncio.to_thread(kill_postgres, own_postgres)
            phase = "down"
            down_at = time.monotonic()
            await asyncio.sleep(1.0)
            phase = "restarting"
            await asyncio.to_thread(own_postgres.start)

            # Polled on its own connection, as a load balancer would: the clients' session
            # keeps all its connections busy with claims.
            async with aiohttp.ClientSession() as prober:

                async def ready() -> bool:
                    async with prober.get(f"{server.base_url}/readyz") as response:
                        return response.status == 200

                assert await wait_until(ready), "the server did not recover by itself"
            recovered_after = time.monotonic() - down_at
            phase = "after"

            async def enough_after() -> bool:
                return acknowledged("restarting") + acknowledged("after") >= ENOUGH

            assert await wait_until(enough_after, seconds=60), {
                name: Counter((a.route, a.status, a.error, a.detail) for a in answers)
                for name, answers in by_phase.items()
            }
            stop.set()
            await asyncio.gather(*clients)

    statuses = crowd.statuses()
    server_log = server.process.stderr.read().decode() if server.process.stderr else ""
    assert 500 not in statuses, [line for line in server_log.splitlines() if "unexpected" in line]
    assert "timeout" not in statuses, "a request hung"
    down = by_phase["down"]
    assert down, "no claim was tried while PostgreSQL was down"
    assert {a.status for a in down} == {503}
    assert all(a.retry_after == "1" for a in down)
    # Pooled connections that died with the server are found one by one when next used: a
    # request (with group commit, a batch) that draws one right after /readyz turned green may
    # still get 503 + Retry-After. Never anything else, and the grants above came back.
    back = by_phase["restarting"] + by_phase["after"]
    assert {a.status for a in back} <= {200, 201, 503}
    assert all(a.retry_after == "1" for a in crowd.answers if a.status == 503)

    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        lost = 0
        for route in ROUTES:
            state = await assert_nothing_lost(pool, coupons[route], crowd, route)
            lost += len({a.user for a in crowd.acknowledged(route)} - state.users)
    finally:
        await pool.close()
    record(
        "postgres_sigkill",
        {
            "processes_killed": killed,
            "claims_sent": len(crowd.answers),
            "acknowledged": sum(len(crowd.acknowledged(r)) for r in ROUTES),
            "answered_503_while_down": len(down),
            "statuses": {str(k): v for k, v in sorted(Counter(statuses).items(), key=str)},
            "seconds_down_until_ready": round(recovered_after, 2),
            "acknowledged_but_lost": lost,
        },
    )
