"""The webhook sender SIGKILLed mid-delivery: nothing is skipped.

A real `couponapi serve --workers 2` delivers the feed to a slow receiver (every answer takes
a while, so a delivery is in flight); its sender process, which holds the endpoint's lease, is
killed while one is. It had recorded nothing of that run; serve starts a new sender, which
takes the endpoint when the dead one's lease runs out and sends those events again with the
same webhook-id: every event arrives at least once, the first
arrivals are the feed in order, and a repeat only carries an id that arrived before.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import asyncpg
import httpx
import pytest

from tests.faults.helpers import children_of, cmdline, wait_until
from tests.support import running_server
from tests.v2_support import ADMIN, V2
from tests.webhook_receiver import Arrival, Receiver, read_feed

pytestmark = pytest.mark.concurrency

TIMEOUT_S = 1.0  # a delivery's limit: the lease is 4 * 1 + 5 = 9 s
ANSWER_S = 0.2  # how long the receiver takes: a delivery is in flight most of the time
CLAIMS = 12
ENV = {
    "COUPONAPI_WEBHOOK_TIMEOUT_S": str(TIMEOUT_S),
    "COUPONAPI_WEBHOOK_HOSTS": "127.0.0.1",
    "COUPONAPI_WEBHOOK_RETRY_S": ",".join(["0.5"] * 20),
}


def sender_of(server_pid: int) -> int:
    """The pid of serve's webhook sender process."""
    (pid,) = [pid for pid in children_of(server_pid) if "webhook_sender" in cmdline(pid)]
    return pid


def first_arrivals(arrivals: list[Arrival]) -> list[Arrival]:
    """Each webhook-id's first arrival, in arrival order; every repeat must carry the body
    the first one did."""
    seen: dict[str, Arrival] = {}
    for arrival in arrivals:
        first = seen.setdefault(arrival.webhook_id, arrival)
        assert first.raw == arrival.raw, "a repeat with other bytes than the first"
    return list(seen.values())


async def test_sender_killed_mid_delivery(database_url: str, pool: asyncpg.Pool) -> None:
    receiver = Receiver(delay_s=ANSWER_S)
    await receiver.start()
    try:
        with running_server(database_url, workers=2, env=ENV) as server:
            async with httpx.AsyncClient(base_url=server.base_url, headers=ADMIN) as api:
                feed = await make_events(api, receiver)
                # No request after the kill (the server was only ever asked before it).
                killed, victim = await kill_in_flight(pool, receiver, server.process.pid)

                async def caught_up() -> bool:
                    row = await pool.fetchrow("SELECT after_id, leased_by FROM webhook_endpoint")
                    return row is not None and (row["after_id"], row["leased_by"]) == (
                        feed[-1]["id"], None,
                    )  # fmt: skip

                assert await wait_until(caught_up, seconds=90), "the feed was not delivered"
                successor = sender_of(server.process.pid)  # serve started a new one
    finally:
        await receiver.stop()

    assert victim in killed
    assert successor != victim
    arrivals = receiver.arrivals
    assert all(a.verified for a in arrivals)
    assert all(a.webhook_id == f"evt_{a.body['id']}" for a in arrivals)
    firsts = first_arrivals(arrivals)
    # A new webhook-id is always the feed's next event; any other arrival repeats one seen
    # before it (a repeat's bytes are its first's: first_arrivals).
    assert [a.body for a in firsts] == feed
    repeats = [a for a in arrivals if not any(a is first for first in firsts)]
    assert repeats, "the run cut off by the kill was not sent again"
    cut_off = [a for a in arrivals if a.webhook_id == killed[victim]]
    assert len(cut_off) >= 2, "the event in flight at the kill arrived once only"


async def make_events(api: httpx.AsyncClient, receiver: Receiver) -> list[dict[str, Any]]:
    """Register the receiver, sell a coupon out; the feed once it lists every event."""
    made = await api.post(f"{V2}/webhooks", json={"url": receiver.url("/hook")})
    assert made.status_code == 201, made.text
    receiver.secrets["/hook"] = made.json()["secret"]
    coupon = await api.post(
        f"{V2}/coupons", json={"name": "kill", "type": "percent", "quantity": CLAIMS}
    )
    assert coupon.status_code == 201, coupon.text
    for n in range(CLAIMS):
        url = f"{V2}/coupons/{coupon.json()['id']}/claims"
        granted = await api.post(url, json={"user_id": f"u{n}"})
        assert granted.status_code == 201, granted.text
    feed: list[dict[str, Any]] = []

    async def listed() -> bool:
        nonlocal feed
        feed = await read_feed(api, ADMIN)
        return len(feed) >= 1 + CLAIMS + 1  # created, granted, sold out

    assert await wait_until(listed, seconds=30)
    assert len(feed) == 1 + CLAIMS + 1
    return feed


async def kill_in_flight(
    pool: asyncpg.Pool, receiver: Receiver, server_pid: int
) -> tuple[dict[int, str], int]:
    """SIGKILL the sender while its delivery is in flight; {pid: webhook-id in flight when it
    was killed} and the pid."""
    sender = sender_of(server_pid)

    async def some_arrived() -> bool:
        return len(receiver.arrivals) >= 3

    assert await wait_until(some_arrived, seconds=30)
    killed: dict[int, str] = {}

    async def killed_one_in_flight() -> bool:
        flying = receiver.in_flight()
        if len(flying) != 1:
            return False
        leased_by: Any = await pool.fetchval("SELECT leased_by FROM webhook_endpoint")
        # Still unanswered after the read: the lease read is its sender's, whose run has not
        # ended (a run ends after its answers). No await from here to the kill.
        if leased_by is None or flying[0].status is not None:
            return False
        pid = int(leased_by.split("/")[1])
        assert pid == sender, (leased_by, sender)
        os.kill(pid, signal.SIGKILL)
        killed[pid] = flying[0].webhook_id
        return True

    assert await wait_until(killed_one_in_flight, seconds=30), "no delivery seen in flight"
    (victim,) = killed
    lease = await pool.fetchval("SELECT leased_by FROM webhook_endpoint")
    assert lease is not None, "the dead run let go of its lease"
    assert lease.split("/")[1] == str(victim), lease
    return killed, victim
