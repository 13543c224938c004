import calendar
import doctest
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import periods, pricing
from core.periods import add_interval, billing_window, next_boundary, period_label

dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31))
units = st.sampled_from(periods.INTERVAL_UNITS)
counts = st.integers(min_value=1, max_value=12)


def test_doctests():
    assert doctest.testmod(periods).failed == 0


@pytest.mark.parametrize(
    ("anchor", "unit", "count", "times", "expected"),
    [
        (date(2024, 1, 31), "month", 1, 1, date(2024, 2, 29)),  # leap year
        (date(2023, 1, 31), "month", 1, 1, date(2023, 2, 28)),
        # the series anchored on Jan 31 comes back to the 31st: no drift
        (date(2023, 1, 31), "month", 1, 2, date(2023, 3, 31)),
        (date(2023, 1, 31), "month", 1, 3, date(2023, 4, 30)),
        (date(2023, 1, 31), "month", 1, 4, date(2023, 5, 31)),
        (date(2023, 11, 30), "month", 1, 2, date(2024, 1, 30)),  # year wrap
        (date(2023, 12, 15), "month", 1, 1, date(2024, 1, 15)),
        (date(2024, 1, 15), "month", 1, 0, date(2024, 1, 15)),
        (date(2023, 8, 31), "month", 3, 2, date(2024, 2, 29)),  # 6 months
        (date(2024, 2, 29), "year", 1, 1, date(2025, 2, 28)),
        (date(2024, 2, 29), "year", 1, 4, date(2028, 2, 29)),
        (date(2024, 5, 10), "year", 2, 3, date(2030, 5, 10)),
        (date(2024, 2, 28), "day", 1, 1, date(2024, 2, 29)),
        (date(2024, 12, 30), "day", 10, 1, date(2025, 1, 9)),
        (date(2024, 1, 1), "week", 2, 3, date(2024, 2, 12)),  # 42 days later
    ],
)
def test_add_interval_table(anchor, unit, count, times, expected):
    assert add_interval(anchor, unit, count, times) == expected


@pytest.mark.parametrize(
    ("unit", "count", "times", "message"),
    [
        (
            "hour",
            1,
            1,
            "^unknown interval unit 'hour', expected one of day, week, month, year$",
        ),
        ("month", 0, 1, "count must be an integer >= 1"),
        ("month", True, 1, "count must be an integer >= 1"),
        ("month", 1.5, 1, "count must be an integer >= 1"),
        ("month", 1, -1, "times must be an integer >= 0"),
        ("month", 1, 1.0, "times must be an integer >= 0"),
    ],
)
def test_add_interval_rejects(unit, count, times, message):
    with pytest.raises(ValueError, match=message):
        add_interval(date(2024, 1, 1), unit, count, times)


@pytest.mark.parametrize(
    ("anchor", "unit", "count", "after", "expected"),
    [
        # `after` before the anchor: the first boundary (k = 1)
        (date(2024, 1, 31), "month", 1, date(2020, 5, 5), date(2024, 2, 29)),
        # `after` on the anchor itself
        (date(2024, 1, 31), "month", 1, date(2024, 1, 31), date(2024, 2, 29)),
        # `after` on a boundary: strictly after, so the next one
        (date(2024, 1, 31), "month", 1, date(2024, 4, 30), date(2024, 5, 31)),
        (date(2024, 1, 31), "month", 1, date(2024, 5, 1), date(2024, 5, 31)),
        # same month as `after` but an earlier day: next month's boundary
        (date(2024, 1, 10), "month", 1, date(2024, 6, 20), date(2024, 7, 10)),
        (date(2024, 1, 10), "month", 3, date(2024, 6, 20), date(2024, 7, 10)),
        (date(2024, 1, 10), "month", 3, date(2024, 7, 10), date(2024, 10, 10)),
        (date(2000, 2, 29), "year", 1, date(2023, 3, 1), date(2024, 2, 29)),
        (date(2024, 1, 1), "day", 7, date(2024, 1, 8), date(2024, 1, 15)),
        (date(2024, 1, 1), "week", 1, date(2024, 1, 7), date(2024, 1, 8)),
        # far away: computed, not walked (8,000 years of monthly boundaries)
        (date(1, 1, 31), "month", 1, date(8000, 2, 15), date(8000, 2, 29)),
    ],
)
def test_next_boundary_table(anchor, unit, count, after, expected):
    assert next_boundary(anchor, unit, count, after) == expected


