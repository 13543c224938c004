"""Tests of POST /usage body validation (core.usage)."""

import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import jsonschema
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core import usage

UTC = timezone.utc
JSON = "application/json"

GOOD_EVENT = {
    "idempotency_key": "evt-1",
    "subscription": "sub_1",
    "customer": "cus_1",
    "metric": "api_calls",
    "quantity": 3,
    "timestamp": "2025-03-01T12:00:00Z",
    "properties": {"region": "eu"},
}


def event(**changes):
    """GOOD_EVENT with members replaced, or removed when given the value ...."""
    item = {**GOOD_EVENT, **changes}
    return {name: value for name, value in item.items() if value is not ...}


def body(payload) -> bytes:
    return json.dumps(payload).encode()


def spec_path(item):
    """validate_event without the plain-event fast path: the field specs alone."""
    try:
        return usage.UsageEvent(**usage.EVENT_FIELDS.validate(item))
    except usage.FieldError as error:
        return usage.rejected(item.get("idempotency_key"), "invalid_event", str(error))


# Valid values are checked on both paths: most take the fast path in
# validate_event, so the field specs would otherwise go unchecked on them.
BOTH_PATHS = pytest.mark.parametrize(
    "validate", [usage.validate_event, spec_path], ids=["validate_event", "specs"]
)


MAX_BYTES = usage.MAX_PROPERTIES_BYTES


def nested(levels, array=False):
    """An object ``levels`` deep (itself level 1), the levels inside alternating
    arrays and objects when ``array``."""
    node = {}
    for level in range(levels - 2):
        node = [node] if array and level % 2 == 0 else {"a": node}
    return {"a": node}


def sized(size):
    """An object of exactly ``size`` bytes as compact UTF-8 JSON."""
    base = len('{"k":""}')
    return {"k": "x" * (size - base)}


# --- Envelope --------------------------------------------------------------------

ENVELOPE_ERRORS = [
    # (id, raw body, content type, http status, code)
    ("no content type", body(GOOD_EVENT), None, 415, usage.UNSUPPORTED_MEDIA_TYPE),
    ("text/plain", body(GOOD_EVENT), "text/plain", 415, usage.UNSUPPORTED_MEDIA_TYPE),
    (
        "form",
        b"a=1",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
    ),
    (
        "latin-1",
        body(GOOD_EVENT),
        f"{JSON}; charset=latin-1",
        415,
        "unsupported_media_type",
    ),
    ("json-ish", body(GOOD_EVENT), "application/jsonx", 415, "unsupported_media_type"),
    (
        "latin-1 after another parameter",
        body(GOOD_EVENT),
        f"{JSON}; a=1; charset=latin-1",
        415,
        "unsupported_media_type",
    ),
    (
        "latin-1 without spaces",
        body(GOOD_EVENT),
        f"{JSON};a=1;charset=latin-1",
        415,
        "unsupported_media_type",
    ),
    (
        "latin-1 with a second =",
        body(GOOD_EVENT),
        f"{JSON}; charset=latin-1=utf-8",
        415,
        "unsupported_media_type",
    ),
    (
        "utf-8 inside other letters",
        body(GOOD_EVENT),
        f"{JSON}; charset=XUTF-8X",
        415,
        "unsupported_media_type",
    ),
    ("empty content type", body(GOOD_EVENT), "", 415, "unsupported_media_type"),
    ("too large", b" " * (usage.MAX_BODY_BYTES + 1), JSON, 413, "payload_too_large"),
    ("not utf-8", b'{"a": "\xff"}', JSON, 400, usage.INVALID_JSON),
    ("utf-16", '{"a": 1}'.encode("utf-16"), JSON, 400, usage.INVALID_JSON),
    ("empty", b"", JSON, 400, usage.INVALID_JSON),
    ("blank", b"  \n", JSON, 400, usage.INVALID_JSON),
    ("truncated", b'{"events": [', JSON, 400, usage.INVALID_JSON),
    ("single quotes", b"{'a': 1}", JSON, 400, usage.INVALID_JSON),
    ("trailing data", b"{} {}", JSON, 400, usage.INVALID_JSON),
    ("trailing comma", b'{"a": 1,}', JSON, 400, usage.INVALID_JSON),
    ("NaN", b'{"quantity": NaN}', JSON, 400, usage.INVALID_JSON),
    ("Infinity", b'{"quantity": Infinity}', JSON, 400, usage.INVALID_JSON),
    ("-Infinity", b'{"quantity": -Infinity}', JSON, 400, usage.INVALID_JSON),
    ("bare NaN", b"NaN", JSON, 400, usage.INVALID_JSON),
    ("duplicate member", b'{"quantity": 1, "quantity": 2}', JSON, 400, "invalid_json"),
    ("deep nesting", b"[" * 100_000, JSON, 400, usage.INVALID_JSON),
    ("5000-digit int", b"1" * 5000, JSON, 400, usage.INVALID_JSON),
    (
        "exponent past Decimal",
        b'{"quantity": 1e99999999999999999999}',
        JSON,
        400,
        "invalid_json",
    ),
    ("top-level array", b"[]", JSON, 400, usage.INVALID_PAYLOAD),
    ("array of events", body([GOOD_EVENT]), JSON, 400, usage.INVALID_PAYLOAD),
    ("top-level string", b'"event"', JSON, 400, usage.INVALID_PAYLOAD),
    ("top-level number", b"42", JSON, 400, usage.INVALID_PAYLOAD),
    ("top-level null", b"null", JSON, 400, usage.INVALID_PAYLOAD),
    ("top-level true", b"true", JSON, 400, usage.INVALID_PAYLOAD),
    ("events empty", b'{"events": []}', JSON, 400, usage.INVALID_PAYLOAD),
    ("events object", b'{"events": {}}', JSON, 400, usage.INVALID_PAYLOAD),
    ("events null", b'{"events": null}', JSON, 400, usage.INVALID_PAYLOAD),
    ("events string", b'{"events": "x"}', JSON, 400, usage.INVALID_PAYLOAD),
    (
        "member beside events",
        body({"events": [GOOD_EVENT], "dry_run": True}),
        JSON,
        400,
        usage.INVALID_PAYLOAD,
    ),
    (
        "1001 events",
        body({"events": [GOOD_EVENT] * 1001}),
        JSON,
        400,
        usage.TOO_MANY_EVENTS,
    ),
]


@pytest.mark.parametrize(
    ("raw", "content_type", "http_status", "code"),
    [case[1:] for case in ENVELOPE_ERRORS],
    ids=[case[0] for case in ENVELOPE_ERRORS],
)
def test_envelope_errors(raw, content_type, http_status, code):
    reply = usage.parse_request(raw, content_type)
    assert isinstance(reply, usage.Reply)
    assert reply.http_status == http_status
    assert reply.body["status"] == "error"
    assert reply.body["error"]["code"] == code
    assert reply.body["error"]["message"]
    json.dumps(reply.body, ensure_ascii=False).encode()  # always sendable


