import decimal
import doctest
from decimal import Decimal, localcontext

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core import charges, money
from core.charges import GRADUATED, PACKAGE, STANDARD, VOLUME, Charge, Tier

D = Decimal
CENT = D("0.01")

# 0-100 at 0.10 + fee 5, 100-500 at 0.08 + fee 2, above 500 at 0.05 (no fee).
TIERS = (Tier(100, "0.10", 5), Tier(500, "0.08", 2), Tier(None, "0.05"))

quantities = st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False)
prices = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False)
fees = st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False)
batches = st.decimals(min_value=D("0.5"), max_value=1000, places=1, allow_nan=False)
bounds = st.lists(
    st.decimals(min_value=1, max_value=10**5, places=2, allow_nan=False),
    max_size=4,
    unique=True,
).map(sorted)


@st.composite
def tier_ladders(draw, fee=fees, unit_prices=None):
    """Valid ladders of 1-5 tiers; `unit_prices` (5 of them) fixes the prices."""
    up_tos = [*draw(bounds), None]
    if unit_prices:
        tier_prices = unit_prices[: len(up_tos)]
    else:
        tier_prices = [draw(prices) for _ in up_tos]
    return tuple(
        Tier(up_to, price, draw(fee))
        for up_to, price in zip(up_tos, tier_prices, strict=True)
    )


@st.composite
def charges_of_every_model(draw):
    model = draw(st.sampled_from(charges.CHARGE_MODELS))
    return Charge(
        model,
        unit_price=draw(prices),
        package_price=draw(prices),
        unit_batch=draw(batches),
        free_units=draw(st.decimals(min_value=0, max_value=1000, places=2)),
        tiers=draw(tier_ladders()),
    )


def test_doctests():
    assert doctest.testmod(charges).failed == 0


# --- hand-computed tables -------------------------------------------------


@pytest.mark.parametrize(
    ("charge", "quantity", "expected"),
    [
        # standard: q x unit_price
        (Charge(STANDARD, unit_price="0.0125"), 1250, "15.625"),  # 1250 x 0.0125
        (Charge(STANDARD, unit_price="0.0125"), 1, "0.0125"),
        (Charge(STANDARD, unit_price="2"), "2.5", "5.0"),  # 2.5 x 2
        # package: ceil(max(q - free, 0) / batch) x package_price
        (Charge(PACKAGE, package_price=25, unit_batch=100), 1, "25"),  # ceil(.01)=1
        (Charge(PACKAGE, package_price=25, unit_batch=100), 100, "25"),  # ceil(1)=1
        (Charge(PACKAGE, package_price=25, unit_batch=100), 101, "50"),  # ceil(1.01)
        (
            Charge(PACKAGE, package_price=25, unit_batch=100, free_units=50),
            300,  # ceil((300 - 50) / 100) = ceil(2.5) = 3 -> 3 x 25
            "75",
        ),
        (
            Charge(PACKAGE, package_price=25, unit_batch=100, free_units=50),
            50,  # max(50 - 50, 0) = 0 packages
            "0",
        ),
        (
            Charge(PACKAGE, package_price="9.99", unit_batch="0.5"),
            "1.2",  # ceil(1.2 / 0.5) = ceil(2.4) = 3 -> 3 x 9.99
            "29.97",
        ),
        # graduated: units in each tier + fee of every tier reached
        (Charge(GRADUATED, tiers=TIERS), 1, "5.10"),  # 1 x .10 + 5
        (Charge(GRADUATED, tiers=TIERS), 100, "15.00"),  # 100 x .10 + 5
        (
            Charge(GRADUATED, tiers=TIERS),
            150,  # 100 x .10 + 5 + 50 x .08 + 2 = 10 + 5 + 4 + 2
            "21.00",
        ),
        (
            Charge(GRADUATED, tiers=TIERS),
            "100.5",  # 100 x .10 + 5 + 0.5 x .08 + 2 = 10 + 5 + 0.04 + 2
            "17.040",
        ),
        (
            Charge(GRADUATED, tiers=TIERS),
            700,  # 10 + 5 + 400 x .08 + 2 + 200 x .05 = 10 + 5 + 32 + 2 + 10
            "59.00",
        ),
        # volume: all units at the tier the total falls in + that tier's fee
        (Charge(VOLUME, tiers=TIERS), 1, "5.10"),  # 1 x .10 + 5
        (Charge(VOLUME, tiers=TIERS), 100, "15.00"),  # up_to inclusive: 100 x .10 + 5
        (Charge(VOLUME, tiers=TIERS), "100.5", "10.040"),  # 100.5 x .08 + 2
        (Charge(VOLUME, tiers=TIERS), 500, "42.00"),  # 500 x .08 + 2
        (Charge(VOLUME, tiers=TIERS), 700, "35.00"),  # 700 x .05
    ],
)
def test_price_table(charge, quantity, expected):
    assert charges.price(charge, quantity) == D(expected)


