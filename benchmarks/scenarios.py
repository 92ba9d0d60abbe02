"""What the suite measures: targets (a route and strategy) times scenarios (a load shape)."""

from __future__ import annotations

from dataclasses import dataclass

from couponapi.strategies import CLAIM_STRATEGIES, GIVE_STRATEGIES

# The original Go service, measured on this machine when the goals were set.
GO_ORIGINAL_CLAIMS_PER_S = 620
HOT_QUANTITY = 10_000_000  # a hot coupon never sells out during a run
SPREAD_QUANTITY = 100_000


@dataclass(frozen=True)
class Target:
    """One way in: an API route with its strategy."""

    name: str
    api: str  # v1 | v2
    strategy: str
    path: str  # {coupon} is replaced per request
    kind: str  # claim.lua request kind: v1 | v1body | v2 | get
    safe: bool = True


@dataclass(frozen=True)
class Scenario:
    """One load shape."""

    name: str
    connections: int
    coupons: int
    quantity: int
    seconds_full: float
    what: str


V1 = "/coupon/api/v1"
V1_TARGETS = [
    Target(f"v1 {name} ({given.segment})", "v1", name, f"{V1}/{given.segment}/{{coupon}}", "v1",
           safe=given.safe)
    for name, given in GIVE_STRATEGIES.items()
]  # fmt: skip
# v2 claims carry a user token each, minted per crowd member (benchmarks.identity): the path
# a real user takes, token verification included.
V2_TARGETS = [
    Target(f"v2 {name}", "v2", name, f"/api/v2/coupons/{{coupon}}/claims?strategy={name}",
           "v2token")
    for name in CLAIM_STRATEGIES
]  # fmt: skip
# Our stand-in for the original Go service: its SELECT ... FOR UPDATE route.
GIVE_TRANSACTION = next(t for t in V1_TARGETS if t.strategy == "locking")
# Group commit on each API: the strategies the speed work is about (v2's is its default).
V1_GROUP_COMMIT = next(t for t in V1_TARGETS if t.strategy == "group_commit")
V2_GROUP_COMMIT = next(t for t in V2_TARGETS if t.strategy == "group_commit")
GET_COUPON = Target("GET v1 coupon", "v1", "get", V1 + "/{coupon}", "get")

HOT_100 = Scenario("hot-100", 100, 1, HOT_QUANTITY, 10, "100 connections, one hot coupon")
HOT_1000 = Scenario("hot-1000", 1_000, 1, HOT_QUANTITY, 10, "1,000 connections, one hot coupon")
SPREAD_100 = Scenario(
    "spread-100", 100, 1_000, SPREAD_QUANTITY, 10, "100 connections over 1,000 coupons"
)
ORIGINAL = Scenario(
    "original", 100, 1, HOT_QUANTITY, 15, "the original author's: 100 connections, 15 s, one coupon"
)
SOLD_OUT = Scenario("sold-out-100", 100, 1, 0, 8, "100 connections, a sold-out coupon (409s)")
GET_100 = Scenario("get-100", 100, 1, 1, 8, "100 connections, GET one coupon")

CLAIM_SCENARIOS = [HOT_100, HOT_1000, SPREAD_100]


def claim_matrix() -> list[tuple[Target, Scenario]]:
    """Every strategy (v1 and v2) under every claim scenario, then the special ones."""
    runs = [(t, s) for s in CLAIM_SCENARIOS for t in [*V1_TARGETS, *V2_TARGETS]]
    runs.append((GIVE_TRANSACTION, ORIGINAL))
    sold_out = [GIVE_TRANSACTION, V1_TARGETS[3], V1_TARGETS[4], *V2_TARGETS]
    runs += [(t, SOLD_OUT) for t in sold_out]
    runs.append((GET_COUPON, GET_100))
    return runs


TARGET_ROUNDS = 5  # give-transaction alone swings 208-854/s between rounds here


def target_matrix() -> list[tuple[Target, Scenario]]:
    """The runs the goals compare, run in turn TARGET_ROUNDS times: the stand-in for
    the original (give-transaction) beside the default v2 strategy, and the 1,000-connection
    crowd. Taken seconds apart, a ratio is not skewed by the machine's pace changing between
    passes minutes apart (up to 2x here)."""
    return [(GIVE_TRANSACTION, HOT_100), (V2_GROUP_COMMIT, HOT_100), (V2_GROUP_COMMIT, HOT_1000)]


def server_matrix() -> list[tuple[Target, Scenario]]:
    """What the server comparison runs on each server: the web layer, and a claim."""
    return [
        (GET_COUPON, GET_100),
        (V1_TARGETS[3], SOLD_OUT),
        (V2_GROUP_COMMIT, HOT_100),
        (V2_GROUP_COMMIT, HOT_1000),
    ]
