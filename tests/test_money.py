"""Exact money: no floats in, integers stored, one rounding helper out."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.money import D, display, from_pico, per_token_pico, to_pico


def test_floats_are_refused():
    with pytest.raises(TypeError):
        D(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", "-inf", ""])
def test_non_numbers_are_refused(bad):
    with pytest.raises(ValueError):
        D(bad)


def test_reference_prices_are_whole_pico_per_token_even_batched():
    for price in ("0.075", "1.875", "0.025", "0.275", "0.15"):
        exact = per_token_pico(D(price) * D("0.5"))
        assert from_pico(exact) * 10**6 == D(price) * D("0.5")


def test_display_rounds_half_even_only_when_shown():
    assert display(Decimal("0.0000005")) == "0.000000"
    assert display(Decimal("0.0000015")) == "0.000002"
    assert display(None) is None
    assert display(Decimal("1E-12"), 12) == "0.000000000001"  # never scientific notation


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_pico_round_trip(pico):
    assert to_pico(from_pico(pico)) == pico


def test_finer_than_pico_is_an_error():
    with pytest.raises(ValueError):
        to_pico(Decimal("1e-13"))
