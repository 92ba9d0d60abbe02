"""`python -m benchmarks.readme`: put the figures of results/latest.json into the docs.

Rewrites only what lies between `<!-- measured:NAME -->` and `<!-- /measured:NAME -->`:
README.md holds the run line and the strategies table, docs/performance.md the run line and
the goals, pgbench and servers tables (PAGES). The prose around them is written by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from benchmarks.report import find, standing
from benchmarks.scenarios import GO_ORIGINAL_CLAIMS_PER_S

ROOT = Path(__file__).parents[1]
LATEST = Path(__file__).with_name("results") / "latest.json"
# Each page and the blocks it holds, in the order they appear.
PAGES: dict[Path, tuple[str, ...]] = {
    ROOT / "README.md": ("run", "strategies"),
    ROOT / "docs" / "performance.md": ("run", "goals", "pgbench", "servers"),
}
Record = dict[str, Any]


def _claims(r: Record | None) -> str:
    if r is None:
        return "-"
    if not r["ok"]:
        return "**broken**: " + "; ".join(r["problems"])
    return f"{r['ok_per_s']:,.0f}"


def header(run: Record) -> str:
    machine = run["machine"]
    return (
        f"Run of {run['started']}{' (--quick)' if run['quick'] else ''}: "
        f"{machine['cores']} cores ({machine['cpu']}), {run['postgres']}, "
        f"{run['server']} with {run['workers']} workers, {machine['wrk'].split(' Copyright')[0]}."
    )


def strategies(run: Record) -> str:
    rows = [
        "| strategy | safe? | claims/s, 1 hot coupon, 100 connections "
        "| 1,000 connections (p99) | 100 connections over 1,000 coupons |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    seen = dict.fromkeys((r["api"], r["strategy"]) for r in run["claims"]
                         if r["scenario"] == "hot-100")  # fmt: skip
    for api, strategy in seen:
        hot, crowd, spread = (find(run["claims"], strategy, api, scenario)
                              for scenario in ("hot-100", "hot-1000", "spread-100"))  # fmt: skip
        runs = [r for r in (hot, crowd, spread) if r is not None]
        safe = "yes" if all(r["safe"] and r["ok"] for r in runs) else "**no**"
        p99 = f" ({crowd['p99_ms']:,.0f} ms)" if crowd and crowd["ok"] else ""
        rows.append(f"| {api} `{strategy}` | {safe} | {_claims(hot)} "
                    f"| {_claims(crowd)}{p99} | {_claims(spread)} |")  # fmt: skip
    return "\n".join(rows)


def goals(run: Record, default: str) -> str:
    claims = run["claims"]
    found = standing(run, default)
    original = find(claims, "locking", "v1", "original")
    sold = [r for r in claims if r["scenario"] == "sold-out-100"]
    get = next((r for r in claims if r["scenario"] == "get-100"), None)
    rounds = f"median of {len(found.pairs)} pairs run in turn" if len(found.pairs) > 1 else ""
    rows = ["| goal | measured | met? |", "| --- | --- | --- |"]
    if found.pairs:
        x_go = found.rate / GO_ORIGINAL_CLAIMS_PER_S
        rates = ", ".join(f"{best['ok_per_s']:,.0f}" for _, best in found.pairs)
        rows.append(
            f"| default strategy, 1 hot coupon, 100 connections: >= 20x the Go original "
            f"(~{GO_ORIGINAL_CLAIMS_PER_S}/s, so >= {20 * GO_ORIGINAL_CLAIMS_PER_S:,}/s) "
            f"| v2 `{default}` {found.rate:,.0f}/s = {x_go:.1f}x ({rounds or 'one run'}: "
            f"{rates}/s) | {'yes' if x_go >= 20 else '**no**'} |"
        )
        each = ", ".join(f"{x:.1f}x" for x in found.ratios)
        lockings = ", ".join(f"{locking['ok_per_s']:,.0f}" for locking, _ in found.pairs)
        rows.append(
            f"| ... and >= 10x our give-transaction in the same run "
            f"| {found.ratio:.1f}x ({rounds or 'one run'}: {each}; give-transaction "
            f"{lockings}/s; the original author's scenario, 15 s: "
            f"{original['ok_per_s'] if original else 0:,.0f}/s) "
            f"| {'yes' if found.ratio >= 10 else '**no**'} |"
        )
    if found.crowds:
        timeouts, errors = found.crowd_total("timeouts"), found.crowd_total("errors_5xx")
        met = not timeouts and not errors and max(r["p99_ms"] for r in found.crowds) < 100
        p99s = ", ".join(f"{r['p99_ms']:,.0f}" for r in found.crowds)
        rows.append(
            f"| 1,000 connections, 1 hot coupon: no timeouts, no 5xx, p99 < 100 ms "
            f"| {timeouts} timeouts, {errors} 5xx, {found.crowd_total('socket_errors')} socket "
            f"errors; p99 {p99s} ms ({found.crowd_rate:,.0f} claims/s, median) "
            f"| {'yes' if met else '**no**'} |"
        )
    if sold and get:
        cells = ", ".join(
            f"{r['target'].split(' (')[0]} {r['requests_per_s']:,.0f}/s" for r in sold
        )
        rows.append(
            f"| sold out costs no write and no lock, answers 409 at full speed "
            f"| 409s per second: {cells}; GET of a coupon: {get['requests_per_s']:,.0f}/s "
            f"| see below |"
        )
    return "\n".join(rows)


def pgbench(run: Record) -> str:
    rows = ["| SQL, one hot coupon | clients | claims/s |", "| --- | ---: | ---: |"]
    rows += [f"| {r['name'].rsplit(',', 1)[0]} | {r['clients']} | {r['claims_per_s']:,.0f} |"
             for r in run["pgbench"]]  # fmt: skip
    return "\n".join(rows)


def servers(run: Record) -> str:
    names = list(dict.fromkeys(r["server"] for r in run["servers"]))
    rows = ["| endpoint | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for key in dict.fromkeys((r["target"], r["scenario"]) for r in run["servers"]):
        cells = []
        for name in names:
            r = next(x for x in run["servers"]
                     if x["server"] == name and (x["target"], x["scenario"]) == key)  # fmt: skip
            cells.append(f"{r['requests_per_s']:,.0f} req/s, p99 {r['p99_ms']:,.0f} ms")
        rows.append(f"| {key[0]}, {key[1]} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def splice(text: str, name: str, body: str, page: Path) -> str:
    """`text` with the block `name` holding `body`; exits when the page lacks the block."""
    pattern = re.compile(rf"(<!-- measured:{name} -->\n).*?(\n<!-- /measured:{name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{page.relative_to(ROOT)} has no <!-- measured:{name} --> block")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


def main() -> None:
    from couponapi.config import Settings

    run = json.loads(LATEST.read_text())
    blocks = {
        "run": header(run),
        "strategies": strategies(run),
        "goals": goals(run, Settings().claim_strategy),
        "pgbench": pgbench(run),
        "servers": servers(run),
    }
    for page, names in PAGES.items():
        text = page.read_text()
        for name in names:
            text = splice(text, name, blocks[name], page)
        page.write_text(text)
        print(f"{page.relative_to(ROOT)} updated from {LATEST.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