@pytest.mark.parametrize(
    ("charge", "quantity", "expected"),
    [
        # 1 x 0.0125 = 0.0125 -> 0.01
        (Charge(STANDARD, unit_price="0.0125"), 1, "0.01"),
        # 3 x 0.0125 = 0.0375 -> 0.04 (per-unit rounding would give 0.03)
        (Charge(STANDARD, unit_price="0.0125"), 3, "0.04"),
        # 1250 x 0.0125 = 15.625 -> 15.63 (half up)
        (Charge(STANDARD, unit_price="0.0125"), 1250, "15.63"),
        # graduated 100.5 -> 17.04 (see price table)
        (Charge(GRADUATED, tiers=TIERS), "100.5", "17.04"),
    ],
)
def test_amount_rounds_once(charge, quantity, expected):
    result = charges.amount(charge, quantity, CENT)
    assert str(result) == expected


def test_amount_uses_currency_rounding():
    charge = Charge(STANDARD, unit_price="0.0125")
    # 1250 x 0.0125 = 15.625; nearest 0.05 is 15.65 (15.625 = 312 x .05 + .025)
    assert charges.amount(charge, 1250, "0.05") == D("15.65")
    # nearest whole unit: 16
    assert charges.amount(charge, 1250, 1) == D(16)


@pytest.mark.parametrize("model", charges.CHARGE_MODELS)
def test_zero_quantity_bills_zero_even_with_fees(model):
    charge = Charge(model, unit_price=3, package_price=7, tiers=TIERS)
    assert charges.price(charge, 0) == 0
    assert charges.amount(charge, 0.0, CENT) == 0
    assert charges.describe(charge, 0, "EUR") == "0 units"


@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        (-1, "^quantity must not be negative, got -1$"),
        ("-0.001", "^quantity must not be negative, got -0.001$"),
        (float("nan"), "^not a finite number"),
        ("inf", "^not a finite number"),
        (True, "^not a number"),
    ],
)
def test_invalid_quantities_are_rejected(quantity, message):
    with pytest.raises(ValueError, match=message):
        charges.price(Charge(STANDARD, unit_price=1), quantity)


def test_price_and_describe_ignore_the_callers_decimal_context():
    """A caller's low precision must not round the exact amount or its text."""
    standard = Charge(STANDARD, unit_price="0.0125")
    graduated = Charge(GRADUATED, tiers=(Tier(10000, "0.0125", "0.05"), Tier(None, 1)))
    volume = Charge(VOLUME, tiers=graduated.tiers)
    with localcontext() as context:
        context.prec = 4
        assert charges.price(standard, 12345) == D("154.3125")
        assert charges.price(graduated, 12345) == D("2470.05")
        assert charges.price(volume, "9999.5") == D("125.04375")
        assert charges.describe(standard, "12345.5", "EUR") == (
            "12,345.5 units x 0.0125 EUR"
        )
        assert charges.describe(graduated, 12345, "EUR") == (
            "graduated: 10,000 x 0.0125 + 2,345 x 1.00 + fee 0.05 EUR"
        )


def test_tier_values_become_decimals():
    tier = Tier(100.5, 0.1, 0.2)
    assert (tier.up_to, tier.unit_price, tier.flat_fee) == (
        D("100.5"),
        D("0.1"),
        D("0.2"),
    )
    assert all(type(value) is D for value in (tier.up_to, tier.flat_fee))
    assert Tier(None, 1).up_to is None


def test_float_inputs_are_converted_exactly():
    charge = Charge(STANDARD, unit_price=0.1)
    assert charge.unit_price == D("0.1")
    # 3 x 0.1 is exactly 0.3 in Decimal (0.30000000000000004 in float)
    assert charges.price(charge, 3.0) == D("0.3")


