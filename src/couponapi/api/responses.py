"""JSON responses encoded with msgspec (several times faster than the stdlib encoder)."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response


def json_response(content: Any, status: int = 200) -> Response:
    """`content` (msgspec structs, lists, dicts) as an application/json response."""
    return Response(msgspec.json.encode(content), status_code=status, media_type="application/json")
