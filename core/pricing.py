"""Pricing power (SPEC section 13): charge filters, prorated amounts, minimum
commitments and credit grants, on top of the charge models of ``charges``.

Money in, money out: every amount handed in is already a multiple of the
currency's rounding (an invoice line, a grant), and every amount computed here
is rounded once per line.
"""

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from . import charges, money

ZERO = Decimal(0)


# --- charge filters (dimensional pricing) ---------------------------------


def parse_values(text):
    """The values of a filter, from its comma-separated text: stripped, empty
    ones dropped, duplicates dropped, in their order.

    >>> parse_values(" eu, us ,,eu")
    ('eu', 'us')
    """
    values = (value.strip() for value in (text or "").split(","))
    return tuple(dict.fromkeys(value for value in values if value))


@dataclass(frozen=True)
class Filter:
    """One bucket of a charge: the events whose ``property_name`` is one of
    ``values``, priced by ``charge`` (the parent charge's model with the
    filter's own prices and tiers)."""

    property_name: str
    values: tuple[str, ...]
    charge: charges.Charge

    def __post_init__(self):
        if not self.property_name:
            raise ValueError("a filter needs a property name")
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ValueError(f"filter on {self.property_name!r} has no values")


def property_text(value):
    """The text a JSON scalar property is compared as: PostgreSQL's ``->>``
    of it (``"eu"`` -> ``eu``, ``1`` -> ``1``, ``true`` -> ``true``); None for
    a missing property, ``null``, an object or an array, which match no filter.

    >>> property_text("eu"), property_text(1), property_text(True), property_text(1.5)
    ('eu', '1', 'true', '1.5')
    >>> property_text(None), property_text([1])
    (None, None)
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def matching_filter(filters, properties):
    """Index of the first filter (``filters`` in sequence order) whose property
    value is one of its values, None when the event falls to the charge's own
    prices.

    This is the rule rating applies in SQL, stated once in Python for tests
    and for the reader.

    >>> eu = Filter("region", ("eu", "uk"), charges.Charge("standard"))
    >>> matching_filter([eu], {"region": "uk"}), matching_filter([eu], {})
    (0, None)
    """
    if not isinstance(properties, dict):
        return None
    for index, bucket in enumerate(filters):
        if property_text(properties.get(bucket.property_name)) in bucket.values:
            return index
    return None


# --- proration and minimum commitment -------------------------------------


def prorate(amount, days, full_days, rounding):
    """``amount x days / full_days``, rounded once (half up) to ``rounding``.

    The quotient is rarely a finite decimal (10 x 1 / 3), so it is rounded
    straight from the exact fraction, never from a truncated decimal.

    >>> prorate(Decimal("100.00"), 10, 30, "0.01")
    Decimal('33.33')
    >>> prorate(Decimal("100.00"), 20, 30, "0.01")
    Decimal('66.67')
    """
    amount = money.to_decimal(amount)
    quantum = money.to_decimal(rounding)
    for name, value in (("days", days), ("full_days", full_days)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if full_days == 0:
        raise ValueError("full_days must be positive")
    if amount < 0 or quantum <= 0:
        raise ValueError("amount must not be negative and rounding must be positive")
    context = money.EXACT_CONTEXT
    # amount x days / full_days = steps x quantum + remainder / full_days
    steps, remainder = context.divmod(
        context.multiply(amount, days), context.multiply(quantum, full_days)
    )
    if context.multiply(2, remainder) >= context.multiply(quantum, full_days):
        steps = context.add(steps, 1)
    return context.multiply(steps, quantum)


def minimum_true_up(minimum, billed):
    """What a period owes on top of ``billed`` (its usage lines plus fixed
    fee) to reach its ``minimum`` commitment (already prorated): never
    negative.

    >>> minimum_true_up(Decimal("100.00"), Decimal("62.50"))
    Decimal('37.50')
    >>> minimum_true_up(Decimal("100.00"), Decimal("120.00"))
    Decimal('0')
    """
    minimum = money.to_decimal(minimum)
    billed = money.to_decimal(billed)
    if minimum < 0:
        raise ValueError(f"minimum must not be negative, got {minimum}")
    return max(minimum - billed, ZERO)


# --- credit grants --------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """A credit grant as consumption sees it: ``key`` identifies it to the
    caller; ``expiration_date`` is the last day it can be used (None: never
    expires); lower ``priority`` is used first."""

    key: object
    remaining: Decimal
    priority: int = 0
    expiration_date: date | None = None

    def __post_init__(self):
        remaining = money.to_decimal(self.remaining)
        if remaining < 0:
            raise ValueError(f"remaining credit must not be negative, got {remaining}")
        object.__setattr__(self, "remaining", remaining)


def usable_grants(grants, last_day):
    """The grants with credit left and not expired on ``last_day`` (the last
    day of the period being closed), in consumption order: priority, then
    earliest expiration, grants that never expire last; ties keep the given
    order."""
    usable = [
        grant
        for grant in grants
        if grant.remaining > 0
        and (grant.expiration_date is None or grant.expiration_date >= last_day)
    ]
    return sorted(
        usable,
        key=lambda g: (
            g.priority,
            g.expiration_date is None,
            g.expiration_date or date.max,
        ),
    )


def consume_credits(grants, total, last_day):
    """Use the grants against an untaxed ``total``: [(key, amount used)] in
    consumption order, only grants actually used. Never more than the total
    (nothing when it is zero or negative), never more than a grant's
    remaining credit.

    >>> grants = [Grant("a", "30.00", priority=2), Grant("b", "50.00", priority=1)]
    >>> consume_credits(grants, Decimal("60.00"), date(2026, 1, 31))
    [('b', Decimal('50.00')), ('a', Decimal('10.00'))]
    """
    left = max(money.to_decimal(total), ZERO)
    used = []
    for grant in usable_grants(grants, last_day):
        if not left:
            break
        amount = min(grant.remaining, left)
        used.append((grant.key, amount))
        left -= amount
    return used


def split_by_taxes(amount, bases, rounding):
    """Split a credit ``amount`` over the invoice's untaxed bases per set of
    taxes ({tax set: base}), in proportion to the positive bases, so that each
    set's taxes are reduced as much as its base: {tax set: share}, shares sum
    to ``amount`` exactly, each between 0 and its base.

    Each share is the floor of its exact proportion to the currency rounding;
    the quanta left go to the largest remainders (ties: the given order), so
    no share is rounded twice and none exceeds its base.

    >>> split_by_taxes(Decimal("10.00"), {"vat": Decimal("20.00"),
    ...     "none": Decimal("10.00")}, "0.01")
    {'vat': Decimal('6.67'), 'none': Decimal('3.33')}
    """
    amount = money.to_decimal(amount)
    quantum = money.to_decimal(rounding)
    positive = {
        key: money.to_decimal(base)
        for key, base in bases.items()
        if money.to_decimal(base) > 0
    }
    total = sum(positive.values(), ZERO)
    context = money.EXACT_CONTEXT
    if amount < 0 or amount > total or context.remainder(amount, quantum):
        raise ValueError(
            f"cannot split {amount} in steps of {quantum} over positive bases "
            f"of {total}"
        )
    shares, remainders = {}, {}
    for key, base in positive.items():
        # amount x base / total = steps x quantum + remainder / total
        steps, remainder = context.divmod(
            context.multiply(amount, base), context.multiply(quantum, total)
        )
        shares[key] = context.multiply(steps, quantum)
        remainders[key] = remainder
    left_over = context.subtract(amount, sum(shares.values(), ZERO))
    order = sorted(remainders, key=lambda key: remainders[key], reverse=True)
    for key in order[: int(context.divide_int(left_over, quantum))]:
        shares[key] = context.add(shares[key], quantum)
    return {key: share for key, share in shares.items() if share}
