"""Webhooks over HTTP: the admin routes and their refusals, and deliveries to a real receiver
on 127.0.0.1 that verifies every signature (tests.webhook_receiver).

Deliveries are checked against GET /api/v2/events: every event arrives, in feed order, with
`webhook-id` evt_<event id> on every attempt; failures are retried on a short schedule and
logged, an endpoint failing through the schedule is disabled and resumes where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from couponapi.config import Settings
from couponapi.services.webhook_sender import WebhookSender, policy_of
from tests.support import app_client
from tests.v2_support import ADMIN, JWT_SECRET, TOKEN, V2, as_user, create_coupon
from tests.webhook_receiver import Receiver, Reply, eventually, read_feed

HOOKS = f"{V2}/webhooks"
QUIET_S = 1.0  # how long "nothing more is sent" is watched: several retry pauses


def webhook_settings(database_url: str, retry_s: str = "0.5,0.5,0.5") -> Settings:
    """The test settings with deliveries to 127.0.0.1 only and a short retry schedule."""
    return Settings(
        database_url=database_url,
        admin_token=SecretStr(TOKEN),
        jwt_secret=SecretStr(JWT_SECRET),
        webhook_hosts="127.0.0.1",
        webhook_timeout_s=5.0,
        webhook_retry_s=retry_s,
    )


@asynccontextmanager
async def delivering(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with `settings`, and beside it the sender `serve` runs in a process
    of its own (here a task, on a pool of its own); requests carry the admin token."""
    async with (
        app_client(settings, auth=TOKEN) as client,
        asyncpg.create_pool(settings.database_url, min_size=1, max_size=5) as pool,
    ):
        sender = asyncio.create_task(WebhookSender(pool, policy_of(settings)).run_forever())
        try:
            yield client
        finally:
            sender.cancel()
            with suppress(asyncio.CancelledError):
                await sender


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver()
    await hooks.start()
    try:
        yield hooks
    finally:
        await hooks.stop()


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app with webhook_settings, its sender running; requests carry the admin token."""
    async with delivering(webhook_settings(database_url)) as client:
        yield client


async def register(
    api: httpx.AsyncClient, receiver: Receiver, path: str, events: list[str] | None = None
) -> dict[str, Any]:
    """Register receiver's `path` and give the receiver its secret; the endpoint."""
    body: dict[str, Any] = {"url": receiver.url(path)}
    if events is not None:
        body["events"] = events
    answer = await api.post(HOOKS, json=body)
    assert answer.status_code == 201, answer.text
    endpoint: dict[str, Any] = answer.json()
    receiver.secrets[path] = endpoint["secret"]
    return endpoint


async def claim(api: httpx.AsyncClient, coupon_id: UUID, user: str) -> httpx.Response:
    return await api.post(f"{V2}/coupons/{coupon_id}/claims", json={"user_id": user})


async def deliveries(api: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, Any]]:
    """The endpoint's delivery log, newest first (one page of up to 200)."""
    answer = await api.get(f"{HOOKS}/{endpoint_id}/deliveries", params={"limit": 200})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def problem(answer: httpx.Response, status: int, slug: str, detail: str = "") -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == f"/problems/{slug}"
    assert detail in answer.json()["detail"], answer.json()["detail"]


def sent(receiver: Receiver, path: str, n: int) -> Callable[[], Awaitable[bool]]:
    """A check that `path` has taken at least `n` deliveries."""

    async def check() -> bool:
        return len(receiver.delivered(path)) >= n

    return check


async def feed_of(api: httpx.AsyncClient, expected: int) -> list[dict[str, Any]]:
    """The feed once it lists `expected` events (the writers' transactions have ended)."""
    listed: list[dict[str, Any]] = []

    async def complete() -> bool:
        nonlocal listed
        listed = await read_feed(api, ADMIN)
        return len(listed) >= expected

    assert await eventually(complete), listed
    assert len(listed) == expected, listed
    return listed


