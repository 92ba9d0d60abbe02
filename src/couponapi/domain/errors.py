"""Every way giving, claiming or changing a coupon can be refused, in one table.

Each refusal is a class that carries its HTTP status, the slug of its problem type
(`/problems/<slug>` in /api/v2) and the title that is the same for every occurrence. The API
reads these three attributes and nothing else, so a refusal's answer is decided here, once.
"""

from __future__ import annotations

from typing import ClassVar


class CouponError(Exception):
    """Base of every expected refusal; the API answers it with `status` (v2: problem+json)."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "invalid-request"
    title: ClassVar[str] = "Invalid request"
    # Headers every answer to this refusal carries (401: the WWW-Authenticate challenge).
    headers: ClassVar[dict[str, str] | None] = None
    # True when this refusal is the stored first answer to an idempotency key, sent again.
    replayed = False


class CouponNotFound(CouponError):
    """No coupon has this id."""

    status, slug, title = 404, "coupon-not-found", "Coupon not found"

    def __init__(self, coupon_id: object) -> None:
        super().__init__(f"coupon {coupon_id} not found")


class SoldOut(CouponError):
    """The coupon has nothing left to give."""

    status, slug, title = 409, "sold-out", "Coupon sold out"

    def __init__(self, coupon_id: object) -> None:
        super().__init__(f"coupon {coupon_id} has run out")


class DuplicateCoupon(CouponError):
    """A coupon with this id already exists."""

    status, slug, title = 409, "duplicate-coupon", "Coupon already exists"

    def __init__(self, coupon_id: object) -> None:
        super().__init__(f"coupon {coupon_id} already exists")


class StrategyDisabled(CouponError):
    """The operator switched this way of giving off (the unsafe naive one)."""

    status, slug, title = 403, "strategy-disabled", "Strategy disabled"

    def __init__(self, strategy: str) -> None:
        super().__init__(f"the '{strategy}' strategy is disabled on this server")


class DatabaseUnavailable(CouponError):
    """PostgreSQL cannot be reached right now; the client should retry shortly."""

    status, slug, title = 503, "unavailable", "Service unavailable"


class LimitReached(CouponError):
    """The user already holds as many live claims of this coupon as its per-user limit."""

    status, slug, title = 409, "limit-reached", "Per-user limit reached"


class NotActive(CouponError):
    """The coupon is paused, or the claim came outside [starts_at, ends_at)."""

    status, slug, title = 409, "not-active", "Coupon not active"


class IdempotencyKeyConflict(CouponError):
    """The Idempotency-Key was first used for another request."""

    status, slug, title = 422, "idempotency-key-reused", "Idempotency-Key used for another request"


class ClaimNotFound(CouponError):
    """No claim has this id, or no claim has this code."""

    status, slug, title = 404, "claim-not-found", "Claim not found"


class AlreadyReleased(CouponError):
    """The claim was given back already; it can be neither released nor redeemed."""

    status, slug, title = 409, "already-released", "Claim already released"


class AlreadyRedeemed(CouponError):
    """The claim's code was spent already; it can be neither released nor redeemed again."""

    status, slug, title = 409, "already-redeemed", "Claim already redeemed"


class HoldExpired(CouponError):
    """The claim's hold ended (expires_at passed) before it was redeemed or released: its
    unit is back in the pool; it can be neither released nor redeemed."""

    status, slug, title = 409, "expired", "Claim expired"


class HoldWouldShorten(CouponError):
    """A shorter hold_seconds while a live claim of the coupon would outlast it: holds
    already granted are never cut short, so the change is refused and nothing changes."""

    status, slug, title = 422, "hold-would-shorten", "Hold shorter than a hold granted"


class QuantityBelowClaimed(CouponError):
    """A coupon's quantity cannot go below what is already claimed."""

    status, slug, title = 409, "quantity-below-claimed", "Quantity below what is claimed"


class InvalidCoupon(CouponError):
    """The coupon asked for breaks a rule of its own (e.g. a window that ends before it starts)."""

    status = 422


# ---- identity (couponapi.identity, docs/identity.md) --------------------------------------
# 401: no credential was presented. 403: one was, and it is not valid (forged, expired,
# revoked, unknown), or it does not allow this. The detail says which; the slug tells the two
# 403s apart. Nothing is read or written for a refused request.


class AuthRefusal(CouponError):
    """Base of the identity refusals (not counted as a coupon's refusals by the dashboard)."""


class Unauthenticated(AuthRefusal):
    """No credential: no Authorization header, not a Bearer one, or an empty one."""

    status, slug, title = 401, "unauthorized", "Credentials required"
    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": 'Bearer realm="couponapi"'}


class CredentialNotValid(AuthRefusal):
    """A credential was presented and is not one this server accepts."""

    status, slug, title = 403, "forbidden", "Credential not valid"


class NotPermitted(AuthRefusal):
    """A valid credential that does not allow this action (a user token acting for another
    user, a user token on a server route, a server key on an admin route)."""

    status, slug, title = 403, "not-permitted", "Not permitted"


class KeyNameTaken(CouponError):
    """A live API key already has this name."""

    status, slug, title = 409, "key-name-taken", "Key name taken"


class KeyNotFound(CouponError):
    """No live API key has this name."""

    status, slug, title = 404, "key-not-found", "Key not found"


# ---- the event feed and webhooks (couponapi.services.events, .webhooks) --------------------


class FeedCursorNotOurs(CouponError):
    """A feed cursor this server did not give: malformed, or ahead of every transaction."""

    status, slug, title = 422, "invalid-cursor", "Cursor not valid"


class WebhookNotFound(CouponError):
    """No webhook endpoint has this id."""

    status, slug, title = 404, "webhook-not-found", "Webhook endpoint not found"


class InvalidWebhook(CouponError):
    """A webhook endpoint that cannot be delivered to: not an http(s) URL, a host the
    operator did not allow, or an unknown event type."""

    status, slug, title = 422, "invalid-webhook", "Webhook endpoint not valid"
