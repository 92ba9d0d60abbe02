"""/api/v2/webhooks (admin): endpoints that receive the event feed, and their delivery log.

An endpoint is registered with its URL and the event types it wants; the answer holds its
Standard Webhooks signing secret, shown this once (and again only by rotating it). Every
server process delivers (couponapi.services.webhook_sender): at least once, in feed order,
retried with back-off for about a day, then the endpoint is disabled and says why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from couponapi.api.auth import require_admin
from couponapi.api.deps import pool_of
from couponapi.api.inputs import MAX_PAGE, InvalidRequest, page_limit, path_uuid, read_json
from couponapi.api.openapi import operation
from couponapi.api.responses import json_response
from couponapi.api.v2.events import TAGS
from couponapi.api.v2.problems import PREFIX, Problem
from couponapi.api.v2.wire import AUTH, INVALID
from couponapi.domain.events import EventType
from couponapi.domain.webhooks import MAX_URL, Delivery, Endpoint, WebhookPolicy
from couponapi.services import webhooks

UNKNOWN = (Problem, "No webhook endpoint with this id.")
# http(s)://host[:port][/path...]: no spaces, no credentials. For the document only: the
# check is WebhookPolicy.check_url's, whose refusals say what is wrong in words.
URL_PATTERN = r"^[hH][tT][tT][pP][sS]?://[^\x00-\x20\x7f/?#@]+([/?#][^\x00-\x20\x7f]*)?$"
Url = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_URL,
        description="http(s)://host/...",
        extra_json_schema={"pattern": URL_PATTERN},
    ),
]


def policy_of(request: Request) -> WebhookPolicy:
    """The operator's webhook policy (create_app puts it in app.state)."""
    policy: WebhookPolicy = request.app.state.webhook_policy
    return policy


class WebhookCreate(msgspec.Struct, forbid_unknown_fields=True):
    """An endpoint to register: where to deliver, and which event types (absent: all)."""

    url: Url
    events: Annotated[list[EventType], Meta(min_length=1)] | None = None


class WebhookUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """`enabled: false` stops deliveries; `true` resumes them where they stopped, the next
    event tried at once (also after the endpoint was disabled for failing)."""

    enabled: bool


class WebhookPublic(msgspec.Struct):
    """An endpoint as listed, never its secret. `failed_attempts` of its next event, retried
    at `next_attempt_at`; a disabled endpoint says when and why."""

    id: UUID
    url: str
    events: list[str] | None
    enabled: bool
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    failed_attempts: int
    next_attempt_at: datetime

    @classmethod
    def of(cls, endpoint: Endpoint) -> WebhookPublic:
        """The wire form of an endpoint."""
        return cls(
            id=endpoint.id, url=endpoint.url, events=endpoint.events, enabled=endpoint.enabled,
            created_at=endpoint.created_at, disabled_at=endpoint.disabled_at,
            disabled_reason=endpoint.disabled_reason, failing_since=endpoint.failing_since,
            failed_attempts=endpoint.failed_attempts, next_attempt_at=endpoint.next_attempt_at,
        )  # fmt: skip


class WebhookWithSecret(WebhookPublic):
    """An endpoint just registered or re-keyed, with `secret` (`whsec_...`): shown this once;
    verify deliveries with it (any Standard Webhooks library)."""

    secret: str = ""


class WebhookList(msgspec.Struct):
    """Every endpoint, oldest first."""

    items: list[WebhookPublic]


class DeliveryPage(msgspec.Struct):
    """Delivery attempts, newest first: `status_code` (null: no answer), `error` (null:
    delivered), `response` (the answer's first 1,024 characters). Pass `next_before` as
    `?before=` for older ones (null: none)."""

    items: list[Delivery]
    next_before: int | None


def _with_secret(endpoint: Endpoint, secret: str) -> WebhookWithSecret:
    public = msgspec.structs.asdict(WebhookPublic.of(endpoint))
    return WebhookWithSecret(**public, secret=secret)


@operation(
    summary="Register a webhook endpoint (admin); the answer holds its secret, shown once.",
    description="Deliveries follow Standard Webhooks: headers webhook-id (the same on every "
    "retry of an event), webhook-timestamp and webhook-signature; the body is the event as "
    "GET /api/v2/events lists it. The endpoint receives the events of every transaction that "
    "had not ended when it was registered, and all later ones.",
    tags=TAGS,
    body=WebhookCreate,
    admin=True,
    responses={
        201: (WebhookWithSecret, "Registered: `secret` verifies its deliveries."),
        **AUTH,
        413: (Problem, "Body too large."),
        422: (Problem, "Not an http(s) URL, a host not allowed, or an unknown event type."),
    },
)
async def create_webhook(request: Request) -> Response:
    """Register a webhook endpoint (admin)."""
    await require_admin(request)
    body = await read_json(request, WebhookCreate)
    endpoint, secret = await webhooks.create_endpoint(
        pool_of(request), policy_of(request), body.url, body.events
    )
    response = json_response(_with_secret(endpoint, secret), status=201)
    response.headers["Location"] = f"{PREFIX}/webhooks/{endpoint.id}"
    return response


