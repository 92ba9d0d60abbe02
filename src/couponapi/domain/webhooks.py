"""Webhook endpoints: what one is, which URLs may receive deliveries, and when to retry.

Deliveries follow the Standard Webhooks specification (webhook-id, webhook-timestamp,
webhook-signature; `whsec_` secrets): the signing is the `standardwebhooks` library's
(couponapi.services.webhook_sender). The operator's policy (COUPONAPI_WEBHOOK_*) says which
hosts may be named, how long a delivery may take and how failures are retried.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from uuid import UUID

from couponapi.domain.errors import InvalidWebhook
from couponapi.domain.events import EVENT_TYPES

MAX_URL = 2048
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A registered endpoint as listed: never its secret. `failed_attempts` of the next event
    (retried at `next_attempt_at`), failing since `failing_since`; a disabled endpoint says
    when and why."""

    id: UUID
    url: str
    events: list[str] | None
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None
    failed_attempts: int
    next_attempt_at: datetime

    @property
    def enabled(self) -> bool:
        """Whether deliveries go out."""
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt to deliver one event: the HTTP status (None: no answer) or the error (None:
    delivered), and the start of the answer (at most 1,024 characters)."""

    event_id: int
    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    response: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class Delivery(Attempt):
    """An attempt as the delivery log keeps it, with its id (newest first: the highest)."""

    id: int


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def check_event_types(types: Sequence[str] | None) -> list[str] | None:
    """The event types an endpoint asks for (None: all); InvalidWebhook for an unknown one."""
    if types is None:
        return None
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidWebhook(f"unknown event type(s) {unknown}: known are {list(EVENT_TYPES)}")
    if not types:
        raise InvalidWebhook("events must name at least one type (leave it out for all)")
    return sorted(set(types), key=EVENT_TYPES.index)


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """Where deliveries may go (`hosts`; empty: any), how long one may take, and the pauses
    before each retry of a failing event; after the last one the endpoint is disabled."""

    hosts: frozenset[str]
    timeout_s: float
    retry_s: tuple[float, ...]

    @classmethod
    def of(cls, hosts: str, timeout_s: float, retry_s: str) -> WebhookPolicy:
        """The policy from its settings' text forms (comma-separated)."""
        return cls(
            hosts=frozenset(h.strip().lower() for h in hosts.split(",") if h.strip()),
            timeout_s=timeout_s,
            retry_s=tuple(float(s) for s in retry_s.split(",")),
        )

    @property
    def lease_s(self) -> float:
        """How long a sender owns an endpoint for one run: longer than a run can take (a run
        starts no delivery after `timeout_s`, and each takes at most `timeout_s`)."""
        return 4 * self.timeout_s + 5

    def check_url(self, url: str) -> str:
        """`url` if deliveries may go there; InvalidWebhook saying why not."""
        if len(url) > MAX_URL or _CONTROL_OR_SPACE.search(url):
            raise InvalidWebhook(f"url must be at most {MAX_URL} characters with no spaces")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - parsing the port is part of the check
        except ValueError as error:  # an unclosed "[", a port that is not a number
            raise InvalidWebhook(f"url is not a valid URL: {error}") from None
        if parts.scheme not in ("http", "https"):
            raise InvalidWebhook(f"url must be http:// or https://, not {parts.scheme or url!r}")
        if not parts.hostname:
            raise InvalidWebhook("url must name a host")
        if parts.username is not None or parts.password is not None:
            raise InvalidWebhook("url must not carry credentials: put a token in its path")
        if self.hosts and parts.hostname.lower() not in self.hosts:
            raise InvalidWebhook(
                f"host {parts.hostname!r} is not allowed (COUPONAPI_WEBHOOK_HOSTS)"
            )
        return url

    def retry_after(self, failed_attempts: int) -> float | None:
        """Seconds before the next attempt after `failed_attempts` failures of one event;
        None: stop, the endpoint is disabled."""
        if failed_attempts > len(self.retry_s):
            return None
        return self.retry_s[failed_attempts - 1]