@pytest.mark.parametrize(
    ("charge", "quantity", "expected"),
    [
        (Charge(STANDARD, unit_price="0.0125"), 1250, "1,250 units x 0.0125 EUR"),
        (Charge(STANDARD, unit_price="0.5"), 1, "1 unit x 0.50 EUR"),
        (
            Charge(PACKAGE, package_price=25, unit_batch=100, free_units=50),
            300,
            "3 packages of 100 x 25.00 EUR (300 units, 50 free)",
        ),
        (
            Charge(PACKAGE, package_price=25, unit_batch=100),
            "12.50",
            "1 package of 100 x 25.00 EUR (12.5 units)",
        ),
        (
            Charge(GRADUATED, tiers=TIERS),
            150,
            "graduated: 100 x 0.10 + 50 x 0.08 + fee 7.00 EUR",
        ),
        (
            Charge(GRADUATED, tiers=TIERS),
            1500,
            "graduated: 100 x 0.10 + 400 x 0.08 + 1,000 x 0.05 + fee 7.00 EUR",
        ),
        (Charge(VOLUME, tiers=TIERS), 150, "volume: 150 x 0.08 + fee 2.00 EUR"),
        (Charge(VOLUME, tiers=TIERS), 700, "volume: 700 x 0.05 EUR"),
    ],
)
def test_describe_table(charge, quantity, expected):
    assert charges.describe(charge, quantity, "EUR") == expected


def test_describe_without_currency():
    assert charges.describe(Charge(STANDARD, unit_price=2), 3, "") == "3 units x 2.00"


# --- validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ((), "at least one tier"),
        ((Tier(100, 1),), "last tier must have no upper bound"),
        ((Tier(None, 1), Tier(100, 1)), "only the last tier"),
        ((Tier(None, 1), Tier(None, 1)), "only the last tier"),
        ((Tier(100, 1), Tier(100, 1), Tier(None, 1)), "strictly increasing"),
        ((Tier(200, 1), Tier(100, 1), Tier(None, 1)), "strictly increasing"),
        ((Tier(0, 1), Tier(None, 1)), "greater than 0"),
        ((Tier(-5, 1), Tier(None, 1)), "greater than 0"),
        ((Tier(100, -1), Tier(None, 1)), "tier 1: unit price must not be negative"),
        ((Tier(100, 1), Tier(None, 1, -2)), "tier 2: flat fee must not be negative"),
    ],
)
def test_validate_tiers_rejects(tiers, message):
    with pytest.raises(ValueError, match=message):
        charges.validate_tiers(tiers)


def test_validate_tiers_accepts_single_unbounded_tier():
    charges.validate_tiers([Tier(None, 0)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"model": "per_seat"},
            "^unknown charge model 'per_seat', expected one of standard, package,"
            " graduated, volume$",
        ),
        ({"model": STANDARD, "unit_price": -1}, "unit_price must not be negative"),
        ({"model": PACKAGE, "package_price": "-0.01"}, "package_price"),
        ({"model": PACKAGE, "unit_batch": 0}, "unit_batch must be positive"),
        ({"model": PACKAGE, "free_units": -1}, "free_units"),
        ({"model": GRADUATED}, "^a tiered charge needs at least one tier$"),
        ({"model": VOLUME, "tiers": (Tier(10, 1),)}, "no upper bound"),
    ],
)
def test_invalid_charges_cannot_be_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Charge(**kwargs)


def test_tiers_are_ignored_by_untiered_models():
    # Odoo may keep tier rows after the model is switched to standard.
    charge = Charge(STANDARD, unit_price=1, tiers=[Tier(5, 1)])
    assert charges.price(charge, 10) == 10


def test_charge_is_frozen_and_tiers_a_tuple():
    charge = Charge(GRADUATED, tiers=list(TIERS))
    assert charge.tiers == TIERS
    with pytest.raises(AttributeError):
        charge.unit_price = D(1)


# --- properties -----------------------------------------------------------


@given(charges_of_every_model(), quantities)
@settings(max_examples=200, deadline=None)
def test_amount_is_never_negative(charge, quantity):
    assert charges.price(charge, quantity) >= 0
    assert charges.amount(charge, quantity, CENT) >= 0


@given(charges_of_every_model(), quantities)
@settings(max_examples=200, deadline=None)
def test_amount_is_price_rounded_once(charge, quantity):
    exact = charges.price(charge, quantity)
    rounded = charges.amount(charge, quantity, CENT)
    assert abs(rounded - exact) <= CENT / 2
    assert rounded == exact.quantize(CENT, rounding="ROUND_HALF_UP")