@operation(
    summary="List the webhook endpoints (admin).",
    tags=TAGS,
    admin=True,
    responses={200: (WebhookList, "Every endpoint, oldest first."), **AUTH},
)
async def list_webhooks(request: Request) -> Response:
    """List the webhook endpoints (admin)."""
    await require_admin(request)
    found = await webhooks.list_endpoints(pool_of(request))
    return json_response(WebhookList([WebhookPublic.of(endpoint) for endpoint in found]))


@operation(
    summary="Get one webhook endpoint (admin).",
    tags=TAGS,
    admin=True,
    responses={200: (WebhookPublic, "The endpoint."), **AUTH, 404: UNKNOWN, 422: INVALID},
)
async def get_webhook(request: Request) -> Response:
    """Get one webhook endpoint (admin)."""
    await require_admin(request)
    endpoint_id = path_uuid(request, "webhook_id")
    return json_response(
        WebhookPublic.of(await webhooks.get_endpoint(pool_of(request), endpoint_id))
    )


@operation(
    summary="Disable or enable a webhook endpoint (admin).",
    tags=TAGS,
    body=WebhookUpdate,
    admin=True,
    responses={
        200: (WebhookPublic, "The endpoint as changed."),
        **AUTH,
        404: UNKNOWN,
        413: (Problem, "Body too large."),
        422: INVALID,
    },
)
async def update_webhook(request: Request) -> Response:
    """Disable or enable a webhook endpoint (admin)."""
    await require_admin(request)
    endpoint_id = path_uuid(request, "webhook_id")
    body = await read_json(request, WebhookUpdate)
    endpoint = await webhooks.set_enabled(pool_of(request), endpoint_id, body.enabled)
    return json_response(WebhookPublic.of(endpoint))


@operation(
    summary="Delete a webhook endpoint and its delivery log (admin).",
    tags=TAGS,
    admin=True,
    responses={204: (None, "Deleted."), **AUTH, 404: UNKNOWN, 422: INVALID},
)
async def delete_webhook(request: Request) -> Response:
    """Delete a webhook endpoint (admin)."""
    await require_admin(request)
    await webhooks.delete_endpoint(pool_of(request), path_uuid(request, "webhook_id"))
    return Response(status_code=204)


@operation(
    summary="Give a webhook endpoint a new secret (admin); the answer holds it, shown once.",
    description="Every run of deliveries that starts from now on signs with the new secret; "
    "one already under way finishes with the old one (within COUPONAPI_WEBHOOK_TIMEOUT_S).",
    tags=TAGS,
    admin=True,
    responses={200: (WebhookWithSecret, "The new `secret`."), **AUTH, 404: UNKNOWN, 422: INVALID},
)
async def rotate_webhook_secret(request: Request) -> Response:
    """Rotate a webhook endpoint's secret (admin)."""
    await require_admin(request)
    endpoint_id = path_uuid(request, "webhook_id")
    endpoint, secret = await webhooks.rotate_secret(pool_of(request), endpoint_id)
    return json_response(_with_secret(endpoint, secret))


@operation(
    summary="A webhook endpoint's delivery attempts, newest first (admin).",
    tags=TAGS,
    admin=True,
    query=(
        (
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            "Page size (default 50).",
        ),
        (
            "before",
            {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
            "The previous page's next_before.",
        ),
    ),
    responses={200: (DeliveryPage, "One page of attempts."), **AUTH, 404: UNKNOWN, 422: INVALID},
)
async def list_deliveries(request: Request) -> Response:
    """A webhook endpoint's delivery attempts (admin)."""
    await require_admin(request)
    endpoint_id = path_uuid(request, "webhook_id")
    limit = page_limit(request)
    raw_before = request.query_params.get("before")
    if raw_before is not None and not (
        raw_before.isascii() and raw_before.isdigit() and 1 <= int(raw_before) < 2**63
    ):
        raise InvalidRequest(422, "before must be a positive integer: pass next_before as given")
    before = None if raw_before is None else int(raw_before)
    found = await webhooks.list_deliveries(pool_of(request), endpoint_id, before, limit + 1)
    items = found[:limit]
    next_before = items[-1].id if len(found) > limit else None
    return json_response(DeliveryPage(items=items, next_before=next_before))


def routes() -> list[Route]:
    """The webhook routes."""
    one = f"{PREFIX}/webhooks/{{webhook_id}}"
    return [
        Route(f"{PREFIX}/webhooks", create_webhook, methods=["POST"]),
        Route(f"{PREFIX}/webhooks", list_webhooks, methods=["GET"]),
        Route(one, get_webhook, methods=["GET"]),
        Route(one, update_webhook, methods=["PATCH"]),
        Route(one, delete_webhook, methods=["DELETE"]),
        Route(f"{one}/rotate-secret", rotate_webhook_secret, methods=["POST"]),
        Route(f"{one}/deliveries", list_deliveries, methods=["GET"]),
    ]
