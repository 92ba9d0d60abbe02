"""`python -m benchmarks.spread`: one hot coupon beside claims spread over 1,000 coupons.

Group commit across coupons is meant to make a thousand quiet coupons as fast as one hot
one. This runs, in turn within each round (the order rotated by one each round, so a change
of the machine's pace falls on every run alike), for the v2 default (`group_commit`) and v1
group commit: hot-100 (one coupon, 100 connections), spread-100 (100 connections over 1,000
coupons) and mixed-100 (100 connections, every other request to one hot coupon, the others
over 1,000 quiet ones: does the hot coupon get slower when quiet coupons share its batches?);
and for v2 also hot-1000 (1,000 connections on one coupon: timeouts, 5xx and p99 beside the
100 ms goal). Each run reports claims/s, claims per commit (from the ledger) and the CPU per
granted claim of the server's processes and PostgreSQL's, read from /proc as benchmarks.cpu
does. The database is checked after every run. Per strategy and round it reports the ratio
spread / hot of the two runs of that round, and the medians. Result: results/<name>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any
from uuid import UUID

import asyncpg

from benchmarks.cpu import measure_with_cpu
from benchmarks.ledger import make_coupons
from benchmarks.report import claims_per_commit
from benchmarks.run import WORKERS, write_results
from benchmarks.scenarios import (
    HOT_100,
    HOT_1000,
    SPREAD_100,
    V1_GROUP_COMMIT,
    V2_GROUP_COMMIT,
    Scenario,
    Target,
)
from benchmarks.service import fresh_database, running_service
from couponapi.servers import SERVERS

# A million each: enough for the hot coupon's share of a run, and 1,001 of them still fit
# the ledger check's integer arithmetic (HOT_QUANTITY would not).
MIXED_100 = Scenario(
    "mixed-100", 100, 1_001, 1_000_000, 10,
    "100 connections, every other request to one hot coupon, the others over 1,000",
)  # fmt: skip
P99_GOAL_MS = 100.0
CPU_GOAL_US = 200  # per granted v2 claim, server + PostgreSQL

# What one round runs, per strategy (hot and spread first: the ratio is theirs).
RUNS: list[tuple[Target, Scenario]] = [
    (V2_GROUP_COMMIT, HOT_100), (V2_GROUP_COMMIT, SPREAD_100), (V2_GROUP_COMMIT, MIXED_100),
    (V2_GROUP_COMMIT, HOT_1000),
    (V1_GROUP_COMMIT, HOT_100), (V1_GROUP_COMMIT, SPREAD_100), (V1_GROUP_COMMIT, MIXED_100),
]  # fmt: skip

HOT_GRANTS = {
    "v1": "SELECT count(*) FROM coupon_given_events WHERE couponid::uuid = $1",
    "v2": "SELECT count(*) FROM claim_event WHERE coupon_id = $1 AND kind = 'granted'",
}


async def _hot_grants(url: str, api: str, coupon_id: UUID) -> int:
    connection = await asyncpg.connect(url)
    try:
        granted: int = await connection.fetchval(HOT_GRANTS[api], coupon_id)
        return granted
    finally:
        await connection.close()


def run_one(
    url: str, base: str, target: Target, scenario: Scenario, seconds: float
) -> dict[str, Any]:
    """One wrk run with CPU, claims/commit and CPU per granted claim; mixed-100 also the hot
    coupon's own claims/s."""
    coupons = None
    if scenario is MIXED_100:
        hot, *quiet = asyncio.run(make_coupons(url, scenario.coupons, scenario.quantity))
        coupons = [c for q in quiet for c in (hot, q)]
    record = measure_with_cpu(url, base, target, scenario, seconds, coupons)
    cpu = record["cpu_us_per_request"]
    granted = max(record["ok_2xx"], 1)
    per_granted = {who: round(us * record["requests"] / granted) for who, us in cpu.items()}
    record["cpu_us_per_granted"] = per_granted
    record["cpu_us_per_granted_server_postgres"] = per_granted["server"] + per_granted["postgres"]
    record["claims_per_commit"] = claims_per_commit(record)
    if coupons is not None:
        hot_claims = asyncio.run(_hot_grants(url, target.api, coupons[0]))
        record["hot_coupon_per_s"] = round(hot_claims / record["seconds"], 1)
    return record


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per strategy: the spread / hot ratio of each round's pair, and medians of each run."""
    found: dict[str, Any] = {}
    for target in (V2_GROUP_COMMIT, V1_GROUP_COMMIT):
        mine = [r for r in runs if r["target"] == target.name]
        by: dict[tuple[int, str], dict[str, Any]] = {(r["round"], r["scenario"]): r for r in mine}
        rounds = sorted({r["round"] for r in mine})
        ratios = [
            round(by[n, SPREAD_100.name]["ok_per_s"] / by[n, HOT_100.name]["ok_per_s"], 3)
            for n in rounds
            if (n, SPREAD_100.name) in by and (n, HOT_100.name) in by
        ]
        scenarios: dict[str, Any] = {}
        for name in dict.fromkeys(r["scenario"] for r in mine):
            of = [r for r in mine if r["scenario"] == name]
            scenarios[name] = {
                "claims_per_s": statistics.median(r["ok_per_s"] for r in of),
                "p99_ms": statistics.median(r["p99_ms"] for r in of),
                "timeouts": sum(r["timeouts"] for r in of),
                "errors_5xx": sum(r["errors_5xx"] for r in of),
                "claims_per_commit": [r["claims_per_commit"] for r in of],
                "cpu_us_per_granted_server_postgres": statistics.median(
                    r["cpu_us_per_granted_server_postgres"] for r in of
                ),
                **(
                    {"hot_coupon_per_s": statistics.median(r["hot_coupon_per_s"] for r in of)}
                    if name == MIXED_100.name
                    else {}
                ),
            }
        found[target.name] = {
            "spread_over_hot": ratios,
            "spread_over_hot_median": statistics.median(ratios) if ratios else None,
            "scenarios": scenarios,
        }
    return found


def main() -> None:
    """Alternate the runs `--rounds` times; print and write the ratios and medians."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spread", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="per wrk run")
    parser.add_argument("--server", default="granian", choices=SERVERS)
    parser.add_argument("--name", default="spread", help="results/<name>.json")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    with fresh_database() as url, running_service(url, args.server, WORKERS) as base:
        for round_number in range(1, args.rounds + 1):
            shift = (round_number - 1) % len(RUNS)
            for target, scenario in [*RUNS[shift:], *RUNS[:shift]]:
                print(f"round {round_number}: {target.name}, {scenario.name}", flush=True)
                record = run_one(url, base, target, scenario, args.seconds)
                if not record["ok"]:
                    raise SystemExit(f"the database check failed: {record['problems']}")
                runs.append({"round": round_number, "server": args.server, **record})
    found = summary(runs)
    for name, figures in found.items():
        print(f"{name}: spread / hot {figures['spread_over_hot']} "
              f"(median {figures['spread_over_hot_median']}; goal >= 0.9)")  # fmt: skip
        for scenario, of in figures["scenarios"].items():
            print(f"  {scenario:11} {of}")
    write_results(
        args.name,
        {"workers": WORKERS, "seconds": args.seconds, "rounds": args.rounds,
         "goals": {"spread_over_hot": 0.9, "p99_ms_hot_1000": P99_GOAL_MS,
                   "cpu_us_per_granted_v2": CPU_GOAL_US},
         "summary": found, "runs": runs},
    )  # fmt: skip


if __name__ == "__main__":
    main()
