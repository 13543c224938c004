"""Decimal conversion and currency rounding for the billing engine."""

from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)

# Billing arithmetic must be exact: with 100 significant digits any realistic
# quantity x price fits, and trapping Inexact turns a silent rounding (which
# could flip a half-cent before round_money) into a loud error instead.
EXACT_CONTEXT = Context(
    prec=100,
    rounding=ROUND_HALF_UP,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)


def to_decimal(value):
    """Convert an int, float, str or Decimal to a finite Decimal.

    Floats go through their shortest repr, so 0.1 stays 0.1 instead of
    becoming 0.1000000000000000055511151231257827...

    >>> to_decimal(0.1)
    Decimal('0.1')
    >>> to_decimal("1250")
    Decimal('1250')
    >>> to_decimal(True)
    Traceback (most recent call last):
    ...
    ValueError: not a number: True
    """
    # bool is an int subclass; True as a quantity or price is always a bug.
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    else:
        raise ValueError(f"not a number: {value!r}")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def round_money(amount, rounding):
    """Round ``amount`` half away from zero to a multiple of ``rounding``.

    ``rounding`` is the currency's rounding quantum (0.01, 0.05, 1, ...).
    The result carries the quantum's exponent, so it prints as money.

    >>> round_money(Decimal("0.0125"), Decimal("0.01"))
    Decimal('0.01')
    >>> round_money(Decimal("0.125"), "0.01")
    Decimal('0.13')
    >>> round_money(Decimal("1.025"), "0.05")
    Decimal('1.05')
    >>> round_money(Decimal("-0.125"), "0.01")
    Decimal('-0.13')
    """
    amount = to_decimal(amount)
    quantum = to_decimal(rounding)
    if quantum <= 0:
        raise ValueError(f"rounding must be positive, got {rounding!r}")
    # divmod is exact for any quantum (amount / quantum is not, e.g. for 0.03).
    steps, remainder = EXACT_CONTEXT.divmod(EXACT_CONTEXT.abs(amount), quantum)
    if EXACT_CONTEXT.multiply(2, remainder) >= quantum:
        steps = EXACT_CONTEXT.add(steps, 1)
    magnitude = EXACT_CONTEXT.multiply(steps, quantum)
    # minus() of a zero gives +0, so -0.004 rounds to 0.00, not -0.00.
    return EXACT_CONTEXT.minus(magnitude) if amount < 0 else magnitude


# Quantities are exact decimals with at most this many decimal places (the
# ingestion bound), so that pricing them is always exact within EXACT_CONTEXT.
QUANTITY_PLACES = 12
_QUANTITY_QUANTUM = Decimal(1).scaleb(-QUANTITY_PLACES)
_QUANTITY_CONTEXT = Context(
    prec=EXACT_CONTEXT.prec,
    rounding=ROUND_HALF_UP,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)


def bounded_quantity(value):
    """An aggregated quantity at most QUANTITY_PLACES decimal places long.

    Usage within the bound comes through unchanged; finer usage stored
    before the bound existed is rounded half up to it instead of making the
    period impossible to price.

    >>> bounded_quantity("1.5")
    Decimal('1.5')
    >>> bounded_quantity("1.00000000000000000000005")
    Decimal('1.000000000000')
    """
    quantity = to_decimal(value)
    if quantity.as_tuple().exponent >= -QUANTITY_PLACES:
        return quantity
    return quantity.quantize(_QUANTITY_QUANTUM, context=_QUANTITY_CONTEXT)


# Odoo's accounting computes in binary floats: past about 10^13 a float no
# longer holds amounts to the cent, and Odoo refuses the invoice as "not
# balanced". Invoices stay below this, with room for taxes.
MAX_INVOICE_AMOUNT = Decimal(10) ** 12


def bookable(amounts):
    """Whether Odoo books every one of ``amounts`` (and their sum) exactly.

    >>> bookable([Decimal("999999999999.99"), Decimal("-5")])
    True
    >>> bookable([Decimal("1000000000000")])
    False
    >>> bookable([Decimal("800000000000"), Decimal("800000000000")])
    False
    """
    amounts = list(amounts)
    return all(
        abs(amount) < MAX_INVOICE_AMOUNT
        for amount in [*amounts, sum(amounts, Decimal(0))]
    )
