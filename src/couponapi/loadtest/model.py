"""What a run produced: counts per outcome, latencies, the database's verdict, race rows.

Every type is a msgspec Struct so `--json` writes exactly what the tables show.
"""

from __future__ import annotations

import math
from enum import StrEnum

import msgspec


class Outcome(StrEnum):
    """How one claim ended, as the client saw it."""

    GRANTED = "granted"  # 2xx: the server says this user got a coupon
    SOLD_OUT = "sold_out"  # 409: nothing left
    REFUSED = "refused"  # any other 4xx (403 switched off, 422 bad user id, ...)
    ERROR = "error"  # 5xx, or the connection failed
    TIMEOUT = "timeout"  # no answer within the per-request timeout


def classify(status: int) -> Outcome:
    """The outcome an HTTP status stands for."""
    if 200 <= status < 300:
        return Outcome.GRANTED
    if status == 409:
        return Outcome.SOLD_OUT
    if 400 <= status < 500:
        return Outcome.REFUSED
    return Outcome.ERROR


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class Summary(msgspec.Struct, kw_only=True):
    """The client's view of a run. Latencies in milliseconds; claims_per_s counts every
    answered or failed claim attempt per second of the run, not only the grants."""

    requests: int
    granted: int
    sold_out: int
    refused: int
    errors: int
    timeouts: int
    elapsed_s: float
    claims_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, counts: dict[Outcome, int], latencies: list[float], elapsed: float) -> Summary:
        """Summarise outcome counts and latencies (seconds) of a run that took `elapsed` s."""
        ordered = sorted(latencies)
        requests = sum(counts.values())
        return cls(
            requests=requests,
            granted=counts.get(Outcome.GRANTED, 0),
            sold_out=counts.get(Outcome.SOLD_OUT, 0),
            refused=counts.get(Outcome.REFUSED, 0),
            errors=counts.get(Outcome.ERROR, 0),
            timeouts=counts.get(Outcome.TIMEOUT, 0),
            elapsed_s=round(elapsed, 3),
            claims_per_s=round(requests / elapsed, 1) if elapsed > 0 else 0.0,
            p50_ms=round(percentile(ordered, 0.50) * 1000, 2),
            p90_ms=round(percentile(ordered, 0.90) * 1000, 2),
            p99_ms=round(percentile(ordered, 0.99) * 1000, 2),
            max_ms=round((ordered[-1] if ordered else 0.0) * 1000, 2),
        )


class LedgerCheck(msgspec.Struct, kw_only=True):
    """The database's account of a run, and every invariant it breaks (`problems`).

    consumed = quantity before - quantity after; ledger_rows = grant rows of this run's users.
    A run alone on its coupon keeps consumed == ledger_rows == granted (the acknowledged
    grants; a timed-out claim may still have committed, so up to granted + errors + timeouts).
    """

    quantity_before: int
    quantity_after: int
    consumed: int
    ledger_rows: int
    users_over_limit: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        """Whether every invariant held."""
        return not self.problems


class LoadResult(msgspec.Struct, kw_only=True):
    """A whole `couponapi loadtest` run: what was asked, what the client saw, what the
    database says (None when it could not be reached), and the problems found."""

    base_url: str
    route: str
    coupon_id: str
    users: int
    concurrency: int
    summary: Summary
    ledger: LedgerCheck | None
    problems: list[str]


class RaceRow(msgspec.Struct, kw_only=True):
    """One strategy's line in the race table (`--json` prints a list of these)."""

    strategy: str
    quantity: int
    granted: int
    oversold: int
    ledger_rows: int | None
    claims_per_s: float
    p99_ms: float
    safe: bool = True
    ledger_agrees: bool | None = None
    broken: bool = False
    verdict: str = ""
    coupon_id: str = ""