bounded_quantities = st.decimals(
    min_value=0,
    max_value=10**15,
    places=money.QUANTITY_PLACES,
    allow_nan=False,
    allow_infinity=False,
)


@given(charges_of_every_model(), bounded_quantities)
@settings(max_examples=200, deadline=None)
def test_amount_ignores_the_callers_decimal_context(charge, quantity):
    """Any quantity within the ingestion bound prices exactly, whatever
    precision and traps the caller's thread runs with."""
    expected = charges.amount(charge, quantity, CENT)
    hostile = decimal.Context(prec=3, traps=[decimal.Inexact, decimal.Rounded])
    with decimal.localcontext(hostile):
        assert charges.amount(charge, quantity, CENT) == expected
        assert charges.describe(charge, quantity, "EUR")


@given(
    st.decimals(min_value=0, max_value=10**15, allow_nan=False, allow_infinity=False)
)
@settings(max_examples=300, deadline=None)
def test_any_stored_quantity_becomes_priceable(quantity):
    """Usage stored finer than the bound (1 + 5e-324) is rounded to it:
    pricing never meets an inexact product."""
    bounded = money.bounded_quantity(quantity)
    assert bounded.as_tuple().exponent >= -money.QUANTITY_PLACES
    assert abs(bounded - quantity) <= D(1).scaleb(-money.QUANTITY_PLACES) / 2
    tiers = (Tier(D("0.1"), "0.123456"), Tier(None, "0.000001", 1))
    for charge in (
        Charge(STANDARD, unit_price="0.0125"),
        Charge(GRADUATED, tiers=tiers),
    ):
        charges.amount(charge, bounded, CENT)


def test_a_tiny_addend_is_rounded_to_the_bound():
    # What PostgreSQL's exact NUMERIC sum of the events 1 and 5e-324 gives.
    stored_sum = D("1." + "0" * 323 + "5")
    with pytest.raises(decimal.Inexact):
        charges.amount(Charge(STANDARD, unit_price="0.0125"), stored_sum, CENT)
    assert money.bounded_quantity(stored_sum) == D("1.000000000000")


@given(
    charges_of_every_model().filter(lambda c: c.model != VOLUME),
    quantities,
    quantities,
)
@settings(max_examples=300, deadline=None)
def test_price_is_monotonic_except_volume(charge, first, second):
    low, high = sorted((first, second))
    assert charges.price(charge, low) <= charges.price(charge, high)


@given(st.data(), prices, quantities)
@settings(max_examples=200, deadline=None)
def test_volume_equals_graduated_with_one_price_and_no_fees(data, unit_price, q):
    tiers = data.draw(tier_ladders(fee=st.just(0), unit_prices=[unit_price] * 5))
    graduated = charges.price(Charge(GRADUATED, tiers=tiers), q)
    assert charges.price(Charge(VOLUME, tiers=tiers), q) == graduated == q * unit_price


@given(st.data(), st.lists(prices, min_size=5, max_size=5), quantities)
@settings(max_examples=200, deadline=None)
def test_volume_at_most_graduated_with_falling_prices_and_no_fees(data, ps, q):
    falling = sorted(ps, reverse=True)
    tiers = data.draw(tier_ladders(fee=st.just(0), unit_prices=falling))
    volume = charges.price(Charge(VOLUME, tiers=tiers), q)
    assert volume <= charges.price(Charge(GRADUATED, tiers=tiers), q)


@given(
    batch=batches,
    free=st.decimals(min_value=0, max_value=1000, places=2),
    packages=st.integers(min_value=0, max_value=10_000),
    package_price=prices,
)
@settings(max_examples=300, deadline=None)
def test_package_boundaries_are_exact(batch, free, packages, package_price):
    assume(package_price > 0)
    charge = Charge(
        PACKAGE, package_price=package_price, unit_batch=batch, free_units=free
    )
    boundary = free + packages * batch
    epsilon = D("1E-12")
    assert charges.price(charge, boundary) == packages * package_price
    assert charges.price(charge, boundary + epsilon) == (packages + 1) * package_price


@given(st.integers(min_value=0, max_value=100_000))
@settings(max_examples=200, deadline=None)
def test_sub_cent_unit_price_rounds_on_the_total(units):
    charge = Charge(STANDARD, unit_price="0.0125")
    # 0.0125 = 1/80: the total in cents is units x 1.25, rounded half up once.
    expected_cents = (units * 125 + 50) // 100
    assert charges.amount(charge, units, CENT) == D(expected_cents) / 100


