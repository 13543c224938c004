"""Dual-run reconciliation rules (SPEC §7): status, cut-over readiness, inputs.

External ("app-actual") amounts arrive as a CSV file in the back office
(``parse_csv``) or as ``POST /reconciliation`` (``parse_api_request``), which
follows the JSON conventions of ``POST /usage`` (see ``core.usage``): envelope
problems return a ``usage.Reply``, per-item problems a ``rejected`` result.

Amounts are Decimal; callers convert Odoo floats first (``money.to_decimal``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from . import usage

MATCH = "match"
DELTA = "delta"
RESOLVED = "resolved"

# Envelope codes of a request with more than MAX_AMOUNTS items, and of a request
# whose period is not a usable month.
TOO_MANY_ITEMS = "too_many_items"
INVALID_PERIOD = "invalid_period"
ENVELOPE_CODES = (*usage.ENVELOPE_CODES, TOO_MANY_ITEMS, INVALID_PERIOD)
# Per-item codes: a malformed item, a customer sent twice in one request (the
# later one is rejected), then the controller's own checks.
INVALID_ITEM = "invalid_item"
DUPLICATE_CUSTOMER = "duplicate_customer"
UNKNOWN_CUSTOMER = usage.UNKNOWN_CUSTOMER
CURRENCY_MISMATCH = "currency_mismatch"
ITEM_CODES = (INVALID_ITEM, DUPLICATE_CUSTOMER, UNKNOWN_CUSTOMER, CURRENCY_MISMATCH)

MAX_AMOUNTS = 10_000
# Same bound as usage quantities: Odoo stores amounts in double columns.
MAX_ABS_AMOUNT = usage.MAX_QUANTITY

# Months 0001-01 to 9998-12: the first day of each and of the month after are
# dates to Python, PostgreSQL and Odoo alike (year 0 and 10000 are not).
PERIOD_PATTERN = "^(?!0000|9999)[0-9]{4}-(0[1-9]|1[0-2])$"
PERIOD_RE = re.compile(PERIOD_PATTERN)
PERIOD_HINT = "a month written YYYY-MM, from 0001-01 to 9998-12"
CURRENCY_PATTERN = "^[A-Z]{3}$"
_CURRENCY_RE = re.compile(CURRENCY_PATTERN)
# Spaces and apostrophes grouping thousands: "1 200,50", "1'200.50".
_GROUPING_SPACES = re.compile("(?<=[0-9])[ \u00a0\u202f'](?=[0-9]{3})")


def status(
    odoo_amount: Decimal,
    external_amount: Decimal,
    tolerance: Decimal,
    tolerance_percent: Decimal,
) -> str:
    """``match`` when |odoo - external| <= max(tolerance, percent of |external|).

    >>> status(Decimal("100.50"), Decimal("100"), Decimal("0.5"), Decimal(0))
    'match'
    >>> status(Decimal("103"), Decimal("100"), Decimal("1"), Decimal("2"))
    'delta'
    """
    allowed = max(tolerance, tolerance_percent / 100 * abs(external_amount))
    return MATCH if abs(odoo_amount - external_amount) <= allowed else DELTA


def period_bounds(period: str) -> tuple[date, date]:
    """First day of ``YYYY-MM`` and first day of the next month (half-open).

    >>> period_bounds("2024-12")
    (datetime.date(2024, 12, 1), datetime.date(2025, 1, 1))
    """
    if type(period) is not str or not PERIOD_RE.fullmatch(period):
        raise ValueError(f"period must be {PERIOD_HINT}, not {period!r}")
    year, month = int(period[:4]), int(period[5:])
    return date(year, month, 1), date(year + month // 12, month % 12 + 1, 1)


def _month_index(period: str) -> int:
    start, _ = period_bounds(period)
    return start.year * 12 + start.month - 1


@dataclass(frozen=True)
class PeriodSummary:
    """The reconciliation statuses of one service's customers for one period.

    ``billed``: some row of the period has an amount on either side.
    """

    period: str
    statuses: tuple[str, ...]
    billed: bool = True


def matched_periods(
    periods: Iterable[PeriodSummary],
    required_consecutive: int,
    latest_period: str | None = None,
    open_period: str | None = None,
) -> int:
    """How far a service is on its way to cut over: the number of evidence
    periods, counted back from ``latest_period`` (default: the latest given),
    that are clean in a row, at most ``required_consecutive``.

    Evidence is a closed month (before ``open_period``, the first month still
    being billed) with billing on either side: a month where both sides are 0
    (before any subscription, say) or without rows proves nothing and is
    skipped. A period is clean when every row is ``match`` or ``resolved``.
    Summaries of one period are merged.

    >>> jan = PeriodSummary("2025-01", ("match", "match"))
    >>> feb = PeriodSummary("2025-02", ("delta",))
    >>> mar = PeriodSummary("2025-03", ("resolved",))
    >>> matched_periods([jan, feb, mar], 3), matched_periods([jan, mar], 3)
    (1, 2)
    """
    if required_consecutive < 1:
        raise ValueError("required_consecutive must be at least 1")
    by_month: dict[int, list[str]] = {}
    billed: set[int] = set()
    for summary in periods:
        month = _month_index(summary.period)
        by_month.setdefault(month, []).extend(summary.statuses)
        if summary.billed:
            billed.add(month)
    last = _month_index(latest_period) if latest_period else max(by_month, default=-1)
    if open_period is not None:
        last = min(last, _month_index(open_period) - 1)
    matched = 0
    for month in sorted((m for m in billed if m <= last), reverse=True):
        if matched == required_consecutive or any(
            s not in (MATCH, RESOLVED) for s in by_month[month]
        ):
            break
        matched += 1
    return matched


def is_ready(
    periods: Iterable[PeriodSummary],
    required_consecutive: int,
    latest_period: str | None = None,
    open_period: str | None = None,
) -> bool:
    """Whether a service may cut over from its own billing to Odoo: its last
    ``required_consecutive`` evidence periods (see ``matched_periods``) are
    all clean.

    >>> jan = PeriodSummary("2025-01", ("match", "match"))
    >>> feb = PeriodSummary("2025-02", ("resolved",))
    >>> is_ready([jan, feb], 2), is_ready([jan, feb], 3)
    (True, False)
    """
    return (
        matched_periods(periods, required_consecutive, latest_period, open_period)
        == required_consecutive
    )


# --- CSV import -------------------------------------------------------------------

CSV_COLUMNS = ("customer", "partner", "period", "amount", "currency")
CSV_HELP = (
    "A header row names the columns (any order, case-insensitive; other columns"
    " are ignored): customer (the app's customer id, i.e. the external_ref) or"
    " partner (the Odoo partner, resolved by the import wizard), period (YYYY-MM),"
    " amount (may be negative; 1200.50, 1,200.50 or 1 200.50; with ';' as"
    " delimiter the decimal mark is ',': 1200,50 or 1.200,50),"
    " currency (ISO 4217 code). Delimiter ',' or ';'; UTF-8, a BOM is fine."
)


# Same rule as the API's customer ids: 1-255 characters, no control characters.
_CSV_KEY = usage.Text()


@dataclass(frozen=True)
class CsvRow:
    """One valid CSV row; exactly one of ``customer`` and ``partner`` is set."""

    line: int
    period: str
    amount: Decimal
    currency: str
    customer: str | None = None
    partner: str | None = None
    amount_text: str = field(default="", compare=False)  # as written in the file


@dataclass(frozen=True)
class CsvError:
    """A problem of one line (line 0: the whole file), with the line's values
    as written, so that the line can be shown and corrected."""

    line: int
    message: str
    values: dict[str, str] = field(default_factory=dict, compare=False)


def parse_amount(text: str, decimal_comma: bool = False) -> Decimal | None:
    """An amount as people write it, or None when it is not one.

    Thousands may be grouped by spaces, apostrophes or the other mark than the
    decimal one. With both ',' and '.', the last one is the decimal mark;
    with one mark only, it groups thousands when it can ("1.234.567") and is
    the decimal mark otherwise ("12,5"); "1,234" could be either, and
    ``decimal_comma`` (a ';'-delimited file) decides. No exponent, no ".5".

    >>> parse_amount("1,200.00"), parse_amount("-1.200,5"), parse_amount("12,5")
    (Decimal('1200.00'), Decimal('-1200.5'), Decimal('12.5'))
    >>> parse_amount("1,234"), parse_amount("1,234", decimal_comma=True)
    (Decimal('1234'), Decimal('1.234'))
    >>> parse_amount("1e3") is None
    True
    """
    text = _GROUPING_SPACES.sub("", text.strip())
    sign, digits = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    marks = {mark for mark in ",." if mark in digits}
    if len(marks) == 2:
        decimal = "," if digits.rindex(",") > digits.rindex(".") else "."
    elif marks:
        (mark,) = marks
        other = "." if mark == "," else ","
        if not re.fullmatch(rf"[0-9]{{1,3}}(?:{re.escape(mark)}[0-9]{{3}})+", digits):
            decimal = mark
        elif digits.count(mark) > 1:
            decimal = other
        else:  # "1,234": the file's convention decides
            decimal = "," if decimal_comma else "."
    else:
        decimal = "."
    group = "." if decimal == "," else ","
    match = re.fullmatch(
        rf"([0-9]+|[0-9]{{1,3}}(?:{re.escape(group)}[0-9]{{3}})+)"
        rf"(?:{re.escape(decimal)}([0-9]+))?",
        digits,
    )
    if not match:
        return None
    integer, fraction = match.group(1).replace(group, ""), match.group(2)
    return Decimal(f"{sign}{integer}.{fraction}" if fraction else f"{sign}{integer}")


def parse_csv(text: str | bytes) -> tuple[list[CsvRow], list[CsvError]]:
    """Parse an external-amounts CSV (see ``CSV_HELP``) into valid rows and errors.

    Blank lines are skipped; a (customer or partner, period) seen on an earlier
    line is an error on the later one. Line numbers are those of the file.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return [], [CsvError(0, f"the file is not UTF-8 (byte {exc.start})")]
    text = text.removeprefix("\ufeff")
    header_line = text.split("\n", 1)[0]
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[CsvRow] = []
    errors: list[CsvError] = []
    try:
        _read_csv(reader, rows, errors, decimal_comma=delimiter == ";")
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit()
        errors.append(CsvError(reader.line_num, f"unreadable CSV: {exc}"))
    return rows, errors