def assert_in_feed_order(receiver: Receiver, path: str, feed: list[dict[str, Any]]) -> None:
    """Every delivery to `path` verified; the 2xx ones are the feed's events, each once, in
    its order, as it lists them, with webhook-id evt_<event id>."""
    assert all(a.verified for a in receiver.at(path))
    taken = receiver.delivered(path)
    assert [a.body for a in taken] == feed
    assert [a.webhook_id for a in taken] == [f"evt_{event['id']}" for event in feed]


# ---- the admin routes --------------------------------------------------------------------


async def test_register_list_get_disable_delete(client: httpx.AsyncClient) -> None:
    url = "http://127.0.0.1:9/hooks/coupons?token=abc"
    created = await client.post(HOOKS, json={"url": url, "events": ["coupon.sold_out"]})
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert created.headers["location"] == f"{HOOKS}/{endpoint['id']}"
    secret = endpoint.pop("secret")
    assert secret.startswith("whsec_")
    Webhook(secret)  # a secret the Standard Webhooks library takes
    assert (endpoint["url"], endpoint["events"], endpoint["enabled"]) == (
        url, ["coupon.sold_out"], True,
    )  # fmt: skip
    assert (endpoint["disabled_at"], endpoint["disabled_reason"]) == (None, None)
    assert (endpoint["failing_since"], endpoint["failed_attempts"]) == (None, 0)
    everything = await client.post(HOOKS, json={"url": "http://localhost:9/all"})
    assert everything.status_code == 201
    assert everything.json()["events"] is None
    assert everything.json()["secret"] not in (secret, "")

    listed = await client.get(HOOKS)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [
        endpoint["id"], everything.json()["id"],
    ]  # fmt: skip
    assert all("secret" not in item for item in listed.json()["items"])
    assert secret not in listed.text
    assert everything.json()["secret"] not in listed.text
    one = await client.get(f"{HOOKS}/{endpoint['id']}")
    assert one.status_code == 200
    assert one.json() == endpoint

    disabled = await client.patch(f"{HOOKS}/{endpoint['id']}", json={"enabled": False})
    assert disabled.status_code == 200
    assert (disabled.json()["enabled"], disabled.json()["disabled_reason"]) == (
        False, "disabled by the admin",
    )  # fmt: skip
    assert disabled.json()["disabled_at"] is not None
    assert "secret" not in disabled.json()
    assert (await client.get(f"{HOOKS}/{endpoint['id']}")).json() == disabled.json()
    enabled = await client.patch(f"{HOOKS}/{endpoint['id']}", json={"enabled": True})
    assert enabled.status_code == 200
    assert {k: enabled.json()[k] for k in ("enabled", "disabled_at", "disabled_reason")} == {
        "enabled": True, "disabled_at": None, "disabled_reason": None,
    }  # fmt: skip

    empty = await client.get(f"{HOOKS}/{endpoint['id']}/deliveries")
    assert empty.status_code == 200
    assert empty.json() == {"items": [], "next_before": None}
    deleted = await client.delete(f"{HOOKS}/{endpoint['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    gone = f"{HOOKS}/{endpoint['id']}"
    problem(await client.get(gone), 404, "webhook-not-found")
    problem(await client.delete(gone), 404, "webhook-not-found")
    problem(await client.patch(gone, json={"enabled": True}), 404, "webhook-not-found")
    problem(await client.post(f"{gone}/rotate-secret"), 404, "webhook-not-found")
    problem(await client.get(f"{gone}/deliveries"), 404, "webhook-not-found")
    problem(await client.get(f"{HOOKS}/{uuid4()}"), 404, "webhook-not-found")
    problem(await client.get(f"{HOOKS}/nope"), 422, "invalid-request", "expected a UUID")
    listed_after = (await client.get(HOOKS)).json()["items"]
    assert [item["id"] for item in listed_after] == [everything.json()["id"]]


WEBHOOK, REQUEST = "invalid-webhook", "invalid-request"
BAD_BODIES = [
    ({"url": "not a url"}, WEBHOOK, "url must be at most 2048 characters with no spaces"),
    ({"url": "file:///etc/passwd"}, WEBHOOK, "url must be http:// or https://, not 'file'"),
    ({"url": "ftp://127.0.0.1/x"}, WEBHOOK, "url must be http:// or https://, not 'ftp'"),
    ({"url": "http://"}, WEBHOOK, "url must name a host"),
    ({"url": "http://user:pass@127.0.0.1/x"}, WEBHOOK, "url must not carry credentials"),
    ({"url": "http://127.0.0.1:99999/x"}, WEBHOOK, "not a valid URL: Port out of range"),
    ({"url": "https://[::1/x"}, WEBHOOK, "url is not a valid URL: Invalid IPv6 URL"),
    ({"url": "http://example.com/hook"}, WEBHOOK, "host 'example.com' is not allowed"),
    ({"url": "http://127.0.0.1/x", "events": ["coupon.exploded"]}, REQUEST, "coupon.exploded"),
    ({"url": "http://127.0.0.1/x", "events": []}, REQUEST, "length >= 1 - at `$.events`"),
    ({"url": ""}, REQUEST, "length >= 1 - at `$.url`"),
    ({"url": 42}, REQUEST, "Expected `str`, got `int` - at `$.url`"),
    ({"events": ["claim.granted"]}, REQUEST, "missing required field `url`"),
    ({"url": "http://127.0.0.1/x", "secret": "whsec_x"}, REQUEST, "unknown field `secret`"),
]


@pytest.mark.parametrize(
    ("body", "slug", "detail"), BAD_BODIES, ids=[detail for _, _, detail in BAD_BODIES]
)
async def test_bad_input_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, body: dict[str, Any], slug: str, detail: str
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM webhook_endpoint")
    problem(await client.post(HOOKS, json=body), 422, slug, detail)
    assert await pool.fetchval("SELECT count(*) FROM webhook_endpoint") == before == 0


async def test_a_bad_patch_or_page_is_refused(client: httpx.AsyncClient) -> None:
    endpoint = (await client.post(HOOKS, json={"url": "http://127.0.0.1:9/x"})).json()
    one = f"{HOOKS}/{endpoint['id']}"
    problem(await client.patch(one, json={"enabled": "no"}), 422, "invalid-request", "bool")
    problem(await client.patch(one, json={}), 422, "invalid-request", "enabled")
    for before in ("0", "x", "-1", str(2**63)):
        refused = await client.get(f"{one}/deliveries", params={"before": before})
        problem(refused, 422, "invalid-request", "before must be a positive integer")
    refused = await client.get(f"{one}/deliveries", params={"limit": "0"})
    problem(refused, 422, "invalid-request", "limit")
    assert (await client.get(one)).json()["enabled"] is True


async def test_only_the_admin_may(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    made = await client.post(HOOKS, json={"url": "http://127.0.0.1:9/x"})
    endpoint_id, secret = made.json()["id"], made.json()["secret"]
    key = await client.post(f"{V2}/keys", json={"name": "checkout", "scope": "server"})
    assert key.status_code == 201, key.text
    one = f"{HOOKS}/{endpoint_id}"
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", HOOKS, {"url": "http://127.0.0.1:9/y"}),
        ("GET", HOOKS, None),
        ("GET", one, None),
        ("PATCH", one, {"enabled": False}),
        ("DELETE", one, None),
        ("POST", f"{one}/rotate-secret", None),
        ("GET", f"{one}/deliveries", None),
    ]
    who = {
        "user": (as_user("alice"), 403, "not-permitted"),
        "server": ({"Authorization": f"Bearer {key.json()['key']}"}, 403, "not-permitted"),
    }
    for method, url, body in calls:
        bare = await client.request(method, url, json=body, auth=None)
        problem(bare, 401, "unauthorized")
        assert bare.headers["www-authenticate"].startswith("Bearer")
        for headers, status, slug in who.values():
            problem(await client.request(method, url, json=body, headers=headers), status, slug)
    rows = await pool.fetch("SELECT id::text, secret, disabled_at FROM webhook_endpoint")
    assert [tuple(row) for row in rows] == [(endpoint_id, secret, None)]


# ---- deliveries ----------------------------------------------------------------------------


async def test_a_race_is_delivered_in_feed_order_and_filtered(
    api: httpx.AsyncClient, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    everything = await register(api, receiver, "/all")
    sold_outs = await register(api, receiver, "/sold-out", events=["coupon.sold_out"])
    coupons = {await create_coupon(api, quantity=3): 8, await create_coupon(api, quantity=4): 8}
    answers = await asyncio.gather(
        *(claim(api, coupon_id, f"u{n}") for coupon_id, crowd in coupons.items()
          for n in range(crowd))
    )  # fmt: skip
    assert sorted(a.status_code for a in answers) == [201] * 7 + [409] * 9
    granted = {a.json()["id"] for a in answers if a.status_code == 201}
    feed = await feed_of(api, expected=2 + 7 + 2)  # created, granted, sold out

    assert await eventually(sent(receiver, "/all", len(feed)))
    assert await eventually(sent(receiver, "/sold-out", 2))

    async def caught_up() -> bool:
        positions = await pool.fetch("SELECT after_id, leased_by FROM webhook_endpoint")
        return all(p["after_id"] == feed[-1]["id"] and p["leased_by"] is None for p in positions)

    assert await eventually(caught_up)
    assert_in_feed_order(receiver, "/all", feed)
    assert_in_feed_order(receiver, "/sold-out", [e for e in feed if e["type"] == "coupon.sold_out"])
    assert {a.body["data"]["id"] for a in receiver.at("/sold-out")} == {str(c) for c in coupons}
    taken = {e["data"]["id"] for e in feed if e["type"] == "claim.granted"}
    assert taken == granted
    assert {a.body["data"]["id"] for a in receiver.delivered("/all")} >= granted
    assert len(receiver.arrivals) == len(feed) + 2  # nothing twice, nothing else
    for endpoint, count in ((everything, len(feed)), (sold_outs, 2)):
        log = await deliveries(api, endpoint["id"])
        assert len(log) == count
        assert {(d["attempt"], d["status_code"], d["error"], d["response"]) for d in log} == {
            (1, 200, None, "ok")
        }
    first = receiver.arrivals[0]
    assert first.headers["content-type"] == "application/json"
    assert int(first.headers["webhook-timestamp"]) > 0


async def test_deliveries_after_rotation_verify_with_the_new_secret_only(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    endpoint = await register(api, receiver, "/hook")
    old = endpoint["secret"]
    await create_coupon(api, quantity=1)
    assert await eventually(sent(receiver, "/hook", 1))
    rotated = await api.post(f"{HOOKS}/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_")
    assert new != old
    assert rotated.json()["id"] == endpoint["id"]
    assert new not in (await api.get(HOOKS)).text
    receiver.secrets["/hook"] = new
    await create_coupon(api, quantity=1)
    feed = await feed_of(api, expected=2)
    assert await eventually(sent(receiver, "/hook", 2))
    assert_in_feed_order(receiver, "/hook", feed)
    before, after = receiver.at("/hook")
    Webhook(old).verify(before.raw, before.headers)
    Webhook(new).verify(after.raw, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.raw, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(before.raw, before.headers)


async def test_a_receiver_answering_500_gets_everything_once_it_is_back(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.script["/hook"].extend([Reply(500, "down"), Reply(500, "down")])
    endpoint = await register(api, receiver, "/hook")
    coupon_id = await create_coupon(api, quantity=5)
    assert [(await claim(api, coupon_id, u)).status_code for u in ("a", "b")] == [201, 201]
    feed = await feed_of(api, expected=3)
    assert await eventually(sent(receiver, "/hook", 3))
    assert_in_feed_order(receiver, "/hook", feed)
    first, second, third = (f"evt_{event['id']}" for event in feed)
    arrived = [(a.webhook_id, a.status) for a in receiver.at("/hook")]
    assert arrived == [(first, 500), (first, 500), (first, 200), (second, 200), (third, 200)]

    async def logged() -> bool:
        return len(await deliveries(api, endpoint["id"])) == 5

    assert await eventually(logged)
    log = await deliveries(api, endpoint["id"])
    assert [(d["event_id"], d["attempt"], d["status_code"], d["error"], d["response"])
            for d in reversed(log)] == [
        (feed[0]["id"], 1, 500, "HTTP 500", "down"), (feed[0]["id"], 2, 500, "HTTP 500", "down"),
        (feed[0]["id"], 3, 200, None, "ok"), (feed[1]["id"], 1, 200, None, "ok"),
        (feed[2]["id"], 1, 200, None, "ok"),
    ]  # fmt: skip
    assert all(d["duration_ms"] >= 0 and d["attempted_at"].endswith("Z") for d in log)
    state = (await api.get(f"{HOOKS}/{endpoint['id']}")).json()
    assert (state["failed_attempts"], state["failing_since"], state["enabled"]) == (0, None, True)

    pages: list[list[int]] = []
    before: int | None = None
    for _ in range(5):
        params: dict[str, int] = {"limit": 2} | ({"before": before} if before else {})
        page = (await api.get(f"{HOOKS}/{endpoint['id']}/deliveries", params=params)).json()
        pages.append([d["id"] for d in page["items"]])
        before = page["next_before"]
        if before is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in p] == [d["id"] for d in log]


async def test_a_receiver_not_listening_gets_everything_once_it_is_up(
    database_url: str, receiver: Receiver
) -> None:
    await receiver.stop()
    settings = webhook_settings(database_url, retry_s=",".join(["0.3"] * 12))
    async with delivering(settings) as api:
        endpoint = await register(api, receiver, "/hook")
        coupon_id = await create_coupon(api, quantity=5)
        assert (await claim(api, coupon_id, "a")).status_code == 201

        async def refused_twice() -> bool:
            return len(await deliveries(api, endpoint["id"])) >= 2

        assert await eventually(refused_twice)
        await receiver.start()
        feed = await feed_of(api, expected=2)
        assert await eventually(sent(receiver, "/hook", 2))

        async def logged() -> bool:
            log = await deliveries(api, endpoint["id"])
            return [d["event_id"] for d in log[:2]] == [feed[1]["id"], feed[0]["id"]]

        assert await eventually(logged)
        log = list(reversed(await deliveries(api, endpoint["id"])))
    assert_in_feed_order(receiver, "/hook", feed)
    assert len(receiver.arrivals) == 2  # the refused attempts never arrived
    failed, (recovered, next_one) = log[:-2], log[-2:]
    assert len(failed) >= 2
    assert [(d["event_id"], d["attempt"], d["status_code"], d["response"]) for d in failed] == [
        (feed[0]["id"], n, None, None) for n in range(1, len(failed) + 1)
    ]
    assert all("Connect" in d["error"] for d in failed), failed
    assert (recovered["event_id"], recovered["attempt"], recovered["status_code"]) == (
        feed[0]["id"], len(failed) + 1, 200,
    )  # fmt: skip
    assert (next_one["event_id"], next_one["attempt"], next_one["error"]) == (
        feed[1]["id"], 1, None,
    )  # fmt: skip


async def test_failing_through_the_schedule_disables_and_enabling_resumes(
    database_url: str, receiver: Receiver
) -> None:
    receiver.otherwise["/hook"] = Reply(500, "nope")
    async with delivering(webhook_settings(database_url, "0.2,0.2,0.2")) as api:
        endpoint = await register(api, receiver, "/hook")
        coupon_id = await create_coupon(api, quantity=5)

        async def disabled() -> bool:
            got = (await api.get(f"{HOOKS}/{endpoint['id']}")).json()
            return got["enabled"] is False

        assert await eventually(disabled)
        state = (await api.get(f"{HOOKS}/{endpoint['id']}")).json()
        assert state["disabled_reason"].startswith("disabled after 4 failed attempts since ")
        assert state["disabled_reason"].endswith("; last: HTTP 500")
        assert state["failed_attempts"] == 4
        assert state["failing_since"] is not None
        log = await deliveries(api, endpoint["id"])
        assert [(d["attempt"], d["status_code"]) for d in log] == [(4, 500), (3, 500),
                                                                  (2, 500), (1, 500)]  # fmt: skip
        assert [(await claim(api, coupon_id, u)).status_code for u in ("a", "b")] == [201, 201]
        feed = await feed_of(api, expected=3)
        await asyncio.sleep(QUIET_S)
        assert len(receiver.at("/hook")) == 4  # nothing more is sent
        assert {a.webhook_id for a in receiver.at("/hook")} == {f"evt_{feed[0]['id']}"}

        receiver.otherwise["/hook"] = Reply()
        resumed = await api.patch(f"{HOOKS}/{endpoint['id']}", json={"enabled": True})
        assert resumed.status_code == 200
        assert {k: resumed.json()[k] for k in ("enabled", "disabled_reason", "failed_attempts",
                                               "failing_since")} == {
            "enabled": True, "disabled_reason": None, "failed_attempts": 0, "failing_since": None,
        }  # fmt: skip
        assert await eventually(sent(receiver, "/hook", 3))
        assert_in_feed_order(receiver, "/hook", feed)
        assert len(receiver.at("/hook")) == 4 + 3


async def test_disabling_while_a_delivery_is_in_flight_sticks(
    api: httpx.AsyncClient, receiver: Receiver, pool: asyncpg.Pool
) -> None:
    receiver.hold = asyncio.Event()
    endpoint = await register(api, receiver, "/hook")
    await create_coupon(api, quantity=1)

    async def in_flight() -> bool:
        return len(receiver.in_flight()) == 1

    assert await eventually(in_flight)
    stopped = await api.patch(f"{HOOKS}/{endpoint['id']}", json={"enabled": False})
    assert stopped.json()["enabled"] is False
    receiver.hold.set()

    async def run_over() -> bool:
        return await pool.fetchval("SELECT leased_by IS NULL FROM webhook_endpoint") is True

    assert await eventually(run_over)
    state = (await api.get(f"{HOOKS}/{endpoint['id']}")).json()
    assert (state["enabled"], state["disabled_reason"]) == (False, "disabled by the admin")
    await create_coupon(api, quantity=1)
    feed = await feed_of(api, expected=2)
    await asyncio.sleep(QUIET_S)
    assert len(receiver.arrivals) == 1  # the one in flight, and nothing after the PATCH
    assert (await api.patch(f"{HOOKS}/{endpoint['id']}", json={"enabled": True})).is_success
    assert await eventually(sent(receiver, "/hook", 2))
    assert_in_feed_order(receiver, "/hook", feed)


async def test_a_redirect_is_a_failure_and_is_not_followed(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    moved = Reply(302, "", headers={"Location": receiver.url("/elsewhere")})
    receiver.script["/hook"].append(moved)
    endpoint = await register(api, receiver, "/hook")
    await create_coupon(api, quantity=1)
    feed = await feed_of(api, expected=1)
    assert await eventually(sent(receiver, "/hook", 1))
    assert [(a.path, a.status) for a in receiver.arrivals] == [("/hook", 302), ("/hook", 200)]
    assert_in_feed_order(receiver, "/hook", feed)

    async def logged() -> bool:
        return len(await deliveries(api, endpoint["id"])) == 2

    assert await eventually(logged)
    log = list(reversed(await deliveries(api, endpoint["id"])))
    assert [(d["attempt"], d["status_code"], d["error"]) for d in log] == [
        (1, 302, "HTTP 302 (redirects are not followed)"), (2, 200, None),
    ]  # fmt: skip


async def test_the_answer_kept_in_the_log_is_bounded(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    big_error, big_ok = "e" * 100_000, "x" * 100_000
    receiver.script["/hook"].append(Reply(500, big_error))
    receiver.otherwise["/hook"] = Reply(200, big_ok)
    endpoint = await register(api, receiver, "/hook")
    await create_coupon(api, quantity=1)
    feed = await feed_of(api, expected=1)
    assert await eventually(sent(receiver, "/hook", 1))
    assert_in_feed_order(receiver, "/hook", feed)

    async def logged() -> bool:
        return len(await deliveries(api, endpoint["id"])) == 2

    assert await eventually(logged)
    failed, delivered = reversed(await deliveries(api, endpoint["id"]))
    assert (failed["status_code"], failed["error"], delivered["status_code"]) == (
        500, "HTTP 500", 200,
    )  # fmt: skip
    for attempt, answered in ((failed, big_error), (delivered, big_ok)):
        assert 0 < len(attempt["response"]) <= 1024
        assert answered.startswith(attempt["response"])
