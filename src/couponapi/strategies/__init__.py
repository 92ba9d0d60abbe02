"""The ways to give a coupon, one module each; `STRATEGIES` maps a name to its give()."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

import asyncpg

from couponapi.domain import Grant
from couponapi.strategies import atomic, function, group_commit, locking, naive

Give = Callable[[asyncpg.Pool, UUID, str], Awaitable[Grant]]

STRATEGIES: dict[str, Give] = {
    "naive": naive.give,
    "locking": locking.give,
    "function": function.give,
    "atomic": atomic.give,
    "group_commit": group_commit.give,
}
