"""What webhooks cost the hot claim, and how far the sender lags behind it.

`python -m benchmarks.webhooks [--seconds S] [--rounds N]` (`make bench-webhooks`). The v2 hot
claim (HOT_100, the default strategy, a user token per request) with no webhook endpoint,
then with one endpoint subscribed to every event, in turn, ROUNDS times: the ratio of their
medians (goal: >= 0.9x). The endpoint is a receiver on 127.0.0.1 in a process of its own
(aiohttp, answering 204 at once), registered just before its run, so it receives exactly
that run's events. During the run the database is sampled every second: events delivered,
and the age of the oldest event not yet delivered (the sender's lag). After the run the
receiver must get every event (the feed's count, each webhook-id at least once) within
DRAIN_S, and the time it took is reported; a lost event is a failure, not a figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any
from uuid import UUID

import asyncpg

from benchmarks.scenarios import HOT_100, V2_GROUP_COMMIT, Scenario, Target
from benchmarks.service import free_port
from couponapi.domain.webhooks import WebhookPolicy
from couponapi.services import webhooks

ROUNDS = 3
SCENARIO: Scenario = HOT_100
WAYS = ("no webhook", "1 webhook, every event")
DRAIN_S = 300.0  # how long the sender may take to catch up after a run

# The receiver: counts what it gets, answers 204; GET /count says how many distinct ids.
RECEIVER = """
import sys
from aiohttp import web
seen = set()
async def hook(request):
    await request.read()
    seen.add(request.headers["webhook-id"])
    return web.Response(status=204)
async def count(request):
    return web.json_response({"distinct": len(seen)})
app = web.Application()
app.router.add_post("/hook", hook)
app.router.add_get("/count", count)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

# Delivered so far by endpoint $1, and the age of the oldest event after its position (NULL:
# none): each ledger's first row after it, by index, so a sample costs nothing of the backlog.
LAG = """
SELECT (SELECT count(*) FROM webhook_delivery AS d
         WHERE d.endpoint_id = w.id AND d.error IS NULL) AS delivered,
       (SELECT extract(epoch FROM now() - min(first.at)) FROM (
            (SELECT e.occurred_at AS at FROM claim_event AS e
              WHERE (e.xid, e.id) > (w.after_xid, w.after_id) ORDER BY e.xid, e.id LIMIT 1)
            UNION ALL
            (SELECT v.occurred_at FROM coupon_event AS v
              WHERE (v.xid, v.id) > (w.after_xid, w.after_id) ORDER BY v.xid, v.id LIMIT 1)
            UNION ALL
            (SELECT g.given_at FROM coupon_given_events AS g
              WHERE (g.xid, g.id) > (w.after_xid, w.after_id) ORDER BY g.xid, g.id LIMIT 1)
        ) AS first) AS oldest_undelivered_s
FROM webhook_endpoint AS w WHERE w.id = $1
"""


def target(way: str) -> Target:
    """The hot v2 claim, named for its webhooks."""
    base = V2_GROUP_COMMIT
    return Target(f"v2 {base.strategy}, {way}", "v2", base.strategy, base.path, base.kind)


