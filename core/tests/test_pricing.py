import doctest
import json
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import pricing
from core.charges import Charge
from core.pricing import Filter, Grant

D = Decimal
CENT = D("0.01")
LAST_DAY = date(2026, 1, 31)

money_amounts = st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False)
# Property values as events send them: strings, numbers, booleans, null.
property_values = st.sampled_from(["eu", "us", "uk", "1", 1, 2, True, False, None])
value_texts = st.sampled_from(["eu", "us", "uk", "1", "2", "true", "false"])


def test_doctests():
    assert doctest.testmod(pricing).failed == 0


# --- charge filters -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("eu", ("eu",)),
        ("eu,us", ("eu", "us")),
        (" eu , us ,, ", ("eu", "us")),
        ("eu,eu", ("eu",)),
        ("", ()),
        (False, ()),
    ],
)
def test_parse_values(text, expected):
    assert pricing.parse_values(text) == expected


def test_filter_needs_property_and_values():
    with pytest.raises(ValueError, match="property name"):
        Filter("", ("eu",), Charge("standard"))
    with pytest.raises(ValueError, match="no values"):
        Filter("region", (), Charge("standard"))


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"region": "eu"}, 0),
        ({"region": "us"}, 1),
        ({"region": "eu", "gpu": True}, 0),  # the first filter by sequence wins
        ({"region": "ap", "gpu": True}, 2),
        ({"gpu": "true"}, 2),  # the JSON text of true is "true"
        ({"region": "EU"}, None),  # compared exactly
        ({"region": None}, None),
        ({"region": ["eu"]}, None),  # not a scalar
        ({}, None),
        ([], None),  # properties that are no object match nothing
    ],
)
def test_matching_filter_first_by_sequence(properties, expected):
    standard = Charge("standard")
    filters = [
        Filter("region", ("eu",), standard),
        Filter("region", ("us",), standard),
        Filter("gpu", ("true",), standard),
    ]
    assert pricing.matching_filter(filters, properties) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [(1, "1"), (1.5, "1.5"), (True, "true"), (False, "false")],
)
def test_property_text_of_scalars(value, text):
    assert pricing.property_text(value) == text


filter_lists = st.lists(
    st.builds(
        Filter,
        st.sampled_from(["region", "gpu"]),
        st.lists(value_texts, min_size=1, max_size=3, unique=True).map(tuple),
        st.just(Charge("standard")),
    ),
    max_size=4,
)
event_properties = st.one_of(
    st.dictionaries(st.sampled_from(["region", "gpu", "other"]), property_values),
    st.lists(property_values, max_size=2),
)


@given(filter_lists, st.lists(event_properties, max_size=30))
def test_each_event_goes_to_the_first_filter_it_matches(filters, events):
    """The buckets partition the events: each event is in the first filter (by
    sequence) whose values hold its property's text, else in the rest."""
    for properties in events:
        index = pricing.matching_filter(filters, properties)
        matches = [
            position
            for position, bucket in enumerate(filters)
            if isinstance(properties, dict)
            and properties.get(bucket.property_name) is not None
            and json.dumps(properties[bucket.property_name]).strip('"') in bucket.values
        ]
        assert index == (matches[0] if matches else None)


# --- proration and minimum commitment -------------------------------------


def _reference_round(fraction, quantum):
    """Half-up rounding of an exact fraction, computed with Fraction."""
    steps = fraction / Fraction(quantum)
    whole = steps.numerator // steps.denominator
    if steps - whole >= Fraction(1, 2):
        whole += 1
    return D(whole) * quantum


@given(
    money_amounts,
    st.integers(0, 400),
    st.integers(1, 400),
    st.sampled_from([CENT, D("0.05"), D(1)]),
)
def test_prorate_rounds_the_exact_fraction_once(amount, days, full_days, quantum):
    result = pricing.prorate(amount, days, full_days, quantum)
    assert result == _reference_round(Fraction(amount) * days / full_days, quantum)


@given(money_amounts, st.integers(1, 400))
def test_prorate_of_a_full_period_is_the_amount(amount, full_days):
    assert pricing.prorate(amount, full_days, full_days, CENT) == amount
    assert pricing.prorate(amount, 0, full_days, CENT) == 0


@pytest.mark.parametrize(
    ("amount", "days", "full_days", "expected"),
    [
        ("100.00", 10, 30, "33.33"),
        ("100.00", 20, 30, "66.67"),
        ("0.01", 1, 2, "0.01"),  # 0.005: half up
        ("0.01", 1, 3, "0.00"),
        ("29.00", 14, 28, "14.50"),
    ],
)
def test_prorate_table(amount, days, full_days, expected):
    assert str(pricing.prorate(D(amount), days, full_days, CENT)) == expected


@pytest.mark.parametrize(
    ("days", "full_days"), [(-1, 30), (1, 0), (1.5, 30), (True, 30)]
)
def test_prorate_rejects_bad_days(days, full_days):
    with pytest.raises(ValueError):
        pricing.prorate(D(10), days, full_days, CENT)


@given(money_amounts, st.decimals(min_value=-1000, max_value=10**6, places=2))
def test_minimum_true_up_never_negative_and_reaches_the_minimum(minimum, billed):
    true_up = pricing.minimum_true_up(minimum, billed)
    assert true_up >= 0
    assert billed + true_up >= minimum
    # Never more than needed: the total is the larger of the two.
    assert billed + true_up == max(billed, minimum)


