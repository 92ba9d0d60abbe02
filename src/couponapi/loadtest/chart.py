"""`couponapi race --chart race.png`: the race table as a picture (matplotlib, optional).

Left: coupons granted per strategy against the quantity line, the oversold part in red.
Right: claims per second. matplotlib comes with the `chart` extra; without it, CannotRun
says how to install it.
"""

from __future__ import annotations

from pathlib import Path

from couponapi.loadtest.client import CannotRun
from couponapi.loadtest.model import RaceRow


def draw(rows: list[RaceRow], path: Path) -> None:
    """Write the race chart of `rows` to `path` (PNG, SVG or PDF by its suffix)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CannotRun("--chart needs matplotlib: pip install 'couponapi[chart]'") from None
    names = [row.strategy for row in rows]
    fair = [min(row.granted, row.quantity) for row in rows]
    extra = [row.oversold for row in rows]
    figure, (grants, speed) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    grants.bar(names, fair, color="#3a7d44", label="granted (up to the quantity)")
    grants.bar(names, extra, bottom=fair, color="#c0392b", label="oversold")
    if rows:
        grants.axhline(rows[0].quantity, color="black", linestyle="--", label="quantity")
    grants.set_title("Coupons given vs quantity")
    grants.set_ylabel("coupons")
    grants.legend(loc="upper right", fontsize=8)
    for index, row in enumerate(rows):
        label = f"+{row.oversold}" if row.oversold else "exact"
        grants.annotate(label, (index, row.granted), ha="center", va="bottom", fontsize=9)
    speed.bar(names, [row.claims_per_s for row in rows], color="#2e6da4")
    speed.set_title("Claims per second (higher is faster)")
    speed.set_ylabel("claims/s")
    for axes in (grants, speed):
        plt.setp(axes.get_xticklabels(), rotation=20, ha="right")
    figure.suptitle("couponapi race: same crowd, same quantity, one coupon per strategy")
    try:
        figure.savefig(path, dpi=110)
    except OSError as error:
        raise CannotRun(f"cannot write the chart to {path}: {error}") from None
    finally:
        plt.close(figure)
