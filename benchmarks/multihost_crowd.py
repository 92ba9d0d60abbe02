"""The crowd of `make multihost` and the checks that follow it, in the database.

Each connection of the crowd is pinned to one host (connection n to host n mod N), as a load
balancer spreading connections would; a connection whose host stops answering moves on to
the next live one and sends the same claim again with the same Idempotency-Key, as a careful
client does (the key makes the retry safe: at most one grant). Bounded: every claim is tried
at most 3 times, each try at most 10 s, the whole crowd at most 120 s.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID, uuid4

import aiohttp
import asyncpg

CONNECTIONS = 64
TRIES, TRY_SECONDS, CROWD_SECONDS = 3, 10.0, 120.0
CLAIMS = "/api/v2/coupons/{}/claims"


class Killable(Protocol):
    def kill(self) -> None: ...


@dataclass
class Answer:
    host: str
    user: str
    key: str
    status: int | None
    claim_id: str | None
    seconds: float


@dataclass
class CrowdResult:
    answers: list[Answer] = field(default_factory=list)
    seconds: float = 0.0
    sent: int = 0

    @property
    def answered(self) -> int:
        return sum(a.status is not None for a in self.answers)

    @property
    def statuses(self) -> dict[str, int]:
        return {
            str(k): v for k, v in sorted(Counter(a.status for a in self.answers).items(), key=str)
        }

    @property
    def per_host(self) -> dict[str, int]:
        """Answers each host gave (a killed host's count stops where it died)."""
        return dict(Counter(a.host for a in self.answers if a.status is not None))

    def _latency_ms(self, q: int) -> float:
        times = sorted(a.seconds for a in self.answers if a.status is not None)
        if len(times) < 2:
            return 0.0
        return round(statistics.quantiles(times, n=100)[q - 1] * 1000, 1)

    @property
    def p99_ms(self) -> float:
        return self._latency_ms(99)

    @property
    def p50_ms(self) -> float:
        return self._latency_ms(50)


async def post_claim(
    session: aiohttp.ClientSession, base_url: str, coupon: UUID, user: str, key: str
) -> Answer:
    started = time.monotonic()
    try:
        async with session.post(
            f"{base_url}{CLAIMS.format(coupon)}",
            json={"user_id": user},
            headers={"Idempotency-Key": key},
            timeout=aiohttp.ClientTimeout(total=TRY_SECONDS),
        ) as response:
            body = await response.json(content_type=None)
            claim_id = body.get("id") if response.status == 201 else None
            return Answer(
                base_url, user, key, response.status, claim_id, time.monotonic() - started
            )
    except (aiohttp.ClientError, TimeoutError):
        return Answer(base_url, user, key, None, None, time.monotonic() - started)


async def rush(
    base_urls: list[str], coupon: UUID, users: int, victim: Killable | None = None
) -> CrowdResult:
    """Every user claims twice, CONNECTIONS at once spread over the hosts; with a `victim`,
    its host is SIGKILLed once a third of the claims are answered."""
    # Keys are unique to this run: a key names one claim request, whatever the coupon.
    run = uuid4().hex[:8]
    plan = [(f"u{n}", f"{run}-{n}-{attempt}") for attempt in range(2) for n in range(users)]
    result = CrowdResult(sent=len(plan))
    queue = iter(plan)
    dead: set[str] = set()
    deadline = time.monotonic() + CROWD_SECONDS

    async def connection(number: int, session: aiohttp.ClientSession) -> None:
        nonlocal victim
        host = number % len(base_urls)
        for user, key in queue:
            if time.monotonic() > deadline:
                return
            for _ in range(TRIES):
                while base_urls[host] in dead and len(dead) < len(base_urls):
                    host = (host + 1) % len(base_urls)
                answer = await post_claim(session, base_urls[host], coupon, user, key)
                if answer.status is None:
                    dead.add(base_urls[host])  # refused or cut: that host is gone
                result.answers.append(answer)
                if answer.status is not None and answer.status != 503:
                    break
            if victim is not None and len(result.answers) >= len(plan) // 3:
                doomed, victim = victim, None
                doomed.kill()

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(connection(n, session) for n in range(CONNECTIONS)))
    result.seconds = time.monotonic() - started
    return result


async def check_books(
    db: asyncpg.Connection, coupon: UUID, crowd: CrowdResult, limit: int, killed: bool
) -> dict[str, Any]:
    """What the database says against what the crowd was told. The crowd asks for more than
    the quantity, so it sells out exactly; every answer is a grant or a refusal (409), and
    with a host killed also a broken connection or a 503 (the retry went elsewhere)."""
    row = await db.fetchrow(
        """SELECT c.total_quantity, c.total_quantity - c.quantity AS consumed,
                  (SELECT count(*) FROM claim WHERE coupon_id = c.id) AS claims,
                  (SELECT count(*) FROM claim_event
                    WHERE coupon_id = c.id AND kind = 'granted') AS ledger,
                  (SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM claim
                    WHERE coupon_id = c.id GROUP BY user_id) AS per_user) AS most
             FROM coupon c WHERE c.id = $1""",
        coupon,
    )
    assert row is not None
    stored = {
        str(r["id"]) for r in await db.fetch("SELECT id FROM claim WHERE coupon_id = $1", coupon)
    }
    acknowledged = {a.claim_id for a in crowd.answers if a.status == 201}
    lost = len(acknowledged - stored)
    allowed = {201, 409, 503, None} if killed else {201, 409}
    checks = {
        "no_oversell": row["consumed"] == row["claims"] == row["ledger"] <= row["total_quantity"],
        "sold_out_exactly": row["claims"] == row["total_quantity"],
        "per_user_limit": row["most"] <= limit,
        "acknowledged_in_database": lost == 0,
        "only_grants_and_refusals": {a.status for a in crowd.answers} <= allowed,
    }
    return {
        "granted": row["claims"],
        "acknowledged": len(acknowledged),
        "acknowledged_but_lost": lost,
        "most_claims_by_one_user": row["most"],
        **checks,
        "held": all(checks.values()),
    }


async def idempotency_check(
    db: asyncpg.Connection, base_urls: list[str], per_host: int = 8
) -> dict[str, Any]:
    """One Idempotency-Key sent to every host at once, `per_host` times each: one unit."""
    coupon = await db.fetchval(
        """INSERT INTO coupon (id, name, type, quantity, total_quantity)
           VALUES (gen_random_uuid(), 'one key', 'percent', 10, 10) RETURNING id"""
    )
    key, user = f"same-{uuid4().hex}", "one-client"
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(
            *(
                post_claim(session, url, coupon, user, key)
                for url in base_urls
                for _ in range(per_host)
            )
        )
    row = await db.fetchrow(
        """SELECT c.quantity, (SELECT count(*) FROM claim WHERE coupon_id = c.id) AS claims
             FROM coupon c WHERE c.id = $1""",
        coupon,
    )
    assert row is not None
    ids = {a.claim_id for a in answers}
    held = row["claims"] == 1 and row["quantity"] == 9 and len(ids) == 1 and None not in ids
    return {
        "sent": len(answers),
        "statuses": dict(Counter(str(a.status) for a in answers)),
        "claims_in_database": row["claims"],
        "units_taken": 10 - row["quantity"],
        "held": held,
    }
