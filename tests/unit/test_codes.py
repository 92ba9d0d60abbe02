"""Claim codes: format, alphabet, randomness source, and how typed codes are read back."""

from __future__ import annotations

import re
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from couponapi.domain.codes import (
    _SYMBOL_OF_BYTE,
    ALPHABET,
    SYMBOLS,
    TYPED_PATTERN,
    new_codes,
    normalize_code,
)


def test_a_code_is_12_crockford_symbols_in_three_groups() -> None:
    for count in (1, 2, 7):
        codes = new_codes(count)
        assert len(codes) == count
        for code in codes:
            assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){2}", code)
    assert new_codes(0) == []
    assert len(ALPHABET) == 32
    assert SYMBOLS * 5 >= 60  # bits of randomness


def test_codes_do_not_repeat() -> None:
    codes = {code for _ in range(100) for code in new_codes(100)}
    assert len(codes) == 10_000


def test_every_symbol_is_drawn_at_every_position() -> None:
    # 2,000 codes: a symbol missing at a position has odds of about (31/32)^2000, ~1e-27.
    codes = [code.replace("-", "") for code in new_codes(2_000)]
    for position in range(SYMBOLS):
        assert {code[position] for code in codes} == set(ALPHABET)


def test_each_symbol_comes_from_as_many_random_byte_values() -> None:
    # A uniform random byte then gives a uniform symbol: each of the 32 from 8 of the 256.
    assert Counter(_SYMBOL_OF_BYTE) == {ord(symbol): 8 for symbol in ALPHABET}


def test_typed_codes_are_read_the_crockford_way() -> None:
    assert normalize_code("abcd-efgh-jkmn") == "ABCD-EFGH-JKMN"
    assert normalize_code(" o1il efgh\tjkmn ") == "0111-EFGH-JKMN"
    assert normalize_code("ABCDEFGHJKMN") == "ABCD-EFGH-JKMN"


def test_what_cannot_be_a_code_is_refused() -> None:
    for typed in ("", "ABC", "ABCD-EFGH-JKMNP", "UUUU-UUUU-UUUU", "ABCD-EFGH-JK!N"):
        assert normalize_code(typed) is None


@given(st.from_regex(TYPED_PATTERN, fullmatch=True))
def test_every_code_the_document_admits_is_read(typed: str) -> None:
    # The OpenAPI document gives TYPED_PATTERN: no string it admits may be refused.
    assert normalize_code(typed) is not None


def test_what_the_pattern_refuses() -> None:
    for typed in ("", "7K3M-Q9XA-T2V", "7K3M-Q9XA-T2VU", "7K3M_Q9XA_T2VD", "7K3M-Q9XA-T2VD-1"):
        assert re.fullmatch(TYPED_PATTERN, typed) is None, typed