def test_next_boundary_rejects_unknown_unit():
    with pytest.raises(ValueError, match="unknown interval unit"):
        next_boundary(date(2024, 1, 1), "quarter", 1, date(2024, 5, 1))


def test_billing_window_starts_at_start_date_when_never_invoiced():
    for missing in (None, False):  # Odoo returns False for an empty date
        start, end = billing_window(date(2024, 1, 15), missing, date(2024, 2, 15))
        assert start == datetime(2024, 1, 15, tzinfo=timezone.utc)
        assert end == datetime(2024, 2, 15, tzinfo=timezone.utc)


def test_billing_window_starts_at_last_invoice_date():
    start, end = billing_window(date(2024, 1, 15), date(2024, 2, 15), date(2024, 3, 15))
    assert (start, end) == (
        datetime(2024, 2, 15, tzinfo=timezone.utc),
        datetime(2024, 3, 15, tzinfo=timezone.utc),
    )
    assert start.utcoffset() == end.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("start", "last", "next_", "message"),
    [
        (date(2024, 1, 15), None, None, "^a billing window needs a start date and"),
        (False, False, date(2024, 2, 15), "^a billing window needs a start date and"),
        (date(2024, 1, 15), None, date(2024, 1, 15), "must be after"),
        (date(2024, 1, 15), date(2024, 3, 1), date(2024, 2, 15), "must be after"),
    ],
)
def test_billing_window_rejects(start, last, next_, message):
    with pytest.raises(ValueError, match=message):
        billing_window(start, last, next_)


@pytest.mark.parametrize(
    ("day", "label"),
    [(date(2024, 3, 5), "2024-03"), (date(2024, 12, 31), "2024-12")],
)
def test_period_label(day, label):
    assert period_label(day) == label


@given(dates, st.integers(min_value=0, max_value=1200))
@settings(max_examples=300, deadline=None)
def test_monthly_series_never_drifts(anchor, times):
    result = add_interval(anchor, "month", 1, times)
    months = anchor.month - 1 + times
    assert (result.year, result.month) == (anchor.year + months // 12, months % 12 + 1)
    last_day = calendar.monthrange(result.year, result.month)[1]
    assert result.day == min(anchor.day, last_day)


@given(dates, units, counts, st.integers(min_value=0, max_value=40))
@settings(max_examples=300, deadline=None)
def test_series_is_strictly_increasing(anchor, unit, count, times):
    step = add_interval(anchor, unit, count, times + 1)
    assert step > add_interval(anchor, unit, count, times)


@given(dates, units, counts, st.integers(min_value=-400, max_value=2000))
@settings(max_examples=300, deadline=None)
def test_next_boundary_agrees_with_add_interval(anchor, unit, count, offset_days):
    after = anchor + timedelta(days=offset_days)
    boundary = next_boundary(anchor, unit, count, after)
    # Reference: walk the series from k = 1 (slow, but the span is small).
    times = 1
    while add_interval(anchor, unit, count, times) <= after:
        times += 1
    assert boundary == add_interval(anchor, unit, count, times)
    assert boundary > after


# --- short periods: proration by days --------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "anchor", "unit", "expected"),
    [
        # February of a leap year, then of a common year
        (date(2024, 2, 10), date(2024, 3, 1), date(2024, 1, 1), "month", (20, 29)),
        (date(2023, 2, 10), date(2023, 3, 1), date(2023, 1, 1), "month", (19, 28)),
        # anchored on the 31st: the full period is Feb 29 -> Mar 31
        (date(2024, 2, 29), date(2024, 3, 15), date(2024, 1, 31), "month", (15, 31)),
        # one day
        (date(2024, 3, 5), date(2024, 3, 6), date(2024, 1, 1), "month", (1, 31)),
        (date(2024, 12, 31), date(2025, 1, 1), date(2024, 1, 1), "year", (1, 366)),
        # a leap-day anchor: years end on Feb 28 until the next leap year
        (date(2025, 1, 1), date(2025, 2, 1), date(2024, 2, 29), "year", (31, 365)),
        (date(2027, 3, 1), date(2028, 2, 29), date(2024, 2, 29), "year", (365, 366)),
        # a full period
        (date(2024, 1, 1), date(2024, 2, 1), date(2024, 1, 1), "month", (31, 31)),
        (date(2024, 1, 8), date(2024, 1, 10), date(2024, 1, 1), "week", (2, 7)),
    ],
)
def test_prorated_days_table(start, end, anchor, unit, expected):
    assert periods.prorated_days(start, end, anchor, unit, 1) == expected


