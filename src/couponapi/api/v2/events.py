"""GET /api/v2/events: the feed of every change, oldest first, that never misses one (admin or
server key).

A reader keeps `next_cursor` and polls with it as `?after=`: every page gives one, the last
page too (the same cursor when nothing is new), so it resumes where it stopped and never
reads an event twice. Why no event can appear behind a cursor: couponapi.services.events.
"""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from couponapi.api.auth import require_server
from couponapi.api.deps import pool_of
from couponapi.api.inputs import MAX_PAGE, InvalidRequest, page_limit, uuid_of
from couponapi.api.openapi import operation
from couponapi.api.responses import json_response
from couponapi.api.v2.problems import PREFIX, Problem
from couponapi.api.v2.wire import SIGNED
from couponapi.domain.errors import FeedCursorNotOurs
from couponapi.domain.events import FEED_CURSOR_PATTERN, EventBody, FeedPosition
from couponapi.services.events import read_feed

TAGS = ("v2 events and webhooks",)


class EventPage(msgspec.Struct):
    """Events after the cursor, oldest first; poll again with `next_cursor` as `?after=`."""

    items: list[EventBody]
    next_cursor: str


@operation(
    summary="The feed of every change, oldest first (server key or admin).",
    description="Every grant, release, redemption and expiry of a claim, and every coupon "
    "created, changed or sold out, in one order that never changes. Only changes of "
    "transactions that have ended are listed, so once a cursor is passed nothing can appear "
    "before it: poll with `next_cursor` and no event is missed or read twice.",
    tags=TAGS,
    signed=True,
    query=(
        (
            "after",
            {"type": "string", "pattern": FEED_CURSOR_PATTERN},
            "The previous page's next_cursor (absent or empty: from the beginning).",
        ),
        (
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            "Page size (default 50).",
        ),
        ("coupon_id", {"type": "string", "format": "uuid"}, "Only this coupon's events."),
    ),
    responses={
        200: (EventPage, "One page, possibly empty, and the cursor to poll from."),
        **SIGNED,
        422: (Problem, "A malformed or foreign cursor, limit or coupon_id."),
    },
)
async def list_events(request: Request) -> Response:
    """The event feed (server key or admin)."""
    await require_server(request)
    raw_after = request.query_params.get("after", "")
    try:
        after = FeedPosition.of_cursor(raw_after)
    except ValueError as error:
        raise FeedCursorNotOurs(str(error)) from None
    limit = page_limit(request)
    raw_coupon = request.query_params.get("coupon_id")
    coupon_id = None
    if raw_coupon is not None:
        try:
            coupon_id = uuid_of(raw_coupon)
        except ValueError:
            detail = f"malformed coupon_id {raw_coupon[:64]!r}: expected a UUID"
            raise InvalidRequest(422, detail) from None
    events = await read_feed(pool_of(request), after, limit, coupon_id)
    cursor = events[-1].position.cursor if events else raw_after
    return json_response(EventPage([EventBody.of(e) for e in events], next_cursor=cursor))


def routes() -> list[Route]:
    """The feed route."""
    return [Route(f"{PREFIX}/events", list_events, methods=["GET"])]
