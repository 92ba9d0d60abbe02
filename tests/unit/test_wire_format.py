"""The v1 wire format helpers and the OpenAPI 3.0 conversion."""

from __future__ import annotations

from couponapi.api.openapi import as_openapi_30
from couponapi.api.v1.wire import CouponCreateV1, canonical_keys


def test_field_names_match_case_insensitively_like_gos_binder() -> None:
    sent = {"ID": 1, "name": 2, "tYpE": 3, "amount": 4, "extra": 5}
    expected = {"Id": 1, "Name": 2, "Type": 3, "Amount": 4, "extra": 5}
    assert canonical_keys(sent, CouponCreateV1) == expected


def test_nullable_values_are_spelled_the_openapi_30_way() -> None:
    schema = {"properties": {"a": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                             "b": {"anyOf": [{"$ref": "#/x"}, {"type": "null"}]}}}  # fmt: skip
    assert as_openapi_30(schema) == {
        "properties": {
            "a": {"type": "string", "nullable": True},
            "b": {"allOf": [{"$ref": "#/x"}], "nullable": True},
        }
    }