@pytest.mark.parametrize(
    "content_type",
    [
        JSON,
        "Application/JSON",
        f"{JSON}; charset=utf-8",
        f"{JSON};charset=UTF-8",
        f'{JSON}; charset="utf-8"',
        f"{JSON}; charset=utf8",
        f"{JSON} ; Charset = UTF-8 ",
        f"{JSON}; a=1; charset=utf-8",
        f"{JSON}; version=2",
    ],
)
def test_json_content_types_accepted(content_type):
    assert usage.parse_request(body(GOOD_EVENT), content_type) == [GOOD_EVENT]


def test_single_event_and_batch():
    assert usage.parse_request(body(GOOD_EVENT), JSON) == [GOOD_EVENT]
    items = [GOOD_EVENT, {"anything": 1}, 7]
    # Items are returned as sent; validate_event judges each one.
    assert usage.parse_request(body({"events": items}), JSON) == items


def test_utf8_bom_tolerated():
    assert usage.parse_request(b"\xef\xbb\xbf" + body(GOOD_EVENT), JSON) == [GOOD_EVENT]


def test_1000_events_accepted_1001_refused():
    assert len(usage.parse_request(body({"events": [GOOD_EVENT] * 1000}), JSON)) == 1000
    reply = usage.parse_request(body({"events": [GOOD_EVENT] * 1001}), JSON)
    assert reply.body["error"]["code"] == usage.TOO_MANY_EVENTS


def test_body_of_exactly_5_mib_is_read():
    raw = body(GOOD_EVENT)
    raw += b" " * (usage.MAX_BODY_BYTES - len(raw))
    assert len(raw) == 5 * 1024 * 1024
    assert usage.parse_request(raw, JSON) == [GOOD_EVENT]
    assert usage.parse_request(raw + b" ", JSON).http_status == 413


def test_error_response_shape():
    status, reply_body = usage.error_response(usage.UNAUTHENTICATED, "no key", 401)
    assert status == 401
    assert reply_body == {
        "status": "error",
        "error": {"code": "unauthenticated", "message": "no key"},
        "results": [],
    }
    with_results = usage.error_response("all_rejected", "none", 400, results=[])
    assert with_results.body["results"] == []


# --- Events ----------------------------------------------------------------------

INVALID_EVENTS = [
    # (id, item, text the message must contain)
    ("array", [GOOD_EVENT], "object"),
    ("string", "evt", "object"),
    ("null", None, "object"),
    ("key missing", event(idempotency_key=...), "idempotency_key: is required"),
    ("key empty", event(idempotency_key=""), "idempotency_key"),
    ("key 256 chars", event(idempotency_key="k" * 256), "idempotency_key"),
    ("key newline", event(idempotency_key="a\nb"), "idempotency_key"),
    ("key NUL", event(idempotency_key="a\x00b"), "idempotency_key"),
    ("key DEL", event(idempotency_key="a\x7fb"), "idempotency_key"),
    ("key C1 NEL", event(idempotency_key="a\x85b"), "idempotency_key"),
    ("key lone surrogate", event(idempotency_key="a\ud800"), "idempotency_key"),
    ("key number", event(idempotency_key=5), "idempotency_key"),
    ("subscription missing", event(subscription=...), "subscription"),
    ("subscription empty", event(subscription=""), "subscription"),
    ("subscription 256", event(subscription="s" * 256), "subscription"),
    ("customer null", event(customer=None), "customer"),
    ("customer tab", event(customer="c\t1"), "customer"),
    ("metric number", event(metric=123), "metric"),
    ("metric object", event(metric={}), "metric"),
    ("quantity true", event(quantity=True), "quantity"),
    ("quantity false", event(quantity=False), "quantity"),
    ("quantity null", event(quantity=None), "quantity"),
    ("quantity string", event(quantity="5"), "quantity"),
    ("quantity array", event(quantity=[1]), "quantity"),
    ("quantity negative", event(quantity=-1), "quantity"),
    ("quantity tiny negative", event(quantity=-1e-9), "quantity"),
    ("quantity over 1e15", event(quantity=1e15 + 2), "quantity"),
    ("quantity 1e16", event(quantity=10**16), "quantity"),
    ("quantity 10**400", event(quantity=10**400), "quantity"),
    ("quantity inf (1e400)", event(quantity=float("inf")), "quantity"),
    ("quantity nan", event(quantity=float("nan")), "quantity"),
    ("quantity 5e-324", event(quantity=Decimal("5E-324")), "12 decimal places"),
    ("quantity float 5e-324", event(quantity=5e-324), "12 decimal places"),
    ("quantity 13 places", event(quantity=Decimal("0.0000000000001")), "12 decimal"),
    (
        "quantity 30 places",
        event(quantity=Decimal("0.123456789012345678901234567890")),
        "12 decimal places",
    ),
    ("quantity float 1/3", event(quantity=1 / 3), "12 decimal places"),
    (
        "quantity just over 1e15",
        event(quantity=Decimal("1E15") + Decimal("1E-12")),
        "at most",
    ),
    ("quantity 1e400", event(quantity=Decimal("1E+400")), "at most"),
    ("timestamp missing", event(timestamp=...), "timestamp: is required"),
    ("timestamp number", event(timestamp=1700000000), "timestamp"),
    ("timestamp date only", event(timestamp="2025-03-01"), "timestamp"),
    ("timestamp no offset", event(timestamp="2025-03-01T12:00:00"), "timestamp"),
    ("timestamp no seconds", event(timestamp="2025-03-01T12:00Z"), "timestamp"),
    ("timestamp space", event(timestamp="2025-03-01 12:00:00Z"), "timestamp"),
    ("timestamp offset no colon", event(timestamp="2025-03-01T12:00:00+0100"), "time"),
    ("timestamp offset hours", event(timestamp="2025-03-01T12:00:00+01"), "timestamp"),
    ("timestamp empty fraction", event(timestamp="2025-03-01T12:00:00.Z"), "timestamp"),
    ("timestamp newline", event(timestamp="2025-03-01T12:00:00Z\n"), "timestamp"),
    ("timestamp month 13", event(timestamp="2025-13-01T00:00:00Z"), "timestamp"),
    ("timestamp feb 30", event(timestamp="2025-02-30T00:00:00Z"), "timestamp"),
    ("timestamp hour 24", event(timestamp="2025-03-01T24:00:00Z"), "timestamp"),
    ("timestamp leap second", event(timestamp="2016-12-31T23:59:60Z"), "timestamp"),
    ("timestamp offset 24h", event(timestamp="2025-03-01T12:00:00+24:00"), "time"),
    ("timestamp offset :60", event(timestamp="2025-03-01T12:00:00+05:60"), "time"),
    ("timestamp year 0", event(timestamp="0000-01-01T00:00:00Z"), "timestamp"),
    ("timestamp before min", event(timestamp="0001-01-01T00:00:00+01:00"), "time"),
    ("timestamp after max", event(timestamp="9999-12-31T23:59:59-01:00"), "time"),
    ("timestamp arabic digits", event(timestamp="٢٠٢٥-03-01T12:00:00Z"), "timestamp"),
    ("properties array", event(properties=[]), "properties"),
    ("properties string", event(properties="x"), "properties"),
    ("properties null", event(properties=None), "properties"),
    ("properties NUL value", event(properties={"a": "x\x00"}), "properties"),
    ("properties NUL key", event(properties={"\x00": 1}), "properties"),
    ("properties surrogate", event(properties={"a": ["\udfff"]}), "properties"),
    ("properties inf", event(properties={"a": [{"b": float("inf")}]}), "properties"),
    ("properties 33 objects", event(properties=nested(33)), "32 levels"),
    (
        "properties 33 with arrays",
        event(properties=nested(33, array=True)),
        "32 levels",
    ),
    ("properties 16 KiB + 1", event(properties=sized(MAX_BYTES + 1)), "16384 bytes"),
    ("properties 1e999999", event(properties={"n": Decimal("1e999999")}), "bytes"),
    ("properties not JSON", event(properties={"a": {1, 2}}), "JSON values"),
    ("unknown field typo", event(quantiy=5), "quantiy"),
    ("unknown field", event(events=[]), "unknown field"),
]


