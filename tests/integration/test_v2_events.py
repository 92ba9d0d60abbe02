"""The event feed over HTTP: every change in order with its data, pages that add up to the
same list, a cursor to poll again, the filter by coupon, every bad input 422, who may read it,
an open transaction holding later events back until it ends, and the feed equal to the ledger.

Timestamps are compared as instants: an event's `data` is written by PostgreSQL (always with
microseconds), a coupon as the API answers it by msgspec (without them when they are zero, as
a starts_at sent as "...T09:00:00Z"); both are RFC 3339 for the same instant.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from couponapi.domain.events import EVENT_TYPES
from tests.identity.world import make_key
from tests.v2_support import V2, as_user, create_coupon

Json = dict[str, Any]
EVENTS = f"{V2}/events"
INSTANTS = ("claimed_at", "released_at", "redeemed_at", "expires_at", "created_at",
            "starts_at", "ends_at", "given_at")  # fmt: skip
GIVE = "/coupon/api/v1/give-transaction-pgfunction"  # v1's give by its SQL function
NOT_VALID = "cursor is not valid: pass next_cursor as given"
# Every ledger: v2's claims, the coupons' changes and v1's gives.
LEDGER = (
    "SELECT id FROM claim_event UNION SELECT id FROM coupon_event"
    " UNION SELECT id FROM coupon_given_events"
)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def same(data: Json) -> Json:
    """`data` with its timestamps as instants."""
    return {k: instant(v) if k in INSTANTS and v is not None else v for k, v in data.items()}


def summary(events: list[Json]) -> list[tuple[str, Json]]:
    """Each event's type and data (timestamps as instants), in feed order."""
    return [(e["type"], same(e["data"])) for e in events]


async def page(client: httpx.AsyncClient, **params: str | int) -> Json:
    answer = await client.get(EVENTS, params=params)
    assert answer.status_code == 200, answer.text
    body: Json = answer.json()
    assert set(body) == {"items", "next_cursor"}
    assert isinstance(body["next_cursor"], str)
    return body


async def ledger_size(pool: asyncpg.Pool, coupon_id: UUID | None = None) -> int:
    size: int = await pool.fetchval(
        "SELECT (SELECT count(*) FROM claim_event WHERE $1::uuid IS NULL OR coupon_id = $1)"
        " + (SELECT count(*) FROM coupon_event WHERE $1::uuid IS NULL OR coupon_id = $1)"
        " + (SELECT count(*) FROM coupon_given_events"
        "    WHERE $1::uuid IS NULL OR couponid = $1::uuid::text)",
        coupon_id,
    )
    return size


async def read_all(
    client: httpx.AsyncClient, pool: asyncpg.Pool, **params: str | int
) -> tuple[list[Json], str]:
    """Every event the ledger holds now (of `coupon_id`, when given), page after page from
    the beginning, and the cursor to poll from. An empty page is read again (at most 100
    times): a background transaction of the app (its hold sweeper) may hold the horizon back
    for a moment."""
    coupon = params.get("coupon_id")
    expected = await ledger_size(pool, UUID(str(coupon)) if coupon else None)
    got: list[Json] = []
    cursor = ""
    for _ in range(100):
        if len(got) >= expected:
            break
        body = await page(client, after=cursor, **params)
        got += body["items"]
        cursor = body["next_cursor"]
        if not body["items"]:
            await asyncio.sleep(0.02)
    assert len(got) == expected
    return got, cursor


async def claim(client: httpx.AsyncClient, coupon_id: UUID, user: str) -> httpx.Response:
    return await client.post(f"{V2}/coupons/{coupon_id}/claims", json={"user_id": user})


async def granted(client: httpx.AsyncClient, coupon_id: UUID, user: str) -> Json:
    answer = await claim(client, coupon_id, user)
    assert answer.status_code == 201, answer.text
    body: Json = answer.json()
    return body


async def coupon_now(client: httpx.AsyncClient, coupon_id: UUID) -> Json:
    answer = await client.get(f"{V2}/coupons/{coupon_id}")
    assert answer.status_code == 200, answer.text
    body: Json = answer.json()
    return body


