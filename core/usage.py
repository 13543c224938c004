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
from decimal import Decimal
from typing import Any, NamedTuple

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

MAX_EVENTS = 1000
MAX_BODY_BYTES = 5 * 1024 * 1024
FUTURE_TOLERANCE = timedelta(minutes=5)
# Quantities land in an Odoo Float (double) column, exact for whole numbers up to
# 2**53 (about 9e15): 1e15 keeps them exact, and no real meter gets near it.
MAX_QUANTITY = 10**15


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
    """A finite JSON number (not a boolean) within bounds, returned as Decimal."""

    minimum: int
    maximum: int

    def check(self, value: object) -> Decimal:
        kind = type(value)
        if kind is float:
            # json.loads turns 1e400 into inf without calling parse_constant.
            if not math.isfinite(value):
                raise FieldError("must be a finite number")
        elif kind is not int:
            raise FieldError(f"must be a number, not {json_type_name(value)}")
        if value < self.minimum:
            raise FieldError(f"must be at least {self.minimum}")
        if value > self.maximum:
            raise FieldError(f"must be at most {self.maximum}")
        if kind is int:
            return Decimal(value)
        # repr is the shortest text that round-trips, i.e. what the client sent;
        # "+ 0" turns -0.0 into 0.
        return Decimal(repr(value + 0.0))

    def schema(self) -> dict[str, Any]:
        return {"type": "number", "minimum": self.minimum, "maximum": self.maximum}


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
    """A JSON object of any content that PostgreSQL jsonb can store as sent."""

    def check(self, value: object) -> dict:
        if type(value) is not dict:
            raise FieldError(f"must be an object, not {json_type_name(value)}")
        # Iterative walk: nesting as deep as json.loads allows would overflow
        # the stack of a recursive one.
        pending: list = [value]
        while pending:
            node = pending.pop()
            if type(node) is dict:
                for key in node:
                    if _UNSTORABLE_CHAR.search(key):
                        raise FieldError("must not contain NUL or lone surrogates")
                members: Iterable = node.values()
            else:
                members = node
            for member in members:
                kind = type(member)
                if kind is str:
                    if _UNSTORABLE_CHAR.search(member):
                        raise FieldError("must not contain NUL or lone surrogates")
                elif kind is float:
                    if not math.isfinite(member):
                        raise FieldError("must contain only finite numbers")
                elif kind is dict or kind is list:
                    pending.append(member)
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "object"}


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
            Number(minimum=0, maximum=MAX_QUANTITY),
            required=False,
            default=1,
            description="A finite JSON number >= 0; null, strings and booleans"
            " are invalid.",
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
            description="Free JSON object (e.g. for unique_count metrics);"
            " strings must not contain U+0000, numbers must be finite.",
        ),
    )
)


@dataclass(frozen=True)
class UsageEvent:
    """A structurally valid usage event; ``timestamp`` is aware, in UTC."""

    idempotency_key: str
    subscription: str
    customer: str
    metric: str
    quantity: Decimal
    timestamp: datetime
    properties: dict


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
    elif kind is float:
        if not 0 <= quantity <= MAX_QUANTITY:  # also false for NaN
            return None
        quantity = Decimal(repr(quantity + 0.0))
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
        properties = {}
    else:
        try:
            _PROPERTIES.check(properties)
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


def check_timestamp(ts: datetime, period_start: datetime, now: datetime) -> str | None:
    """Return ``timestamp_out_of_window`` if ts is before the open period or too late.

    All three datetimes must be aware. An event after the period end is fine: it
    is kept for the period it falls in (SPEC §4).
    """
    if ts < period_start or ts > now + FUTURE_TOLERANCE:
        return TIMESTAMP_OUT_OF_WINDOW
    return None


def retention_start(now: datetime, retention_days: int) -> datetime | None:
    """The oldest timestamp a service keeping its usage ``retention_days`` days
    accepts (SPEC §14); None when it keeps usage forever (0)."""
    return now - timedelta(days=retention_days) if retention_days else None


def build_response(results: list[dict[str, Any]]) -> Reply:
    """Summarize per-event results (in request order) into the §4 answer.

    200 when at least one event was accepted or a duplicate, else 400
    ``all_rejected`` with the same counts and results.
    """
    counts = dict.fromkeys(RESULT_STATUSES, 0)
    for item in results:
        counts[item["status"]] += 1
    summary = {
        "accepted": counts[ACCEPTED],
        "duplicates": counts[DUPLICATE],
        "conflicts": counts[CONFLICT],
        "rejected": counts[REJECTED],
        "results": results,
    }
    if counts[ACCEPTED] or counts[DUPLICATE]:
        return Reply(200, {"status": "ok", **summary})
    reply = error_response(ALL_REJECTED, "no event was accepted", 400)
    reply.body.update(summary)
    return reply


# --- Request envelope ------------------------------------------------------------


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


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
            text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys
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


RESULT_SCHEMA: dict[str, Any] = {
    "title": "UsageResult",
    "type": "object",
    "required": ["idempotency_key", "status"],
    "properties": {
        "idempotency_key": {
            "type": ["string", "null"],
            "description": "As sent; null when it was not a string.",
        },
        "status": {"type": "string", "enum": list(RESULT_STATUSES)},
        "error": error_detail_schema(EVENT_CODES),
    },
    "additionalProperties": False,
}

_COUNTS = counts_schema(("accepted", "duplicates", "conflicts", "rejected"))

RESPONSE_SCHEMA: dict[str, Any] = {
    "title": "UsageResponse",
    "description": "At least one event was accepted or a duplicate; results are"
    " in request order.",
    "type": "object",
    "required": ["status", *_COUNTS, "results"],
    "properties": {
        "status": {"const": "ok"},
        **_COUNTS,
        "results": {"type": "array", "items": RESULT_SCHEMA},
    },
    "additionalProperties": False,
}

ERROR_SCHEMA = error_schema("UsageError", ENVELOPE_CODES, _COUNTS, RESULT_SCHEMA)
