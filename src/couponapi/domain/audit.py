"""A coupon's conservation check: what its books must say, whatever happened to it.

Every unit of a coupon is in exactly one place: left to claim, held by a live v2 claim
(claimed and not yet expired, or redeemed), or given by v1 (which has no claims). And every
v2 change has its ledger row: a grant per claim, a release per released claim, a redemption
per redeemed one, an expiry per expired one (a hold that is due but not yet marked by a
claim path or the sweeper has none yet: `expired_pending`). `Audit.problems` names every
equality that does not hold; `conserved` is there being none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Ledger:
    """The v2 ledger's rows (claim_event) of one coupon, per kind."""

    granted: int
    released: int
    redeemed: int
    expired: int


@dataclass(frozen=True, slots=True)
class Audit:
    """One coupon's books as of `checked_at`, read in one snapshot (couponapi.services.audit)."""

    coupon_id: UUID
    checked_at: datetime
    quantity: int  # in all
    remaining: int  # left to claim, as of checked_at
    held: int  # claimed, hold not over (or no hold)
    redeemed: int
    released: int
    expired: int  # marked expired, or due and not yet marked
    expired_pending: int  # of those, not yet marked (no ledger row yet)
    claims: int  # every v2 claim row
    given_v1: int  # v1 grants (coupon_given_events)
    users_over_limit: int  # users holding more than per_user_limit (live v2 claims, v1 grants)
    ledger: Ledger
    problems: list[str] = field(default_factory=list)

    @property
    def live(self) -> int:
        """The live v2 claims: held or redeemed."""
        return self.held + self.redeemed

    @property
    def conserved(self) -> bool:
        """Whether every unit is accounted for and the ledger agrees with the claims."""
        return not self.problems


def problems_of(audit: Audit) -> list[str]:
    """Every equality of the books that `audit` breaks, in words."""
    found = []
    accounted = audit.remaining + audit.live + audit.given_v1
    if audit.quantity != accounted:
        found.append(
            f"quantity {audit.quantity} != remaining {audit.remaining} + live claims "
            f"{audit.live} + v1 grants {audit.given_v1} (= {accounted})"
        )
    ledger = audit.ledger
    expected = {
        "granted": audit.claims,
        "released": audit.released,
        "redeemed": audit.redeemed,
        "expired": audit.expired - audit.expired_pending,
    }
    for kind, claims in expected.items():
        rows = getattr(ledger, kind)
        if rows != claims:
            found.append(f"{rows} '{kind}' ledger rows for {claims} claims")
    return found
