"""``GET /usage/summary`` and ``usage.threshold_reached`` (SPEC §12): the
open period's running bill as the app reads it, and the alert payload.

Numbers travel as decimal strings, like the invoice webhooks: an exact
quantity or amount never passes through a binary float.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from . import usage
from .money import to_decimal

SUBSCRIPTION_PARAM = "subscription"
# The rule of the events' own subscription field.
SUBSCRIPTION_REF = usage.Text()
# A charge of the plan cannot be priced yet (e.g. tiers still missing): the
# rating fails on it too, so there is no figure to give.
NOT_PRICEABLE = "subscription_not_priceable"


@dataclass(frozen=True)
class SummaryLine:
    metric: str
    charge_model: str
    quantity: Decimal
    amount: Decimal
    # A charge filter's bucket: {"property": name, "values": [...]}.
    filter: dict | None = None


def decimal_text(value) -> str:
    """An exact decimal as plain text: no exponent, no trailing zeros in a
    quantity (amounts keep their currency's places by being rounded to it).

    >>> decimal_text(Decimal("1E+3"))
    '1000'
    >>> decimal_text(Decimal("2.500"))
    '2.5'
    >>> decimal_text(Decimal("0.000"))
    '0'
    """
    value = to_decimal(value)
    if value == value.to_integral_value():
        return format(value.quantize(Decimal(1)), "f")
    return format(value.normalize(), "f")


def money_text(amount: Decimal) -> str:
    """An amount already rounded to its currency, with the currency's places.

    >>> money_text(Decimal("12.50"))
    '12.50'
    """
    return format(to_decimal(amount), "f")


def utc_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, whole seconds.

    >>> utc_timestamp(datetime(2026, 3, 1, 8, 30, 5, 123456))
    '2026-03-01T08:30:05Z'
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat() + "Z"


def build_summary(
    *,
    subscription: str,
    customer: str | None,
    plan: str,
    currency: str,
    period: tuple[date, date] | None,
    lines: list[SummaryLine],
    base_price: Decimal,
    total: Decimal,
    as_of: datetime,
) -> dict[str, Any]:
    """The 200 body. ``period`` is the open period (start, exclusive end) or
    None for a subscription without one; ``total`` is the untaxed amount the
    rating would put on the invoice now."""
    return {
        "subscription": subscription,
        "customer": customer,
        "plan": plan,
        "currency": currency,
        "period": {"start": period[0].isoformat(), "end": period[1].isoformat()}
        if period
        else None,
        "lines": [_line(line) for line in lines],
        "base_price": money_text(base_price),
        "total": money_text(total),
        "as_of": utc_timestamp(as_of),
    }


def _line(line: SummaryLine) -> dict[str, Any]:
    body = {
        "metric": line.metric,
        "charge_model": line.charge_model,
        "quantity": decimal_text(line.quantity),
        "amount": money_text(line.amount),
    }
    if line.filter is not None:
        body["filter"] = line.filter
    return body


def parse_subscription_param(values: list[str]) -> str | usage.Reply:
    """The ``subscription`` query parameter, or the 400 answer when it is
    missing, repeated or not a reference an event could name."""
    if len(values) != 1:
        return usage.error_response(
            usage.INVALID_PAYLOAD,
            "give exactly one subscription=<external_ref> query parameter",
            400,
        )
    try:
        return SUBSCRIPTION_REF.check(values[0])
    except usage.FieldError as error:
        return usage.error_response(
            usage.INVALID_PAYLOAD, f"{SUBSCRIPTION_PARAM}: {error}", 400
        )


def unknown_subscription(reference: str) -> usage.Reply:
    return usage.error_response(
        usage.UNKNOWN_SUBSCRIPTION,
        f"no subscription {reference!r} in this service",
        404,
    )


def not_priceable(message: str) -> usage.Reply:
    return usage.error_response(
        NOT_PRICEABLE, f"the open period cannot be priced: {message}", 409
    )


def threshold_data(
    *,
    alert_id: int,
    alert_name: str,
    subscription: str,
    customer: str | None,
    metric: str | None,
    threshold: Decimal,
    value: Decimal,
    period: tuple[date, date],
) -> dict[str, Any]:
    """``data`` of a ``usage.threshold_reached`` webhook. ``metric`` None: the
    threshold is on the period's estimated untaxed amount."""
    return {
        "alert": {"id": alert_id, "name": alert_name},
        "subscription": subscription,
        "customer": customer,
        "metric": metric,
        "threshold": decimal_text(threshold),
        "value": decimal_text(value),
        "period": {"start": period[0].isoformat(), "end": period[1].isoformat()},
    }


def _decimal_schema(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
        "description": description,
    }


SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "subscription",
        "customer",
        "plan",
        "currency",
        "period",
        "lines",
        "base_price",
        "total",
        "as_of",
    ],
    "properties": {
        "subscription": {"type": "string", "description": "external_ref"},
        "customer": {
            "type": ["string", "null"],
            "description": "The customer's external_ref in this service.",
        },
        "plan": {"type": "string", "description": "The plan's code."},
        "currency": {"type": "string", "description": "ISO 4217 code."},
        "period": {
            "description": "The open billing period, end exclusive; null for a "
            "subscription without one (draft, closed).",
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["start", "end"],
                    "properties": {
                        "start": {"type": "string", "format": "date"},
                        "end": {"type": "string", "format": "date"},
                    },
                },
            ],
        },
        "lines": {
            "type": "array",
            "description": "One line per charge of the subscription's plan.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["metric", "charge_model", "quantity", "amount"],
                "properties": {
                    "metric": {"type": "string", "description": "Metric code."},
                    "charge_model": {
                        "type": "string",
                        "enum": ["standard", "package", "graduated", "volume"],
                    },
                    "quantity": _decimal_schema(
                        "The metric aggregated over the open period so far."
                    ),
                    "amount": _decimal_schema("Rounded to the currency."),
                    "filter": {
                        "type": "object",
                        "description": "Only on the line of a charge filter's usage:"
                        " the event property and the values it prices. The line of"
                        " a filtered charge without it is the rest.",
                        "additionalProperties": False,
                        "required": ["property", "values"],
                        "properties": {
                            "property": {"type": "string"},
                            "values": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            },
        },
        "base_price": _decimal_schema("The fixed fee for the period."),
        "total": _decimal_schema(
            "The untaxed amount the rating would bill for the period now."
        ),
        "as_of": {"type": "string", "format": "date-time"},
    },
}

SUMMARY_EXAMPLE: dict[str, Any] = build_summary(
    subscription="sub_1042",
    customer="cus_77",
    plan="pro_monthly",
    currency="EUR",
    period=(date(2025, 3, 1), date(2025, 4, 1)),
    lines=[
        SummaryLine("api_calls", "standard", Decimal(12500), Decimal("156.25")),
        SummaryLine(
            "storage_gb",
            "graduated",
            Decimal("12.5"),
            Decimal("2.50"),
            filter={"property": "region", "values": ["eu", "uk"]},
        ),
        SummaryLine("storage_gb", "graduated", Decimal("3"), Decimal("0.60")),
    ],
    base_price=Decimal("49.00"),
    total=Decimal("208.35"),
    as_of=datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc),
)

ERROR_CODES = (
    usage.UNAUTHENTICATED,
    usage.METHOD_NOT_ALLOWED,
    usage.INVALID_PAYLOAD,
    usage.UNKNOWN_SUBSCRIPTION,
    NOT_PRICEABLE,
)
ERROR_SCHEMA = usage.error_schema(
    "UsageSummaryError", ERROR_CODES, {}, usage.RESULT_SCHEMA
)
