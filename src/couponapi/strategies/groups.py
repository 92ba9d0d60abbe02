"""A batch across coupons as the database answers it: which coupons' groups failed, and why.

give_coupons_many_v1 runs each coupon's group of a batch in its own subtransaction, and so
does claim_coupons_many_v1 when the whole batch at once failed. A group that fails is rolled
back alone and answered 'failed' with the error's SQLSTATE, message and constraint; the
other groups commit. Here
that error is rebuilt as the asyncpg exception PostgreSQL raised, and each of the group's
claims gets a `BatchFailed` whose cause it is: the same error a failed single-coupon batch
gave, so `strategies.batcher.submit` answers it the same way (a lock timeout as a lock
timeout, anything else as DatabaseUnavailable). Each failed group is logged once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from couponapi.strategies.batcher import BatchFailed

log = logging.getLogger(__name__)

Failures = dict[UUID, tuple[int, asyncpg.PostgresError]]


def group_error(failure: Any) -> asyncpg.PostgresError:
    """The asyncpg exception of a failed group's {"sqlstate", "detail", "constraint"} (JSON
    text or decoded): the subclass PostgreSQL's SQLSTATE names, as a raised one would be."""
    fields = msgspec.json.decode(failure) if isinstance(failure, (str, bytes)) else failure
    error = asyncpg.PostgresError.new(
        {"C": fields["sqlstate"], "M": fields["detail"], "n": fields.get("constraint") or ""}
    )
    assert isinstance(error, asyncpg.PostgresError)
    return error


def failed_groups(coupon_ids: Sequence[UUID], failures: Sequence[Any | None]) -> Failures:
    """coupon -> (its group's size, its error) for every coupon whose group failed; element i
    of `failures` is claim i's failure, None when its group did not fail. Logged once each."""
    sizes = Counter(c for c, failure in zip(coupon_ids, failures, strict=True) if failure)
    found: Failures = {}
    for coupon_id, failure in zip(coupon_ids, failures, strict=True):
        if failure is not None and coupon_id not in found:
            found[coupon_id] = (sizes[coupon_id], group_error(failure))
            log.warning(
                "group commit of %d claims for %s failed: %r", sizes[coupon_id], coupon_id,
                found[coupon_id][1],
            )  # fmt: skip
    return found


def batch_failed(coupon_id: UUID, failures: Failures) -> BatchFailed:
    """What one claim of a failed group is answered: its group's error, as a failed batch's."""
    size, error = failures[coupon_id]
    return BatchFailed(coupon_id, size, error)