def _read_csv(
    reader, rows: list[CsvRow], errors: list[CsvError], decimal_comma: bool
) -> None:
    header = next(reader, None)
    if header is None:
        errors.append(CsvError(0, "the file is empty"))
        return
    columns = {name.strip().lower(): index for index, name in enumerate(header)}
    key_columns = [name for name in ("customer", "partner") if name in columns]
    missing = [name for name in ("period", "amount", "currency") if name not in columns]
    if len(key_columns) != 1 or missing:
        problem = (
            f"missing column(s) {', '.join(missing)}"
            if missing
            else "exactly one of the columns customer and partner is needed"
        )
        errors.append(CsvError(reader.line_num, f"{problem}. {CSV_HELP}"))
        return
    key_column = key_columns[0]
    first_line: dict[tuple[str, str], int] = {}
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        values = {
            name: cells[index].strip() if index < len(cells) else ""
            for name, index in columns.items()
            if name in CSV_COLUMNS
        }
        amount = parse_amount(values["amount"], decimal_comma)
        problems = _csv_problems(values, key_column, amount)
        key = (values[key_column], values["period"])
        if not problems and key in first_line:
            problems.append(
                f"{key_column} {usage.shown(key[0])} already has an amount for"
                f" {key[1]} on line {first_line[key]}"
            )
        if problems:
            errors.append(CsvError(line, "; ".join(problems), values))
            continue
        first_line[key] = line
        rows.append(
            CsvRow(
                line=line,
                period=values["period"],
                amount=amount,
                amount_text=values["amount"],
                currency=values["currency"].upper(),
                **{key_column: values[key_column]},
            )
        )


