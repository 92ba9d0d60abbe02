"""Every live API key, cached in the process, never older than a second when it is trusted.

A claim with a server key reads this cache, not the database. A background task reloads
the whole (small) table every REFRESH_S; a lookup on a snapshot older than MAX_AGE_S reloads
first (the task may be late behind a busy event loop), so a key revoked in the database is
refused by every process within MAX_AGE_S: a snapshot is as old as its query's start. A key
unknown to the snapshot waits for a reload that started after it was asked, at most one per
MISS_S: a key just made works everywhere at once, and a flood of made-up keys costs at most
1 / MISS_S queries a second (and each of them MISS_S of waiting, no connection held).
Reloads are a plain SELECT: no LISTEN, no session state, so it works the same through a
transaction-pooling PgBouncer. Concurrent reloads share one query.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from couponapi.identity.keys import LiveKey, lookup_of, matches

log = logging.getLogger(__name__)

REFRESH_S = 0.5
MAX_AGE_S = 1.0
MISS_S = 0.1
Loader = Callable[[], Awaitable[list[LiveKey]]]


class KeyRing:
    """The live keys by lookup; `find` is the whole check of a presented key."""

    def __init__(self, load: Loader, clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._clock = clock
        self._keys: dict[str, LiveKey] = {}
        self._loaded_at = float("-inf")
        self._loading: asyncio.Future[None] | None = None

    async def find(self, key: str) -> LiveKey | None:
        """The live key `key` is, or None (malformed, unknown, revoked, or a wrong secret)."""
        lookup = lookup_of(key)
        if lookup is None:
            return None
        asked = self._clock()
        found = self._keys.get(lookup)
        if found is None:
            # Unknown here: perhaps made since the last reload. Wait until that one is MISS_S
            # old, then make sure a reload started after this request was asked (a flood of
            # made-up keys shares one query per MISS_S; two rounds at most).
            wait = self._loaded_at + MISS_S - asked
            if wait > 0:
                await asyncio.sleep(wait)
            for _ in range(2):
                if self._loaded_at >= asked:
                    break
                await self.refresh()
            found = self._keys.get(lookup)
        elif asked - self._loaded_at > MAX_AGE_S:
            await self.refresh()
            found = self._keys.get(lookup)
        return found if found is not None and matches(key, found) else None

    async def refresh(self) -> None:
        """Reload the keys (one query shared by every caller waiting at the same time)."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._reload())
            # Its waiters may all be gone (cancelled, the app shutting down): its failure is
            # theirs to see, not the event loop's to log as never retrieved.
            self._loading.add_done_callback(_retrieved)
        loading = self._loading
        try:
            await asyncio.shield(loading)
        finally:
            if self._loading is loading and loading.done():
                self._loading = None

    async def _reload(self) -> None:
        started = self._clock()
        keys = await self._load()
        self._keys = {key.lookup: key for key in keys}
        self._loaded_at = started  # the snapshot is as old as the query's start

    async def refresh_forever(self, every: float = REFRESH_S) -> None:
        """Keep the snapshot fresh in the background (the app's lifespan runs this)."""
        while True:
            try:
                await self.refresh()
            except Exception as error:  # the database may be down: lookups retry themselves
                log.warning("reloading the API keys failed, retrying: %r", error)
            await asyncio.sleep(every)


def _retrieved(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()
