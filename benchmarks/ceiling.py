"""`python -m benchmarks.ceiling`: the service against the least a v2 claim can cost here.

`benchmarks.ceiling_app` grants v2 claims as the default strategy does in the database (the
same function, group commit and pool) with nothing around them: no framework, middleware,
input checks or error handling. Both run under granian with the same settings and 2 workers
on one database: v2 group commit at 100 connections on one hot coupon beside our
give-transaction route (the stand-in for the original), and at 1,000 connections;
in turn (the order rotates by round), ROUNDS times, each run's database checked as in
benchmarks.run and its CPU per claim split as in benchmarks.cpu. What the yardstick reaches
bounds what any web layer could make of this SQL on this machine; what the service spends
over it is the price of everything else it does per claim. Result: results/ceiling.json.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.cpu import measure_with_cpu
from benchmarks.run import WORKERS, write_results
from benchmarks.scenarios import GIVE_TRANSACTION, HOT_100, HOT_1000, V2_GROUP_COMMIT, Target
from benchmarks.service import fresh_database, running_service

ROUNDS = 3
SECONDS = 8.0
YARDSTICK = Target(
    "v2 claim, no framework (benchmarks.ceiling_app)", "v2", "group_commit",
    "/ceiling/{coupon}", "v2",
)  # fmt: skip


def _summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per target and scenario: the medians over the rounds; at 100 connections also the
    median of each round's ratio to give-transaction."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        found.setdefault((run["target"], run["scenario"]), []).append(run)
    give = found[GIVE_TRANSACTION.name, HOT_100.name]
    reference = {r["round"]: r["ok_per_s"] for r in give}
    summary = []
    for (target, scenario), these in found.items():
        row = {
            "target": target,
            "scenario": scenario,
            "ok_per_s": round(statistics.median(r["ok_per_s"] for r in these)),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in these), 1),
            "cpu_us_per_request": {
                part: round(statistics.median(r["cpu_us_per_request"][part] for r in these))
                for part in these[0]["cpu_us_per_request"]
            },
        }
        if scenario == HOT_100.name and target != GIVE_TRANSACTION.name:
            ratios = [r["ok_per_s"] / reference[r["round"]] for r in these]
            row["x_give_transaction"] = round(statistics.median(ratios), 1)
        summary.append(row)
    return summary


def main() -> None:
    """ROUNDS rounds of both, in turn; write results/ceiling.json."""
    runs: list[dict[str, Any]] = []
    with (
        fresh_database() as url,
        running_service(url, "granian", WORKERS) as service,
        running_service(url, "granian", WORKERS, program="benchmarks.ceiling_app") as yardstick,
    ):
        plan = [
            (HOT_100, [(GIVE_TRANSACTION, service), (V2_GROUP_COMMIT, service),
                       (YARDSTICK, yardstick)]),
            (HOT_1000, [(V2_GROUP_COMMIT, service), (YARDSTICK, yardstick)]),
        ]  # fmt: skip
        for round_ in range(ROUNDS):
            for scenario, targets in plan:
                turn = round_ % len(targets)
                for target, base in targets[turn:] + targets[:turn]:
                    record = measure_with_cpu(url, base, target, scenario, SECONDS)
                    runs.append({"round": round_ + 1, **record})
    summary = _summary(runs)
    for row in summary:
        cpu, ratio = row["cpu_us_per_request"], row.get("x_give_transaction", "-")
        print(f"  median: {row['target']:50} {row['scenario']:9} {row['ok_per_s']:>6} ok/s "
              f"({ratio}x give-transaction) p99 {row['p99_ms']:6.1f} ms  CPU per claim, us: "
              f"{cpu}")  # fmt: skip
    write_results("ceiling", {"workers": WORKERS, "seconds": SECONDS, "rounds": ROUNDS,
                              "summary": summary, "runs": runs})  # fmt: skip


if __name__ == "__main__":
    main()
