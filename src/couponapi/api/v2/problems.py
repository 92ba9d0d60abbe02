"""RFC 9457 problem details for the current API (/api/v2): `application/problem+json`.

Every failure has a stable `type` (a URI reference, relative to the server: /problems/<slug>),
a `title` that is the same for every occurrence, the `status`, and a `detail` about this one.
v2 answers every malformed input 422 (v1 keeps the original's 400 for unreadable bodies and
ids). A refusal replayed from an Idempotency-Key carries `Idempotent-Replayed: true`.
"""

from __future__ import annotations

from http import HTTPStatus

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from couponapi.domain.errors import CouponError

PREFIX = "/api/v2"
MEDIA_TYPE = "application/problem+json"

# The problem type of an answer that is not a domain refusal (those carry their own:
# couponapi.domain.errors), by status.
STATUS: dict[int, tuple[str, str]] = {
    401: ("unauthorized", "Admin token required"),
    403: ("forbidden", "Admin token not valid"),
    413: ("body-too-large", "Request body too large"),
    422: ("invalid-request", "Invalid request"),
    500: ("internal-error", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}


class Problem(msgspec.Struct):
    """An RFC 9457 problem details object."""

    __media_type__ = MEDIA_TYPE  # what the OpenAPI document declares for it (api/openapi.py)

    type: str
    title: str
    status: int
    detail: str


def is_v2(request: Request) -> bool:
    """Whether the request is for the current API (problem details) rather than v1."""
    path: str = request.scope["path"]
    return path == PREFIX or path.startswith(PREFIX + "/")


def problem_response(
    status: int,
    detail: str,
    kind: tuple[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A problem+json response; without `kind`, the status's own (or about:blank)."""
    status = 422 if status == 400 else status
    slug, title = kind or STATUS.get(status, ("", HTTPStatus(status).phrase))
    problem = Problem(
        type=f"/problems/{slug}" if slug else "about:blank", title=title, status=status,
        detail=detail,
    )  # fmt: skip
    return Response(
        msgspec.json.encode(problem), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def problem_for(
    error: Exception, status: int, detail: str, headers: dict[str, str] | None = None
) -> Response:
    """The problem details answering `error` (its kind when it is a domain error)."""
    kind = None
    if isinstance(error, CouponError):
        kind = (error.slug, error.title)
        if error.replayed:
            headers = {**(headers or {}), "Idempotent-Replayed": "true"}
    return problem_response(status, detail, kind, headers)