@pytest.mark.parametrize(
    ("item", "expected"),
    [case[1:] for case in INVALID_EVENTS],
    ids=[case[0] for case in INVALID_EVENTS],
)
def test_invalid_events(item, expected):
    outcome = usage.validate_event(item)
    assert isinstance(outcome, dict)
    assert outcome["status"] == usage.REJECTED
    assert outcome["error"]["code"] == usage.INVALID_EVENT
    assert expected in outcome["error"]["message"]
    json.dumps(outcome, ensure_ascii=False).encode()  # always sendable


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (event(quantity=Decimal("NaN")), "quantity: must be a finite number"),
        (event(quantity=Decimal("-Infinity")), "quantity: must be a finite number"),
        (
            event(properties={"a": [Decimal("sNaN")]}),
            "properties: must contain only finite numbers",
        ),
    ],
)
def test_non_finite_decimals_of_python_callers_are_invalid(item, message):
    outcome = usage.validate_event(item)
    assert outcome["error"] == {"code": usage.INVALID_EVENT, "message": message}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (event(idempotency_key=5), "idempotency_key: must be a string, not a number"),
        (
            event(idempotency_key="a\x00"),
            "idempotency_key: must not contain control characters or lone surrogates",
        ),
        (
            event(idempotency_key="k" * 256),
            "idempotency_key: must be 1 to 255 characters long, not 256",
        ),
        (
            event(timestamp="2025-03-01"),
            "timestamp: must be an RFC 3339 date-time with an offset,"
            " e.g. 2025-01-31T12:00:00Z, not '2025-03-01'",
        ),
        (
            event(timestamp="2025-02-30T00:00:00Z"),
            "timestamp: is not a valid date-time: '2025-02-30T00:00:00Z'",
        ),
        (event(timestamp=17), "timestamp: must be a string, not a number"),
        (
            event(properties={"a": "\x00"}),
            "properties: must not contain NUL or lone surrogates",
        ),
        (
            event(properties={"\ud800": 1}),
            "properties: must not contain NUL or lone surrogates",
        ),
        (
            event(properties={"a": [float("nan")]}),
            "properties: must contain only finite numbers",
        ),
        (event(properties=[]), "properties: must be an object, not an array"),
        ([], "expected an object, not an array"),
        (event(quantiy=1, zz=2), "unknown field 'quantiy', 'zz'"),
        (
            event(**dict.fromkeys("abcdefg", 1)),
            "unknown field 'a', 'b', 'c', 'd', 'e'",
        ),
        (event(metric=...), "metric: is required"),
        (
            event(metric=..., quantity=-1),
            "metric: is required; quantity: must be at least 0",
        ),
    ],
)
def test_invalid_event_messages_in_full(item, message):
    assert usage.validate_event(item)["error"]["message"] == message


def test_pattern_problems_name_the_expected_form():
    currency = usage.Text(
        min_length=3, max_length=3, pattern="^[A-Z]{3}$", pattern_hint="a code"
    )
    with pytest.raises(usage.FieldError) as error:
        currency.check("eur")
    assert str(error.value) == "must be a code, not 'eur'"
    assert currency.check("EUR") == "EUR"
    assert currency.schema()["pattern"] == "^[A-Z]{3}$"
    assert usage.Text().schema()["pattern"] == usage.NO_CONTROL_PATTERN


def test_rejected_result_echoes_string_keys_only():
    assert usage.validate_event(event(quantity=-1))["idempotency_key"] == "evt-1"
    assert usage.validate_event(event(idempotency_key=5))["idempotency_key"] is None
    assert usage.validate_event(event(idempotency_key="k" * 300))[
        "idempotency_key"
    ] == ("k" * 300)
    # A lone surrogate cannot be encoded in the UTF-8 answer.
    assert (
        usage.validate_event(event(idempotency_key="\ud800"))["idempotency_key"] is None
    )
    assert usage.validate_event([])["idempotency_key"] is None


def test_every_problem_is_reported():
    message = usage.validate_event({"quantity": "x", "quantiy": 1})["error"]["message"]
    for name in ("quantiy", "idempotency_key", "subscription", "customer", "metric"):
        assert name in message
    assert "quantity: must be a number, not a string" in message
    assert "timestamp: is required" in message


def test_event_with_every_text_field_bad_is_rejected():
    outcome = usage.validate_event(
        event(idempotency_key="", subscription="", customer="", metric="")
    )
    assert outcome["status"] == usage.REJECTED
    for name in ("idempotency_key", "subscription", "customer", "metric"):
        assert (
            f"{name}: must be 1 to 255 characters long, not 0"
            in (outcome["error"]["message"])
        )


def test_good_event():
    outcome = usage.validate_event(GOOD_EVENT)
    assert outcome == usage.UsageEvent(
        idempotency_key="evt-1",
        subscription="sub_1",
        customer="cus_1",
        metric="api_calls",
        quantity=Decimal(3),
        timestamp=datetime(2025, 3, 1, 12, tzinfo=UTC),
        properties='{"region":"eu"}',
    )


def test_defaults_quantity_one_and_empty_properties():
    outcome = usage.validate_event(event(quantity=..., properties=...))
    assert outcome.quantity == Decimal(1)
    assert outcome.properties == "{}"


def parsed_quantity(text):
    """The quantity of an event whose JSON body writes it as ``text``."""
    raw = json.dumps(event(quantity=0)).replace('"quantity": 0', f'"quantity": {text}')
    (item,) = usage.parse_request(raw.encode(), JSON)
    return usage.validate_event(item)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1", "0.1"),
        ("0.000000000001", "1E-12"),
        ("1e-12", "1E-12"),
        ("1E+2", "1E+2"),
        ("999999999999999.999999999999", "999999999999999.999999999999"),
        ("1000000000000000", "1000000000000000"),
        ("1e15", "1E+15"),
        ("0.123456789012", "0.123456789012"),
        # Trailing zeros past the 12th place are no finer a quantity.
        ("1.50000000000000000000", "1.500000000000"),
        ("-0.0", "0.0"),
        ("0e-400", "0"),
    ],
)
def test_json_quantities_are_read_as_exact_decimals(text, expected):
    outcome = parsed_quantity(text)
    assert str(outcome.quantity) == expected
    assert outcome.quantity == Decimal(expected)
    assert not outcome.quantity.is_signed()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5e-324", "at most 12 decimal places"),
        ("0.123456789012345678901234567890", "at most 12 decimal places"),
        ("0.0000000000001", "at most 12 decimal places"),
        ("1000000000000000.000000000001", "at most 1000000000000000"),
        ("1e400", "at most 1000000000000000"),
        ("-1e-400", "at least 0"),
    ],
)
def test_json_quantities_too_fine_or_too_large_are_invalid(text, message):
    outcome = parsed_quantity(text)
    assert outcome["error"]["code"] == usage.INVALID_EVENT
    assert message in outcome["error"]["message"]