@given(charges_of_every_model(), quantities)
@settings(max_examples=100, deadline=None)
def test_describe_always_renders(charge, quantity):
    text = charges.describe(charge, quantity, "€")
    assert text
    if quantity:
        assert text.endswith(("€", ")"))


# --- late usage: adjustments ------------------------------------------------


@given(charges_of_every_model(), st.lists(quantities, min_size=1, max_size=6))
@settings(max_examples=300, deadline=None)
def test_billed_plus_adjustments_is_the_rating_of_the_whole_period(charge, batches):
    """Usage arriving in batches after each billing: every adjustment is the
    whole period re-rated minus what was billed, so what was billed in total
    is the whole period's amount, and a rerun with nothing new adjusts zero."""
    billed = D(0)
    seen = D(0)
    for batch in batches:
        seen += batch
        billed += charges.adjustment(charge, seen, billed, CENT)
        assert billed == charges.amount(charge, seen, CENT)
        assert charges.adjustment(charge, seen, billed, CENT) == 0


def test_adjustments_are_not_the_late_usage_priced_alone():
    """Pricing the late usage on its own would bill graduated and package
    charges wrongly: 8 then 8 more units in packages of 10 are 2 packages, the
    second one owed by the adjustment."""
    package = Charge(PACKAGE, package_price="5", unit_batch=10)
    billed = charges.amount(package, 8, CENT)
    assert charges.adjustment(package, 16, billed, CENT) == D("5.00")
    assert charges.amount(package, 8, CENT) == D("5.00")
    graduated = Charge(GRADUATED, tiers=TIERS)
    billed = charges.amount(graduated, 90, CENT)
    # 90 units billed 14.00; 120 units are 18.60; the 30 late ones alone 8.00.
    assert charges.adjustment(graduated, 120, billed, CENT) == D("4.60")
    assert charges.amount(graduated, 30, CENT) == D("8.00")


# --- invoice lines ------------------------------------------------------------


def _lines(charge, quantity, rounding=CENT, **kwargs):
    return [
        (line.part, line.quantity, line.price_unit, line.amount)
        for line in charges.invoice_lines(charge, quantity, rounding, **kwargs)
    ]


@pytest.mark.parametrize(
    ("charge", "quantity", "expected"),
    [
        # standard: the usage at the unit price.
        (
            Charge(STANDARD, unit_price="0.0125"),
            1250,
            [(0, 1250, D("0.0125"), CENT * 1563)],
        ),
        # package: the packages at the package price.
        (
            Charge(PACKAGE, package_price=5, unit_batch=10, free_units=5),
            16,
            [(0, 2, 5, D("10.00"))],
        ),
        # graduated: tier 1 (10.00) and its fee, tier 2 (4.00) without fee.
        (
            Charge(GRADUATED, tiers=(*TIERS[:1], Tier(None, "0.08"))),
            150,
            [
                (0, 100, D("0.10"), D("10.00")),
                (1, 1, 5, D("5.00")),
                (2, 50, D("0.08"), D("4.00")),
            ],
        ),
        # graduated: a free first tier bills no line; the third reached.
        (
            Charge(
                GRADUATED,
                tiers=(Tier(100, 0), Tier(500, "0.08", 2), Tier(None, "0.05")),
            ),
            600,
            [
                (2, 400, D("0.08"), D("32.00")),
                (3, 1, 2, D("2.00")),
                (4, 100, D("0.05"), D("5.00")),
            ],
        ),
        # volume: every unit at the tier the total falls in, plus its fee.
        (
            Charge(VOLUME, tiers=TIERS),
            150,
            [(0, 150, D("0.08"), D("12.00")), (1, 1, 2, D("2.00"))],
        ),
        (Charge(VOLUME, tiers=TIERS), 600, [(0, 600, D("0.05"), D("30.00"))]),
        # nothing to bill: one line at zero (an invoiced line goes to zero).
        (Charge(STANDARD, unit_price=0), 400, [(0, 400, 0, D("0.00"))]),
        (Charge(GRADUATED, tiers=TIERS), 0, [(0, 0, D("0.10"), D("0.00"))]),
        (Charge(VOLUME, tiers=TIERS), 0, [(0, 0, D("0.10"), D("0.00"))]),
        (
            Charge(PACKAGE, package_price=5, unit_batch=10, free_units=5),
            5,
            [(0, 0, 5, D("0.00"))],
        ),
        # a quantity finer than the line shows: one unit at the amount.
        (Charge(STANDARD, unit_price="0.0125"), D("1.125"), [(0, 1, CENT, CENT)]),
        # a price finer than the line shows: likewise.
        (
            Charge(STANDARD, unit_price="0.0000001"),
            10**6,
            [(0, 1, D("0.10"), D("0.10"))],
        ),
    ],
)
def test_invoice_lines_table(charge, quantity, expected):
    assert _lines(charge, quantity) == expected


