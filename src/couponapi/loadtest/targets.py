"""The routes a crowd can rush, in one table: adding a route is adding one line to TARGETS.

A target names a way of claiming, the path that does it and whether it is meant to be safe.
`available()` keeps the targets the server's own OpenAPI document lists, so routes another
version of the server lacks are skipped instead of answering 404 a thousand times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

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
    Target("naive", f"{V1}/give/{{coupon_id}}", safe=False),
    Target("locking", f"{V1}/give-transaction/{{coupon_id}}"),
    Target("function", f"{V1}/give-transaction-pgfunction/{{coupon_id}}"),
    Target("atomic", f"{V1}/give-atomic/{{coupon_id}}"),
    Target("group-commit", f"{V1}/give-group-commit/{{coupon_id}}"),
    Target("v2-function", V2_CLAIMS, wire="v2", ledger="v2", query="strategy=function"),
    Target("v2-group-commit", V2_CLAIMS, wire="v2", ledger="v2", query="strategy=group_commit"),
)
BY_NAME = {target.name: target for target in TARGETS}


def available(paths: set[str]) -> list[Target]:
    """The targets whose path the server's OpenAPI document lists, in table order."""
    return [target for target in TARGETS if target.path in paths]