def test_reconciliation_amounts_are_exact_decimals_too():
    number = usage.Number(minimum=-(10**15), maximum=10**15)
    (item,) = json.loads("[0.123456789012345678901234567890]", parse_float=Decimal)
    assert number.check(item) == Decimal("0.123456789012345678901234567890")


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (0, "0"),
        (0.0, "0.0"),
        (-0.0, "0.0"),
        (0.1, "0.1"),
        (12.5, "12.5"),
        (1e-7, "1E-7"),
        (10**15, "1000000000000000"),
        (1e15, "1000000000000000.0"),
        (0.3, "0.3"),  # not 0.299999999999999988897769753748...
        (1.1, "1.1"),
        (123456.789, "123456.789"),
    ],
)
@BOTH_PATHS
def test_quantities_as_decimal(validate, quantity, expected):
    outcome = validate(event(quantity=quantity))
    assert str(outcome.quantity) == expected
    assert not outcome.quantity.is_signed()


@BOTH_PATHS
@pytest.mark.parametrize(
    ("quantity", "message"),
    [
        (-1, "quantity: must be at least 0"),
        (-1e-9, "quantity: must be at least 0"),
        (10**15 + 1, "quantity: must be at most 1000000000000000"),
        (1e15 + 0.125, "quantity: must be at most 1000000000000000"),
        (float("inf"), "quantity: must be a finite number"),
        (True, "quantity: must be a number, not a boolean"),
        ("1", "quantity: must be a number, not a string"),
        (None, "quantity: must be a number, not null"),
    ],
)
def test_quantity_bounds(validate, quantity, message):
    outcome = validate(event(quantity=quantity))
    assert outcome["error"] == {"code": usage.INVALID_EVENT, "message": message}


@BOTH_PATHS
@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (Decimal("0.123456789012"), "0.123456789012"),
        (Decimal("1E-12"), "1E-12"),
        # 12 places once the trailing zero is dropped.
        (Decimal("1.0000000000010"), "1.000000000001"),
    ],
)
def test_decimal_quantities_of_12_places(validate, quantity, expected):
    assert str(validate(event(quantity=quantity)).quantity) == expected


@BOTH_PATHS
def test_too_fine_quantity_names_the_smallest_step(validate):
    outcome = validate(event(quantity=Decimal("1.0000000000001")))
    assert outcome["error"]["message"] == (
        "quantity: must have at most 12 decimal places"
        " (the smallest step is 0.000000000001)"
    )


@pytest.mark.parametrize(
    "key",
    [
        "k" * 255,
        "k",
        "évènement-🎉",
        "family-👨\u200d👩\u200d👧",  # zero-width joiner (category Cf) is allowed
        "  spaced  ",
    ],
)
def test_good_keys(key):
    assert usage.validate_event(event(idempotency_key=key)).idempotency_key == key


def test_properties_are_kept_as_compact_exact_json():
    raw = (
        r'{"user": "u1", "tags": ["a", {"b": null, "t": true}], "n": 1.50,'
        r' "big": 100000000000000000000000000000,'
        r' "x": 0.123456789012345678901234567890,'
        r' "e": 1e-7, "s": "\u00e9\"\\\n\u0001"}'
    )
    text = usage.validate_event(
        event(properties=json.loads(raw, parse_float=Decimal))
    ).properties
    assert text == (
        '{"user":"u1","tags":["a",{"b":null,"t":true}],"n":1.50,'
        '"big":100000000000000000000000000000,"x":0.123456789012345678901234567890,'
        r'"e":1E-7,"s":"é\"\\\n\u0001"}'
    )
    assert json.loads(text, parse_float=Decimal) == json.loads(raw, parse_float=Decimal)


