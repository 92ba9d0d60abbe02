"""The key ring: a claim with a key pays no query; a stale snapshot or an unknown key reloads
(one query shared by everyone waiting); a revoked key is gone after the next reload."""

from __future__ import annotations

import asyncio

import pytest

from couponapi.identity.keyring import MAX_AGE_S, KeyRing
from couponapi.identity.keys import LiveKey, digest_of, lookup_of, new_key


class Table:
    """The api_key table as the ring sees it, counting the ring's queries."""

    def __init__(self) -> None:
        self.live: list[LiveKey] = []
        self.queries = 0

    async def load(self) -> list[LiveKey]:
        self.queries += 1
        await asyncio.sleep(0)
        return list(self.live)

    def add(self, name: str) -> str:
        made = new_key()
        self.live.append(LiveKey(made.lookup, made.digest, name, "server"))
        return made.key


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_known_key_costs_no_query_until_the_snapshot_ages() -> None:
    table, clock = Table(), Clock()
    key = table.add("checkout")
    ring = KeyRing(table.load, clock)
    await ring.refresh()
    found = [await ring.find(key) for _ in range(1_000)]
    assert {k.name for k in found if k is not None} == {"checkout"}
    assert table.queries == 1
    clock.now += MAX_AGE_S + 0.01
    assert await ring.find(key) is not None
    assert table.queries == 2


async def test_a_revoked_key_is_refused_once_reloaded() -> None:
    table, clock = Table(), Clock()
    key = table.add("checkout")
    ring = KeyRing(table.load, clock)
    await ring.refresh()
    table.live.clear()  # revoked in the database
    clock.now += MAX_AGE_S + 0.01
    assert await ring.find(key) is None


async def test_wrong_secrets_and_malformed_keys_are_refused_without_a_query() -> None:
    table = Table()
    key = table.add("checkout")
    ring = KeyRing(table.load)
    await ring.refresh()
    lookup = lookup_of(key)
    assert lookup is not None
    forged = f"cpk_{lookup}_{'B' * 43}"
    assert digest_of(forged) != digest_of(key)
    assert await ring.find(forged) is None
    for garbage in ("cpk_", "cpk_zz_x", key + "x", key.upper()):
        assert await ring.find(garbage) is None
    assert table.queries == 1


@pytest.mark.parametrize("waiting", [1, 50])
async def test_an_unknown_key_waits_for_one_shared_reload(waiting: int) -> None:
    table = Table()
    ring = KeyRing(table.load)
    await ring.refresh()
    key = table.add("made-just-now")  # after the last reload
    found = await asyncio.gather(*(ring.find(key) for _ in range(waiting)))
    assert all(k is not None and k.name == "made-just-now" for k in found)
    assert table.queries == 2  # one reload, shared