async def patch(client: httpx.AsyncClient, coupon_id: UUID, **change: Any) -> Json:
    answer = await client.patch(f"{V2}/coupons/{coupon_id}", json=change)
    assert answer.status_code == 200, answer.text
    body: Json = answer.json()
    return body


def refused(response: httpx.Response, status: int, slug: str) -> str:
    """The detail of a problem+json refusal of `status` and `slug`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["type"], problem["status"]) == (f"/problems/{slug}", status)
    detail: str = problem["detail"]
    return detail


async def test_every_change_in_order_with_its_data(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    made = await client.post(
        f"{V2}/coupons", json={"name": "launch", "type": "percent", "quantity": 2,
                               "hold_seconds": 600},
    )  # fmt: skip
    assert made.status_code == 201
    created = made.json()
    coupon_id = UUID(created["id"])
    alice = await granted(client, coupon_id, "alice")
    bob = await granted(client, coupon_id, "bob")
    first_sold_out = await coupon_now(client, coupon_id)
    refused(await claim(client, coupon_id, "carol"), 409, "sold-out")  # a refusal: no event
    released = await client.post(f"{V2}/claims/{bob['id']}/release")
    assert released.status_code == 200
    dave = await granted(client, coupon_id, "dave")
    second_sold_out = await coupon_now(client, coupon_id)
    redeemed = await client.post(f"{V2}/claims/redeem", json={"code": alice["code"]})
    assert redeemed.status_code == 200
    updated = await patch(client, coupon_id, quantity=3, per_user_limit=2)
    assert (updated["quantity"], updated["remaining"], updated["per_user_limit"]) == (3, 1, 2)
    assert await patch(client, coupon_id, quantity=3, per_user_limit=2) == updated  # no change
    # Dave's hold ends now (time moved in the database): his release answers that it expired,
    # and his expiry is in the ledger once (written by the release or by the app's sweeper).
    ends = await pool.fetchval(
        "UPDATE claim SET expires_at = now() - interval '1 second' WHERE id = $1"
        " RETURNING expires_at",
        UUID(dave["id"]),
    )
    refused(await client.post(f"{V2}/claims/{dave['id']}/release"), 409, "expired")
    erin = await granted(client, coupon_id, "erin")
    frank = await granted(client, coupon_id, "frank")
    third_sold_out = await coupon_now(client, coupon_id)
    assert (third_sold_out["remaining"], third_sold_out["claimed"]) == (0, 3)

    events, cursor = await read_all(client, pool)
    expired_dave = {**dave, "status": "expired", "expires_at": ends.isoformat()}
    assert summary(events) == [
        ("coupon.created", same(created)),
        ("claim.granted", same(alice)),
        ("claim.granted", same(bob)),
        ("coupon.sold_out", same(first_sold_out)),
        ("claim.released", same(released.json())),
        # The claim as stored: the test moved its expires_at (the service never does).
        ("claim.granted", same({**dave, "expires_at": ends.isoformat()})),
        ("coupon.sold_out", same(second_sold_out)),
        ("claim.redeemed", same(redeemed.json())),
        ("coupon.updated", same(updated)),
        ("claim.expired", same(expired_dave)),
        ("claim.granted", same(erin)),
        ("claim.granted", same(frank)),
        ("coupon.sold_out", same(third_sold_out)),
    ]
    assert {e["type"] for e in events} == set(EVENT_TYPES) - {"coupon.given"}  # v1's: below
    assert all(set(e) == {"id", "type", "occurred_at", "data"} for e in events)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)  # one transaction after another here: xid order is id order
    assert set(ids) == {r["id"] for r in await pool.fetch(LEDGER)}
    # When each happened: a claim's own instant, the coupon's transaction for the others.
    when = [instant(e["occurred_at"]) for e in events]
    assert when[0] == instant(created["created_at"])
    assert when[1] == instant(alice["claimed_at"])
    assert when[4] == instant(released.json()["released_at"])
    assert when[7] == instant(redeemed.json()["redeemed_at"])
    assert when[9] == ends  # an expiry happened when the hold ended, not when it was noticed
    assert when[:9] == sorted(when[:9])
    assert when[10:] == sorted(when[10:])
    assert cursor == f"{await xid_of(pool, ids[-1])}-{ids[-1]}"
    assert await page(client, after=cursor) == {"items": [], "next_cursor": cursor}


async def xid_of(pool: asyncpg.Pool, event_id: int) -> str:
    xid: str = await pool.fetchval(
        "SELECT xid::text FROM claim_event WHERE id = $1"
        " UNION ALL SELECT xid::text FROM coupon_event WHERE id = $1",
        event_id,
    )
    return xid


async def test_an_expiry_by_the_next_claim_then_sold_out_again(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    coupon_id = await create_coupon(client, 1, hold_seconds=600)
    alice = await granted(client, coupon_id, "alice")
    ends = await pool.fetchval(
        "UPDATE claim SET expires_at = now() - interval '1 second' WHERE id = $1"
        " RETURNING expires_at",
        UUID(alice["id"]),
    )
    # The unit is back as of now (remaining counts a due hold), marked or not.
    assert (await coupon_now(client, coupon_id))["remaining"] == 1
    bob = await granted(client, coupon_id, "bob")  # expires alice's hold (or the sweeper did)
    events, _ = await read_all(client, pool)
    assert [e["type"] for e in events] == [
        "coupon.created", "claim.granted", "coupon.sold_out", "claim.expired", "claim.granted",
        "coupon.sold_out",
    ]  # fmt: skip
    assert same(events[3]["data"]) == same(
        {**alice, "status": "expired", "expires_at": ends.isoformat()}
    )
    assert same(events[4]["data"]) == same(bob)
    assert events[5]["data"]["remaining"] == 0


async def test_a_v1_give_is_coupon_given(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    coupon_id = await create_coupon(client, 2)
    for user in ("alice", "bob"):
        gave = await client.post(f"{GIVE}/{coupon_id}", headers={"X-User-Id": user})
        assert gave.status_code == 200, gave.text
    assert (await client.post(f"{GIVE}/{coupon_id}")).status_code == 409  # no event
    rows = await pool.fetch("SELECT id, given_at FROM coupon_given_events ORDER BY id")
    events, _ = await read_all(client, pool)
    # Bob's give and the sold out are one transaction; the sold out is written at its commit,
    # after the give (whose function updates the coupon before it writes its ledger row).
    assert [e["type"] for e in events] == [
        "coupon.created", "coupon.given", "coupon.given", "coupon.sold_out",
    ]  # fmt: skip
    gives = [events[1], events[2]]
    assert [same(e["data"]) for e in gives] == [
        {"id": row["id"], "coupon_id": str(coupon_id), "user_id": user, "quantity_left": left,
         "given_at": row["given_at"]}
        for row, user, left in zip(rows, ("alice", "bob"), (1, 0), strict=True)
    ]  # fmt: skip
    assert [e["id"] for e in gives] == [row["id"] for row in rows]
    assert [instant(e["occurred_at"]) for e in gives] == [row["given_at"] for row in rows]
    assert (events[3]["data"]["remaining"], events[3]["data"]["claimed"]) == (0, 2)
    assert instant(events[3]["occurred_at"]) == rows[1]["given_at"]  # one transaction
    assert [e["id"] for e in events] == [r["id"] for r in await pool.fetch(LEDGER + " ORDER BY 1")]


async def test_a_patch_that_cuts_to_what_is_held_is_updated_then_sold_out(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    coupon_id = await create_coupon(client, 3)
    await granted(client, coupon_id, "alice")
    await granted(client, coupon_id, "bob")
    cut = await patch(client, coupon_id, quantity=2)
    assert (await patch(client, coupon_id, paused=False))["paused"] is False  # as it was
    events, _ = await read_all(client, pool)
    assert [e["type"] for e in events] == [
        "coupon.created", "claim.granted", "claim.granted", "coupon.updated", "coupon.sold_out",
    ]  # fmt: skip
    # One transaction: both events show the coupon as the PATCH left it.
    assert same(events[3]["data"]) == same(events[4]["data"]) == same(cut)
    assert (cut["quantity"], cut["remaining"], cut["claimed"]) == (2, 0, 2)


async def test_pages_add_up_to_the_same_list_and_the_last_one_polls_again(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    for quantity in (3, 4):
        coupon_id = await create_coupon(client, quantity)
        for n in range(quantity):
            await granted(client, coupon_id, f"u{n}")
    everything, end = await read_all(client, pool)
    assert len(everything) == 2 + 7 + 2  # created, granted, sold out
    assert await page(client) == {"items": everything, "next_cursor": end}
    for limit in (1, 2, 5):
        cursor, paged = "", []
        for _ in range(len(everything) + 1):
            body = await page(client, after=cursor, limit=limit)
            assert len(body["items"]) <= limit
            paged += body["items"]
            if not body["items"]:
                assert body["next_cursor"] == cursor  # the cursor to poll again with
                break
            cursor = body["next_cursor"]
        assert paged == everything, limit
        assert cursor == end
    # A later poll from the end gets only what is new, and then nothing.
    later = await create_coupon(client, 1)
    await granted(client, later, "zoe")
    new = await page(client, after=end)
    assert [(e["type"], e["data"].get("user_id")) for e in new["items"]] == [
        ("coupon.created", None), ("claim.granted", "zoe"), ("coupon.sold_out", None),
    ]  # fmt: skip
    assert min(e["id"] for e in new["items"]) > max(e["id"] for e in everything)
    assert await page(client, after=new["next_cursor"]) == {
        "items": [], "next_cursor": new["next_cursor"],
    }  # fmt: skip
    assert (await page(client, limit=200))["items"] == everything + new["items"]


async def test_the_feed_of_one_coupon(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    mine = await create_coupon(client, 2)
    other = await create_coupon(client, 2)
    for user in ("a", "b"):
        await granted(client, mine, user)
        await granted(client, other, user)
    everything, _ = await read_all(client, pool)
    ours, cursor = await read_all(client, pool, coupon_id=str(mine))
    assert ours == [
        e for e in everything if e["data"].get("coupon_id", e["data"]["id"]) == str(mine)
    ]
    assert [e["type"] for e in ours] == [
        "coupon.created", "claim.granted", "claim.granted", "coupon.sold_out",
    ]  # fmt: skip
    first = await page(client, coupon_id=str(mine), limit=3)
    rest = await page(client, coupon_id=str(mine), after=first["next_cursor"])
    assert first["items"] + rest["items"] == ours
    assert rest["next_cursor"] == cursor
    # A cursor of the whole feed is a place in the coupon's feed too, and the other way round.
    assert (await page(client, after=cursor))["items"] == [
        e for e in everything if e["id"] > ours[-1]["id"]
    ]
    assert await page(client, coupon_id=str(uuid4())) == {"items": [], "next_cursor": ""}


@pytest.mark.parametrize(
    ("params", "slug", "detail"),
    [
        ({"after": "abc"}, "invalid-cursor", NOT_VALID),
        # A cursor of the coupons listing.
        (
            {"after": "1733100000000000-0123456789abcdef0123456789abcdef"},
            "invalid-cursor",
            NOT_VALID,
        ),
        ({"after": "12-"}, "invalid-cursor", NOT_VALID),
        ({"after": " 1-1"}, "invalid-cursor", NOT_VALID),
        ({"after": "1234567890123456789-1"}, "invalid-cursor", NOT_VALID),  # beyond a bigint
        (
            {"after": "999999999999-1"},
            "invalid-cursor",
            "cursor is ahead of the feed: pass next_cursor as given",
        ),
        (
            {"after": "999999999999-1", "coupon_id": "00000000-0000-0000-0000-000000000001"},
            "invalid-cursor",
            "cursor is ahead of the feed: pass next_cursor as given",
        ),
        ({"limit": "0"}, "invalid-request", "limit must be an integer from 1 to 200"),
        ({"limit": "201"}, "invalid-request", "limit must be an integer from 1 to 200"),
        ({"limit": "x"}, "invalid-request", "limit must be an integer from 1 to 200"),
        ({"limit": "-1"}, "invalid-request", "limit must be an integer from 1 to 200"),
        ({"coupon_id": "nope"}, "invalid-request", "malformed coupon_id 'nope': expected a UUID"),
    ],
)
async def test_bad_input_is_422_with_a_clear_detail(
    client: httpx.AsyncClient, params: dict[str, str], slug: str, detail: str
) -> None:
    await create_coupon(client, 1)
    assert refused(await client.get(EVENTS, params=params), 422, slug) == detail


async def test_who_may_read_the_feed(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    await create_coupon(client, 1)
    everything, _ = await read_all(client, pool)
    assert len(everything) == 1
    server = await make_key(client, "feed-reader", "server")
    as_server = await client.get(EVENTS, headers={"Authorization": f"Bearer {server}"})
    assert (as_server.status_code, as_server.json()["items"]) == (200, everything)
    refused(await client.get(EVENTS, headers=as_user("alice")), 403, "not-permitted")
    async with httpx.AsyncClient(transport=client._transport, base_url="http://test") as bare:
        anonymous = await bare.get(EVENTS)
    refused(anonymous, 401, "unauthorized")
    assert "www-authenticate" in anonymous.headers


async def test_an_open_transaction_holds_later_events_back_until_it_ends(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await create_coupon(client, 1)
    before, cursor = await read_all(client, pool)
    assert len(before) == 1
    async with pool.acquire() as held:
        # Transaction A writes first (its xid is the lower) and stays open ...
        transaction = held.transaction()
        await transaction.start()
        early = uuid4()
        await held.execute(
            "INSERT INTO coupon (id, name, type, quantity) VALUES ($1, 'early', 'percent', 5)",
            early,
        )
        # ... while B, which began later, commits first.
        late = await create_coupon(client, 1)
        assert await page(client, after=cursor) == {"items": [], "next_cursor": cursor}
        assert await page(client) == {"items": before, "next_cursor": cursor}
        await transaction.commit()
    after = (await page(client, after=cursor))["items"]
    assert [(e["type"], e["data"]["id"]) for e in after] == [
        ("coupon.created", str(early)), ("coupon.created", str(late)),
    ]  # fmt: skip
    assert after[0]["id"] < after[1]["id"]


async def test_a_rolled_back_transaction_is_never_listed(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    coupon_id = await create_coupon(client, 5)
    _, cursor = await read_all(client, pool)
    async with pool.acquire() as held:
        transaction = held.transaction()
        await transaction.start()
        await held.fetch(
            "SELECT * FROM claim_coupons_v2($1, ARRAY['ghost'], ARRAY['GHOS-T000-CODE'],"
            " ARRAY[NULL::text], ARRAY[NULL::text])",
            coupon_id,
        )
        other = await create_coupon(client, 1)
        assert await page(client, after=cursor) == {"items": [], "next_cursor": cursor}
        await transaction.rollback()
    after = (await page(client, after=cursor))["items"]
    assert [(e["type"], e["data"]["id"]) for e in after] == [("coupon.created", str(other))]
    events, _ = await read_all(client, pool)
    assert {e["id"] for e in events} == {r["id"] for r in await pool.fetch(LEDGER)}


async def test_the_order_is_the_xids_as_numbers(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    # Ledger rows as if written by transactions 9, 10 and 99 (long ended), inserted in another
    # order: the feed sorts the numbers, not their decimal text ('10' < '9').
    coupon_id = uuid4()
    for xid in ("99", "10", "9"):
        await pool.execute(
            "INSERT INTO coupon_event (xid, coupon_id, kind, data)"
            " VALUES ($1::text::xid8, $2::uuid, 'updated', jsonb_build_object('id', $2::uuid))",
            xid, coupon_id,
        )  # fmt: skip
    rows = await pool.fetch(
        "SELECT id, xid::text AS xid FROM coupon_event ORDER BY coupon_event.xid, id"
    )
    cursors = [f"{r['xid']}-{r['id']}" for r in rows]
    assert [c.split("-")[0] for c in cursors] == ["9", "10", "99"]
    whole = await page(client)
    assert ([e["id"] for e in whole["items"]], whole["next_cursor"]) == (
        [r["id"] for r in rows], cursors[-1],
    )  # fmt: skip
    paged = [await page(client, after=after, limit=1) for after in ["", *cursors]]
    assert [p["next_cursor"] for p in paged] == [*cursors, cursors[-1]]
    assert [p["items"] for p in paged] == [[e] for e in whole["items"]] + [[]]
    one = await page(client, coupon_id=str(coupon_id), after=cursors[0])
    assert [e["id"] for e in one["items"]] == [r["id"] for r in rows[1:]]
