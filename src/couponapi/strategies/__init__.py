"""Every way to give (v1) or claim (v2) a coupon, in one table; one module each.

The v1 routes, the OpenAPI document, the metrics, the load tester and the benchmarks all read
these two tables, so a strategy is named, routed and described here once:
- `GIVE_STRATEGIES`: the original's ways to give (v1 ledger), each with its route segment
  under /coupon/api/v1 and whether it is safe;
- `CLAIM_STRATEGIES`: the ways to claim in the current API (v2), chosen per request with
  `?strategy=` or by the `claim_strategy` setting. Only the function and its group-commit
  batcher: the rules (window, pause, quantity, per-user limit, idempotency) live once, in
  claim_coupons_v2, and a Python-side twin would write them twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from couponapi.domain.claims import Claimed, ClaimRequest, Grant
from couponapi.strategies import (
    claim_function,
    claim_group_commit,
    give_atomic,
    give_function,
    give_group_commit,
    give_locking,
    give_naive,
)

Give = Callable[[asyncpg.Pool, UUID, str], Awaitable[Grant]]
Claim = Callable[[asyncpg.Pool, UUID, ClaimRequest], Awaitable[Claimed]]


@dataclass(frozen=True, slots=True)
class GiveStrategy:
    """A v1 way to give: its function, its route segment, and what the docs say of it."""

    give: Give
    segment: str  # POST /coupon/api/v1/<segment>/{coupon_id}
    safe: bool
    summary: str
    description: str


GIVE_STRATEGIES: dict[str, GiveStrategy] = {
    "naive": GiveStrategy(
        give_naive.give,
        "give",
        safe=False,
        summary="UNSAFE: give by read-then-write (oversells).",
        description="The original's wrong way, kept to demonstrate the race: it reads the "
        "quantity, then writes it back minus one with no lock, so concurrent givers overwrite "
        "each other and more coupons are given than the quantity. Never use it for real.",
    ),
    "locking": GiveStrategy(
        give_locking.give,
        "give-transaction",
        safe=True,
        summary="Give in a transaction with SELECT ... FOR UPDATE.",
        description="Safe: the coupon row stays locked from the check to the commit.",
    ),
    "function": GiveStrategy(
        give_function.give,
        "give-transaction-pgfunction",
        safe=True,
        summary="Give with the give_coupon_to_user PL/pgSQL function.",
        description="Safe: the function locks the row, checks, decrements and logs in one "
        "round trip.",
    ),
    "atomic": GiveStrategy(
        give_atomic.give,
        "give-atomic",
        safe=True,
        summary="Give with one conditional UPDATE ... RETURNING statement.",
        description="Safe: decrement-if-positive and the ledger insert in one statement, one "
        "round trip; a sold-out coupon is refused without a lock or a write.",
    ),
    "group_commit": GiveStrategy(
        give_group_commit.give,
        "give-group-commit",
        safe=True,
        summary="Give with group commit: concurrent claims share one transaction.",
        description="Safe and fastest under a crowd: concurrent claims in one server process, "
        "for any coupons, are granted together in one transaction (each coupon's in arrival "
        "order); each is answered only after that commit.",
    ),
}

CLAIM_STRATEGIES: dict[str, Claim] = {
    "function": claim_function.claim,
    "group_commit": claim_group_commit.claim,
}


def check_claim_strategy(name: str) -> str:
    """`name` when it is a v2 claim strategy; ValueError naming the known ones otherwise."""
    if name not in CLAIM_STRATEGIES:
        raise ValueError(f"unknown claim strategy {name!r}: one of {sorted(CLAIM_STRATEGIES)}")
    return name
