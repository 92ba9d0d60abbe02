"""A webhook registered on a running `couponapi serve` receives every claim of a `couponapi
race`: every grant of every strategy (v2 claims as claim.granted, v1 gives as coupon.given),
every coupon created and sold out, each signature verified, in feed order, nothing missing."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter

import httpx
import pytest

from tests.support import CREDENTIALS_ENV, TOKEN, running_server
from tests.webhook_receiver import V2, Receiver, eventually, read_feed

pytestmark = pytest.mark.concurrency

QUANTITY, USERS, CONCURRENCY = 20, 200, 100
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


async def test_a_webhook_receives_every_claim_of_a_race(database_url: str) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        with running_server(database_url, workers=2) as server:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
                made = await client.post(
                    f"{V2}/webhooks", json={"url": receiver.url("/race")}, headers=ADMIN
                )
                assert made.status_code == 201, made.text
                receiver.secrets["/race"] = made.json()["secret"]
                race = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "couponapi", "race", "--url", server.base_url,
                    "--database-url", database_url, "--quantity", str(QUANTITY),
                    "--users", str(USERS), "--concurrency", str(CONCURRENCY), "--json",
                    env={**os.environ, **CREDENTIALS_ENV},
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, err = await asyncio.wait_for(race.communicate(), 240)
                assert race.returncode == 0, err.decode()
                rows = json.loads(out)
                feed = await read_feed(client, ADMIN)

                async def all_delivered() -> bool:
                    return len({a.webhook_id for a in receiver.delivered("/race")}) >= len(feed)

                assert await eventually(all_delivered, 60)
    finally:
        await receiver.stop()
    arrivals = receiver.at("/race")
    assert all(a.verified for a in arrivals)
    first_seen = list(dict.fromkeys(a.webhook_id for a in arrivals))
    assert first_seen == [f"evt_{event['id']}" for event in feed]
    types = Counter(event["type"] for event in feed)
    granted = sum(row["granted"] for row in rows)
    assert types["claim.granted"] + types["coupon.given"] == granted
    assert types["coupon.created"] == len(rows)
    sold_out = Counter(e["data"]["id"] for e in feed if e["type"] == "coupon.sold_out")
    # Once for every safe strategy. The naive one writes what it read minus one: it may reach 0
    # several times, or never, however many it gives.
    for row in rows:
        if row["strategy"] != "naive":
            assert sold_out[row["coupon_id"]] == 1, row["strategy"]
