"""What the fault tests share: a crowd that records every answer, PostgreSQL killed for real,
the ledger checks every fault test ends with, and the run's figures for the README."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID, uuid4

import aiohttp
import asyncpg

from couponapi.db.embedded import EmbeddedPostgres
from tests.v2_support import ADMIN

V1 = "/coupon/api/v1"
V2 = "/api/v2"
SUMMARY = Path(tempfile.gettempdir()) / "couponapi-fault-summary.json"


@dataclass
class Answer:
    """One claim as the client saw it: a status, or the transport error instead."""

    route: str
    user: str
    key: str | None
    status: int | None
    retry_after: str | None = None
    error: str | None = None
    claim_id: str | None = None
    detail: str | None = None  # an error's message, for the failure reports


@dataclass
class Crowd:
    """Claims sent in parallel, each recorded."""

    answers: list[Answer] = field(default_factory=list)

    def statuses(self) -> Counter[int | str]:
        return Counter(a.status if a.status is not None else a.error or "?" for a in self.answers)

    def acknowledged(self, route: str) -> list[Answer]:
        return [a for a in self.answers if a.route == route and a.status in (200, 201)]


async def claim(
    session: aiohttp.ClientSession,
    base_url: str,
    route: str,
    coupon_id: UUID,
    seconds: float = 15.0,
    key: str | None = None,
    user: str | None = None,
) -> Answer:
    """One claim on `route` ("v1-locking", "v1-function" or "v2"), recorded whatever happens."""
    user = user or f"u-{uuid4().hex[:12]}"
    if route == "v2":
        url = f"{base_url}{V2}/coupons/{coupon_id}/claims"
        headers = {"Idempotency-Key": key, **ADMIN} if key else ADMIN
        body: dict[str, str] | None = {"user_id": user}
    else:
        path = "give-transaction" if route == "v1-locking" else "give-transaction-pgfunction"
        url = f"{base_url}{V1}/{path}/{coupon_id}"
        headers, body = {"X-User-Id": user}, None
    try:
        async with session.post(
            url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=seconds)
        ) as response:
            body = await response.json(content_type=None)
            claim_id = body.get("id") if route == "v2" and response.status == 201 else None
            detail = (
                None if response.status < 400 else body.get("errorDescription", body.get("detail"))
            )
            return Answer(
                route, user, key, response.status, response.headers.get("Retry-After"),
                claim_id=claim_id, detail=detail,
            )  # fmt: skip
    except TimeoutError:
        return Answer(route, user, key, None, error="timeout")
    except aiohttp.ClientError as error:
        return Answer(route, user, key, None, error=type(error).__name__)


async def new_coupon(pool: asyncpg.Pool, quantity: int) -> UUID:
    coupon_id = uuid4()
    await pool.execute(
        "INSERT INTO coupon (id, name, type, quantity) VALUES ($1, 'fault', 'percent', $2)",
        coupon_id,
        quantity,
    )
    return coupon_id


@dataclass(frozen=True)
class Books:
    """What the database holds for one coupon, from the ledger of its route's API."""

    quantity: int
    left: int
    ledger_rows: int
    distinct_users: int
    users: frozenset[str]
    claim_ids: frozenset[str]


async def books(pool: asyncpg.Pool, coupon_id: UUID, route: str) -> Books:
    """The coupon's books: quantities, and who is in the ledger of `route`'s API."""
    row = await pool.fetchrow(
        "SELECT total_quantity, quantity FROM coupon WHERE id = $1", coupon_id
    )
    assert row is not None
    if route == "v2":
        rows = await pool.fetch(
            "SELECT id::text AS id, user_id FROM claim WHERE coupon_id = $1", coupon_id
        )
        users = [r["user_id"] for r in rows]
        ids = frozenset(r["id"] for r in rows)
    else:
        rows = await pool.fetch(
            "SELECT userid FROM coupon_given_events WHERE couponid = $1::uuid::text", coupon_id
        )
        users, ids = [r["userid"] for r in rows], frozenset()
    return Books(
        row["total_quantity"], row["quantity"], len(users), len(set(users)), frozenset(users), ids
    )


async def assert_nothing_lost(
    pool: asyncpg.Pool, coupon_id: UUID, crowd: Crowd, route: str
) -> Books:
    """The check every fault test ends with: every acknowledged claim is in the ledger, nothing
    is granted twice or beyond the quantity, and nothing is half-written (what the quantity
    lost is exactly what the ledger holds)."""
    state = await books(pool, coupon_id, route)
    acknowledged = crowd.acknowledged(route)
    assert {a.user for a in acknowledged} <= state.users, "an acknowledged claim is missing"
    if route == "v2":
        assert {a.claim_id for a in acknowledged} <= state.claim_ids
    assert state.ledger_rows == state.quantity - state.left, "half-written: books disagree"
    assert state.ledger_rows <= state.quantity, "granted beyond the quantity"
    assert state.distinct_users == state.ledger_rows, "one user granted twice"
    return state


def record(name: str, figures: dict[str, object]) -> None:
    """Add one test's figures to the run's summary (the README's Reliability section quotes it)."""
    summary = json.loads(SUMMARY.read_text()) if SUMMARY.exists() else {}
    summary[name] = figures
    SUMMARY.write_text(json.dumps(summary, indent=2, sort_keys=True))
    print(f"\n{name}: {json.dumps(figures, sort_keys=True)}")


def kill_postgres(server: EmbeddedPostgres) -> int:
    """SIGKILL the postmaster and every backend at once, as an OOM killer or a lost machine
    would; returns how many processes died. Waits until they are gone."""
    postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
    children = [pid for pid in _all_pids() if _parent(pid) == postmaster]
    victims = [postmaster, *children]
    for pid in victims:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in victims) and time.monotonic() < deadline:
        time.sleep(0.02)
    # Where PID 1 does not reap orphans (a container), the dead postmaster stays a zombie,
    # which `kill(pid, 0)` still finds: PostgreSQL would take it for a live server owning
    # the data directory. A reaping init removes it; here the lock file goes instead.
    if not _alive(postmaster):
        (server.pgdata / "postmaster.pid").unlink(missing_ok=True)
    return len(victims)


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children_of(pid: int) -> list[int]:
    """The live child processes of `pid`."""
    return [child for child in _all_pids() if _parent(child) == pid and _alive(child)]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def wait_until(check: object, seconds: float = 20.0) -> bool:
    """Poll the coroutine function `check` until it returns true (bounded)."""
    assert callable(check)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False
