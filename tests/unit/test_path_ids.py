"""Path ids: parsed once per distinct text, refused with the API's status when malformed."""

from __future__ import annotations

from uuid import UUID

import pytest

from couponapi.api.inputs import InvalidRequest, parse_uuid, uuid_of


def test_the_same_text_gives_the_same_parsed_uuid() -> None:
    text = "6f1c1e0a-4b1e-4c9a-9a51-0d4e3c2b1a00"
    first, again = uuid_of(text), uuid_of(text)
    assert first == UUID(text)
    assert again is first  # remembered, not parsed again
    assert uuid_of(text.upper()) == first


@pytest.mark.parametrize("text", ["", "not-a-uuid", "6f1c1e0a-4b1e-4c9a-9a51", "' OR 1=1 --"])
def test_a_malformed_id_is_refused_every_time(text: str) -> None:
    for _ in range(2):  # a failure is not remembered as an answer
        with pytest.raises(ValueError, match="badly formed hexadecimal UUID string"):
            uuid_of(text)
        with pytest.raises(InvalidRequest) as refused:
            parse_uuid(text)
        assert refused.value.status == 400
