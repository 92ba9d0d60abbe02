"""The one mapping from claim_coupons_v1's rows to results, request hashes, and cursors."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import msgspec
import pytest
from starlette.requests import Request

from couponapi.api.inputs import InvalidRequest, encode_cursor, page_cursor
from couponapi.domain.claims import (
    Claimed,
    ClaimRequest,
    claim_arguments,
    claim_result,
    request_hash,
)
from couponapi.domain.errors import CouponNotFound, IdempotencyKeyConflict, LimitReached, SoldOut

COUPON = UUID(int=1)
GRANTED = {
    "id": str(UUID(int=2)), "coupon_id": str(COUPON), "user_id": "u", "code": "AAAA-BBBB-CCCC",
    "status": "claimed", "claimed_at": "2026-11-25T12:00:00.000001Z",
}  # fmt: skip


def test_a_granted_row_is_a_claim_and_a_replay_says_so() -> None:
    first = claim_result(COUPON, "granted", msgspec.json.encode(GRANTED).decode())
    again = claim_result(COUPON, "replayed", GRANTED)
    assert isinstance(first, Claimed)
    assert isinstance(again, Claimed)
    assert (first.replayed, again.replayed) == (False, True)
    assert first.claim == again.claim
    assert first.claim.claimed_at == datetime(2026, 11, 25, 12, 0, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("outcome", "error"),
    [("sold_out", SoldOut), ("not_found", CouponNotFound), ("limit_reached", LimitReached),
     ("key_conflict", IdempotencyKeyConflict)],
)  # fmt: skip
def test_refusals_become_their_errors_even_when_replayed(outcome: str, error: type) -> None:
    body = {"outcome": outcome, "detail": "why"}
    fresh, replayed = claim_result(COUPON, outcome, body), claim_result(COUPON, "replayed", body)
    assert isinstance(fresh, error)
    assert isinstance(replayed, error)
    assert (fresh.replayed, replayed.replayed) == (False, True)


def test_arguments_hash_only_keyed_requests_and_make_fresh_codes() -> None:
    args = claim_arguments(COUPON, [ClaimRequest("a", "k"), ClaimRequest("b")])
    coupon, users, codes, keys, hashes = args
    assert (coupon, users, keys) == (COUPON, ["a", "b"], ["k", None])
    assert hashes == [request_hash(COUPON, "a"), None]
    assert len(set(codes)) == 2
    assert request_hash(COUPON, "a") != request_hash(uuid4(), "a")


def _request(query: str) -> Request:
    return Request({"type": "http", "query_string": query.encode(), "headers": []})


def test_a_cursor_round_trips_and_a_forged_one_is_422() -> None:
    at, last = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), uuid4()
    assert page_cursor(_request(f"cursor={encode_cursor(at, last)}")) == (at, last)
    assert page_cursor(_request("")) is None
    for forged in ("x", "bm90IGpzb24", encode_cursor(at, last)[:-3]):
        with pytest.raises(InvalidRequest):
            page_cursor(_request(f"cursor={forged}"))
