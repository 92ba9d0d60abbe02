"""The v1 wire format: the original Go service's field names, so its clients work unchanged."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

import msgspec
from msgspec import Meta

from couponapi.api.inputs import PRINTABLE, STORABLE
from couponapi.domain.claims import Grant
from couponapi.domain.coupons import Coupon

Quantity = Annotated[int, Meta(ge=0, le=2_147_483_647)]
UserId = Annotated[str, Meta(min_length=1, max_length=128, pattern=PRINTABLE)]


class CouponV1(msgspec.Struct):
    """A coupon as the original answered it (only `id` had a json tag in the Go struct)."""

    id: UUID
    Name: str | None
    Type: str
    Quantity: int

    @classmethod
    def of(cls, coupon: Coupon) -> CouponV1:
        """The wire form of a domain coupon."""
        return cls(id=coupon.id, Name=coupon.name, Type=coupon.type, Quantity=coupon.remaining)


class CouponCreateV1(msgspec.Struct, forbid_unknown_fields=False):
    """The create body; field names match case-insensitively, as Go's binder did."""

    Type: Annotated[str, Meta(min_length=1, max_length=100, pattern=STORABLE)]
    Amount: Quantity
    Id: UUID | None = None
    Name: Annotated[str, Meta(max_length=200, pattern=STORABLE)] | None = None


class GiveV1(msgspec.Struct, forbid_unknown_fields=False):
    """The optional give body; the X-User-Id header does the same."""

    userId: UserId | None = None


# A give answers as the original did: the JSON string "Coupon Given To User <id>!" (a client
# that decodes a string works unchanged); who got it and what is left go in headers.
Given = Annotated[str, Meta(pattern="^Coupon Given To User .+!$")]
USER_HEADER = "X-User-Id"
LEFT_HEADER = "X-Quantity-Left"


def given_message(grant: Grant) -> str:
    """The original's answer to a give."""
    return f"Coupon Given To User {grant.user_id}!"


# Every visible ASCII character but `%` stands for itself in X-User-Id; the rest (a space,
# non-ASCII text) is percent-encoded UTF-8, since a header carries only bytes of latin-1.
_AS_ITSELF = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def given_headers(grant: Grant) -> dict[str, str]:
    """Who got the coupon (percent-encoded where not visible ASCII), and how many are left."""
    return {
        USER_HEADER: quote(grant.user_id, safe=_AS_ITSELF),
        LEFT_HEADER: str(grant.quantity_left),
    }


class ErrorV1(msgspec.Struct):
    """The original's error shape."""

    code: int
    errorDescription: str


def canonical_keys(data: dict[str, Any], model: type[msgspec.Struct]) -> dict[str, Any]:
    """Rename keys that match a field of `model` case-insensitively to the field's own name."""
    names = {name.lower(): name for name in model.__struct_fields__}
    return {names.get(key.lower(), key): value for key, value in data.items()}
