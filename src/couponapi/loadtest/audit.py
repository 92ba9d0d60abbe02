"""The ledger check through the server's own audit, for a run that cannot reach its database.

`GET /api/v2/coupons/{id}/audit` (admin or server key) counts a coupon's units and ledger rows
in one snapshot. Read before and after a run, its differences are the run's account: what
went out (consumed, with what came back by release or expiry added back), the ledger rows
written (v2 grants, or v1's), and the users over the limit. It covers the whole coupon, so
it is exact for a run alone on its coupon (a race's fresh coupons always are); with the
database, couponapi.loadtest.ledger counts the run's own users instead.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import aiohttp
import msgspec

from couponapi.loadtest.credentials import Credentials
from couponapi.loadtest.ledger import ledger_problems
from couponapi.loadtest.model import LedgerCheck, Summary

AUDIT = "/api/v2/coupons/{coupon_id}/audit"


async def read(
    session: aiohttp.ClientSession, base_url: str, coupon_id: UUID, credentials: Credentials
) -> dict[str, Any] | None:
    """The coupon's audit; None when the server cannot tell (no such route, no credential
    it accepts, unreachable, not an answer of ours)."""
    url = f"{base_url}{AUDIT.format(coupon_id=coupon_id)}"
    try:
        async with session.get(url, headers=credentials.admin_headers()) as response:
            if response.status != 200:
                return None
            books = msgspec.json.decode(await response.read())
    except (aiohttp.ClientError, OSError, TimeoutError, msgspec.DecodeError):
        return None
    return books if isinstance(books, dict) and "ledger" in books else None


def _given(books: dict[str, Any], ledger: str) -> int:
    return int(books["ledger"]["granted"] if ledger == "v2" else books["given_v1"])


def check(
    before: dict[str, Any],
    after: dict[str, Any],
    summary: Summary,
    limit: int = 1,
    ledger: str = "v1",
) -> LedgerCheck:
    """The run's account from the audits `before` and `after` it, judged as
    couponapi.loadtest.ledger judges the database's; the audit's own problems are added."""
    returned = (after["released"] - before["released"]) + (after["expired"] - before["expired"])
    result = LedgerCheck(
        quantity_before=before["remaining"],
        quantity_after=after["remaining"],
        consumed=before["remaining"] - after["remaining"] + returned,
        ledger_rows=_given(after, ledger) - _given(before, ledger),
        users_over_limit=after["users_over_limit"],
        problems=[],
    )
    result.problems = ledger_problems(result, summary, limit) + [
        f"the server's audit: {problem}" for problem in after["problems"]
    ]
    return result
