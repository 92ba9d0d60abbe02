"""A separate OS process that changes coupons through a running server, for the event feed test.

`python -m tests.concurrency.feed_writer BASE_URL SEED OPS COUPON...` runs OPS operations
(at most, and for at most DEADLINE_S) over TASKS parallel connections, each one picked at
random (seeded): a claim of a coupon for one of a few users, the release or the redemption of
a claim it holds, a v1 give (by the SQL function), or a PATCH of a coupon (its per-user
limit, or its total one up or down). It
prints JSON `[[operation, status, problem slug or ""], ...]`, one per operation, in the order
they were answered.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import Any

import aiohttp
import msgspec

from tests.v2_support import ADMIN, V2

V1 = "/coupon/api/v1/give-transaction-pgfunction"
TASKS = 6
USERS = 12  # per process: few enough that per-user limits and sold-out coupons are reached
DEADLINE_S = 60.0

Outcome = tuple[str, int, str]


class Writer:
    """The operations of one process, its claims still held, and what each answer was."""

    def __init__(self, http: aiohttp.ClientSession, base: str, seed: int, coupons: list[str]):
        self.http, self.base, self.coupons = http, base, coupons
        self.random = random.Random(seed)
        self.prefix = f"w{seed}"
        self.held: list[dict[str, Any]] = []
        self.outcomes: list[Outcome] = []

    async def call(self, operation: str, method: str, path: str, body: Any) -> dict[str, Any]:
        url = f"{self.base}{path if path.startswith(V1) else V2 + path}"
        async with self.http.request(method, url, json=body, headers=ADMIN) as response:
            answer: Any = await response.json(content_type=None)
            problem = isinstance(answer, dict) and not response.ok
            slug = str(answer.get("type", "")).removeprefix("/problems/") if problem else ""
            self.outcomes.append((operation, response.status, "" if response.ok else slug))
            return answer if response.ok and isinstance(answer, dict) else {}

    async def one(self) -> None:
        coupon = self.random.choice(self.coupons)
        pick = self.random.random()
        user = f"{self.prefix}-{self.random.randrange(USERS)}"
        if pick < 0.08:
            await self.call("give", "POST", f"{V1}/{coupon}", {"userId": user})
        elif pick < 0.55 or not self.held:
            granted = await self.call(
                "claim", "POST", f"/coupons/{coupon}/claims", {"user_id": user}
            )
            if granted:
                self.held.append(granted)
        elif pick < 0.70:
            held = self.held.pop(self.random.randrange(len(self.held)))
            await self.call("release", "POST", f"/claims/{held['id']}/release", {})
        elif pick < 0.85:
            held = self.held.pop(self.random.randrange(len(self.held)))
            await self.call("redeem", "POST", "/claims/redeem", {"code": held["code"]})
        elif pick < 0.92:
            limit = self.random.choice((1, 2, 3))
            await self.call("patch", "PATCH", f"/coupons/{coupon}", {"per_user_limit": limit})
        else:
            async with self.http.get(f"{self.base}{V2}/coupons/{coupon}", headers=ADMIN) as got:
                total = (await got.json())["quantity"]
            change = {"quantity": total + self.random.choice((-1, 1, 2))}
            await self.call("patch", "PATCH", f"/coupons/{coupon}", change)


async def main(base: str, seed: int, ops: int, coupons: list[str]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    left = iter(range(ops))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=TASKS)) as http:
        writer = Writer(http, base, seed, coupons)

        async def task() -> None:
            for _ in left:
                if time.monotonic() > deadline:
                    return
                await writer.one()

        await asyncio.gather(*(task() for _ in range(TASKS)))
    sys.stdout.write(msgspec.json.encode(writer.outcomes).decode())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]))
