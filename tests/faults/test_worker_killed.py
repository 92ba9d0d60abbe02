"""A server worker SIGKILLed in the middle of a crowd: the other carries on, nothing is lost.

The server's supervisor (uvicorn's or granian's) starts a new worker in its place; what
matters here is that requests keep being answered and that the ledger holds every
acknowledged claim. The requests the dead worker had in flight get a broken connection (not
acknowledged: the client retries).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from collections import Counter

import aiohttp
import asyncpg
import pytest

from tests.faults.helpers import (
    Answer,
    Crowd,
    assert_nothing_lost,
    children_of,
    claim,
    cmdline,
    new_coupon,
    record,
    wait_until,
)
from tests.support import running_server

pytestmark = pytest.mark.concurrency

ROUTES = ("v1-locking", "v1-function", "v2")
CLIENTS = 12
QUANTITY = 5_000
ENOUGH = 60
MAX_CLAIMS = 3_000


def workers(server_pid: int) -> list[int]:
    """The server's worker processes, for uvicorn (spawned) and granian (forked) alike: not
    multiprocessing's resource tracker, nor serve's webhook sender."""
    return [
        pid
        for pid in children_of(server_pid)
        if not any(other in cmdline(pid) for other in ("resource_tracker", "webhook_sender"))
    ]


async def test_worker_killed_mid_load(database_url: str, pool: asyncpg.Pool) -> None:
    coupons = {route: await new_coupon(pool, QUANTITY) for route in ROUTES}
    crowd = Crowd()
    after: list[Answer] = []
    killed_yet = False
    stop = asyncio.Event()
    counter = itertools.count()

    with running_server(database_url, workers=2) as server:
        before = workers(server.process.pid)
        assert len(before) == 2

        async def client(session: aiohttp.ClientSession, number: int) -> None:
            routes = itertools.cycle(ROUTES[number % 3 :] + ROUTES[: number % 3])
            while not stop.is_set() and next(counter) < MAX_CLAIMS:
                started_after = killed_yet
                route = next(routes)
                answer = await claim(session, server.base_url, route, coupons[route], seconds=15)
                crowd.answers.append(answer)
                if started_after:
                    after.append(answer)

        connector = aiohttp.TCPConnector(limit=CLIENTS, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            clients = [asyncio.create_task(client(session, n)) for n in range(CLIENTS)]

            async def acknowledged_before() -> bool:
                return len(crowd.answers) >= ENOUGH

            assert await wait_until(acknowledged_before)
            os.kill(before[0], signal.SIGKILL)
            killed_yet = True

            async def served_after() -> bool:
                return sum(a.status in (200, 201) for a in after) >= ENOUGH

            assert await wait_until(served_after), Counter((a.status, a.error) for a in after)
            stop.set()
            await asyncio.gather(*clients)

        async def replaced_yet() -> bool:  # informational: the supervisor restarts it
            return any(pid not in before for pid in workers(server.process.pid))

        replaced = await wait_until(replaced_yet, seconds=10)

    statuses = crowd.statuses()
    assert 500 not in statuses
    assert "timeout" not in statuses, "a request hung"
    broken = sum(1 for a in crowd.answers if a.status is None)
    lost = 0
    for route in ROUTES:
        state = await assert_nothing_lost(pool, coupons[route], crowd, route)
        lost += len({a.user for a in crowd.acknowledged(route)} - state.users)
    record(
        "worker_sigkill",
        {
            "claims_sent": len(crowd.answers),
            "acknowledged": sum(len(crowd.acknowledged(r)) for r in ROUTES),
            "broken_connections": broken,
            "answered_after_kill": len(after),
            "worker_started_in_its_place_within_10_s": replaced,
            "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
            "acknowledged_but_lost": lost,
        },
    )