def _csv_problems(
    values: dict[str, str], key_column: str, amount: Decimal | None
) -> list[str]:
    problems = []
    try:
        _CSV_KEY.check(values[key_column])
    except usage.FieldError as exc:
        problems.append(f"{key_column}: {exc}")
    if not PERIOD_RE.fullmatch(values["period"]):
        problems.append(
            f"period must be {PERIOD_HINT}, not {usage.shown(values['period'])}"
        )
    if amount is None:
        problems.append(
            "amount must be a number like -1234.56 or 1,234.56,"
            f" not {usage.shown(values['amount'])}"
        )
    elif abs(amount) > MAX_ABS_AMOUNT:
        problems.append(f"amount must be at most {MAX_ABS_AMOUNT} in absolute value")
    if not _CURRENCY_RE.fullmatch(values["currency"].upper()):
        problems.append(
            "currency must be a 3-letter ISO 4217 code,"
            f" not {usage.shown(values['currency'])}"
        )
    return problems


# --- POST /reconciliation ---------------------------------------------------------

AMOUNT_FIELDS = usage.Record(
    (
        usage.Field(
            "customer",
            usage.Text(),
            description="The customer's external_ref in the calling service.",
        ),
        usage.Field(
            "amount",
            usage.Number(minimum=-MAX_ABS_AMOUNT, maximum=MAX_ABS_AMOUNT),
            description="What the app itself charged for the period (untaxed);"
            " may be negative.",
        ),
        usage.Field(
            "currency",
            usage.Text(
                min_length=3,
                max_length=3,
                pattern=CURRENCY_PATTERN,
                pattern_hint="an ISO 4217 code in capitals, e.g. EUR",
            ),
            description="ISO 4217 code of the amount.",
        ),
    )
)
PERIOD_FIELD = usage.Field(
    "period",
    usage.Text(
        min_length=7,
        max_length=7,
        pattern=PERIOD_PATTERN,
        pattern_hint=PERIOD_HINT,
    ),
    description="The billing month the amounts belong to.",
)


@dataclass(frozen=True)
class ExternalAmount:
    """One valid item of a ``POST /reconciliation`` body."""

    customer: str
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class ReconciliationRequest:
    """A well-formed body: its period and, in order, each item's validation outcome."""

    period: str
    items: list[ExternalAmount | dict[str, Any]]