def test_the_last_rounded_line_absorbs_the_roundings():
    """Tier lines of 0.005 each round up to 0.01, 0.02 in all, where the
    charge bills 0.01: the last rounded line (the second tier's) shows one
    unit at 0.00, the fee line after it stays exact."""
    tiers = (Tier(1, "0.005"), Tier(None, "0.005", "1.00"))
    lines = charges.invoice_lines(Charge(GRADUATED, tiers=tiers), 2, CENT)
    assert [(line.part, line.amount, line.itemized) for line in lines] == [
        (0, D("0.01"), True),
        (2, D("0.00"), False),
        (3, D("1.00"), True),
    ]
    assert (
        sum(line.amount for line in lines)
        == charges.amount(Charge(GRADUATED, tiers=tiers), 2, CENT)
        == D("1.01")
    )
    assert (lines[1].units, lines[1].price) == (1, D("0.005")), (
        "the usage, for the text"
    )


def test_a_line_the_invoice_would_round_otherwise_is_one_unit():
    """The invoice computes a line's subtotal itself (``subtotal``): where
    that differs from the line's amount, the line is one unit at it."""

    def floor(units, price):
        return (units * price).quantize(CENT, rounding=decimal.ROUND_FLOOR)

    charge = Charge(STANDARD, unit_price="0.0125")
    assert _lines(charge, 1250, subtotal=floor) == [(0, 1, D("15.63"), D("15.63"))]
    assert _lines(charge, 1200, subtotal=floor) == [(0, 1200, D("0.0125"), D("15.00"))]


def test_invoice_lines_follow_the_precision_given():
    charge = Charge(STANDARD, unit_price="0.0125")
    assert _lines(charge, D("1.125"), quantity_places=3) == [
        (0, D("1.125"), D("0.0125"), CENT)
    ]
    assert _lines(charge, 80, price_places=2) == [(0, 1, D("1.00"), D("1.00"))]
    # More than 15 significant digits do not survive a float.
    assert _lines(charge, 10**16 + 8, rounding=1) == [
        (0, 1, D("125000000000000"), D("125000000000000"))
    ]


@given(charges_of_every_model(), quantities, st.sampled_from([CENT, D("0.05"), D(1)]))
@settings(max_examples=400, deadline=None)
def test_invoice_lines_sum_to_the_charge_amount(charge, quantity, rounding):
    """Whatever the model, usage and currency: the lines sum exactly to the
    charge's amount, each shows quantity x unit price invoicing its amount,
    the numbering is stable and only the nothing-to-bill line is zero."""
    lines = charges.invoice_lines(charge, quantity, rounding)
    assert lines
    assert sum((line.amount for line in lines), D(0)) == charges.amount(
        charge, quantity, rounding
    )
    parts = [line.part for line in lines]
    assert parts == sorted(set(parts))
    for line in lines:
        assert (
            money.round_money(line.quantity * line.price_unit, rounding) == line.amount
        )
        assert line.amount % rounding == 0
        assert line.amount >= 0
    if len(lines) > 1:
        assert all(line.units * line.price for line in lines)
    # The units the lines bill are the usage (graduated: the tiers' slices).
    usage = [line.units for line in lines if not line.flat_fee]
    if charge.model == STANDARD:
        assert usage == [quantity]
    if charge.model == VOLUME:
        assert usage in ([quantity], [])
    if charge.model == GRADUATED and sum(usage) and quantity:
        assert sum(usage) <= quantity


def test_invoice_lines_never_go_below_zero_to_absorb_roundings():
    """0.5 + 0.5 + 0.4 bills 1 in whole units, while its lines round to 1, 1
    and 0: the last line cannot give the difference, the fee before it does."""
    tiers = (Tier(D("0.5"), "1", "0.5"), Tier(None, "1"))
    assert _lines(Charge(GRADUATED, tiers=tiers), D("0.9"), rounding=D(1)) == [
        (0, D("0.5"), D(1), D(1)),
        (1, D(1), D(0), D(0)),
        (2, D("0.4"), D(1), D(0)),
    ]
