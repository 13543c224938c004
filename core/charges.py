"""Charge models: how a metered quantity becomes an amount (SPEC section 5)."""

from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import NamedTuple

from . import money

STANDARD = "standard"
PACKAGE = "package"
GRADUATED = "graduated"
VOLUME = "volume"
CHARGE_MODELS = (STANDARD, PACKAGE, GRADUATED, VOLUME)
TIERED_MODELS = (GRADUATED, VOLUME)

ZERO = Decimal(0)


@dataclass(frozen=True)
class Tier:
    """One price tier; ``up_to`` is inclusive, None means no upper bound.

    (The Odoo field stores "no upper bound" as ``up_to = 0``; map it to None.)
    """

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = ZERO

    def __post_init__(self):
        # Odoo hands over floats; normalise once so every computation is Decimal.
        if self.up_to is not None:
            object.__setattr__(self, "up_to", money.to_decimal(self.up_to))
        object.__setattr__(self, "unit_price", money.to_decimal(self.unit_price))
        object.__setattr__(self, "flat_fee", money.to_decimal(self.flat_fee))


@dataclass(frozen=True)
class Charge:
    """How one metric is priced; invalid charges cannot be constructed.

    Tiers are only read (and validated) for the graduated and volume models.
    """

    model: str
    unit_price: Decimal = ZERO
    package_price: Decimal = ZERO
    unit_batch: Decimal = Decimal(1)
    free_units: Decimal = ZERO
    tiers: tuple[Tier, ...] = ()

    def __post_init__(self):
        if self.model not in CHARGE_MODELS:
            raise ValueError(
                f"unknown charge model {self.model!r}, expected one of "
                f"{', '.join(CHARGE_MODELS)}"
            )
        for name in ("unit_price", "package_price", "unit_batch", "free_units"):
            value = money.to_decimal(getattr(self, name))
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
            object.__setattr__(self, name, value)
        if self.unit_batch <= 0:
            raise ValueError(f"unit_batch must be positive, got {self.unit_batch}")
        object.__setattr__(self, "tiers", tuple(self.tiers))
        if self.model in TIERED_MODELS:
            validate_tiers(self.tiers)


def validate_tiers(tiers):
    """Raise ValueError unless ``tiers`` is a usable tier ladder.

    >>> validate_tiers([Tier(100, "0.10"), Tier(None, "0.08")])
    >>> validate_tiers([Tier(100, "0.10")])
    Traceback (most recent call last):
    ...
    ValueError: the last tier must have no upper bound (up_to empty / 0)
    """
    if not tiers:
        raise ValueError("a tiered charge needs at least one tier")
    previous_up_to = ZERO
    last_index = len(tiers) - 1
    for index, tier in enumerate(tiers):
        position = f"tier {index + 1}"
        if tier.unit_price < 0:
            raise ValueError(f"{position}: unit price must not be negative")
        if tier.flat_fee < 0:
            raise ValueError(f"{position}: flat fee must not be negative")
        if tier.up_to is None:
            if index != last_index:
                raise ValueError(
                    f"{position}: only the last tier may have no upper bound"
                )
        elif tier.up_to <= previous_up_to:
            raise ValueError(
                f"{position}: up_to must be greater than {previous_up_to} "
                f"(tiers sorted by strictly increasing up_to), got {tier.up_to}"
            )
        else:
            previous_up_to = tier.up_to
    if tiers[-1].up_to is not None:
        raise ValueError("the last tier must have no upper bound (up_to empty / 0)")


def price(charge, quantity):
    """Exact, unrounded amount of ``quantity`` units under ``charge``.

    >>> price(Charge(STANDARD, unit_price="0.0125"), 3)
    Decimal('0.0375')
    """
    quantity = _check_quantity(quantity)
    if quantity == 0:
        return ZERO
    # The private helpers compute in the caller's context; run them exact.
    with localcontext(money.EXACT_CONTEXT):
        if charge.model == STANDARD:
            return quantity * charge.unit_price
        if charge.model == PACKAGE:
            return _package_count(charge, quantity) * charge.package_price
        if charge.model == GRADUATED:
            slices = _graduated_slices(charge.tiers, quantity)
            return sum(
                (units * tier.unit_price + tier.flat_fee for tier, units in slices),
                ZERO,
            )
        tier = _volume_tier(charge.tiers, quantity)
        return quantity * tier.unit_price + tier.flat_fee


def amount(charge, quantity, rounding):
    """``price`` rounded once, half up, to the currency ``rounding``.

    >>> amount(Charge(STANDARD, unit_price="0.0125"), 3, "0.01")
    Decimal('0.04')
    """
    return money.round_money(price(charge, quantity), rounding)


