"""The named-query loader."""

from __future__ import annotations

import pytest

from couponapi.db.queries import load, parse


def test_parse_splits_named_queries_and_drops_descriptions() -> None:
    text = "-- name: one\n-- The first.\nSELECT 1;\n\n-- name: two\nSELECT 2;\n"
    assert parse(text) == {"one": "SELECT 1;", "two": "SELECT 2;"}


def test_a_repeated_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="twice"):
        parse("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


def test_the_shipped_file_has_every_query_the_code_uses() -> None:
    assert {"get_coupon", "lock_quantity", "give_with_function"} <= set(load())
    assert all(sql.strip() for sql in load().values())
