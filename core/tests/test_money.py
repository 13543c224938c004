import doctest
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import money

QUANTA = [Decimal("0.01"), Decimal("0.05"), Decimal("1"), Decimal("0.001")]

amounts = st.decimals(min_value=-(10**12), max_value=10**12, places=6, allow_nan=False)


def test_doctests():
    assert doctest.testmod(money).failed == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, "0.1"),
        (0.0125, "0.0125"),
        (1e-7, "1E-7"),
        (3, "3"),
        (10**20, "100000000000000000000"),
        ("1250.50", "1250.50"),
        (" 2.5 ", "2.5"),
        (Decimal("2.50"), "2.50"),
    ],
)
def test_to_decimal_converts_exactly(value, expected):
    result = money.to_decimal(value)
    assert isinstance(result, Decimal)
    assert str(result) == expected


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        float("nan"),
        float("inf"),
        float("-inf"),
        "NaN",
        "Infinity",
        "-inf",
        "abc",
        "",
        None,
        [1],
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("-Infinity"),
    ],
)
def test_to_decimal_rejects_non_numbers(value):
    with pytest.raises(ValueError, match="not a"):
        money.to_decimal(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=200, deadline=None)
def test_to_decimal_round_trips_floats(value):
    assert float(money.to_decimal(value)) == value


@pytest.mark.parametrize(
    ("amount", "rounding", "expected"),
    [
        ("0.0125", "0.01", "0.01"),
        ("0.0375", "0.01", "0.04"),
        ("0.125", "0.01", "0.13"),  # exact half goes up
        ("0.124999", "0.01", "0.12"),
        ("-0.125", "0.01", "-0.13"),  # and away from zero when negative
        ("-0.004", "0.01", "0.00"),  # no negative zero
        ("1.024", "0.05", "1.00"),  # 1.024 = 20 x 0.05 + 0.024, 0.024 < 0.025
        ("1.025", "0.05", "1.05"),  # remainder 0.025 is exactly half of 0.05
        ("1.075", "0.05", "1.10"),
        ("12.5", "1", "13"),
        ("-12.5", "1", "-13"),
        ("0.375", "0.03", "0.39"),  # 0.375 = 12 x 0.03 + 0.015: half, up to 13
        ("1E+30", "0.01", "1000000000000000000000000000000.00"),
        ("7", "0.01", "7.00"),
    ],
)
def test_round_money_table(amount, rounding, expected):
    assert str(money.round_money(Decimal(amount), rounding)) == expected


@pytest.mark.parametrize("rounding", [0.01, "0.01", Decimal("0.01")])
def test_round_money_accepts_rounding_types(rounding):
    assert money.round_money(Decimal("2.345"), rounding) == Decimal("2.35")


@pytest.mark.parametrize(
    ("rounding", "message"),
    [
        (0, "^rounding must be positive, got 0$"),
        ("-0.01", "^rounding must be positive, got '-0.01'$"),
        ("nan", "^not a finite number: 'nan'$"),
    ],
)
def test_round_money_rejects_bad_rounding(rounding, message):
    with pytest.raises(ValueError, match=message):
        money.round_money(Decimal(1), rounding)


@given(amounts, st.sampled_from(QUANTA))
@settings(max_examples=300, deadline=None)
def test_round_money_is_nearest_multiple(amount, quantum):
    rounded = money.round_money(amount, quantum)
    assert rounded % quantum == 0
    assert abs(rounded - amount) <= quantum / 2
    assert money.round_money(rounded, quantum) == rounded


@given(amounts, st.sampled_from(QUANTA))
@settings(max_examples=300, deadline=None)
def test_round_money_is_symmetric(amount, quantum):
    assert money.round_money(-amount, quantum) == -money.round_money(amount, quantum)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2.0000000000005", "2.000000000001"),  # half up, whatever the context
        ("2.0000000000004999", "2.000000000000"),
        ("-2.0000000000005", "-2.000000000001"),
        ("999999999999999.9999999999995", "1000000000000000.000000000000"),
        ("1.000000000001", "1.000000000001"),  # 12 places: as it is
    ],
)
def test_bounded_quantity_rounds_half_up_in_any_context(value, expected):
    with localcontext() as context:
        context.prec = 4
        context.rounding = ROUND_HALF_EVEN
        bounded = money.bounded_quantity(value)
    assert str(bounded) == expected