def test_minimum_must_not_be_negative():
    with pytest.raises(ValueError):
        pricing.minimum_true_up(D(-1), D(0))


# --- credit grants --------------------------------------------------------

expirations = st.one_of(
    st.none(),
    st.integers(-3, 3).map(lambda days: LAST_DAY + timedelta(days=days)),
)
grant_lists = st.lists(
    st.tuples(money_amounts, st.integers(0, 3), expirations),
    max_size=8,
).map(
    lambda rows: [
        Grant(index, remaining, priority, expiration)
        for index, (remaining, priority, expiration) in enumerate(rows)
    ]
)
totals = st.decimals(min_value=-100, max_value=10**6, places=2, allow_nan=False)


@given(grant_lists, totals)
def test_credits_never_below_zero_nor_beyond_a_grant(grants, total):
    used = pricing.consume_credits(grants, total, LAST_DAY)
    by_key = {grant.key: grant for grant in grants}
    spent = sum((amount for _key, amount in used), D(0))
    assert 0 <= spent <= max(total, D(0))
    assert len({key for key, _ in used}) == len(used)
    for key, amount in used:
        assert 0 < amount <= by_key[key].remaining
    # Everything usable is used up to the total.
    usable = sum((g.remaining for g in pricing.usable_grants(grants, LAST_DAY)), D(0))
    assert spent == min(usable, max(total, D(0)))


@given(grant_lists, totals)
def test_credits_consumed_by_priority_then_expiry(grants, total):
    used = pricing.consume_credits(grants, total, LAST_DAY)
    by_key = {grant.key: grant for grant in grants}
    order = [
        (g.priority, g.expiration_date is None, g.expiration_date or date.max)
        for g in (by_key[key] for key, _ in used)
    ]
    assert order == sorted(order)
    # A grant is touched only once every grant before it is used up.
    for key, _amount in used[:-1]:
        assert dict(used)[key] == by_key[key].remaining
    # A usable grant left untouched comes after the last one used.
    if used:
        last = by_key[used[-1][0]]
        last_rank = (last.priority, last.expiration_date is None)
        for grant in pricing.usable_grants(grants, LAST_DAY):
            if grant.key not in dict(used):
                rank = (grant.priority, grant.expiration_date is None)
                assert rank >= last_rank


@given(grant_lists, totals)
def test_expired_credit_is_never_used(grants, total):
    used = dict(pricing.consume_credits(grants, total, LAST_DAY))
    for grant in grants:
        if grant.expiration_date and grant.expiration_date < LAST_DAY:
            assert grant.key not in used


def test_expiration_date_is_inclusive():
    on_last_day = Grant("on", D("5.00"), expiration_date=LAST_DAY)
    day_before = Grant("before", D("5.00"), expiration_date=LAST_DAY - timedelta(1))
    assert pricing.consume_credits([on_last_day, day_before], D(100), LAST_DAY) == [
        ("on", D("5.00"))
    ]


def test_no_expiry_is_used_last_within_a_priority():
    grants = [
        Grant("forever", D("10.00"), priority=1),
        Grant("late", D("10.00"), priority=1, expiration_date=date(2026, 6, 30)),
        Grant("soon", D("10.00"), priority=1, expiration_date=date(2026, 2, 28)),
        Grant("first", D("10.00"), priority=0),
    ]
    assert pricing.consume_credits(grants, D("35.00"), LAST_DAY) == [
        ("first", D("10.00")),
        ("soon", D("10.00")),
        ("late", D("10.00")),
        ("forever", D("5.00")),
    ]


def test_grant_cannot_be_negative():
    with pytest.raises(ValueError):
        Grant("x", D("-0.01"))


tax_bases = st.dictionaries(
    st.sampled_from(["vat20", "vat10", "none", "exempt"]),
    st.decimals(min_value=-50, max_value=10**5, places=2, allow_nan=False),
    min_size=1,
)


@given(tax_bases, st.data())
def test_split_by_taxes_is_exact_and_proportional(bases, data):
    positive = {key: base for key, base in bases.items() if base > 0}
    total = sum(positive.values(), D(0))
    cents = data.draw(st.integers(0, int(total / CENT)))
    amount = cents * CENT
    shares = pricing.split_by_taxes(amount, bases, CENT)
    assert sum(shares.values(), D(0)) == amount
    for key, share in shares.items():
        assert 0 < share <= positive[key]
        exact = Fraction(amount) * Fraction(positive[key]) / Fraction(total)
        assert abs(Fraction(share) - exact) < Fraction(CENT)


def test_split_by_taxes_table():
    bases = {"vat": D("20.00"), "none": D("10.00"), "refund": D("-5.00")}
    assert pricing.split_by_taxes(D("25.00"), bases, CENT) == {
        "vat": D("16.67"),
        "none": D("8.33"),
    }


@pytest.mark.parametrize("amount", ["-0.01", "30.01", "0.005"])
def test_split_by_taxes_refuses_what_cannot_be_split(amount):
    with pytest.raises(ValueError):
        pricing.split_by_taxes(D(amount), {"vat": D("20.00"), "n": D("10.00")}, CENT)
