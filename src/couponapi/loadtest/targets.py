"""The routes a crowd can rush: one target per strategy of couponapi.strategies' tables.

A target names a way of claiming, the path that does it and whether it is meant to be safe:
v1's strategies by their name (dashes for underscores: `group-commit`), v2's as `v2-<name>`.
`available()` keeps the targets the server's own OpenAPI document lists, so routes another
version of the server lacks are skipped instead of answering 404 a thousand times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from couponapi.strategies import CLAIM_STRATEGIES, GIVE_STRATEGIES

V1 = "/coupon/api/v1"
V2_CLAIMS = "/api/v2/coupons/{coupon_id}/claims"


@dataclass(frozen=True, slots=True)
class Target:
    """One way to claim: `path` has a `{coupon_id}` slot; `ledger` is where grants are logged."""

    name: str
    path: str
    safe: bool = True
    wire: Literal["v1", "v2"] = "v1"
    ledger: Literal["v1", "v2"] = "v1"
    query: str = ""

    def url(self, base_url: str, coupon_id: UUID) -> str:
        """The full URL of a claim on `coupon_id` at the server `base_url`."""
        path = self.path.replace("{coupon_id}", str(coupon_id))
        return f"{base_url.rstrip('/')}{path}{'?' + self.query if self.query else ''}"


TARGETS: tuple[Target, ...] = (
    *(
        Target(name.replace("_", "-"), f"{V1}/{given.segment}/{{coupon_id}}", safe=given.safe)
        for name, given in GIVE_STRATEGIES.items()
    ),
    *(
        Target(
            f"v2-{name.replace('_', '-')}",
            V2_CLAIMS,
            wire="v2",
            ledger="v2",
            query=f"strategy={name}",
        )
        for name in CLAIM_STRATEGIES
    ),
)
BY_NAME = {target.name: target for target in TARGETS}


def available(paths: set[str]) -> list[Target]:
    """The targets whose path the server's OpenAPI document lists, in table order."""
    return [target for target in TARGETS if target.path in paths]
