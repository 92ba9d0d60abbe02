"""`python -m benchmarks.ab REV REV [REV ...]`: the same claim served by several revisions of
the code, alternated, side by side in one run.

Each revision is checked out once into a temporary git worktree and served from there
(`PYTHONPATH=<worktree>/src`, the same venv, the same database, the same server settings).
Every round runs each revision once, the order rotated by one each round, so a change of the
machine's pace within the run (up to 2x here) falls on every revision alike. A run is, by
default, the v2 hot claim (the default strategy, one coupon, 100 connections) under wrk;
`--target v1` runs v1 group commit instead and `--scenario` another load (spread-100,
hot-1000, or mixed-100: every other request to one hot coupon, with the hot coupon's own
claims/s). Each run has claims/s and the CPU µs per claim of the server's processes and
PostgreSQL's (from /proc, as benchmarks.cpu reads them); the database is checked after every
run. Result: results/ab.json, with the median of each revision.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.run import WORKERS, write_results
from benchmarks.scenarios import (
    HOT_100,
    HOT_1000,
    SPREAD_100,
    V1_GROUP_COMMIT,
    V2_GROUP_COMMIT,
)
from benchmarks.service import fresh_database, running_service
from benchmarks.spread import MIXED_100, run_one

TARGETS = {"v2": V2_GROUP_COMMIT, "v1": V1_GROUP_COMMIT}
SCENARIOS = {s.name: s for s in (HOT_100, SPREAD_100, HOT_1000, MIXED_100)}

REPOSITORY = Path(__file__).parents[1]


@contextmanager
def checked_out(revisions: list[str]) -> Iterator[dict[str, Path]]:
    """Each revision in a worktree of its own (removed afterwards): revision -> its src."""
    root = Path(tempfile.mkdtemp(prefix="couponapi-ab-"))
    trees: dict[str, Path] = {}
    try:
        for number, revision in enumerate(revisions):
            tree = root / str(number)
            git = ["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", "-q"]
            subprocess.run([*git, str(tree), revision], check=True)
            trees[revision] = tree / "src"
        yield trees
    finally:
        for tree in trees.values():
            git = ["git", "-C", str(REPOSITORY), "worktree", "remove", "--force"]
            subprocess.run([*git, str(tree.parent)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def _medians(runs: list[dict[str, Any]], revision: str) -> dict[str, float]:
    mine = [run for run in runs if run["revision"] == revision]
    hot = [run["hot_coupon_per_s"] for run in mine if "hot_coupon_per_s" in run]
    return {
        **({"hot_coupon_per_s": statistics.median(hot)} if hot else {}),
        "claims_per_s": statistics.median(run["ok_per_s"] for run in mine),
        "server_cpu_us": statistics.median(run["cpu_us_per_request"]["server"] for run in mine),
        "postgres_cpu_us": statistics.median(run["cpu_us_per_request"]["postgres"] for run in mine),
    }


def main() -> None:
    """Alternate the revisions `--rounds` times on one load; write results/<name>.json."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__)
    parser.add_argument("revisions", nargs="+", help="git revisions to compare, in order")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--name", default="ab", help="results/<name>.json")
    parser.add_argument("--target", choices=list(TARGETS), default="v2", help="group commit of")
    parser.add_argument("--scenario", choices=list(SCENARIOS), default=HOT_100.name)
    args = parser.parse_args()
    target, scenario = TARGETS[args.target], SCENARIOS[args.scenario]
    runs: list[dict[str, Any]] = []
    with checked_out(args.revisions) as trees, fresh_database() as url:
        for round_number in range(args.rounds):
            shift = round_number % len(args.revisions)
            for revision in [*args.revisions[shift:], *args.revisions[:shift]]:
                print(f"round {round_number + 1}: {revision}", flush=True)
                environment = {"PYTHONPATH": str(trees[revision])}
                with running_service(url, "granian", WORKERS, environment) as base:
                    record = run_one(url, base, target, scenario, args.seconds)
                if not record["ok"]:
                    raise SystemExit(f"{revision}: the database check failed: {record['problems']}")
                runs.append({"revision": revision, "round": round_number + 1, **record})
    medians = {revision: _medians(runs, revision) for revision in args.revisions}
    for revision, figures in medians.items():
        print(f"{revision:>12}: {figures}")
    write_results(
        args.name,
        {"target": target.name, "scenario": scenario.name, "workers": WORKERS,
         "seconds": args.seconds, "rounds": args.rounds, "medians": medians, "runs": runs},
    )  # fmt: skip


if __name__ == "__main__":
    main()
