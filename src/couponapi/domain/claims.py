"""Claims and grants: what a claim is, and the one mapping from claim_coupons' rows.

A `Grant` is what a v1 give hands out (a row of the original's ledger); a `Claim` is what a
v2 claim holds (a row of `claim`, with a code). claim_coupons_v2 answers one row per
requested claim: (ord, outcome, status, body). `claim_arguments` builds its arrays from
requests (codes are made here), `many_claim_arguments` those of claim_coupons_many_v1 (a batch
over many coupons, the same rows), and `claim_result` turns one row into a `Claimed` or the
CouponError that `claimed_or_raise` raises. Every strategy that calls the functions (one at a
time, or a group-commit batcher) uses these, so the outcomes are read in one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from couponapi.domain.codes import new_codes
from couponapi.domain.errors import (
    CouponError,
    CouponNotFound,
    IdempotencyKeyConflict,
    LimitReached,
    NotActive,
    SoldOut,
)


@dataclass(frozen=True, slots=True)
class Grant:
    """One coupon given to one user (v1), as committed; `quantity_left` is after this grant."""

    coupon_id: UUID
    user_id: str
    quantity_left: int


@dataclass(frozen=True, slots=True)
class Claim:
    """One coupon held by one user; status is claimed, released, redeemed or expired (a
    claim of a coupon with a hold, not redeemed by `expires_at`; None: it never expires)."""

    id: UUID
    coupon_id: UUID
    user_id: str
    code: str
    status: str
    claimed_at: datetime
    released_at: datetime | None = None
    redeemed_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One user asking for one coupon, with the client's Idempotency-Key if it sent one."""

    user_id: str
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A granted claim; `replayed` when it is the stored first answer to the same key."""

    claim: Claim
    replayed: bool = False


def request_hash(coupon_id: UUID, user_id: str) -> str:
    """What an idempotency key promises to mean: this user claiming this coupon."""
    return hashlib.sha256(f"claim\n{coupon_id}\n{user_id}".encode()).hexdigest()


ClaimArguments = tuple[UUID, list[str], list[str], list[str | None], list[str | None]]


def claim_arguments(coupon_id: UUID, requests: Sequence[ClaimRequest]) -> ClaimArguments:
    """The arguments of claim_coupons_v2 for `requests`, in their order, fresh codes included."""
    return (
        coupon_id,
        [r.user_id for r in requests],
        new_codes(len(requests)),
        [r.idempotency_key for r in requests],
        [request_hash(coupon_id, r.user_id) if r.idempotency_key else None for r in requests],
    )


ManyClaimArguments = tuple[list[UUID], list[str], list[str], list[str | None], list[str | None]]


def many_claim_arguments(claims: Sequence[tuple[UUID, ClaimRequest]]) -> ManyClaimArguments:
    """The arguments of claim_coupons_many_v1 for `claims` (coupon, request) on any coupons, in
    their order, fresh codes included: element i is what claim_arguments makes for claim i."""
    return (
        [coupon_id for coupon_id, _ in claims],
        [r.user_id for _, r in claims],
        new_codes(len(claims)),
        [r.idempotency_key for _, r in claims],
        [request_hash(c, r.user_id) if r.idempotency_key else None for c, r in claims],
    )


_REFUSALS: dict[str, type[CouponError]] = {
    "limit_reached": LimitReached,
    "not_active": NotActive,
    "key_conflict": IdempotencyKeyConflict,
}


# Straight from the row's JSON text to a Claim in one pass (decoding to a dict and converting
# that is two, ~1.7 µs more a claim).
_CLAIM = msgspec.json.Decoder(Claim)


def claim_result(coupon_id: UUID, outcome: str, body: Any) -> Claimed | CouponError:
    """One row of claim_coupons_v2 as a result, or as the error the caller should raise."""
    if outcome == "granted" and isinstance(body, str):
        return Claimed(_CLAIM.decode(body))
    document = msgspec.json.decode(body) if isinstance(body, (str, bytes)) else body
    replayed = outcome == "replayed"
    if replayed:
        outcome = document.get("outcome", "granted")
    if outcome == "granted":
        return Claimed(msgspec.convert(document, Claim), replayed=replayed)
    error: CouponError
    if outcome == "sold_out":
        error = SoldOut(coupon_id)
    elif outcome == "not_found":
        error = CouponNotFound(coupon_id)
    else:
        error = _REFUSALS[outcome](document["detail"])
    error.replayed = replayed
    return error


def claimed_or_raise(result: Claimed | CouponError) -> Claimed:
    """`result` when it is a claim, else raises it.

    Pass the result straight in, not from a variable: a frame that still refers to the error
    it raised is a reference cycle (error -> traceback -> frame -> error) that only the
    garbage collector frees, ~46 objects and every frame of the request per refusal."""
    if isinstance(result, Claimed):
        return result
    try:
        raise result
    finally:
        del result
