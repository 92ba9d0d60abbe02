"""A separate OS process that claims through a v2 strategy and prints what each claim got.

`python -m tests.concurrency.v2_claimer URL COUPON STRATEGY` reads JSON `[[user, key|null],
...]` on stdin, fires them all at once through one pool (so a group-commit strategy batches
them), and prints JSON `[[outcome, claim_id|null], ...]` in the same order: outcome is
"granted", "replayed" or the refusal's class name.
"""

from __future__ import annotations

import asyncio
import sys
from uuid import UUID

import asyncpg
import msgspec

from couponapi.config import Settings
from couponapi.domain.claims import Claimed, ClaimRequest
from couponapi.strategies import CLAIM_STRATEGIES


async def one(
    pool: asyncpg.Pool, strategy: str, coupon: UUID, request: ClaimRequest
) -> list[str | None]:
    try:
        claimed: Claimed = await CLAIM_STRATEGIES[strategy](pool, coupon, request)
    except Exception as error:
        return [type(error).__name__, None]
    return ["replayed" if claimed.replayed else "granted", str(claimed.claim.id)]


async def main(url: str, coupon: UUID, strategy: str) -> None:
    requests = [ClaimRequest(user, key) for user, key in msgspec.json.decode(sys.stdin.read())]
    # Behind PgBouncer the suite sets COUPONAPI_STATEMENT_CACHE_SIZE=0, as the service reads.
    cache = Settings().statement_cache_size
    async with asyncpg.create_pool(
        url, min_size=1, max_size=10, statement_cache_size=cache
    ) as pool:
        results = await asyncio.gather(*(one(pool, strategy, coupon, r) for r in requests))
    sys.stdout.write(msgspec.json.encode(results).decode())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], UUID(sys.argv[2]), sys.argv[3]))
