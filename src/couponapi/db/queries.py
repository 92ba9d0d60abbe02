"""Named SQL queries, read once from `sql/queries.sql`.

Each query there starts with `-- name: <name>` and a one-line description; the SQL itself
stays readable in one file instead of scattered through Python strings.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from uuid import UUID

# Listings page by keyset: (created_at or claimed_at, id) of the last row seen.
Keyset = tuple[datetime, UUID]
# Before every row: where a first page starts.
START: Keyset = (datetime(1, 1, 1, tzinfo=UTC), UUID(int=0))

_HEADER = re.compile(r"^-- name: (\w+)\n(?:--[^\n]*\n)*", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """Split a queries file into {name: sql}; a repeated name is an error."""
    queries: dict[str, str] = {}
    headers = list(_HEADER.finditer(text))
    for header, following in zip(headers, [*headers[1:], None], strict=True):
        end = following.start() if following else len(text)
        name = header.group(1)
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        queries[name] = text[header.end() : end].strip()
    return queries


@cache
def load(filename: str = "queries.sql") -> dict[str, str]:
    """The queries of one file in `couponapi/db/sql`."""
    return parse(files("couponapi.db").joinpath("sql", filename).read_text())


def query(name: str) -> str:
    """The SQL of one named query."""
    return load()[name]
