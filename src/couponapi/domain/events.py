"""The event feed's vocabulary: what an event is, its types, and the cursor a reader resumes at.

The feed is the ledger read in (xid, id) order: `xid` is the id of the transaction that wrote
the event (PostgreSQL's xid8), `id` the event's own (one sequence for claim and coupon
events). A `FeedPosition` is the last event a reader has seen; its text form is the opaque
`next_cursor` of GET /api/v2/events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal, get_args

import msgspec

# Every type the feed has, in the order the API documents them.
EventType = Literal[
    "claim.granted",
    "claim.released",
    "claim.redeemed",
    "claim.expired",
    "coupon.created",
    "coupon.updated",
    "coupon.sold_out",
    "coupon.given",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

# `<xid>-<id>`, both decimal (18 digits fit a bigint); empty: the beginning of the feed.
FEED_CURSOR_PATTERN = "^$|^[0-9]{1,18}-[0-9]{1,18}$"
_CURSOR = re.compile(FEED_CURSOR_PATTERN)


@dataclass(frozen=True, slots=True, order=True)
class FeedPosition:
    """Just after the event (xid, id): where a reader goes on from."""

    xid: int
    id: int

    @property
    def cursor(self) -> str:
        """The position as the API's opaque cursor."""
        return f"{self.xid}-{self.id}"

    @classmethod
    def of_cursor(cls, text: str) -> FeedPosition | None:
        """The position a cursor names (None: the beginning); ValueError when it is not one of
        ours."""
        if _CURSOR.fullmatch(text) is None:
            raise ValueError("cursor is not valid: pass next_cursor as given")
        if not text:
            return None
        xid, _, event_id = text.partition("-")
        return cls(int(xid), int(event_id))


BEGINNING = FeedPosition(0, 0)


@dataclass(frozen=True, slots=True)
class Event:
    """One change: its stable id, its type, when it happened, and `data` (the claim or the
    coupon as the API showed it just after the change) as JSON text, stored or derived by
    PostgreSQL and passed through as it is."""

    id: int
    xid: int
    type: str
    occurred_at: datetime
    data: str

    @property
    def position(self) -> FeedPosition:
        """The position just after this event."""
        return FeedPosition(self.xid, self.id)


class EventBody(msgspec.Struct):
    """An event as the feed lists it and a webhook delivers it (the same bytes): `data` is the
    claim or the coupon as the API showed it just after the change, with its `id`."""

    id: Annotated[int, msgspec.Meta(ge=1, description="Stable: the same on every read and retry.")]
    type: str
    occurred_at: datetime
    data: Annotated[msgspec.Raw, msgspec.Meta(description="The claim or the coupon.")]

    @classmethod
    def of(cls, event: Event) -> EventBody:
        """The wire form of an event; `data` passes through as PostgreSQL wrote it."""
        return cls(event.id, event.type, event.occurred_at, msgspec.Raw(event.data.encode()))
