"""Billing period arithmetic: anchored interval series and UTC windows."""

import bisect
import calendar
from datetime import date, datetime, time, timedelta, timezone

INTERVAL_UNITS = ("day", "week", "month", "year")

_DAYS_PER_UNIT = {"day": 1, "week": 7}
_MONTHS_PER_UNIT = {"month": 1, "year": 12}


def add_interval(anchor, unit, count, times=1):
    """``anchor`` plus ``times`` intervals of ``count`` ``unit``s.

    Month and year steps clamp to the month's last day, and are always
    computed from the anchor (never chained), so a series anchored on the
    31st keeps returning to the 31st whenever the month has one.

    >>> add_interval(date(2024, 1, 31), "month", 1)
    datetime.date(2024, 2, 29)
    >>> add_interval(date(2024, 1, 31), "month", 1, times=2)
    datetime.date(2024, 3, 31)
    >>> add_interval(date(2024, 2, 29), "year", 1)
    datetime.date(2025, 2, 28)
    """
    _check_interval(unit, count)
    if isinstance(times, bool) or not isinstance(times, int) or times < 0:
        raise ValueError(f"times must be an integer >= 0, got {times!r}")
    if unit in _DAYS_PER_UNIT:
        return anchor + timedelta(days=_DAYS_PER_UNIT[unit] * count * times)
    month_index = anchor.month - 1 + _MONTHS_PER_UNIT[unit] * count * times
    year = anchor.year + month_index // 12
    month = month_index % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def next_boundary(anchor, unit, count, after):
    """First date ``add_interval(anchor, unit, count, k)``, k >= 1, after ``after``.

    >>> next_boundary(date(2024, 1, 31), "month", 1, after=date(2024, 4, 30))
    datetime.date(2024, 5, 31)
    >>> next_boundary(date(2024, 1, 31), "month", 1, after=date(2023, 1, 1))
    datetime.date(2024, 2, 29)
    """
    return add_interval(anchor, unit, count, _times_after(anchor, unit, count, after))


def period_containing(anchor, unit, count, day):
    """The anchored period ``[start, end)`` that contains ``day``: the full
    period a short one is prorated against.

    >>> period_containing(date(2024, 1, 31), "month", 1, date(2024, 3, 10))
    (datetime.date(2024, 2, 29), datetime.date(2024, 3, 31))
    >>> period_containing(date(2024, 1, 31), "month", 1, date(2024, 1, 31))
    (datetime.date(2024, 1, 31), datetime.date(2024, 2, 29))
    """
    if day < anchor:
        raise ValueError(f"{day} is before the anchor {anchor}")
    times = _times_after(anchor, unit, count, day)
    return (
        add_interval(anchor, unit, count, times - 1),
        add_interval(anchor, unit, count, times),
    )


def prorated_days(start, end, anchor, unit, count):
    """(days of ``[start, end)``, days of the full anchored period that
    contains ``start``), both positive; equal for a full period.

    >>> prorated_days(date(2024, 2, 10), date(2024, 3, 1), date(2024, 1, 1), "month", 1)
    (20, 29)
    """
    if end <= start:
        raise ValueError(f"the period [{start}, {end}) is empty")
    full_start, full_end = period_containing(anchor, unit, count, start)
    return (end - start).days, (full_end - full_start).days


def closes_at(period_end, grace_hours):
    """When a period ending (exclusive) on ``period_end`` closes: its end at
    00:00 UTC plus the grace during which late events are still taken.

    >>> closes_at(date(2026, 2, 1), 1).isoformat()
    '2026-02-01T01:00:00+00:00'
    """
    if isinstance(grace_hours, bool) or not isinstance(grace_hours, int):
        raise ValueError(f"grace hours must be an integer, got {grace_hours!r}")
    if grace_hours < 0:
        raise ValueError(f"grace hours must not be negative, got {grace_hours}")
    return _midnight_utc(period_end) + timedelta(hours=grace_hours)


def _times_after(anchor, unit, count, after):
    """The smallest k >= 1 with ``add_interval(anchor, unit, count, k) > after``."""
    _check_interval(unit, count)
    # Estimate k arithmetically: every k below the estimate lands in an
    # earlier month (or day) than `after`, and the estimate itself lands in
    # the same month at most, so at most one step forward remains.
    if unit in _DAYS_PER_UNIT:
        step = _DAYS_PER_UNIT[unit] * count
        estimate = (after - anchor).days // step
    else:
        step = _MONTHS_PER_UNIT[unit] * count
        months_apart = (after.year - anchor.year) * 12 + after.month - anchor.month
        estimate = months_apart // step
    times = max(1, estimate)
    while add_interval(anchor, unit, count, times) <= after:
        times += 1
    return times


def billing_window(start_date, last_invoice_date, next_invoice_date):
    """Half-open UTC window [last_invoice_date or start_date, next_invoice_date).

    Both ends are aware datetimes at 00:00 UTC. Empty Odoo dates (False)
    count as missing.

    >>> start, end = billing_window(date(2024, 1, 15), None, date(2024, 2, 15))
    >>> start.isoformat(), end.isoformat()
    ('2024-01-15T00:00:00+00:00', '2024-02-15T00:00:00+00:00')
    """
    period_start = last_invoice_date or start_date
    if not period_start or not next_invoice_date:
        raise ValueError("a billing window needs a start date and a next invoice date")
    if next_invoice_date <= period_start:
        raise ValueError(
            f"next invoice date {next_invoice_date} must be after the period "
            f"start {period_start}"
        )
    return _midnight_utc(period_start), _midnight_utc(next_invoice_date)


def period_label(day):
    """'YYYY-MM' of a date, used to name a billing period.

    >>> period_label(date(2024, 3, 5))
    '2024-03'
    """
    return f"{day.year:04d}-{day.month:02d}"


def in_force(firsts, moment):
    """The index of what is in force at ``moment`` among things in force from
    each of ``firsts`` (ascending) until the next: the last one starting at or
    before it, None before the first.

    >>> in_force([date(2026, 1, 1), date(2026, 2, 11)], date(2026, 2, 11))
    1
    >>> in_force([date(2026, 1, 1), date(2026, 2, 11)], date(2026, 2, 10))
    0
    >>> in_force([date(2026, 1, 1)], date(2025, 12, 31)) is None
    True
    """
    index = bisect.bisect_right(firsts, moment) - 1
    return index if index >= 0 else None


def _midnight_utc(day):
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def _check_interval(unit, count):
    if unit not in INTERVAL_UNITS:
        raise ValueError(
            f"unknown interval unit {unit!r}, expected one of "
            f"{', '.join(INTERVAL_UNITS)}"
        )
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"interval count must be an integer >= 1, got {count!r}")
