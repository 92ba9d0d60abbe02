"""The event feed under real concurrency: one reader polling GET /api/v2/events from its
cursor sees every event of the ledger exactly once, in the feed's order, however the writers'
transactions interleave.

A 2-process server (each worker running its hold sweeper) serves writer processes
(tests.concurrency.feed_writer) that claim, release, redeem, give (v1) and PATCH several
coupons, two of them with one-second holds that expire meanwhile. Alongside, transactions are
held open on purpose on a direct connection: each writes (so it has its xid), waits until a
transaction that began after it has committed, then commits, or rolls back. Polling
`id > last seen` would skip the held events; the feed must list them, and no rolled-back one.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import asyncpg
import msgspec
import pytest

from couponapi.domain.events import EVENT_TYPES
from tests.support import RunningServer, ledger_state
from tests.v2_support import ADMIN, V2, claim_state

pytestmark = pytest.mark.concurrency

WRITERS = 3  # processes
OPS = 250  # operations per writer process
READ_S = 120.0  # the reader's bound, end to end
MAX_POLLS = 20_000  # and in polls
HELD_ROUNDS = 8
LAPSING = 3  # holds that the test itself lets run out
ALLOWED = {
    ("claim", 201, ""), ("claim", 409, "sold-out"), ("claim", 409, "limit-reached"),
    ("release", 200, ""), ("release", 409, "expired"),
    ("redeem", 200, ""), ("redeem", 409, "expired"),
    ("patch", 200, ""), ("patch", 409, "quantity-below-claimed"),
    ("give", 200, ""), ("give", 409, ""),  # v1's refusal is no problem+json
}  # fmt: skip
LEDGER_ORDER = "SELECT id FROM event_feed ORDER BY xid, id"


async def new_coupon(
    http: aiohttp.ClientSession, server: RunningServer, quantity: int, **fields: Any
) -> UUID:
    body = {"name": "feed", "type": "percent", "quantity": quantity, **fields}
    async with http.post(f"{server.base_url}{V2}/coupons", json=body, headers=ADMIN) as made:
        assert made.status == 201, await made.text()
        return UUID((await made.json())["id"])


@dataclass
class Reader:
    """One reader of the feed: what it was given, in order, and where it stands."""

    http: aiohttp.ClientSession
    url: str
    events: list[dict[str, Any]] = field(default_factory=list)
    cursor: str = ""
    polls: int = 0

    async def poll(self) -> int:
        """One page from the cursor; how many events it had."""
        self.polls += 1
        params = {"after": self.cursor, "limit": "100"}
        async with self.http.get(self.url, params=params, headers=ADMIN) as answer:
            assert answer.status == 200, await answer.text()
            page = await answer.json()
        items: list[dict[str, Any]] = page["items"]
        if items:  # the position moves forward only, to the last event given
            assert page["next_cursor"].endswith(f"-{items[-1]['id']}")
            assert position(page["next_cursor"]) > position(self.cursor)
        else:
            assert page["next_cursor"] == self.cursor
        self.events += items
        self.cursor = page["next_cursor"]
        return len(items)

    def bounded(self, deadline: float) -> bool:
        return time.monotonic() < deadline and self.polls < MAX_POLLS

    async def follow(self, stop: asyncio.Event, deadline: float) -> None:
        """Poll until `stop` is set (bounded), pausing when nothing is new."""
        while not stop.is_set() and self.bounded(deadline):
            if not await self.poll():
                await asyncio.sleep(0.01)

    async def drain(self, expected: int, deadline: float) -> None:
        """Poll until `expected` events were read in all (bounded)."""
        while len(self.events) < expected and self.bounded(deadline):
            if not await self.poll():
                await asyncio.sleep(0.02)


def position(cursor: str) -> tuple[int, int]:
    """A cursor as (xid, id); the beginning is (0, 0)."""
    xid, _, event_id = cursor.partition("-")
    return (int(xid), int(event_id)) if cursor else (0, 0)


async def write_in_processes(server: RunningServer, coupons: list[UUID]) -> list[Any]:
    """Every writer process at once; the outcomes of all their operations."""

    async def run(seed: int) -> list[Any]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.concurrency.feed_writer", server.base_url, str(seed),
            str(OPS), *map(str, coupons),
            stdout=asyncio.subprocess.PIPE, env={**os.environ},
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), timeout=READ_S)
        assert process.returncode == 0
        outcomes: list[Any] = msgspec.json.decode(out)
        return outcomes

    done = await asyncio.gather(*(run(seed) for seed in range(1, WRITERS + 1)))
    return [outcome for outcomes in done for outcome in outcomes]


@dataclass
class Held:
    """A transaction held open on purpose: its xid, whether it committed, and how many
    events of later transactions had committed before it ended."""

    xid: int
    committed: bool
    overtaken: int


async def hold_open(
    pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    server: RunningServer,
    side: UUID,
    busy: UUID,
) -> list[Held]:
    """HELD_ROUNDS transactions, one after another: each writes ledger rows (a claim of the
    side coupon, a change of the side or a busy coupon, a new coupon), waits until a coupon
    created through the server (a transaction that began later) has committed, and a moment
    more while the writers run, then commits or (every fourth) rolls back."""
    held: list[Held] = []
    for n in range(HELD_ROUNDS):
        async with pool.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            if n % 3 == 0:  # the side coupon has room for every held claim: always granted
                await connection.fetch(
                    "SELECT * FROM claim_coupons_v2($1, ARRAY[$2], ARRAY[$3], ARRAY[NULL::text],"
                    " ARRAY[NULL::text])",
                    side, f"held-{n}", f"HELD-{uuid4().hex[:12].upper()}",
                )  # fmt: skip
            elif n % 3 == 1:  # on a busy coupon, its claims queue behind this row lock
                await connection.execute(
                    "UPDATE coupon SET per_user_limit = per_user_limit + 1 WHERE id = $1",
                    busy if n % 2 else side,
                )
            else:
                await connection.execute(
                    "INSERT INTO coupon (id, name, type, quantity) VALUES ($1, 'held', 'x', 3)",
                    uuid4(),
                )
            xid = int(await connection.fetchval("SELECT pg_current_xact_id()::text"))
            await new_coupon(http, server, 1)  # began after us, commits before us
            await asyncio.sleep(0.3)
            overtaken = await pool.fetchval(
                "SELECT count(*) FROM event_feed WHERE xid > $1::text::xid8", str(xid)
            )
            commit = n % 4 != 3
            await (transaction.commit() if commit else transaction.rollback())
        held.append(Held(xid, commit, overtaken))
    return held


async def quiet(pool: asyncpg.Pool) -> None:
    """Until every hold has ended and been marked by a sweeper (at most 30 s): nothing writes
    to the ledger after that."""
    for _ in range(150):
        live = await pool.fetchval(
            "SELECT count(*) FROM claim WHERE status = 'claimed' AND expires_at IS NOT NULL"
        )
        if live == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{live} holds still live or not marked after 30 s")


async def test_one_reader_sees_every_event_once_in_order(
    server: RunningServer, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    busy = [
        await new_coupon(http, server, 25, per_user_limit=2),
        await new_coupon(http, server, 40, per_user_limit=3),
        await new_coupon(http, server, 15, per_user_limit=2, hold_seconds=1),
        await new_coupon(http, server, 30, per_user_limit=2, hold_seconds=1),
    ]
    side = await new_coupon(http, server, 100, per_user_limit=100)  # the held claims' coupon
    # Whatever the writers' luck, some holds run out and a coupon sells out: this one's
    # LAPSING units are all claimed here (sold out), and their holds lapse during the run.
    lapsing = await new_coupon(http, server, LAPSING, hold_seconds=1)
    for n in range(LAPSING):
        body = {"user_id": f"lapsing-{n}"}
        url = f"{server.base_url}{V2}/coupons/{lapsing}/claims"
        async with http.post(url, json=body, headers=ADMIN) as granted:
            assert granted.status == 201, await granted.text()
    reader = Reader(http, f"{server.base_url}{V2}/events")
    deadline = time.monotonic() + READ_S
    stop = asyncio.Event()
    following = asyncio.create_task(reader.follow(stop, deadline))
    outcomes, held = await asyncio.gather(
        write_in_processes(server, busy), hold_open(pool, http, server, side, busy[0])
    )
    await quiet(pool)
    stop.set()
    await following
    ledger = [r["id"] for r in await pool.fetch(LEDGER_ORDER)]
    await reader.drain(len(ledger), deadline)
    assert await reader.poll() == 0  # and nothing more

    # Exactly the ledger, each event once, in (xid, id) order.
    seen = [e["id"] for e in reader.events]
    assert len(seen) == len(set(seen))
    union = (
        "SELECT id FROM claim_event UNION SELECT id FROM coupon_event"
        " UNION SELECT id FROM coupon_given_events"
    )
    assert set(seen) == {r["id"] for r in await pool.fetch(union)}
    assert seen == ledger
    assert reader.polls > 10  # it really followed the writers, page after page

    # Every held transaction was overtaken by a later one; the committed ones are listed,
    # the rolled-back ones never.
    assert all(h.overtaken > 0 for h in held)
    by_xid = {
        int(r["xid"]): r["n"]
        for r in await pool.fetch(
            "SELECT xid::text AS xid, count(*) AS n FROM event_feed GROUP BY 1"
        )
    }
    assert [by_xid.get(h.xid, 0) > 0 for h in held] == [h.committed for h in held]
    assert sum(not h.committed for h in held) == HELD_ROUNDS // 4

    # What the writers were answered, and the ledger, agree with the feed.
    answered = Counter((op, status, slug) for op, status, slug in outcomes)
    assert set(answered) <= ALLOWED
    assert sum(answered.values()) == WRITERS * OPS
    types = Counter(e["type"] for e in reader.events)
    assert set(types) == set(EVENT_TYPES)
    in_ledger = Counter(
        {
            r["type"]: r["n"]
            for r in await pool.fetch("SELECT type, count(*) AS n FROM event_feed GROUP BY type")
        }
    )
    assert types == in_ledger
    held_grants = sum(1 for n, h in enumerate(held) if n % 3 == 0 and h.committed)
    assert held_grants == await pool.fetchval(
        "SELECT count(*) FROM claim WHERE user_id LIKE 'held-%'"
    )
    assert types["claim.granted"] == answered["claim", 201, ""] + held_grants + LAPSING
    assert types["claim.expired"] >= LAPSING
    assert types["coupon.sold_out"] >= 1
    assert types["claim.released"] == answered["release", 200, ""]
    assert types["claim.redeemed"] == answered["redeem", 200, ""]
    assert types["coupon.given"] == answered["give", 200, ""]
    # Each claim: granted first, then at most one end, in the feed's order.
    story: dict[str, list[str]] = {}
    for event in reader.events:
        if event["type"].startswith("claim."):
            story.setdefault(event["data"]["id"], []).append(event["type"])
    ends = {"claim.released", "claim.redeemed", "claim.expired"}
    assert all(s[0] == "claim.granted" and len(s) <= 2 for s in story.values())
    assert all(set(s[1:]) <= ends for s in story.values())

    # The books balance on every coupon: what is consumed (total - remaining) is the live
    # claims and v1's gives, and every grant's ledger row is live, released or expired.
    for coupon_id in [r["id"] for r in await pool.fetch("SELECT id FROM coupon")]:
        state = await claim_state(pool, coupon_id)
        given = await ledger_state(pool, coupon_id)
        assert state.total - state.remaining == state.live_claims + given.ledger_rows
        assert state.ledger.get("granted", 0) == state.live_claims + state.released + state.expired
        assert (state.ledger.get("released", 0), state.ledger.get("redeemed", 0)) == (
            state.released, state.redeemed,
        )  # fmt: skip
        assert state.ledger.get("expired", 0) == state.expired