def rejected(customer: object, code: str, message: str) -> dict[str, Any]:
    """A per-item ``rejected`` result; the customer is echoed only if a string."""
    echoed = usage.rejected(customer, code, message)
    return {"customer": echoed.pop("idempotency_key"), **echoed}


def accepted(customer: str) -> dict[str, Any]:
    """A per-item ``accepted`` result."""
    return {"customer": customer, "status": usage.ACCEPTED}


def parse_api_request(
    raw: bytes, content_type: str | None
) -> usage.Reply | ReconciliationRequest:
    """Validate a ``POST /reconciliation`` body, or return its envelope error."""
    payload = usage.load_json_body(raw, content_type)
    if type(payload) is usage.Reply:
        return payload
    if type(payload) is not dict:
        return _invalid_payload(
            f"the body must be an object, not {usage.json_type_name(payload)}"
        )
    unknown = payload.keys() - {"period", "amounts"}
    if unknown:
        names = ", ".join(usage.shown(name) for name in sorted(unknown)[:5])
        return _invalid_payload(f"unknown member {names}")
    refusal = period_refusal(payload.get("period"))
    if refusal is not None:
        return refusal
    amounts = payload.get("amounts")
    if type(amounts) is not list or not amounts:
        return _invalid_payload("amounts must be a non-empty array of objects")
    if len(amounts) > MAX_AMOUNTS:
        return usage.error_response(
            TOO_MANY_ITEMS,
            f"{len(amounts)} amounts sent; at most {MAX_AMOUNTS} per request",
            400,
        )
    return ReconciliationRequest(payload["period"], _validate_items(amounts))


def period_refusal(period: object) -> usage.Reply | None:
    """The ``invalid_period`` answer to a body's ``period``, or None when it is
    a usable month."""
    try:
        PERIOD_FIELD.kind.check(period)
    except usage.FieldError as exc:
        return usage.error_response(INVALID_PERIOD, f"period: {exc}", 400)
    return None


def _validate_items(amounts: list) -> list[ExternalAmount | dict[str, Any]]:
    seen: set[str] = set()
    outcomes: list[ExternalAmount | dict[str, Any]] = []
    for item in amounts:
        customer = item.get("customer") if type(item) is dict else None
        try:
            values = AMOUNT_FIELDS.validate(item)
        except usage.FieldError as exc:
            outcomes.append(rejected(customer, INVALID_ITEM, str(exc)))
            continue
        if customer in seen:
            outcomes.append(
                rejected(customer, DUPLICATE_CUSTOMER, "customer already sent above")
            )
            continue
        seen.add(customer)
        outcomes.append(ExternalAmount(**values))
    return outcomes


def _invalid_payload(message: str) -> usage.Reply:
    return usage.error_response(usage.INVALID_PAYLOAD, message, 400)


def build_response(period: str, results: list[dict[str, Any]]) -> usage.Reply:
    """200 when at least one item was accepted, else 400 ``all_rejected``."""
    accepted_count = sum(item["status"] == usage.ACCEPTED for item in results)
    summary = {
        "period": period,
        "accepted": accepted_count,
        "rejected": len(results) - accepted_count,
        "results": results,
    }
    if accepted_count:
        return usage.Reply(200, {"status": "ok", **summary})
    reply = usage.error_response(usage.ALL_REJECTED, "no amount was accepted", 400)
    reply.body.update(summary)
    return reply


# --- JSON Schemas (published by core.openapi) -----------------------------------

AMOUNT_SCHEMA = AMOUNT_FIELDS.schema("ExternalAmount", "One customer's app amount.")

REQUEST_SCHEMA: dict[str, Any] = {
    "title": "ReconciliationRequest",
    "type": "object",
    "required": ["period", "amounts"],
    "properties": {
        "period": PERIOD_FIELD.schema(),
        "amounts": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_AMOUNTS,
            "items": AMOUNT_SCHEMA,
            "description": "At most one item per customer.",
        },
    },
    "additionalProperties": False,
}

RESULT_SCHEMA = usage.result_schema(
    "ReconciliationResult", "customer", (usage.ACCEPTED, usage.REJECTED), ITEM_CODES
)

# Both answers echo the period before the counts.
_PERIOD_AND_COUNTS = {
    "period": {"type": "string", "pattern": PERIOD_PATTERN},
    **usage.counts_schema(("accepted", "rejected")),
}

RESPONSE_SCHEMA = usage.response_schema(
    "ReconciliationResponse",
    "At least one amount was accepted; results are in request order.",
    _PERIOD_AND_COUNTS,
    RESULT_SCHEMA,
)

ERROR_SCHEMA = usage.error_schema(
    "ReconciliationError", ENVELOPE_CODES, _PERIOD_AND_COUNTS, RESULT_SCHEMA
)
