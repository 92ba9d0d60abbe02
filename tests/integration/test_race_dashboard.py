"""The dashboard's endpoints: the page and its assets, the stats it polls (grants from both
ledgers, refusals counted per coupon), and the race button (one race at a time)."""

from __future__ import annotations

import time
from uuid import UUID

import httpx
import pytest

from couponapi.app import create_app
from couponapi.config import Settings
from couponapi.dashboard import stats
from tests.support import running_server
from tests.v2_support import ADMIN, TOKEN, v2_client

V1 = "/coupon/api/v1"


async def create(client: httpx.AsyncClient, amount: int, name: str) -> UUID:
    response = await client.post(f"{V1}/create", json={"Name": name, "Type": "x", "Amount": amount})
    assert response.status_code == 200, response.text
    return UUID(response.json()["id"])


@pytest.mark.parametrize("path", ["/", "/dashboard"])
async def test_the_page_and_its_assets_are_served(client: httpx.AsyncClient, path: str) -> None:
    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/dashboard/static/app.js" in page.text
    assert "http://" not in page.text.replace("http://www.w3.org", "")  # nothing from the internet
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        served = await client.get(f"/dashboard/static/{asset}")
        assert served.status_code == 200
        assert kind in served.headers["content-type"]


async def test_every_dashboard_route_is_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths["/dashboard/race"]) == {"get", "post"}
    for path in ("/", "/dashboard", "/dashboard/stats"):
        assert set(paths[path]) == {"get"}


async def test_stats_count_grants_from_both_ledgers_and_refusals(client: httpx.AsyncClient) -> None:
    coupon_id = await create(client, 4, "dashboard")
    other = await create(client, 1, "untouched")
    for user in ("a", "b"):
        given = await client.post(f"{V1}/give-transaction/{coupon_id}", headers={"X-User-Id": user})
        assert given.status_code == 200
    claimed = await client.post(f"/api/v2/coupons/{coupon_id}/claims", json={"user_id": "c"})
    assert claimed.status_code == 201, claimed.text
    again = await client.post(f"/api/v2/coupons/{coupon_id}/claims", json={"user_id": "c"})
    assert again.status_code == 409  # this user's limit: a refusal
    last = await client.post(f"{V1}/give-transaction/{coupon_id}", headers={"X-User-Id": "d"})
    assert last.status_code == 200
    sold_out = await client.post(f"{V1}/give-transaction/{coupon_id}", headers={"X-User-Id": "e"})
    assert sold_out.status_code == 409

    stats = (await client.get("/dashboard/stats")).json()
    assert stats["bucket_s"] * len(stats["coupons"][0]["claims"]) == stats["window_s"]
    by_id = {UUID(c["id"]): c for c in stats["coupons"]}
    mine = by_id[coupon_id]
    assert (mine["name"], mine["quantity"], mine["remaining"]) == ("dashboard", 4, 0)
    assert sum(mine["claims"]) == 4  # 3 in the v1 ledger, 1 in the v2 one
    assert sum(mine["refusals"]) == 2
    assert (by_id[other]["remaining"], sum(by_id[other]["claims"])) == (1, 0)
    assert sum(by_id[other]["refusals"]) == 0


async def test_race_request_out_of_range_is_422(database_url: str) -> None:
    async with v2_client(database_url) as client:
        for body in ({"users": 0}, {"concurrency": 100_000}, {"quantity": "many"}, {"speed": 1}):
            response = await client.post("/dashboard/race", json=body, headers=ADMIN)
            assert response.status_code == 422, body


async def test_only_the_admin_may_start_a_race(database_url: str) -> None:
    async with v2_client(database_url) as client:
        anonymous = await client.post("/dashboard/race", json={})
        wrong = await client.post("/dashboard/race", json={}, headers={"Authorization": "Bearer x"})
        status = (await client.get("/dashboard/race", headers=ADMIN)).json()
    assert (anonymous.status_code, wrong.status_code) == (401, 403)
    assert status["state"] == "idle"  # nothing started


async def test_the_race_can_be_switched_off(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, enable_race=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post("/dashboard/race", json={})
    assert response.status_code == 403
    assert "switched off" in response.json()["errorDescription"]


def test_the_race_button_runs_one_race_and_fills_the_table(database_url: str) -> None:
    with (
        running_server(database_url, workers=1, env={"COUPONAPI_ADMIN_TOKEN": TOKEN}) as server,
        httpx.Client(base_url=server.base_url, timeout=10, headers=ADMIN) as http,
    ):
        assert http.get("/dashboard/race").json()["state"] == "idle"
        body = {"quantity": 10, "users": 60, "concurrency": 30}
        started = http.post("/dashboard/race", json=body)
        assert started.status_code == 202
        assert started.json()["state"] == "running"
        refused = http.post("/dashboard/race", json=body)
        assert refused.status_code == 409  # one race at a time
        deadline = time.monotonic() + 60
        status = started.json()
        while status["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = http.get("/dashboard/race").json()
    assert status["state"] == "done", status
    rows = {row["strategy"]: row for row in status["rows"]}
    assert {"naive", "locking", "function"} <= set(rows)
    for name, row in rows.items():
        assert row["quantity"] == 10
        if name != "naive":
            assert (row["granted"], row["oversold"], row["ledger_rows"]) == (10, 0, 10), name
            assert row["ledger_agrees"] is True


def test_the_refusal_counter_keeps_only_the_window() -> None:
    counter = stats.RefusalCounter()
    start = 1_000_000.0
    counter.record("ABC", now=start)
    counter.record("abc", now=start + 1)  # the same bucket, the same coupon (case-blind)
    counter.record("abc", now=start + stats.BUCKET_S)
    series = counter.series("abc", now=start + stats.BUCKET_S)
    assert len(series) == stats.WINDOW_S // stats.BUCKET_S
    assert series[-2:] == [2, 1]
    assert sum(series) == 3
    counter.record("other", now=start + stats.WINDOW_S + stats.BUCKET_S)
    assert counter.series("abc", now=start + stats.WINDOW_S + stats.BUCKET_S) == [0] * len(series)
    assert len(counter.buckets) == 1  # older buckets are forgotten
    assert stats.rate([0, 4, 6, 100]) == 2.5  # the last complete buckets, per second