def test_prorated_days_rejects_empty_and_pre_anchor_periods():
    with pytest.raises(ValueError, match="empty"):
        periods.prorated_days(
            date(2024, 1, 5), date(2024, 1, 5), date(2024, 1, 1), "day", 1
        )
    with pytest.raises(ValueError, match="before the anchor"):
        periods.period_containing(date(2024, 1, 5), "month", 1, date(2024, 1, 4))


@given(dates, units, counts, st.integers(min_value=0, max_value=4000))
@settings(max_examples=300, deadline=None)
def test_period_containing_is_the_series_period_around_the_day(
    anchor, unit, count, offset
):
    day = anchor + timedelta(days=offset)
    start, end = periods.period_containing(anchor, unit, count, day)
    assert start <= day < end
    assert end == next_boundary(anchor, unit, count, start)
    assert (
        start == anchor
        or next_boundary(anchor, unit, count, start - timedelta(days=1)) == start
    )


@given(dates, units, counts, st.integers(min_value=0, max_value=4000), st.data())
@settings(max_examples=300, deadline=None)
def test_a_period_cut_anywhere_is_two_short_periods_of_one_full(
    anchor, unit, count, offset, data
):
    """A plan change or an end date cuts a full period in two: both parts are
    prorated against that same full period, their days add up to it, and the
    two prorated fees add up to the full fee within one rounding each."""
    start, end = periods.period_containing(
        anchor, unit, count, anchor + timedelta(days=offset)
    )
    full_days = (end - start).days
    cut = start + timedelta(days=data.draw(st.integers(1, max(1, full_days - 1))))
    if cut >= end:
        return
    first = periods.prorated_days(start, cut, anchor, unit, count)
    second = periods.prorated_days(cut, end, anchor, unit, count)
    assert first[1] == second[1] == full_days
    assert first[0] + second[0] == full_days
    fee = data.draw(st.decimals(min_value=0, max_value=10**6, places=2))
    parts = [pricing.prorate(fee, days, full, "0.01") for days, full in (first, second)]
    assert abs(sum(parts) - fee) <= Decimal("0.01")
    assert pricing.prorate(fee, full_days, full_days, "0.01") == fee


@pytest.mark.parametrize(
    ("end", "grace", "expected"),
    [
        (date(2026, 2, 1), 0, datetime(2026, 2, 1, tzinfo=timezone.utc)),
        (date(2026, 2, 1), 1, datetime(2026, 2, 1, 1, tzinfo=timezone.utc)),
        (date(2026, 2, 28), 72, datetime(2026, 3, 3, tzinfo=timezone.utc)),
    ],
)
def test_closes_at(end, grace, expected):
    assert periods.closes_at(end, grace) == expected


@pytest.mark.parametrize("grace", [-1, 1.5, True, None])
def test_closes_at_rejects(grace):
    with pytest.raises(ValueError, match="grace hours"):
        periods.closes_at(date(2026, 2, 1), grace)