def describe(charge, quantity, currency):
    """Short text of how the amount was computed, for the invoice line.

    ``currency`` is the symbol or code appended after the prices.

    >>> describe(Charge(STANDARD, unit_price="0.0125"), 1250, "EUR")
    '1,250 units x 0.0125 EUR'
    >>> tiers = (Tier(100, "0.10", 5), Tier(None, "0.08"))
    >>> describe(Charge(GRADUATED, tiers=tiers), 150, "EUR")
    'graduated: 100 x 0.10 + 50 x 0.08 + fee 5.00 EUR'
    """
    quantity = _check_quantity(quantity)
    if quantity == 0:
        return "0 units"
    suffix = f" {currency}" if currency else ""
    with localcontext(money.EXACT_CONTEXT):
        return _describe(charge, quantity, suffix)


def _describe(charge, quantity, suffix):
    if charge.model == STANDARD:
        return f"{_units(quantity)} x {_format_price(charge.unit_price)}{suffix}"
    if charge.model == PACKAGE:
        count = _package_count(charge, quantity)
        noun = "package" if count == 1 else "packages"
        details = _units(quantity)
        if charge.free_units:
            details += f", {_format_quantity(charge.free_units)} free"
        return (
            f"{_format_quantity(count)} {noun} of "
            f"{_format_quantity(charge.unit_batch)} x "
            f"{_format_price(charge.package_price)}{suffix} ({details})"
        )
    if charge.model == GRADUATED:
        slices = list(_graduated_slices(charge.tiers, quantity))
        terms = [
            f"{_format_quantity(units)} x {_format_price(tier.unit_price)}"
            for tier, units in slices
        ]
        fee = sum((tier.flat_fee for tier, _ in slices), ZERO)
    else:
        tier = _volume_tier(charge.tiers, quantity)
        terms = [f"{_format_quantity(quantity)} x {_format_price(tier.unit_price)}"]
        fee = tier.flat_fee
    if fee:
        terms.append(f"fee {_format_price(fee)}")
    return f"{charge.model}: {' + '.join(terms)}{suffix}"


@dataclass(frozen=True)
class InvoiceLine:
    """One invoice line of a charge: ``units`` at ``price`` (a tier's units,
    the packages, the usage; one unit at a tier's flat fee), billing
    ``amount``.

    ``part`` numbers the line within its charge, stably across reratings
    (the key of its invoice line): 0 for the usage of a standard, package or
    volume charge, 1 for a volume tier's fee; 2i and 2i + 1 for the units
    and the fee of graduated tier i. ``quantity`` x ``price_unit`` is what
    the line shows, and invoices exactly ``amount``: ``units`` x ``price``
    where the line can show them, else 1 x ``amount`` (``itemized`` is then
    False and the description carries the usage).
    """

    part: int
    units: Decimal
    price: Decimal
    amount: Decimal
    quantity: Decimal
    price_unit: Decimal
    tier: int | None = None
    flat_fee: bool = False

    @property
    def itemized(self):
        return (self.quantity, self.price_unit) == (self.units, self.price)


def invoice_lines(
    charge,
    quantity,
    rounding,
    *,
    quantity_places=2,
    price_places=6,
    subtotal=None,
):
    """The invoice lines showing how ``quantity`` is billed under ``charge``.

    Standard: the quantity at the unit price; package: the packages at the
    package price; graduated: a line per tier reached (its units at its
    price, its flat fee on a line of its own), tiers billing zero left out;
    volume: the quantity at its tier's price, plus that tier's flat fee.

    The lines sum to ``amount(charge, quantity, rounding)`` exactly: each is
    rounded on its own and the last one that needed rounding absorbs what
    the roundings add up to (the ones before it what would take it below
    zero). A line is ``units`` x ``price`` when both fit
    the invoice's precision (``quantity_places``, ``price_places``, at most
    15 significant digits: what a float column holds) and the invoice
    computes exactly its amount from them (``subtotal(quantity,
    price_unit)``, by default exact half-up rounding to ``rounding``), else
    one unit at its amount. Nothing to bill: one line at zero, so that a line
    already invoiced is updated to zero.

    >>> tiers = (Tier(1000, "0"), Tier(None, "0.0125", "5"))
    >>> [(line.part, line.quantity, line.price_unit, line.amount)
    ...  for line in invoice_lines(Charge(GRADUATED, tiers=tiers), 2080, "0.01")]
    [(2, Decimal('1080'), Decimal('0.0125'), Decimal('13.50')), \
(3, Decimal('1'), Decimal('5'), Decimal('5.00'))]
    >>> line, = invoice_lines(Charge(STANDARD, unit_price="0.0125"), "1.125", "0.01")
    >>> line.quantity, line.price_unit, line.amount, line.itemized
    (Decimal('1'), Decimal('0.01'), Decimal('0.01'), False)
    """
    quantity = _check_quantity(quantity)
    quantum = money.to_decimal(rounding)
    if subtotal is None:

        def subtotal(units, price):
            return money.round_money(units * price, quantum)

    with localcontext(money.EXACT_CONTEXT):
        parts = _parts(charge, quantity)
        total = money.round_money(
            sum((p.units * p.price for p in parts), ZERO), quantum
        )
        billing = [part for part in parts if part.units * part.price] or parts[:1]
        amounts = [money.round_money(p.units * p.price, quantum) for p in billing]
        rounded = [
            index
            for index, part in enumerate(billing)
            if part.units * part.price != amounts[index]
        ]
        difference = total - sum(amounts, ZERO)
        for index in reversed(rounded):
            # A line never goes below zero: what the last one cannot take
            # (roundings up of several small lines) goes to the one before.
            share = max(difference, -amounts[index])
            amounts[index] += share
            difference -= share
    lines = []
    for part, line_amount in zip(billing, amounts, strict=True):
        shown = (
            _fits(part.units, quantity_places)
            and _fits(part.price, price_places)
            and subtotal(part.units, part.price) == line_amount
        )
        lines.append(
            InvoiceLine(
                part=part.part,
                units=part.units,
                price=part.price,
                amount=line_amount,
                quantity=part.units if shown else Decimal(1),
                price_unit=part.price if shown else line_amount,
                tier=part.tier,
                flat_fee=part.flat_fee,
            )
        )
    return tuple(lines)