class Sampler(threading.Thread):
    """Samples an endpoint's lag every second until stopped (a thread: wrk blocks the caller)."""

    def __init__(self, url: str, endpoint_id: UUID) -> None:
        super().__init__(daemon=True)
        self.url, self.endpoint_id = url, endpoint_id
        self.samples: list[dict[str, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        asyncio.run(self._sample())

    async def _sample(self) -> None:
        connection = await asyncpg.connect(self.url)
        started = time.monotonic()
        try:
            while not self.stopped.wait(1.0):
                row = await connection.fetchrow(LAG, self.endpoint_id)
                assert row is not None
                self.samples.append({
                    "t": round(time.monotonic() - started, 1),
                    "delivered": row["delivered"],
                    "oldest_undelivered_s": round(float(row["oldest_undelivered_s"] or 0), 2),
                })  # fmt: skip
        finally:
            await connection.close()


async def _register(url: str, receiver: str) -> UUID:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        policy = WebhookPolicy.of("127.0.0.1", 5.0, "1")
        endpoint, _ = await webhooks.create_endpoint(pool, policy, receiver, None)
        return endpoint.id
    finally:
        await pool.close()


async def _drained(url: str, endpoint_id: UUID) -> tuple[bool, int]:
    connection = await asyncpg.connect(url)
    try:
        row = await connection.fetchrow(LAG, endpoint_id)
        assert row is not None
        return row["oldest_undelivered_s"] is not None, int(row["delivered"])
    finally:
        await connection.close()


async def _delete(url: str, endpoint_id: UUID) -> None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        await webhooks.delete_endpoint(pool, endpoint_id)
    finally:
        await pool.close()


def receiver_count(port: int) -> int:
    """The distinct webhook-ids the receiver got."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=5) as answer:
        distinct: int = json.loads(answer.read())["distinct"]
        return distinct


def with_webhook(url: str, base: str, seconds: float, measure: Any, port: int) -> dict[str, Any]:
    """One run with an endpoint subscribed to everything: the claim's record, the sender's lag
    during the run, and how long it took to deliver the rest."""
    before = receiver_count(port)
    endpoint_id = asyncio.run(_register(url, f"http://127.0.0.1:{port}/hook"))
    sampler = Sampler(url, endpoint_id)
    sampler.start()
    try:
        record = measure(url, base, target(WAYS[1]), SCENARIO, seconds)
    finally:
        sampler.stopped.set()
        sampler.join()
    run_end = time.monotonic()
    deadline = run_end + DRAIN_S
    while (left := asyncio.run(_drained(url, endpoint_id)))[0] and time.monotonic() < deadline:
        time.sleep(0.5)
    drain_s = time.monotonic() - run_end
    pending, delivered = left
    received = receiver_count(port) - before
    asyncio.run(_delete(url, endpoint_id))
    if pending or received < delivered:
        raise SystemExit(f"webhooks lost events: some undelivered after {DRAIN_S:g} s, or "
                         f"{received} received of {delivered} delivered")  # fmt: skip
    during = sampler.samples
    last = during[-1] if during else {"delivered": 0, "t": 1.0}
    return {
        **record,
        "webhook": {
            "delivered_total": delivered, "received_distinct": received,
            "delivered_per_s_during_run": round(last["delivered"] / max(last["t"], 1.0)),
            "oldest_undelivered_s_max": max((s["oldest_undelivered_s"] for s in during), default=0),
            "oldest_undelivered_s_at_end": during[-1]["oldest_undelivered_s"] if during else 0,
            "drain_s_after_run": round(drain_s, 1), "samples": during,
        },
    }  # fmt: skip


def side_by_side(
    url: str, base: str, seconds: float, measure: Any, rounds: int = ROUNDS
) -> list[dict[str, Any]]:
    """No webhook, then one, in turn, `rounds` times (records of measure)."""
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    try:
        _wait_for(port)
        records = []
        for round_ in range(1, rounds + 1):
            none = measure(url, base, target(WAYS[0]), SCENARIO, seconds)
            records.append({"round": round_, "way": WAYS[0], **none})
            hooked = with_webhook(url, base, seconds, measure, port)
            records.append({"round": round_, "way": WAYS[1], **hooked})
            lag = hooked["webhook"]
            print(f"  sender: {lag['delivered_per_s_during_run']}/s during the run, oldest "
                  f"undelivered {lag['oldest_undelivered_s_max']} s at most, caught up "
                  f"{lag['drain_s_after_run']} s after", flush=True)  # fmt: skip
        return records
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            receiver_count(port)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the receiver did not start")


def ratio(records: list[dict[str, Any]]) -> float:
    """The hooked claim's median ok/s as a fraction of the one without."""
    medians = {
        way: statistics.median(r["ok_per_s"] for r in records if r["way"] == way) for way in WAYS
    }
    return round(medians[WAYS[1]] / medians[WAYS[0]], 3) if medians[WAYS[0]] else 0.0


def main() -> None:
    """Run the rounds on a fresh database; write results/webhooks.json."""
    from benchmarks.run import WORKERS, measure, write_results
    from benchmarks.service import fresh_database, running_service

    parser = argparse.ArgumentParser(prog="python -m benchmarks.webhooks", description=__doc__)
    parser.add_argument("--seconds", type=float, default=SCENARIO.seconds_full)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--server", default="granian")
    args = parser.parse_args()
    with fresh_database() as url, running_service(url, args.server, WORKERS) as base:
        records = side_by_side(url, base, args.seconds, measure, args.rounds)
    print(f"hot claim with a webhook: {ratio(records):.3f}x the one without", flush=True)
    hooked = [r["webhook"] for r in records if r["way"] == WAYS[1]]
    write_results(
        "webhooks",
        {"scenario": SCENARIO.name, "workers": WORKERS, "seconds": args.seconds,
         "ratio": ratio(records),
         "delivered_per_s_during_run": statistics.median(
             h["delivered_per_s_during_run"] for h in hooked),
         "oldest_undelivered_s_max": max(h["oldest_undelivered_s_max"] for h in hooked),
         "records": records},
    )  # fmt: skip


if __name__ == "__main__":
    main()
