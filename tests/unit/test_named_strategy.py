"""`named_strategy` reads `?strategy=` as Starlette's query_params would."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from couponapi.api.inputs import named_strategy


def named(query: bytes) -> str | None:
    return named_strategy({"type": "http", "query_string": query})


@pytest.mark.parametrize(
    ("query", "strategy"),
    [
        (b"", None),
        (b"limit=5", None),
        (b"strategy=atomic", "atomic"),
        (b"x=1&strategy=function&y", "function"),
        (b"strategy=", ""),
        (b"strategy", ""),
        (b"strategy=a&strategy=b", "b"),  # the last, as Starlette's QueryParams.get
        (b"strategy=group%5Fcommit", "group_commit"),
        (b"strat%65gy=atomic", "atomic"),
        (b"strategy=a+b", "a b"),
        (b"xstrategy=atomic", None),
    ],
)
def test_reads_the_strategy_parameter(query: bytes, strategy: str | None) -> None:
    assert named(query) == strategy


@given(st.text(alphabet="strategy=&%+5F6x\u00e9 ", max_size=40))
def test_agrees_with_starlettes_query_params(text: str) -> None:
    query = text.encode("latin-1")
    assert named(query) == QueryParams(query).get("strategy")
