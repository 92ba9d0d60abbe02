"""A separate OS process that claims or gives on many coupons through a group-commit strategy.

`python -m tests.concurrency.many_claimer URL STRATEGY ROUNDS` reads JSON `[[coupon, user,
key|null], ...]` on stdin and, ROUNDS times over, fires them all at once through one pool (so
the strategy batches them across coupons, in that arrival order), each round after the
previous one was answered; it prints JSON `[[outcome, claim_id|null], ...]` for every claim
of every round, in order. STRATEGY is `v2` (claim_group_commit) or `v1` (give_group_commit,
whose claim id is null and which ignores keys); outcome is "granted", "replayed" or the
refusal's class name. Connections run with a 5 s lock_timeout, so a wait that would never end
shows as a failed claim instead of a hung test.
"""

from __future__ import annotations

import asyncio
import sys
from uuid import UUID

import asyncpg
import msgspec

from couponapi.config import Settings
from couponapi.domain.claims import ClaimRequest
from couponapi.strategies import claim_group_commit, give_group_commit

Result = list[str | None]


async def one(
    pool: asyncpg.Pool, strategy: str, coupon: UUID, user: str, key: str | None
) -> Result:
    try:
        if strategy == "v1":
            await give_group_commit.give(pool, coupon, user)
            return ["granted", None]
        claimed = await claim_group_commit.claim(pool, coupon, ClaimRequest(user, key))
    except Exception as error:
        return [type(error).__name__, None]
    return ["replayed" if claimed.replayed else "granted", str(claimed.claim.id)]


async def main(url: str, strategy: str, rounds: int) -> None:
    claims = [(UUID(c), user, key) for c, user, key in msgspec.json.decode(sys.stdin.read())]
    results: list[Result] = []
    # The role's lock_timeout bounds every wait (as for the service); no start-up settings and
    # the configured statement cache, so the same process also runs behind PgBouncer.
    cache = Settings().statement_cache_size
    async with asyncpg.create_pool(
        url, min_size=1, max_size=10, statement_cache_size=cache
    ) as pool:
        for _ in range(rounds):
            results += await asyncio.gather(*(one(pool, strategy, *claim) for claim in claims))
    sys.stdout.write(msgspec.json.encode(results).decode())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
