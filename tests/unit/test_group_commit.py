"""The group-commit batcher's gathering, ordering and failure rules, with a fake flush."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

import pytest

from couponapi.strategies.batcher import BatchFailed, GroupCommitter


class Recorder:
    """A flush that records its batches, how many run at once per key, and can be told to fail."""

    def __init__(self, fail_on: set[str] | None = None, pause: float = 0.0) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.fail_on = fail_on or set()
        self.pause = pause
        self.running: defaultdict[str, int] = defaultdict(int)
        self.most_at_once: defaultdict[str, int] = defaultdict(int)
        self.keys_at_once = 0

    async def __call__(self, key: str, items: Sequence[int]) -> list[str]:
        self.running[key] += 1
        self.most_at_once[key] = max(self.most_at_once[key], self.running[key])
        self.keys_at_once = max(self.keys_at_once, sum(1 for v in self.running.values() if v))
        try:
            await asyncio.sleep(self.pause)
            self.batches.append((key, list(items)))
            if any(f"{key}:{item}" in self.fail_on for item in items):
                raise ValueError("injected")
            return [f"{key}:{item}" for item in items]
        finally:
            self.running[key] -= 1


async def test_concurrent_submits_share_one_flush_in_arrival_order() -> None:
    flush = Recorder()
    committer = GroupCommitter(flush, max_batch=64, max_wait=0.01)
    results = await asyncio.gather(*(committer.submit("a", n) for n in range(10)))
    assert results == [f"a:{n}" for n in range(10)]
    assert flush.batches == [("a", list(range(10)))]
    assert committer.in_flight() == 0


async def test_a_full_batch_is_cut_at_max_batch_and_order_is_kept() -> None:
    flush = Recorder()
    committer = GroupCommitter(flush, max_batch=128, max_wait=10.0)  # full batches do not wait
    results = await asyncio.gather(*(committer.submit("a", n) for n in range(300)))
    assert results == [f"a:{n}" for n in range(300)]
    assert [len(items) for _, items in flush.batches] == [128, 128, 44]
    assert [n for _, items in flush.batches for n in items] == list(range(300))


async def test_one_batch_in_flight_per_key_and_keys_flush_independently() -> None:
    flush = Recorder(pause=0.01)
    committer = GroupCommitter(flush, max_batch=8, max_wait=0.0)
    calls = [committer.submit(key, n) for n in range(40) for key in ("a", "b")]
    results = await asyncio.gather(*calls)
    assert results == [f"{key}:{n}" for n in range(40) for key in ("a", "b")]
    assert dict(flush.most_at_once) == {"a": 1, "b": 1}
    assert flush.keys_at_once == 2
    assert all(len(items) <= 8 for _, items in flush.batches)


async def test_submits_arriving_during_a_commit_form_the_next_batch() -> None:
    flush = Recorder(pause=0.02)
    committer = GroupCommitter(flush, max_batch=100, max_wait=0.0)
    first = asyncio.ensure_future(committer.submit("a", 0))
    await asyncio.sleep(0.005)  # the first batch ([0]) is committing now
    later = [asyncio.ensure_future(committer.submit("a", n)) for n in range(1, 6)]
    assert await asyncio.gather(first, *later) == [f"a:{n}" for n in range(6)]
    assert flush.batches == [("a", [0]), ("a", [1, 2, 3, 4, 5])]


async def test_a_failing_batch_fails_only_its_own_callers() -> None:
    flush = Recorder(fail_on={"a:5"})
    committer = GroupCommitter(flush, max_batch=4, max_wait=0.0)
    outcomes = await asyncio.gather(
        *(committer.submit("a", n) for n in range(12)), return_exceptions=True
    )
    assert [len(items) for _, items in flush.batches] == [4, 4, 4]
    assert outcomes[:4] == [f"a:{n}" for n in range(4)]
    assert outcomes[8:] == [f"a:{n}" for n in range(8, 12)]
    for failed in outcomes[4:8]:
        assert isinstance(failed, BatchFailed)
        assert isinstance(failed.__cause__, ValueError)
        assert "group commit of 4 requests for a failed" in str(failed)
    assert committer.in_flight() == 0


async def test_a_flush_answering_the_wrong_count_fails_its_batch() -> None:
    async def short(key: str, items: Sequence[int]) -> list[int]:
        return list(items)[:-1]

    committer: GroupCommitter[str, int, int] = GroupCommitter(short, max_wait=0.0)
    with pytest.raises(BatchFailed, match="1 results for 2"):
        await asyncio.gather(committer.submit("a", 1), committer.submit("a", 2))


async def test_a_flush_may_fail_a_part_of_its_batch_alone() -> None:
    async def odd_fail(key: str, items: Sequence[int]) -> list[int | BatchFailed]:
        return [BatchFailed(f"{key}{n}", 1, ValueError(n)) if n % 2 else n for n in items]

    committer: GroupCommitter[str, int, int] = GroupCommitter(odd_fail, max_wait=0.0)
    outcomes = await asyncio.gather(
        *(committer.submit("a", n) for n in range(6)), return_exceptions=True
    )
    assert outcomes[::2] == [0, 2, 4]
    for failed in outcomes[1::2]:
        assert isinstance(failed, BatchFailed)
        assert isinstance(failed.__cause__, ValueError)


async def test_a_caller_that_leaves_does_not_disturb_the_others() -> None:
    flush = Recorder(pause=0.01)
    committer = GroupCommitter(flush, max_batch=10, max_wait=0.0)
    leaving = asyncio.ensure_future(committer.submit("a", 0))
    staying = asyncio.ensure_future(committer.submit("a", 1))
    await asyncio.sleep(0.001)
    leaving.cancel()
    assert await staying == "a:1"
    assert flush.batches == [("a", [0, 1])]  # the leaver's item was still committed


async def test_shutdown_fails_whoever_is_still_waiting() -> None:
    flush = Recorder(pause=10.0)
    committer = GroupCommitter(flush, max_batch=10, max_wait=0.0)
    waiting = asyncio.ensure_future(committer.submit("a", 0))
    await asyncio.sleep(0.001)
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task() and task is not waiting:
            task.cancel()
    with pytest.raises(BatchFailed):
        await waiting
    assert committer.in_flight() == 0


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommitter(Recorder(), max_batch=0)