@pytest.mark.parametrize(
    ("properties", "valid"),
    [
        (nested(32), True),
        (nested(33), False),
        (nested(32, array=True), True),
        (nested(33, array=True), False),
        ({"a": [[[]]]}, True),  # 4 levels
        (sized(MAX_BYTES), True),
        (sized(MAX_BYTES + 1), False),
        # UTF-8 bytes, not characters: "é" is 2 bytes.
        ({"k": "é" * ((MAX_BYTES - 8) // 2)}, True),
        ({"k": "é" * ((MAX_BYTES - 8) // 2 + 1)}, False),
        # Escapes count as sent: a newline is 2 bytes (\n), a control 6.
        ({"k": "\n" * ((MAX_BYTES - 8) // 2)}, True),
        ({"k": "\n" * ((MAX_BYTES - 8) // 2 + 1)}, False),
        # Numbers count written out in full.
        ({"n": Decimal(f"1e{MAX_BYTES - 7}")}, True),
        ({"n": Decimal(f"1e{MAX_BYTES - 6}")}, False),
        ({"n": Decimal(f"1e-{MAX_BYTES - 8}")}, True),
        ({"n": Decimal(f"1e-{MAX_BYTES - 7}")}, False),
        # Many small members add up.
        ({str(n): [] for n in range(2000)}, False),
        ({"a": [{}] * 5459}, True),  # 3 * 5459 + 7 = 16384 bytes
        ({"a": [{}] * 5460}, False),
    ],
)
def test_properties_depth_and_size_limits(properties, valid):
    outcome = usage.validate_event(event(properties=properties))
    if valid:
        assert isinstance(outcome, usage.UsageEvent), outcome
        text = outcome.properties
        assert len(text.encode()) <= MAX_BYTES
        assert json.loads(text, parse_float=Decimal) == properties
    else:
        assert outcome["error"]["code"] == usage.INVALID_EVENT
        assert outcome["error"]["message"].startswith("properties: must")


@pytest.mark.parametrize(
    ("member", "written"),
    [
        (12345, "12345"),
        (2.5, "2.5"),
        (Decimal("12345"), "12345"),
        (Decimal("1E+2"), "100"),
        (Decimal("12.5"), "12.5"),
        (Decimal("0.125"), "0.125"),
        (Decimal("-0.5"), "-0.5"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
    ],
)
@pytest.mark.parametrize("excess", [0, 1])
def test_properties_size_counts_each_kind_of_member(member, written, excess):
    """Exactly MAX_BYTES, numbers written as PostgreSQL writes them, is kept,
    one byte more refused, whatever the kind of the last member."""
    pad = MAX_BYTES + excess - len('{"k":"","n":}') - len(written)
    properties = {"k": "x" * pad, "n": member}
    outcome = usage.validate_event(event(properties=properties))
    if excess:
        assert outcome["error"]["message"] == (
            f"properties: must be at most {MAX_BYTES} bytes as compact UTF-8 JSON"
        )
    else:
        assert json.loads(outcome.properties, parse_float=Decimal) == properties


def test_properties_filled_by_their_first_member_refuse_the_next():
    # {"k":"x…","z":1}: the brackets, the comma and "k" make exactly MAX_BYTES.
    properties = {"k": "x" * (MAX_BYTES - 9), "z": 1}
    outcome = usage.validate_event(event(properties=properties))
    assert outcome["error"]["code"] == usage.INVALID_EVENT
    assert "properties: must be at most" in outcome["error"]["message"]


def test_huge_properties_are_refused_without_reading_them_whole():
    # 5 MiB of small members: the walk stops at the first 16 KiB.
    raw = b'{"a": [' + b"{}," * (usage.MAX_BODY_BYTES // 3 - 10) + b"{}]}"
    properties = json.loads(raw)
    started = time.perf_counter()
    outcome = usage.validate_event(event(properties=properties))
    elapsed = time.perf_counter() - started
    assert outcome["error"]["code"] == usage.INVALID_EVENT
    assert elapsed < 0.05, f"{elapsed:.3f} s"


def test_deep_properties_are_refused_without_recursion():
    deep = json.loads("[" * 900 + "]" * 900)  # as deep as json.loads allows here
    outcome = usage.validate_event(event(properties={"d": deep}))
    assert "32 levels" in outcome["error"]["message"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01T12:00:00Z", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01t12:00:00z", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01T12:00:00+00:00", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01T12:00:00-00:00", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01T12:00:00.5Z", datetime(2025, 3, 1, 12, 0, 0, 500000, UTC)),
        ("2025-03-01T12:00:00.123456Z", datetime(2025, 3, 1, 12, 0, 0, 123456, UTC)),
        # Beyond microseconds: truncated, never rounded into the next second.
        ("2025-03-01T12:00:00.9999999Z", datetime(2025, 3, 1, 12, 0, 0, 999999, UTC)),
        ("2025-03-01T13:30:00+01:30", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01t17:30:00+05:30", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01t06:15:00-05:45", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-01T12:00:00.25z", datetime(2025, 3, 1, 12, 0, 0, 250000, UTC)),
        ("2025-03-01t12:00:00.000001+00:00", datetime(2025, 3, 1, 12, 0, 0, 1, UTC)),
        ("2025-03-01T07:00:00-05:00", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-03-02T11:59:00+23:59", datetime(2025, 3, 1, 12, tzinfo=UTC)),
        ("2025-01-01T00:30:00+01:00", datetime(2024, 12, 31, 23, 30, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
@BOTH_PATHS
def test_rfc3339_variants(validate, text, expected):
    timestamp = validate(event(timestamp=text)).timestamp
    assert timestamp == expected
    assert timestamp.utcoffset() == timedelta(0)


@BOTH_PATHS
@pytest.mark.parametrize(
    "timestamp",
    ["2025-03-01T17:30:00+05:30", "2025-03-01T12:00:00Z", "2025-03-01t12:00:00z"],
)
def test_timestamps_are_utc_whatever_the_local_time_zone(
    validate, timestamp, monkeypatch
):
    monkeypatch.setenv("TZ", "IST-05:30")  # POSIX form: 5:30 ahead of UTC
    time.tzset()
    try:
        outcome = validate(event(timestamp=timestamp))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert outcome.timestamp == datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert outcome.timestamp.tzinfo == UTC


def test_client_text_in_messages_is_quoted_and_cut_at_64_characters():
    assert usage.shown("a" * 64) == repr("a" * 64)
    assert usage.shown("a" * 65) == repr("a" * 64 + "…")
    assert usage.shown("ab", limit=1) == repr("a…")
    assert usage.shown("x\ud800\x00y") == repr("x\ufffd\ufffdy")


def test_type_names_as_the_client_wrote_them():
    names = [usage.json_type_name(v) for v in (None, True, 1, 1.5, "", [], {})]
    assert names == [
        "null",
        "a boolean",
        "a number",
        "a number",
        "a string",
        "an array",
        "an object",
    ]
    # JSON numbers with a fraction or exponent are read as Decimal.
    assert usage.json_type_name(Decimal("1.5")) == "a number"
    # Not a JSON type: Python callers get the class name.
    assert usage.json_type_name(b"") == "bytes"
    assert usage.validate_event(("evt",))["error"]["message"] == (
        "expected an object, not tuple"
    )


def _without(member, name):
    return {other: value for other, value in member.items() if other != name}


def _broken_errors(error):
    """Error members a published schema must refuse, made from a valid one."""
    yield "x"
    yield _without(error, "message")
    yield _without(error, "code")
    yield {**error, "code": "no_such_code"}
    yield {**error, "message": 5}
    yield {**error, "extra": 1}


def _broken_answers(answer, key, required):
    """Answers a published schema must refuse, made from a valid one whose
    first result carries an error."""
    yield {**answer, "extra": 1}
    yield {**answer, "status": "ok" if answer["status"] == "error" else "error"}
    for name in required:
        yield _without(answer, name)
    for name, value in answer.items():
        if type(value) is int:
            yield from ({**answer, name: bad} for bad in (-1, 1.5, "1"))
    yield {**answer, "results": answer["results"][0]}
    result = answer["results"][0]
    broken_results = [
        "x",
        _without(result, key),
        _without(result, "status"),
        {**result, key: 5},
        {**result, "status": "no_such_status"},
        {**result, "extra": 1},
        *({**result, "error": error} for error in _broken_errors(result["error"])),
    ]
    for broken in broken_results:
        yield {**answer, "results": [broken]}
    if "error" in answer:
        for error in _broken_errors(answer["error"]):
            yield {**answer, "error": error}


_OK_REQUIRED = ("status", "results")
_ERROR_REQUIRED = ("status", "error", "results")


@pytest.mark.parametrize(
    ("schema", "answer", "required"),
    [
        (
            usage.RESPONSE_SCHEMA,
            usage.build_response(
                [
                    usage.rejected("a", usage.UNKNOWN_METRIC, "no metric"),
                    usage.result("b", usage.ACCEPTED),
                ]
            ).body,
            (*_OK_REQUIRED, "accepted", "duplicates", "conflicts", "rejected"),
        ),
        (
            usage.ERROR_SCHEMA,
            usage.build_response(
                [usage.rejected("a", usage.UNKNOWN_METRIC, "no metric")]
            ).body,
            _ERROR_REQUIRED,
        ),
        (
            usage.CANCEL_RESPONSE_SCHEMA,
            usage.build_cancel_response(
                [
                    usage.rejected("a", usage.PERIOD_CLOSED, "closed"),
                    usage.result("b", usage.CANCELLED),
                ]
            ).body,
            (*_OK_REQUIRED, "cancelled", "duplicates", "rejected"),
        ),
        (
            usage.CANCEL_ERROR_SCHEMA,
            usage.build_cancel_response(
                [usage.rejected("a", usage.UNKNOWN_EVENT, "no event")]
            ).body,
            _ERROR_REQUIRED,
        ),
    ],
    ids=["usage", "usage error", "cancel", "cancel error"],
)
def test_published_answer_schemas_refuse_what_the_api_never_sends(
    schema, answer, required
):
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(answer)
    validator.validate(
        {**answer, "results": [{**answer["results"][0], "idempotency_key": None}]}
    )
    for broken in _broken_answers(answer, "idempotency_key", required):
        assert not validator.is_valid(broken), broken


# --- Window and summary ----------------------------------------------------------


def test_window_edges():
    start = datetime(2025, 3, 1, tzinfo=UTC)
    now = datetime(2025, 3, 10, 12, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    in_future = now + usage.FUTURE_TOLERANCE
    assert usage.window_refusal(start, start, now) is None
    assert "open period start" in usage.window_refusal(start - tick, start, now)
    assert usage.window_refusal(in_future, start, now) is None
    assert "5 minutes" in usage.window_refusal(in_future + tick, start, now)


def test_window_refusals_in_full():
    start = datetime(2025, 3, 1, tzinfo=UTC)
    now = datetime(2025, 3, 10, 12, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    end = datetime(2025, 3, 20, tzinfo=UTC)
    assert usage.window_refusal(end, start, now, end=end) == (
        "timestamp must be before the subscription's end (2025-03-20T00:00:00+00:00)"
    )
    assert usage.window_refusal(now + usage.FUTURE_TOLERANCE + tick, start, now) == (
        "timestamp must be at most 5 minutes from now"
    )
    closed = (
        "timestamp must not be before the open period start"
        " (2025-03-01T00:00:00+00:00): earlier periods are closed"
    )
    assert usage.window_refusal(start - tick, start, now) == closed
    # Late usage back to the open period start only: the period start is the limit.
    assert usage.window_refusal(start - tick, start, now, late_start=start) == closed
    late = datetime(2025, 2, 1, tzinfo=UTC)
    assert usage.window_refusal(late - tick, start, now, late_start=late) == (
        "timestamp must not be before 2025-02-01T00:00:00+00:00: late usage is"
        " accepted back to the subscription start and the service's late usage days"
    )


def test_window_after_the_period_end_is_open_until_the_end_date():
    start = datetime(2025, 3, 1, tzinfo=UTC)
    now = datetime(2025, 4, 1, 0, 30, tzinfo=UTC)  # the period ended, not closed
    end = datetime(2025, 4, 1, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    assert usage.window_refusal(end - tick, start, now) is None
    assert usage.window_refusal(end - tick, start, now, end=end) is None
    assert "end" in usage.window_refusal(end, start, now, end=end)
    assert "end" in usage.window_refusal(now, start, now, end=end)


def test_window_for_late_usage_under_adjust():
    subscription_start = datetime(2025, 1, 15, tzinfo=UTC)
    period_start = datetime(2025, 3, 1, tzinfo=UTC)
    now = datetime(2025, 3, 10, 12, tzinfo=UTC)
    tick = timedelta(microseconds=1)
    late = usage.late_usage_start(subscription_start, now, 35)
    assert late == now - timedelta(days=35)  # counted from now, not the period
    assert usage.window_refusal(late, period_start, now, late_start=late) is None
    assert "late usage" in usage.window_refusal(
        late - tick, period_start, now, late_start=late
    )
    # Never before the subscription start.
    late = usage.late_usage_start(subscription_start, now, 365)
    assert late == subscription_start
    assert usage.window_refusal(late, period_start, now, late_start=late) is None
    assert usage.window_refusal(late - tick, period_start, now, late_start=late)
    # Late days shorter than the open period's age: the open period still counts.
    late = usage.late_usage_start(subscription_start, now, 0)
    assert (
        usage.window_refusal(period_start, period_start, now, late_start=late) is None
    )
    assert "open period start" in usage.window_refusal(
        period_start - tick, period_start, now, late_start=late
    )


def test_retention_start_is_now_minus_the_days_or_none():
    now = datetime(2025, 3, 10, 12, 30, tzinfo=UTC)
    assert usage.retention_start(now, 0) is None
    assert usage.retention_start(now, 1) == datetime(2025, 3, 9, 12, 30, tzinfo=UTC)
    assert usage.retention_start(now, 400) == datetime(2024, 2, 4, 12, 30, tzinfo=UTC)


def test_build_response_counts_in_request_order():
    results = [
        usage.result("a", usage.ACCEPTED),
        usage.rejected("b", usage.UNKNOWN_METRIC, "no metric x"),
        usage.result("c", usage.DUPLICATE),
        usage.conflict("d", "different quantity"),
        usage.result("e", usage.ACCEPTED),
    ]
    status, reply_body = usage.build_response(results)
    assert status == 200
    assert reply_body == {
        "status": "ok",
        "accepted": 2,
        "duplicates": 1,
        "conflicts": 1,
        "rejected": 1,
        "results": results,
    }
    assert results[3]["error"]["code"] == usage.CONFLICT


def test_build_response_duplicates_only_is_ok():
    assert usage.build_response([usage.result("a", usage.DUPLICATE)]).http_status == 200


def test_build_response_nothing_accepted():
    results = [
        usage.conflict("a", "different timestamp"),
        usage.rejected(None, usage.INVALID_EVENT, "bad"),
    ]
    status, reply_body = usage.build_response(results)
    assert status == 400
    assert reply_body["status"] == "error"
    assert reply_body["error"]["code"] == usage.ALL_REJECTED
    assert (
        reply_body["accepted"],
        reply_body["conflicts"],
        reply_body["rejected"],
    ) == (
        0,
        1,
        1,
    )
    assert reply_body["results"] == results


# --- Properties ------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_validate_event_never_raises(item):
    outcome = usage.validate_event(item)
    assert isinstance(outcome, (usage.UsageEvent, dict))


@given(
    st.dictionaries(
        st.sampled_from([*sorted(GOOD_EVENT), "extra"]), json_values, max_size=8
    )
)
def test_validate_event_never_raises_on_event_like_objects(item):
    outcome = usage.validate_event({**GOOD_EVENT, **item})
    if isinstance(outcome, dict):
        assert outcome["error"]["code"] == usage.INVALID_EVENT


@given(st.binary(max_size=200), st.sampled_from([JSON, None, "text/plain"]))
def test_parse_request_never_raises(raw, content_type):
    parsed = usage.parse_request(raw, content_type)
    assert isinstance(parsed, (usage.Reply, list))


@given(
    st.decimals(min_value=0, max_value=10**15, places=12)
    | st.integers(min_value=0, max_value=10**15),
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.timezones(),
    ),
)
def test_valid_events_round_trip(quantity, moment):
    raw = json.dumps(event(quantity=0, timestamp=moment.isoformat())).replace(
        '"quantity": 0', f'"quantity": {quantity}'
    )
    (item,) = usage.parse_request(raw.encode(), JSON)
    outcome = usage.validate_event(item)
    if moment.utcoffset() % timedelta(minutes=1):
        # isoformat() then writes offset seconds, which RFC 3339 does not have.
        assert isinstance(outcome, dict)
        return
    assert outcome.quantity == quantity
    # Via astimezone: PEP 495 makes DST-gap times compare unequal across zones.
    assert outcome.timestamp == moment.astimezone(UTC)


# --- Schema mirrors the validation -----------------------------------------------

# Rules a JSON Schema cannot state: calendar validity, offset ranges, leap seconds,
# lone surrogates, NUL inside properties, NaN. Plus one quirk of Python's re that
# jsonschema uses: "$" also matches before a final newline (ECMA-262's does not).
SEMANTIC_ONLY = {
    "key lone surrogate",
    "quantity nan",
    "quantity 5e-324",
    "quantity float 5e-324",
    "quantity 13 places",
    "quantity 30 places",
    "quantity float 1/3",
    "properties 33 objects",
    "properties 33 with arrays",
    "properties 16 KiB + 1",
    "properties 1e999999",
    "properties not JSON",
    "timestamp newline",
    "timestamp feb 30",
    "timestamp hour 24",
    "timestamp month 13",
    "timestamp leap second",
    "timestamp offset 24h",
    "timestamp offset :60",
    "timestamp year 0",
    "timestamp before min",
    "timestamp after max",
    "properties NUL value",
    "properties NUL key",
    "properties surrogate",
    "properties inf",
}


def test_event_schema_rejects_what_validation_rejects():
    validator = jsonschema.Draft202012Validator(usage.EVENT_SCHEMA)
    assert validator.is_valid(GOOD_EVENT)
    assert validator.is_valid(event(quantity=..., properties=...))
    schema_accepts = {
        name for name, item, _ in INVALID_EVENTS if validator.is_valid(item)
    }
    assert schema_accepts == SEMANTIC_ONLY


def test_event_schema_lists_every_field():
    assert set(usage.EVENT_SCHEMA["properties"]) == {
        f.name for f in usage.EVENT_FIELDS.fields
    }
    assert usage.EVENT_SCHEMA["required"] == [
        "idempotency_key",
        "subscription",
        "customer",
        "metric",
        "timestamp",
    ]
    assert usage.EVENT_SCHEMA["properties"]["quantity"]["default"] == 1
    assert usage.EVENT_SCHEMA["additionalProperties"] is False
    json.dumps(usage.REQUEST_SCHEMA, allow_nan=False)


def test_schemas_document_only_what_they_are_given():
    record = usage.Record((usage.Field("a", usage.Text()),))
    assert record.schema("A") == {
        "title": "A",
        "type": "object",
        "required": ["a"],
        "properties": {
            "a": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": usage.NO_CONTROL_PATTERN,
            }
        },
        "additionalProperties": False,
    }
    assert usage.RESULT_SCHEMA["properties"]["status"] == {
        "type": "string",
        "enum": ["accepted", "duplicate", "rejected", "conflict"],
    }


# --- The plain-event fast path agrees with the field specs ------------------------

_text_values = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        ["evt-1", "sub_42", "", "a" * 255, "a" * 256, "x\u0000y", "\u00e9"]
    ),
    st.integers(),
    st.none(),
    st.booleans(),
)
_timestamps = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).flatmap(
        lambda moment: st.sampled_from(
            [
                moment.isoformat() + "Z",
                moment.isoformat() + "+05:30",
                moment.isoformat(timespec="milliseconds") + "-23:59",
                moment.isoformat(timespec="seconds") + "z",
                moment.isoformat(timespec="seconds"),
                moment.isoformat(timespec="seconds").replace("T", "t") + "Z",
            ]
        )
    ),
    st.sampled_from(
        [
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00.1234567Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-01:00",
        ]
    ),
    st.integers(),
)
_quantities = st.one_of(
    st.integers(min_value=-5, max_value=10**16),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=0, max_value=10**15 + 1, places=14),
    st.sampled_from(
        [0, 1, 10**15, 10**15 + 1, 1e15, -0.0, True, None, "3"]
        + [Decimal(text) for text in ("-0", "-0.0", "1E-12", "5E-324", "1.5000")]
        + [Decimal(text) for text in ("1E+15", "1E+16", "0E-20", "sNaN")]
    ),
)
_properties = st.one_of(
    st.dictionaries(
        st.text(max_size=5),
        st.one_of(st.integers(), st.text(max_size=5), st.decimals(allow_nan=False)),
    ),
    st.sampled_from(
        [
            {"k": "a\u0000"},
            {"k": float("nan")},
            {"k": Decimal("1e999999")},
            nested(32),
            nested(33),
            sized(MAX_BYTES),
            sized(MAX_BYTES + 1),
            [],
            "x",
            None,
        ]
    ),
)


def _boundary(quantity=1, timestamp="2025-03-01T12:00:00Z", **changes):
    """Arguments of one always-run example of the property below."""
    return {
        "key": "evt-1",
        "subscription": "sub_1",
        "quantity": quantity,
        "timestamp": timestamp,
        "properties": {},
        "omit": set(),
        "extra": False,
        **changes,
    }


# Boundaries that random drawing would only hit by chance: the quantity bounds,
# fractions, offsets with minutes, lower-case separators, fractional seconds.
_BOUNDARIES = [
    _boundary(quantity=0),
    _boundary(quantity=0.0),
    _boundary(quantity=-0.0),
    _boundary(quantity=10**15),
    _boundary(quantity=1e15),
    _boundary(quantity=10**15 + 1),
    _boundary(quantity=-1),
    _boundary(quantity=0.1),
    _boundary(quantity=2.675),
    _boundary(quantity=Decimal("0.000000000001")),
    _boundary(quantity=Decimal("0.0000000000001")),
    _boundary(quantity=Decimal("1.0000000000010")),
    _boundary(quantity=Decimal("1000000000000000.000000000000")),
    _boundary(quantity=Decimal("-0")),
    _boundary(timestamp="2025-03-01T17:30:00+05:30"),
    _boundary(timestamp="2025-03-01t17:30:00+05:30"),
    _boundary(timestamp="2025-03-01T06:15:00.123-05:45"),
    _boundary(timestamp="2025-03-01t06:15:00.123456-05:45"),
    _boundary(timestamp="2025-03-01t12:00:00z"),
    _boundary(timestamp="2025-03-01T12:00:00.5Z"),
    _boundary(timestamp="2025-03-01T12:00:00+23:59"),
    _boundary(timestamp="2025-03-01T12:00:00-00:01"),
    _boundary(omit={"quantity", "properties"}),
    _boundary(key="k" * 255),
    _boundary(key="k" * 256),
    _boundary(properties={"a": [1.5, {"b": "c"}]}),
]


def _with_boundaries(test):
    for arguments in reversed(_BOUNDARIES):
        test = example(**arguments)(test)
    return test


@settings(max_examples=400, deadline=None)
@_with_boundaries
@given(
    key=_text_values,
    subscription=_text_values,
    quantity=_quantities,
    timestamp=_timestamps,
    properties=_properties,
    omit=st.sets(st.sampled_from(["quantity", "properties", "customer"])),
    extra=st.booleans(),
)
def test_plain_event_path_agrees_with_the_field_specs(  # noqa: PLR0917
    key, subscription, quantity, timestamp, properties, omit, extra
):
    item = {
        "idempotency_key": key,
        "subscription": subscription,
        "customer": "cus_1",
        "metric": "api_calls",
        "quantity": quantity,
        "timestamp": timestamp,
        "properties": properties,
    }
    for name in omit:
        del item[name]
    if extra:
        item["quantiy"] = 1
    fast = usage._plain_event(item)
    if fast is None:
        # Declined: the specs decide alone. Where only the case of the "T" and
        # "Z" kept the event off the fast path, both must still read it alike.
        specs = spec_path(item)
        if isinstance(specs, usage.UsageEvent):
            upper = usage._plain_event({**item, "timestamp": item["timestamp"].upper()})
            assert upper in (None, specs)
        return
    try:
        expected = usage.UsageEvent(**usage.EVENT_FIELDS.validate(item))
    except usage.FieldError as error:
        pytest.fail(f"fast path accepted what the specs refuse: {error}")
    assert fast == expected
    assert fast.timestamp.tzinfo == timezone.utc


@pytest.mark.parametrize(
    "item",
    [
        GOOD_EVENT,
        event(quantity=..., properties=...),
        event(quantity=0),
        event(quantity=10**15),
        event(quantity=Decimal("0.000000000001")),
        event(quantity=Decimal("1000000000000000.000000000000")),
        event(timestamp="2025-03-01T17:30:00+05:30"),
        event(timestamp="2025-03-01T12:00:00.123-23:59"),
        event(timestamp="2025-03-01T12:00:00.123456Z"),
        event(idempotency_key="k" * 255, subscription="s" * 255),
        event(customer="c" * 255, metric="m" * 255),
    ],
)
def test_common_events_take_the_fast_path(item):
    """The fast path keeps validation a small part of a 1000-event request
    only if the events apps send take it: these must, read as the specs read
    them."""
    fast = usage._plain_event(item)
    assert fast is not None
    assert fast == spec_path(item)


# --- POST /usage/cancel ----------------------------------------------------------

CANCEL_ITEM = {"idempotency_key": "evt-1", "subscription": "sub_1", "metric": "m"}


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (CANCEL_ITEM, usage.INVALID_PAYLOAD),  # a batch only
        ([CANCEL_ITEM], usage.INVALID_PAYLOAD),
        ({"events": []}, usage.INVALID_PAYLOAD),
        ({"events": CANCEL_ITEM}, usage.INVALID_PAYLOAD),
        ({"events": [CANCEL_ITEM], "all": True}, usage.INVALID_PAYLOAD),
        ({"events": [CANCEL_ITEM] * 1001}, usage.TOO_MANY_EVENTS),
    ],
)
def test_cancel_envelope_errors(payload, code):
    reply = usage.parse_cancel_request(body(payload), JSON)
    assert reply.http_status == 400
    assert reply.body["error"]["code"] == code


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [(body({"events": [CANCEL_ITEM]}), "text/plain"), (b"{", JSON)],
)
def test_cancel_shares_the_envelope_errors_of_usage(raw, content_type):
    reply = usage.parse_cancel_request(raw, content_type)
    assert reply == usage.parse_request(raw, content_type)


@pytest.mark.parametrize(
    "payload", [CANCEL_ITEM, {"event": [CANCEL_ITEM]}, [CANCEL_ITEM], {}]
)
def test_cancel_body_not_a_batch_in_full(payload):
    assert usage.parse_cancel_request(body(payload), JSON).body["error"] == {
        "code": usage.INVALID_PAYLOAD,
        "message": 'the body must be {"events": [...]}, each event naming'
        " idempotency_key, subscription and metric",
    }


def test_cancel_batch_of_1000_is_read():
    items = usage.parse_cancel_request(body({"events": [CANCEL_ITEM] * 1000}), JSON)
    assert items == [CANCEL_ITEM] * 1000
    assert usage.validate_cancel(CANCEL_ITEM) == usage.CancelEvent(
        "evt-1", "sub_1", "m"
    )


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({**CANCEL_ITEM, "idempotency_key": ""}, "idempotency_key"),
        ({**CANCEL_ITEM, "subscription": None}, "subscription"),
        ({"idempotency_key": "evt-1", "subscription": "sub_1"}, "metric: is required"),
        ({**CANCEL_ITEM, "quantity": 1}, "unknown field 'quantity'"),
        ("evt-1", "expected an object"),
    ],
)
def test_invalid_cancellations(item, expected):
    outcome = usage.validate_cancel(item)
    assert outcome["status"] == usage.REJECTED
    assert outcome["error"]["code"] == usage.INVALID_EVENT
    assert expected in outcome["error"]["message"]


def test_invalid_cancellation_echoes_its_key():
    assert usage.validate_cancel({**CANCEL_ITEM, "metric": 7}) == {
        "idempotency_key": "evt-1",
        "status": usage.REJECTED,
        "error": {
            "code": usage.INVALID_EVENT,
            "message": "metric: must be a string, not a number",
        },
    }


def test_build_cancel_response():
    cancelled = usage.result("a", usage.CANCELLED)
    duplicate = usage.result("b", usage.DUPLICATE)
    closed = usage.rejected("c", usage.PERIOD_CLOSED, "closed")
    status, reply_body = usage.build_cancel_response([cancelled, closed, duplicate])
    assert status == 200
    assert reply_body == {
        "status": "ok",
        "cancelled": 1,
        "duplicates": 1,
        "rejected": 1,
        "results": [cancelled, closed, duplicate],
    }
    assert usage.build_cancel_response([duplicate]).http_status == 200
    status, reply_body = usage.build_cancel_response([closed])
    assert status == 400
    assert reply_body["error"] == {
        "code": usage.ALL_REJECTED,
        "message": "no event was cancelled",
    }
    assert (reply_body["cancelled"], reply_body["rejected"]) == (0, 1)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"b": 1, "a": 2, "a": 3}', "invalid JSON: duplicate member 'a'"),
        (b'{"quantity": NaN}', "invalid JSON: NaN is not valid JSON"),
        (
            b'{"quantity": 1e99999999999999999999}',
            "invalid JSON: number '1e99999999999999999999' is out of range",
        ),
        (
            b"[]",
            'the body must be an event object or {"events": [...]}, not an array',
        ),
        (b"[" * 100_000, "invalid JSON: the body is nested too deeply"),
        (
            body({"events": [GOOD_EVENT], "b": 1, "a": 2}),
            "unexpected member next to events: 'a', 'b'",
        ),
        (b'{"events": []}', "events must be a non-empty array of event objects"),
    ],
)
def test_envelope_error_messages_in_full(raw, message):
    assert usage.parse_request(raw, JSON).body["error"]["message"] == message


def test_accepted_result_shape():
    assert usage.result("a", usage.ACCEPTED) == {
        "idempotency_key": "a",
        "status": usage.ACCEPTED,
    }


def test_conflict_result_shape():
    assert usage.conflict("d", "different quantity") == {
        "idempotency_key": "d",
        "status": usage.CONFLICT,
        "error": {"code": usage.CONFLICT, "message": "different quantity"},
    }
