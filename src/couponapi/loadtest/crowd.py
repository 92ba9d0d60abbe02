"""The load generator: a crowd of distinct users claiming one coupon over C connections.

One aiohttp session with a connector limited to C connections (kept alive), and C worker
coroutines that each take the next user number and claim. A run ends after `users` claims,
or at the deadline of a duration run (still bounded by `users`). Each claim's latency and
outcome go into a Tally, which a progress display may read while the crowd runs.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from uuid import UUID

import aiohttp
import msgspec

from couponapi.loadtest.credentials import NO_CREDENTIALS, Credentials
from couponapi.loadtest.model import Outcome, Summary, classify
from couponapi.loadtest.targets import Target


@dataclass(frozen=True, slots=True)
class Plan:
    """What to fire: `users` distinct users (ids `<user_prefix><n>`), `concurrency` at once;
    with `duration` the run stops at that many seconds or after `users`, whichever is first."""

    base_url: str
    target: Target
    coupon_id: UUID
    users: int
    concurrency: int
    user_prefix: str
    duration: float | None = None
    timeout: float = 10.0
    credentials: Credentials = NO_CREDENTIALS


@dataclass
class Tally:
    """Running counts and latencies (seconds); read live by progress displays."""

    planned: int
    duration: float | None = None
    counts: Counter[Outcome] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None

    @property
    def done(self) -> int:
        """Claims finished so far, whatever their outcome."""
        return len(self.latencies)

    @property
    def elapsed(self) -> float:
        """Seconds since the start (up to the end once finished)."""
        return (self.finished or time.perf_counter()) - self.started

    def rate(self) -> float:
        """Claims finished per second so far."""
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    def summary(self) -> Summary:
        """The summary of what has been counted."""
        return Summary.of(dict(self.counts), self.latencies, self.elapsed)


def _request(plan: Plan, user: str) -> tuple[dict[str, str], bytes | None]:
    """A claim as `user`: v2 with a token minted for it (no body: the token names the user),
    or with the admin credential naming the user when there is no secret; v1 with X-User-Id
    (and the admin credential, which a server with COUPONAPI_V1_ACCESS=admin asks for)."""
    credentials = plan.credentials
    if plan.target.wire == "v2":
        as_user = credentials.user_headers(user)
        if as_user is not None:
            return as_user, None
        body = msgspec.json.encode({"user_id": user})
        return {"Content-Type": "application/json", **credentials.admin_headers()}, body
    return {"X-User-Id": user, **credentials.admin_headers()}, None


async def _worker(
    session: aiohttp.ClientSession, plan: Plan, url: str, numbers: list[int], tally: Tally
) -> None:
    deadline = tally.started + plan.duration if plan.duration else None
    v2 = plan.target.wire == "v2"
    clock = time.perf_counter
    while numbers[0] < plan.users and (deadline is None or clock() < deadline):
        number = numbers[0]
        numbers[0] += 1
        headers, body = _request(plan, f"{plan.user_prefix}{number}")
        start = clock()
        try:
            async with session.post(url, headers=headers, data=body) as response:
                answer = await response.read()
                outcome = classify(response.status)
                # v2 says which 409 it is: sold out, or this user's limit / a paused coupon.
                if outcome is Outcome.SOLD_OUT and v2 and b"/problems/sold-out" not in answer:
                    outcome = Outcome.REFUSED
        except TimeoutError:
            outcome = Outcome.TIMEOUT
        except (aiohttp.ClientError, OSError):
            outcome = Outcome.ERROR
        tally.latencies.append(clock() - start)
        tally.counts[outcome] += 1


def new_session(concurrency: int, timeout: float) -> aiohttp.ClientSession:
    """A session holding at most `concurrency` keep-alive connections."""
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        auto_decompress=False,
    )


async def rush(plan: Plan, tally: Tally | None = None) -> Summary:
    """Fire the crowd `plan` describes and summarise it; fills `tally` as it goes."""
    tally = tally if tally is not None else Tally(planned=plan.users, duration=plan.duration)
    url = plan.target.url(plan.base_url, plan.coupon_id)
    numbers = [0]  # the next user number, shared by the workers (one event loop: no race)
    async with new_session(plan.concurrency, plan.timeout) as session:
        tally.started = time.perf_counter()
        workers = min(plan.concurrency, plan.users)
        await asyncio.gather(*(_worker(session, plan, url, numbers, tally) for _ in range(workers)))
    tally.finished = time.perf_counter()
    return tally.summary()