class _Part(NamedTuple):
    part: int
    units: Decimal
    price: Decimal
    tier: int | None = None
    flat_fee: bool = False


def _parts(charge, quantity):
    """Every line the charge may bill for ``quantity``, billing or not, in
    invoice order."""
    if charge.model == STANDARD:
        return [_Part(0, quantity, charge.unit_price)]
    if charge.model == PACKAGE:
        count = _package_count(charge, quantity) if quantity else ZERO
        return [_Part(0, count, charge.package_price)]
    if charge.model == VOLUME:
        tier = _volume_tier(charge.tiers, quantity)
        index = charge.tiers.index(tier)
        parts = [_Part(0, quantity, tier.unit_price, index)]
        if quantity:
            parts.append(_Part(1, Decimal(1), tier.flat_fee, index, True))
        return parts
    parts = []
    slices = _graduated_slices(charge.tiers, quantity) if quantity else ()
    for index, (tier, units) in enumerate(slices):
        parts.append(_Part(2 * index, units, tier.unit_price, index))
        parts.append(_Part(2 * index + 1, Decimal(1), tier.flat_fee, index, True))
    return parts or [_Part(0, ZERO, charge.tiers[0].unit_price, 0)]


def _fits(value, places):
    """Whether ``value`` shows exactly with ``places`` decimals in a float."""
    digits = value.normalize().as_tuple()
    return -digits.exponent <= places and len(digits.digits) <= 15


def _check_quantity(quantity):
    quantity = money.to_decimal(quantity)
    if quantity < 0:
        raise ValueError(f"quantity must not be negative, got {quantity}")
    return quantity


def _package_count(charge, quantity):
    """Packages started by the billable units: an exact ceiling, no float."""
    billable = max(quantity - charge.free_units, ZERO)
    whole, remainder = divmod(billable, charge.unit_batch)
    return whole + 1 if remainder else whole


def _graduated_slices(tiers, quantity):
    """Yield (tier, units in that tier) for every tier ``quantity`` reaches.

    Tier i holds the units in (previous up_to, up_to]; a tier is reached as
    soon as any part of the quantity lies above the previous bound.
    """
    lower = ZERO
    for tier in tiers:
        if quantity <= lower:
            return
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        yield tier, upper - lower
        if tier.up_to is None:
            return
        lower = tier.up_to


def _volume_tier(tiers, quantity):
    """The tier the total falls in (up_to inclusive)."""
    for tier in tiers:
        if tier.up_to is None or quantity <= tier.up_to:
            return tier
    raise AssertionError("validate_tiers guarantees an unbounded last tier")


def _units(quantity):
    return f"{_format_quantity(quantity)} {'unit' if quantity == 1 else 'units'}"


def _format_quantity(quantity):
    """1250.50 -> '1,250.5': thousands separators, no trailing zeros."""
    return f"{quantity.normalize():,f}"


def _format_price(value):
    """At least two decimals (0.1 -> '0.10'), more when the price has them."""
    places = max(2, -value.normalize().as_tuple().exponent)
    return f"{value:,.{places}f}"


def adjustment(charge, quantity, billed, rounding):
    """What a closed period still owes for ``charge``: the whole period's
    ``quantity`` re-rated, minus what was ``billed`` for it already (its
    invoice line plus earlier adjustments, each a rounded amount).

    Charge models are not additive (graduated tiers, volume prices, packages),
    so late usage is never priced on its own: the period is priced whole.

    >>> tiers = (Tier(10, "1.00"), Tier(None, "0.50"))
    >>> adjustment(Charge(VOLUME, tiers=tiers), 12, Decimal("10.00"), "0.01")
    Decimal('-4.00')
    """
    return amount(charge, quantity, rounding) - money.to_decimal(billed)
