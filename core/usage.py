"""Validation of ``POST /usage`` bodies (SPEC §4), driven by declarative field specs.

The same ``Field`` definitions validate events and export the JSON Schemas
(``EVENT_SCHEMA``, ``REQUEST_SCHEMA``, ``RESPONSE_SCHEMA``, ``ERROR_SCHEMA``) that
``core.openapi`` publishes, so the documented contract is the enforced one.

Error-return convention: nothing here raises for bad input. Envelope problems
come back as a ``Reply(http_status, body)`` named tuple whose body is
``{"status": "error", "error": {"code", "message"}, ...}``; the controller sends
``body`` as JSON with ``http_status``. A bad event comes back as a per-event
result dict (``rejected(...)``), never as an exception.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from .money import QUANTITY_PLACES

# Envelope error codes (SPEC §4).
UNAUTHENTICATED = "unauthenticated"
METHOD_NOT_ALLOWED = "method_not_allowed"
PAYLOAD_TOO_LARGE = "payload_too_large"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
INVALID_JSON = "invalid_json"
INVALID_PAYLOAD = "invalid_payload"
TOO_MANY_EVENTS = "too_many_events"
ALL_REJECTED = "all_rejected"
ENVELOPE_CODES = (
    UNAUTHENTICATED,
    METHOD_NOT_ALLOWED,
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    INVALID_JSON,
    INVALID_PAYLOAD,
    TOO_MANY_EVENTS,
    ALL_REJECTED,
)

# Per-event error codes (SPEC §4).
INVALID_EVENT = "invalid_event"
UNKNOWN_SUBSCRIPTION = "unknown_subscription"
SUBSCRIPTION_NOT_ACTIVE = "subscription_not_active"
UNKNOWN_CUSTOMER = "unknown_customer"
CUSTOMER_MISMATCH = "customer_mismatch"
UNKNOWN_METRIC = "unknown_metric"
METRIC_NOT_ON_PLAN = "metric_not_on_plan"
TIMESTAMP_OUT_OF_WINDOW = "timestamp_out_of_window"
CONFLICT = "conflict"
EVENT_CODES = (
    INVALID_EVENT,
    UNKNOWN_SUBSCRIPTION,
    SUBSCRIPTION_NOT_ACTIVE,
    UNKNOWN_CUSTOMER,
    CUSTOMER_MISMATCH,
    UNKNOWN_METRIC,
    METRIC_NOT_ON_PLAN,
    TIMESTAMP_OUT_OF_WINDOW,
    CONFLICT,
)

# Per-event result statuses.
ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"
RESULT_STATUSES = (ACCEPTED, DUPLICATE, REJECTED, CONFLICT)

# POST /usage/cancel (SPEC §11): statuses and per-event error codes.
CANCELLED = "cancelled"
CANCEL_STATUSES = (CANCELLED, DUPLICATE, REJECTED)
UNKNOWN_EVENT = "unknown_event"
PERIOD_CLOSED = "period_closed"
CANCEL_CODES = (INVALID_EVENT, UNKNOWN_EVENT, PERIOD_CLOSED)

MAX_EVENTS = 1000
MAX_BODY_BYTES = 5 * 1024 * 1024
FUTURE_TOLERANCE = timedelta(minutes=5)
# Quantities are stored as sent in a NUMERIC column, where PostgreSQL sums them
# exactly. Bounded (SPEC §4): at most 16 digits before the point and
# QUANTITY_PLACES after, so that pricing them is always exact.
MAX_QUANTITY = 10**15
# properties of one event (SPEC §15): the object itself is level 1, arrays count.
MAX_PROPERTIES_DEPTH = 32
MAX_PROPERTIES_BYTES = 16 * 1024


class Reply(NamedTuple):
    """An HTTP answer: the controller sends ``body`` as JSON with ``http_status``."""

    http_status: int
    body: dict[str, Any]


def error_response(
    code: str, message: str, http_status: int, results: list | None = None
) -> Reply:
    """Build the JSON error envelope of SPEC §4. ``results`` holds the per-item
    outcomes; it is empty when the request was refused as a whole, so that every
    error has the same shape."""
    body: dict[str, Any] = {
        "status": "error",
        "error": {"code": code, "message": message},
        "results": results or [],
    }
    return Reply(http_status, body)


# --- Declarative field specs ----------------------------------------------------


class FieldError(ValueError):
    """A value breaks its field's rule; the message says why (for the client)."""


# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F. Category Cf
# (zero-width joiners, bidi marks) is allowed: it occurs in legitimate text, and
# keys are compared byte for byte, never rendered as code. Lone surrogates can
# come from JSON escapes ("\ud800"); UTF-8 (PostgreSQL, the JSON answer) cannot
# encode them, so they are refused with the control characters.
_CONTROL_CLASS = r"\u0000-\u001f\u007f-\u009f"
_FORBIDDEN_CHAR = re.compile(f"[{_CONTROL_CLASS}\ud800-\udfff]")
NO_CONTROL_PATTERN = f"^[^{_CONTROL_CLASS}]*$"
# PostgreSQL text and jsonb cannot hold NUL; surrogates as above.
_UNSTORABLE_CHAR = re.compile("[\x00\ud800-\udfff]")

_JSON_TYPE_NAMES = {
    type(None): "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    Decimal: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
}


def json_type_name(value: object) -> str:
    """Name a decoded JSON value's type the way the client wrote it."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def shown(text: str, limit: int = 64) -> str:
    """Quote client text in a message: truncated, surrogates made encodable."""
    text = _UNSTORABLE_CHAR.sub("\ufffd", text)
    return repr(text if len(text) <= limit else text[:limit] + "…")


@dataclass(frozen=True)
class Text:
    """A JSON string of ``min_length``..``max_length`` characters, no control chars.

    ``pattern`` is written in the common subset of Python and ECMA-262 regular
    expressions (no named groups, ``[0-9]`` not ``\\d``), so the JSON Schema
    carries the very expression that is enforced.
    """

    min_length: int = 1
    max_length: int = 255
    pattern: str | None = None
    pattern_hint: str = ""
    _regex: re.Pattern | None = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        regex = re.compile(self.pattern) if self.pattern else None
        object.__setattr__(self, "_regex", regex)

    def check(self, value: object) -> str:
        if type(value) is not str:
            raise FieldError(f"must be a string, not {json_type_name(value)}")
        if not self.min_length <= len(value) <= self.max_length:
            raise FieldError(
                f"must be {self.min_length} to {self.max_length} characters long,"
                f" not {len(value)}"
            )
        if _FORBIDDEN_CHAR.search(value):
            raise FieldError("must not contain control characters or lone surrogates")
        if self._regex is not None and not self._regex.fullmatch(value):
            raise FieldError(f"must be {self.pattern_hint}, not {shown(value)}")
        return value

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "string",
            "minLength": self.min_length,
            "maxLength": self.max_length,
        }
        # Only one "pattern" keyword per schema: a specific pattern already
        # excludes control characters.
        schema["pattern"] = self.pattern or NO_CONTROL_PATTERN
        return schema


@dataclass(frozen=True)
class Number:
    """A finite JSON number (not a boolean) within bounds, returned as Decimal.

    ``load_json_body`` reads JSON numbers as int or Decimal, never as binary
    floats; floats only come from Python callers, read from their shortest repr.
    ``places`` (optional) is the most decimal places a value may need.
    """

    minimum: int
    maximum: int
    places: int | None = None

    def check(self, value: object) -> Decimal:
        kind = type(value)
        if kind is int:
            number = Decimal(value)
        elif kind is Decimal:
            number = value
        elif kind is float:
            # json.loads turns 1e400 into inf without calling parse_constant.
            if not math.isfinite(value):
                raise FieldError("must be a finite number")
            number = Decimal(repr(value))
        else:
            raise FieldError(f"must be a number, not {json_type_name(value)}")
        if not number.is_finite():
            raise FieldError("must be a finite number")
        if number < self.minimum:
            raise FieldError(f"must be at least {self.minimum}")
        if number > self.maximum:
            raise FieldError(f"must be at most {self.maximum}")
        if self.places is not None:
            number = _to_places(number, self.places)
        # -0 is 0.
        return number.copy_abs() if number.is_zero() else number

    def schema(self) -> dict[str, Any]:
        return {"type": "number", "minimum": self.minimum, "maximum": self.maximum}


def _to_places(number: Decimal, places: int) -> Decimal:
    """``number`` written with at most ``places`` decimals, or FieldError if it
    needs more. Trailing zeros do not count (``1.50000000000000`` is 1.5)."""
    sign, digits, exponent = number.as_tuple()
    if exponent >= -places:
        return number
    if number.is_zero():
        return Decimal(0)
    trailing = len(digits) - len(bytes(digits).rstrip(b"\0"))
    if -exponent - trailing > places:
        raise FieldError(
            f"must have at most {places} decimal places"
            f" (the smallest step is {Decimal(1).scaleb(-places):f})"
        )
    drop = -exponent - places
    return Decimal((sign, digits[:-drop], exponent + drop))


# RFC 3339 date-time with a mandatory offset ("T"/"Z" may be lower case, §5.6).
RFC3339_PATTERN = (
    "^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    "(\\.[0-9]+)?([Zz]|([+-])([0-9]{2}):([0-9]{2}))$"
)
_RFC3339 = re.compile(RFC3339_PATTERN)


@dataclass(frozen=True)
class Timestamp:
    """An RFC 3339 date-time string with an offset, returned as an aware UTC datetime.

    Fractional seconds beyond microseconds are truncated; a leap second (``:60``)
    is refused, as Python datetimes cannot hold it.
    """

    def check(self, value: object) -> datetime:
        if type(value) is not str:
            raise FieldError(f"must be a string, not {json_type_name(value)}")
        # fullmatch: with match(), "$" would also accept a trailing newline.
        match = _RFC3339.fullmatch(value)
        if match is None:
            raise FieldError(
                "must be an RFC 3339 date-time with an offset, e.g."
                f" 2025-01-31T12:00:00Z, not {shown(value)}"
            )
        fraction, zone, sign, offset_hours, offset_minutes = match.group(
            7, 8, 9, 10, 11
        )
        micro = int(fraction[1:7].ljust(6, "0")) if fraction else 0
        try:
            if zone in ("Z", "z"):
                tz = timezone.utc
            else:
                minutes = int(offset_minutes)
                if minutes > 59:
                    raise ValueError("offset minutes out of range")
                # timezone() itself refuses offsets of 24 hours or more.
                offset = timedelta(hours=int(offset_hours), minutes=minutes)
                tz = timezone(-offset if sign == "-" else offset)
            year_to_second = map(int, match.group(1, 2, 3, 4, 5, 6))
            moment = datetime(*year_to_second, micro, tz)
            return moment.astimezone(timezone.utc)
        except (ValueError, OverflowError):
            # Covers month 13, Feb 30, hour 24, second 60, offsets past ±23:59
            # and instants outside datetime's range once moved to UTC.
            raise FieldError(f"is not a valid date-time: {shown(value)}") from None

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}


@dataclass(frozen=True)
class JsonObject:
    """A bounded JSON object that PostgreSQL jsonb stores as sent, returned as
    its compact JSON text (the stored form, exact: numbers are written as read).

    At most ``max_depth`` levels (the object itself is level 1; arrays count)
    and ``max_bytes`` of compact UTF-8 JSON, numbers counted as written out in
    full as PostgreSQL keeps them (``1e999999`` is a million bytes). The walk
    stops at the first excess, so a 5 MiB object costs no more than 16 KiB.
    """

    max_depth: int = MAX_PROPERTIES_DEPTH
    max_bytes: int = MAX_PROPERTIES_BYTES

    def check(self, value: object) -> str:
        if type(value) is not dict:
            raise FieldError(f"must be an object, not {json_type_name(value)}")
        if not value:
            return "{}"
        parts: list[str] = []
        budget = [self.max_bytes]
        self._encode(value, 1, parts, budget)
        return "".join(parts)

    def _encode(self, node: dict | list, depth: int, parts: list, budget: list):
        """Append ``node`` to ``parts``; ``budget[0]`` is the bytes still allowed.

        Recursive: ``max_depth`` bounds the recursion far below Python's limit.
        """
        if depth > self.max_depth:
            raise FieldError(f"must not be nested more than {self.max_depth} levels")
        is_dict = type(node) is dict
        parts.append("{" if is_dict else "[")
        size = 2 + max(len(node) - 1, 0)  # brackets and commas
        members = node.items() if is_dict else ((None, item) for item in node)
        first = True
        for key, member in members:
            if first:
                first = False
            else:
                parts.append(",")
            if is_dict:
                text = _json_string(key)
                parts.append(text)
                parts.append(":")
                size += _utf8_length(text) + 1
            kind = type(member)
            if kind is dict or kind is list:
                budget[0] -= size
                size = 0
                self._encode(member, depth + 1, parts, budget)
                continue
            if kind is str:
                text = _json_string(member)
                size += _utf8_length(text)
            elif kind is int:
                text = str(member)
                size += len(text)
            elif kind is Decimal or kind is float:
                number = member if kind is Decimal else Decimal(repr(member))
                if not number.is_finite():
                    raise FieldError("must contain only finite numbers")
                text = str(number)
                size += _plain_length(number)
            elif member is True or member is False or member is None:
                text = _JSON_CONSTANTS[member]
                size += len(text)
            else:
                raise FieldError(f"must hold only JSON values, not {kind.__name__}")
            parts.append(text)
            if size > budget[0]:
                break
        parts.append("}" if is_dict else "]")
        budget[0] -= size
        if budget[0] < 0:
            raise FieldError(
                f"must be at most {self.max_bytes} bytes as compact UTF-8 JSON"
            )

    def schema(self) -> dict[str, Any]:
        return {"type": "object"}


_JSON_CONSTANTS = {True: "true", False: "false", None: "null"}


def _json_string(text: str) -> str:
    if _UNSTORABLE_CHAR.search(text):
        raise FieldError("must not contain NUL or lone surrogates")
    return encode_basestring(text)


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())


def _plain_length(number: Decimal) -> int:
    """Characters of a finite Decimal written without exponent, counted without
    writing it."""
    sign, digits, exponent = number.as_tuple()
    count = len(digits)
    if exponent >= 0:
        length = count + exponent
    elif count > -exponent:
        length = count + 1  # the point
    else:
        length = 2 - exponent  # "0." and the decimals
    return sign + length


FieldType = Text | Number | Timestamp | JsonObject
_MISSING = object()


@dataclass(frozen=True)
class Field:
    """One member of a JSON object: its name, kind, presence and documentation.

    ``kind`` holds the type and its constraints; ``default`` is a JSON value used
    when an optional field is omitted, checked like a sent value.
    """

    name: str
    kind: FieldType
    required: bool = True
    description: str = ""
    default: object = _MISSING

    def schema(self) -> dict[str, Any]:
        schema = self.kind.schema()
        if self.description:
            schema["description"] = self.description
        if self.default is not _MISSING:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True)
class Record:
    """A JSON object made of known ``fields``; unknown members are refused.

    Refusing unknown members catches typos such as ``"quantiy"``, which would
    otherwise silently bill the default quantity.
    """

    fields: tuple[Field, ...]
    _names: frozenset = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_names", frozenset(f.name for f in self.fields))

    def validate(self, item: object) -> dict[str, Any]:
        """Return the converted values, or raise FieldError naming every problem."""
        if type(item) is not dict:
            raise FieldError(f"expected an object, not {json_type_name(item)}")
        problems = []
        unknown = item.keys() - self._names
        if unknown:
            names = ", ".join(shown(name) for name in sorted(unknown)[:5])
            problems.append(f"unknown field {names}")
        values = {}
        for spec in self.fields:
            value = item.get(spec.name, _MISSING)
            if value is _MISSING:
                if spec.required:
                    problems.append(f"{spec.name}: is required")
                    continue
                # A fresh container per item, so no two results share a dict.
                value = (
                    spec.default.copy() if type(spec.default) is dict else spec.default
                )
            try:
                values[spec.name] = spec.kind.check(value)
            except FieldError as exc:
                problems.append(f"{spec.name}: {exc}")
        if problems:
            raise FieldError("; ".join(problems))
        return values

    def schema(self, title: str, description: str = "") -> dict[str, Any]:
        schema: dict[str, Any] = {"title": title, "type": "object"}
        if description:
            schema["description"] = description
        schema["required"] = [f.name for f in self.fields if f.required]
        schema["properties"] = {f.name: f.schema() for f in self.fields}
        schema["additionalProperties"] = False
        return schema


# --- Usage events -----------------------------------------------------------------

# The quantity of a usage event, whoever creates it (the API, the ORM).
QUANTITY = Number(minimum=0, maximum=MAX_QUANTITY, places=QUANTITY_PLACES)

EVENT_FIELDS = Record(
    (
        Field(
            "idempotency_key",
            Text(),
            description="Unique per subscription and metric; a replay with the same"
            " quantity and timestamp answers duplicate, a different one conflict.",
        ),
        Field(
            "subscription",
            Text(),
            description="The subscription's external_ref in the calling service.",
        ),
        Field(
            "customer",
            Text(),
            description="The customer's external_ref; must own the subscription.",
        ),
        Field("metric", Text(), description="The metric code, charged on the plan."),
        Field(
            "quantity",
            QUANTITY,
            required=False,
            default=1,
            description="A finite JSON number >= 0 with at most"
            f" {QUANTITY_PLACES} decimal places (finer is invalid), read as an"
            " exact decimal, never through a binary float; null, strings and"
            " booleans are invalid.",
        ),
        Field(
            "timestamp",
            Timestamp(),
            description="RFC 3339 with offset (Z or ±hh:mm); not before the open"
            " billing period, at most 5 minutes in the future.",
        ),
        Field(
            "properties",
            JsonObject(),
            required=False,
            default={},
            description="Free JSON object (e.g. for unique_count metrics), at"
            f" most {MAX_PROPERTIES_DEPTH} levels deep (the object itself is level"
            " 1; arrays count) and"
            f" {MAX_PROPERTIES_BYTES} bytes as compact UTF-8 JSON (numbers"
            " counted written out in full); strings must not contain U+0000.",
        ),
    )
)


@dataclass(frozen=True)
class UsageEvent:
    """A structurally valid usage event; ``timestamp`` is aware, in UTC,
    ``properties`` the compact JSON text of the object."""

    idempotency_key: str
    subscription: str
    customer: str
    metric: str
    quantity: Decimal
    timestamp: datetime
    properties: str


def rejected(key: object, code: str, message: str) -> dict[str, Any]:
    """A per-event ``rejected`` result; the key is echoed only if it is a string."""
    return {
        "idempotency_key": _echo_key(key),
        "status": REJECTED,
        "error": {"code": code, "message": message},
    }


def result(key: str, status: str) -> dict[str, Any]:
    """A per-event ``accepted`` or ``duplicate`` result (no error member)."""
    return {"idempotency_key": key, "status": status}


def conflict(key: str, message: str) -> dict[str, Any]:
    """A per-event ``conflict`` result: same key, different quantity or timestamp."""
    return {
        "idempotency_key": key,
        "status": CONFLICT,
        "error": {"code": CONFLICT, "message": message},
    }


def _echo_key(key: object) -> str | None:
    # A lone surrogate would make the JSON answer unencodable in UTF-8.
    if type(key) is not str or _UNSTORABLE_CHAR.search(key):
        return None
    return key


def validate_event(item: object) -> UsageEvent | dict[str, Any]:
    """Return a UsageEvent, or an ``invalid_event`` result naming the bad fields."""
    event = _plain_event(item)
    if event is not None:
        return event
    try:
        values = EVENT_FIELDS.validate(item)
    except FieldError as exc:
        key = item.get("idempotency_key") if type(item) is dict else None
        return rejected(key, INVALID_EVENT, str(exc))
    return UsageEvent(**values)


CANCEL_FIELDS = Record(
    (
        Field(
            "idempotency_key",
            Text(),
            description="The key the event was sent with.",
        ),
        Field(
            "subscription",
            Text(),
            description="The subscription's external_ref, as sent with the event.",
        ),
        Field("metric", Text(), description="The metric code, as sent with the event."),
    )
)


@dataclass(frozen=True)
class CancelEvent:
    """A structurally valid cancellation: the identity of one stored event."""

    idempotency_key: str
    subscription: str
    metric: str


def validate_cancel(item: object) -> CancelEvent | dict[str, Any]:
    """Return a CancelEvent, or an ``invalid_event`` result naming the bad fields."""
    try:
        values = CANCEL_FIELDS.validate(item)
    except FieldError as exc:
        key = item.get("idempotency_key") if type(item) is dict else None
        return rejected(key, INVALID_EVENT, str(exc))
    return CancelEvent(**values)


# The shape of nearly every event apps send, checked in a few C-level matches.
_PLAIN_TEXT = re.compile(f"[^{_CONTROL_CLASS}\ud800-\udfff]{{1,255}}")
_PLAIN_TIMESTAMP = re.compile(
    "[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    "(?:\\.[0-9]{3}|\\.[0-9]{6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_TEXT_FIELDS = ("idempotency_key", "subscription", "customer", "metric")
_PROPERTIES = JsonObject()


def _plain_event(item: object) -> UsageEvent | None:
    """The event, when it has the common shape; None sends it through the field
    specs, which decide (and explain) everything else.

    Only a subset of what the specs accept passes here, converted the same way:
    the engine tests check both paths agree. It is what keeps validation a small
    part of a 1000-event request.
    """
    if type(item) is not dict or not item.keys() <= EVENT_FIELDS._names:
        return None
    for name in _TEXT_FIELDS:
        value = item.get(name)
        if type(value) is not str or _PLAIN_TEXT.fullmatch(value) is None:
            return None
    quantity = item.get("quantity", 1)
    kind = type(quantity)
    if kind is int:
        if not 0 <= quantity <= MAX_QUANTITY:
            return None
        quantity = Decimal(quantity)
    elif kind is Decimal:
        # Finite, not negative (not even -0), no more places than allowed.
        if (
            not quantity.is_finite()
            or quantity.is_signed()
            or quantity.as_tuple().exponent < -QUANTITY_PLACES
            or quantity > MAX_QUANTITY
        ):
            return None
    else:
        return None
    timestamp = item.get("timestamp")
    if type(timestamp) is not str or _PLAIN_TIMESTAMP.fullmatch(timestamp) is None:
        return None
    if timestamp[-1] == "Z":
        timestamp = timestamp[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(timestamp).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None
    properties = item.get("properties", _MISSING)
    if properties is _MISSING:
        properties = "{}"
    else:
        try:
            properties = _PROPERTIES.check(properties)
        except FieldError:
            return None
    return UsageEvent(
        item["idempotency_key"],
        item["subscription"],
        item["customer"],
        item["metric"],
        quantity,
        moment,
        properties,
    )


def window_refusal(
    ts: datetime,
    period_start: datetime,
    now: datetime,
    end: datetime | None = None,
    late_start: datetime | None = None,
) -> str | None:
    """Why an event at ``ts`` is outside its subscription's window
    (``timestamp_out_of_window``), or None. All datetimes are aware.

    The window opens at the open period's start, or at ``late_start`` when
    late usage is billed as an adjustment (``late_usage_start``); it closes 5
    minutes from now and at the subscription's ``end`` (exclusive). An event
    after the open period's end is fine: periods move only when they close,
    and it is kept for the period it falls in (SPEC §4, §11).
    """
    if end is not None and ts >= end:
        return f"timestamp must be before the subscription's end ({end.isoformat()})"
    if ts > now + FUTURE_TOLERANCE:
        return "timestamp must be at most 5 minutes from now"
    if ts < period_start and (late_start is None or ts < late_start):
        if late_start is None or late_start >= period_start:
            return (
                "timestamp must not be before the open period start"
                f" ({period_start.isoformat()}): earlier periods are closed"
            )
        return (
            f"timestamp must not be before {late_start.isoformat()}: late usage"
            " is accepted back to the subscription start and the service's late"
            " usage days"
        )
    return None


def late_usage_start(subscription_start: datetime, now: datetime, days: int):
    """Earliest timestamp of late usage under the ``adjust`` policy: at most
    ``days`` old, counted from now, and not before the subscription start."""
    return max(subscription_start, now - timedelta(days=days))


def retention_start(now: datetime, retention_days: int) -> datetime | None:
    """The oldest timestamp a service keeping its usage ``retention_days`` days
    accepts (SPEC §14); None when it keeps usage forever (0)."""
    return now - timedelta(days=retention_days) if retention_days else None


def build_response(results: list[dict[str, Any]]) -> Reply:
    """Summarize per-event results (in request order) into the §4 answer.

    200 when at least one event was accepted or a duplicate, else 400
    ``all_rejected`` with the same counts and results.
    """
    return _batch_response(
        results,
        {
            ACCEPTED: "accepted",
            DUPLICATE: "duplicates",
            CONFLICT: "conflicts",
            REJECTED: "rejected",
        },
        (ACCEPTED, DUPLICATE),
        "no event was accepted",
    )


def build_cancel_response(results: list[dict[str, Any]]) -> Reply:
    """Summarize ``POST /usage/cancel`` results like ``build_response``: 200
    when at least one event was cancelled or already cancelled (SPEC §11)."""
    return _batch_response(
        results,
        {CANCELLED: "cancelled", DUPLICATE: "duplicates", REJECTED: "rejected"},
        (CANCELLED, DUPLICATE),
        "no event was cancelled",
    )


def _batch_response(
    results: list[dict[str, Any]],
    counters: dict[str, str],
    success: tuple[str, ...],
    failure: str,
) -> Reply:
    """``counters`` maps each status to the name of its count in the answer."""
    counts = dict.fromkeys(counters, 0)
    for item in results:
        counts[item["status"]] += 1
    summary = {name: counts[status] for status, name in counters.items()}
    summary["results"] = results
    if any(counts[status] for status in success):
        return Reply(200, {"status": "ok", **summary})
    reply = error_response(ALL_REJECTED, failure, 400)
    reply.body.update(summary)
    return reply


# --- Request envelope ------------------------------------------------------------


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _exact_number(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent past what Decimal holds
        raise ValueError(f"number {shown(text)} is out of range") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which duplicate wins; refusing removes the ambiguity
    # (I-JSON, RFC 7493).
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate member {shown(key)}")
            seen.add(key)
    return obj


def _is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            return False
    return True


def load_json_body(raw: bytes, content_type: str | None) -> Reply | object:
    """Decode a JSON request body, or return the envelope error (415/413/400).

    Shared by every JSON route. UTF-8 only (a leading BOM is tolerated);
    NaN/Infinity literals and duplicate object members are ``invalid_json``.
    Numbers with a fraction or exponent are read as exact Decimals.
    """
    if not _is_json_media_type(content_type):
        return error_response(
            UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON sent as Content-Type: application/json (UTF-8)",
            415,
        )
    if len(raw) > MAX_BODY_BYTES:
        return error_response(
            PAYLOAD_TOO_LARGE, f"the body exceeds {MAX_BODY_BYTES} bytes", 413
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return error_response(
            INVALID_JSON, f"the body is not UTF-8 (byte {exc.start})", 400
        )
    try:
        return json.loads(
            text,
            parse_float=_exact_number,
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        message = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        message = "the body is nested too deeply"
    except ValueError as exc:  # NaN/Infinity, duplicate members, 4300+ digit ints
        message = str(exc)
    return error_response(INVALID_JSON, f"invalid JSON: {message}", 400)


def parse_request(raw: bytes, content_type: str | None) -> Reply | list:
    """Return the raw event items of a ``POST /usage`` body, or its envelope error.

    The body is one event object or ``{"events": [...]}`` with 1 to MAX_EVENTS
    items; the items are not validated here (see ``validate_event``).
    """
    payload = load_json_body(raw, content_type)
    if type(payload) is Reply:
        return payload
    if type(payload) is not dict:
        return error_response(
            INVALID_PAYLOAD,
            f'the body must be an event object or {{"events": [...]}},'
            f" not {json_type_name(payload)}",
            400,
        )
    if "events" not in payload:
        return [payload]
    return _batch_items(payload)


def parse_cancel_request(raw: bytes, content_type: str | None) -> Reply | list:
    """Return the raw items of a ``POST /usage/cancel`` body, or its envelope
    error. The body is ``{"events": [...]}`` with 1 to MAX_EVENTS items; the
    items are not validated here (see ``validate_cancel``)."""
    payload = load_json_body(raw, content_type)
    if type(payload) is Reply:
        return payload
    if type(payload) is not dict or "events" not in payload:
        return error_response(
            INVALID_PAYLOAD,
            'the body must be {"events": [...]}, each event naming'
            " idempotency_key, subscription and metric",
            400,
        )
    return _batch_items(payload)


def _batch_items(payload: dict) -> Reply | list:
    """The items of ``{"events": [...]}``, or why the batch is refused."""
    if len(payload) > 1:
        extra = ", ".join(shown(k) for k in sorted(payload) if k != "events")
        return error_response(
            INVALID_PAYLOAD, f"unexpected member next to events: {extra}", 400
        )
    events = payload["events"]
    if type(events) is not list or not events:
        return error_response(
            INVALID_PAYLOAD, "events must be a non-empty array of event objects", 400
        )
    if len(events) > MAX_EVENTS:
        return error_response(
            TOO_MANY_EVENTS,
            f"{len(events)} events sent; at most {MAX_EVENTS} per request",
            400,
        )
    return events


# --- JSON Schemas (published by core.openapi) -----------------------------------

EVENT_SCHEMA = EVENT_FIELDS.schema("UsageEvent", "One metered usage event.")

REQUEST_SCHEMA: dict[str, Any] = {
    "title": "UsageRequest",
    "description": "One event object, or a batch of 1 to"
    f" {MAX_EVENTS} events. Bodies over {MAX_BODY_BYTES} bytes answer 413.",
    "oneOf": [
        EVENT_SCHEMA,
        {
            "title": "UsageBatch",
            "type": "object",
            "required": ["events"],
            "properties": {
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_EVENTS,
                    "items": EVENT_SCHEMA,
                }
            },
            "additionalProperties": False,
        },
    ],
}


def error_detail_schema(codes: tuple[str, ...]) -> dict[str, Any]:
    """Schema of an ``{"code", "message"}`` error member with its possible codes."""
    return {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "enum": list(codes)},
            "message": {"type": "string", "description": "Human-readable detail."},
        },
        "additionalProperties": False,
    }


def counts_schema(names: Iterable[str]) -> dict[str, Any]:
    """Schemas of the per-status counters of a batch answer."""
    return {name: {"type": "integer", "minimum": 0} for name in names}


def error_schema(
    title: str,
    codes: tuple[str, ...],
    counts: dict[str, Any],
    result: dict[str, Any],
) -> dict[str, Any]:
    """Schema of every error answer of a batch route."""
    return {
        "title": title,
        "description": "Any error answer. results holds the per-item outcomes in"
        " request order; it is empty when the request was refused as a whole."
        " all_rejected also carries the counts.",
        "type": "object",
        "required": ["status", "error", "results"],
        "properties": {
            "status": {"const": "error"},
            "error": error_detail_schema(codes),
            **counts,
            "results": {"type": "array", "items": result},
        },
        "additionalProperties": False,
    }


def result_schema(
    title: str,
    key: str,
    statuses: tuple[str, ...],
    codes: tuple[str, ...],
    status_description: str = "",
) -> dict[str, Any]:
    """Schema of one per-item result of a batch route, which echoes the item's
    ``key`` member."""
    status: dict[str, Any] = {"type": "string", "enum": list(statuses)}
    if status_description:
        status["description"] = status_description
    return {
        "title": title,
        "type": "object",
        "required": [key, "status"],
        "properties": {
            key: {
                "type": ["string", "null"],
                "description": "As sent; null when it was not a string.",
            },
            "status": status,
            "error": error_detail_schema(codes),
        },
        "additionalProperties": False,
    }


def response_schema(
    title: str, description: str, counts: dict[str, Any], result: dict[str, Any]
) -> dict[str, Any]:
    """Schema of the 200 answer of a batch route: its counts and the per-item
    ``result`` in request order (``error_schema`` is its error twin)."""
    return {
        "title": title,
        "description": description,
        "type": "object",
        "required": ["status", *counts, "results"],
        "properties": {
            "status": {"const": "ok"},
            **counts,
            "results": {"type": "array", "items": result},
        },
        "additionalProperties": False,
    }


RESULT_SCHEMA = result_schema(
    "UsageResult", "idempotency_key", RESULT_STATUSES, EVENT_CODES
)

_COUNTS = counts_schema(("accepted", "duplicates", "conflicts", "rejected"))

RESPONSE_SCHEMA = response_schema(
    "UsageResponse",
    "At least one event was accepted or a duplicate; results are in request order.",
    _COUNTS,
    RESULT_SCHEMA,
)

ERROR_SCHEMA = error_schema("UsageError", ENVELOPE_CODES, _COUNTS, RESULT_SCHEMA)

CANCEL_EVENT_SCHEMA = CANCEL_FIELDS.schema(
    "CancelEvent", "The identity of one stored usage event to cancel."
)

CANCEL_REQUEST_SCHEMA: dict[str, Any] = {
    "title": "CancelRequest",
    "description": f"A batch of 1 to {MAX_EVENTS} events to cancel. Bodies over"
    f" {MAX_BODY_BYTES} bytes answer 413.",
    "type": "object",
    "required": ["events"],
    "properties": {
        "events": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_EVENTS,
            "items": CANCEL_EVENT_SCHEMA,
        }
    },
    "additionalProperties": False,
}

CANCEL_RESULT_SCHEMA = result_schema(
    "CancelResult",
    "idempotency_key",
    CANCEL_STATUSES,
    CANCEL_CODES,
    "cancelled; duplicate when it was already cancelled.",
)

_CANCEL_COUNTS = counts_schema(("cancelled", "duplicates", "rejected"))

CANCEL_RESPONSE_SCHEMA = response_schema(
    "CancelResponse",
    "At least one event was cancelled or already cancelled; results are in"
    " request order.",
    _CANCEL_COUNTS,
    CANCEL_RESULT_SCHEMA,
)

CANCEL_ERROR_SCHEMA = error_schema(
    "CancelError", ENVELOPE_CODES, _CANCEL_COUNTS, CANCEL_RESULT_SCHEMA
)
