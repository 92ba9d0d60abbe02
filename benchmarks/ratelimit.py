"""`python -m benchmarks.ratelimit`: what the claim rate limiter costs, measured once.

The limiter is switched on with a rate and burst so high that nothing is refused, keyed by
user (every request a new user, so every request creates and updates a bucket): what remains
is its bookkeeping. Off and on alternate twice on the same fresh database, on the two paths
where a per-request cost shows most: a sold-out claim (web layer only) and a hot v2 claim
(the default strategy). Result: results/ratelimit.json.
"""

from __future__ import annotations

import json
import time
from typing import Any

from benchmarks.run import RESULTS, WORKERS, measure
from benchmarks.scenarios import HOT_100, SOLD_OUT, V1_TARGETS, V2_GROUP_COMMIT
from benchmarks.service import fresh_database, running_service

SECONDS = 8.0
LIMITER = {
    "off": {},
    "on": {
        "COUPONAPI_RATE_LIMIT": "1000000",
        "COUPONAPI_RATE_LIMIT_BURST": "1000000",
        "COUPONAPI_RATE_LIMIT_KEY": "user",
    },
}


def main() -> None:
    """Alternate off/on twice per path; write every run and the mean answers/s ratio."""
    atomic = next(t for t in V1_TARGETS if t.strategy == "atomic")
    paths = [(atomic, SOLD_OUT), (V2_GROUP_COMMIT, HOT_100)]
    runs: list[dict[str, Any]] = []
    with fresh_database() as url:
        for _ in range(2):
            for state, settings in LIMITER.items():
                with running_service(url, "uvicorn", WORKERS, settings) as base:
                    for target, scenario in paths:
                        record = measure(url, base, target, scenario, SECONDS)
                        runs.append({"limiter": state, **record})
    summary = {}
    for target, scenario in paths:
        rates = {
            state: sum(
                r["requests_per_s"]
                for r in runs
                if r["limiter"] == state and r["scenario"] == scenario.name
                and r["target"] == target.name
            ) / 2
            for state in LIMITER
        }  # fmt: skip
        summary[f"{target.name}, {scenario.name}"] = {
            **{f"{state}_per_s": round(rate) for state, rate in rates.items()},
            "on_vs_off": round(rates["on"] / rates["off"], 3),
        }
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "summary": summary}
    (RESULTS / "ratelimit.json").write_text(json.dumps({**result, "runs": runs}, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
