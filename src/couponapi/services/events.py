"""The event feed: every change of the ledger, oldest first, in pages that never miss one.

A page is one statement (events_after): the first keys after the reader's position of each
ledger (claim_event, coupon_event, v1's coupon_given_events) in (xid, id) order, only below
the xmin of the statement's own snapshot, then those events as the view event_feed shows
them: every transaction with a smaller id has ended, committed or not, so nothing can
later appear before the last event returned (docs/design.md#the-event-feed). The read takes
no lock and no transaction id, so it neither slows a claim nor holds the horizon back.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from couponapi.db.queries import query
from couponapi.domain.errors import FeedCursorNotOurs
from couponapi.domain.events import BEGINNING, Event, FeedPosition


def _event(row: asyncpg.Record) -> Event:
    return Event(int(row["id"]), int(row["xid"]), row["type"], row["occurred_at"], row["data"])


async def read_feed(
    pool: asyncpg.Pool | asyncpg.Connection,
    after: FeedPosition | None,
    limit: int,
    coupon_id: UUID | None = None,
) -> list[Event]:
    """Up to `limit` events after `after` (None: from the beginning), oldest first, of one
    coupon or all; FeedCursorNotOurs when `after` is ahead of every transaction so far."""
    at = after or BEGINNING
    if coupon_id is None:
        rows = await pool.fetch(query("events_after"), str(at.xid), at.id, limit)
    else:
        rows = await pool.fetch(query("coupon_events_after"), str(at.xid), at.id, limit, coupon_id)
    if (
        not rows
        and after is not None
        and not await pool.fetchval(query("feed_position_reached"), str(at.xid))
    ):
        raise FeedCursorNotOurs("cursor is ahead of the feed: pass next_cursor as given")
    return [_event(row) for row in rows]
