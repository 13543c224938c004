"""Tests of the OpenAPI document served at GET /usage/openapi.json (core.openapi)."""

import json
from datetime import datetime, timezone

import jsonschema
import openapi_spec_validator as validator
import pytest

from core import openapi, reconciliation, usage

ERROR_STATUSES = {"400", "401", "405", "413", "415"}
ROUTES = ("/usage", "/usage/cancel", "/reconciliation")
JSON = "application/json"


@pytest.fixture
def document():
    return openapi.build_openapi()


def walk(node):
    """Yield every dict inside a JSON-like structure."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def resolve(document, ref):
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def media_examples(document):
    """(schema, example value) of every example of both routes."""
    for route in ROUTES:
        operation = document["paths"][route]["post"]
        parts = [operation["requestBody"], *operation["responses"].values()]
        for part in parts:
            media = part["content"]["application/json"]
            schema = resolve(document, media["schema"]["$ref"])
            for example in media.get("examples", {}).values():
                yield schema, example["value"]


def test_document_shape(document):
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"]
    assert document["servers"] == [{"url": "/"}], "relative: no Host reflected"
    assert document["security"] == [{"bearerAuth": []}]
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for route in ROUTES:
        responses = document["paths"][route]["post"]["responses"]
        assert set(responses) == {"200", *ERROR_STATUSES}


def test_every_ref_resolves(document):
    refs = [node["$ref"] for node in walk(document) if "$ref" in node]
    assert refs
    for ref in refs:
        assert isinstance(resolve(document, ref), dict)


def test_document_is_strict_json(document):
    text = json.dumps(document, allow_nan=False)
    assert json.loads(text) == document


def test_each_build_is_a_fresh_copy():
    first = openapi.build_openapi()
    first["components"]["schemas"]["UsageEvent"]["required"].append("x")
    assert (
        "x"
        not in openapi.build_openapi()["components"]["schemas"]["UsageEvent"][
            "required"
        ]
    )
    assert "x" not in usage.EVENT_SCHEMA["required"]


def test_schemas_are_the_enforced_ones(document):
    schemas = document["components"]["schemas"]
    assert schemas["UsageEvent"] == usage.EVENT_SCHEMA
    assert schemas["UsageRequest"] == usage.REQUEST_SCHEMA
    assert schemas["ReconciliationRequest"] == reconciliation.REQUEST_SCHEMA
    assert schemas["CancelRequest"] == usage.CANCEL_REQUEST_SCHEMA
    cancel_result = schemas["CancelResponse"]["properties"]["results"]["items"]
    assert cancel_result["properties"]["status"]["enum"] == [
        "cancelled",
        "duplicate",
        "rejected",
    ]
    assert cancel_result["properties"]["error"]["properties"]["code"]["enum"] == [
        "invalid_event",
        "unknown_event",
        "period_closed",
    ]
    assert schemas["CancelError"]["properties"]["error"]["properties"]["code"][
        "enum"
    ] == list(usage.ENVELOPE_CODES)
    assert schemas["UsageError"]["properties"]["error"]["properties"]["code"][
        "enum"
    ] == list(usage.ENVELOPE_CODES)


# Every keyword of JSON Schema 2020-12 and the ones OpenAPI 3.1 adds. A keyword
# outside these (a typo such as "minimun") is ignored by validators: the rule
# it was meant to state silently vanishes from the contract.
SCHEMA_KEYWORDS = {
    *("$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor"),
    *("$vocabulary", "$comment", "$defs"),
    *("prefixItems", "items", "contains", "additionalProperties", "properties"),
    *("patternProperties", "dependentSchemas", "propertyNames", "if", "then"),
    *("else", "allOf", "anyOf", "oneOf", "not"),
    *("unevaluatedItems", "unevaluatedProperties"),
    *("type", "const", "enum", "multipleOf", "maximum", "exclusiveMaximum"),
    *("minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern"),
    *("maxItems", "minItems", "uniqueItems", "maxContains", "minContains"),
    *("maxProperties", "minProperties", "required", "dependentRequired"),
    *("title", "description", "default", "deprecated", "readOnly", "writeOnly"),
    *("examples", "format", "contentEncoding", "contentMediaType"),
    *("contentSchema", "discriminator", "xml", "externalDocs", "example"),
}


# The formats JSON Schema 2020-12 defines and the ones OpenAPI 3.1 adds: clients
# and validators ignore any other.
SCHEMA_FORMATS = {
    *("date-time", "date", "time", "duration", "email", "idn-email", "hostname"),
    *("idn-hostname", "ipv4", "ipv6", "uri", "uri-reference", "iri"),
    *("iri-reference", "uuid", "uri-template", "json-pointer"),
    *("relative-json-pointer", "regex", "int32", "int64", "float", "double"),
    "password",
}


def subschemas(schema):
    """The schemas directly inside a schema."""
    for keyword in ("properties", "patternProperties", "$defs"):
        yield from schema.get(keyword, {}).values()
    for keyword in ("items", "additionalProperties", "not", "contains"):
        if isinstance(schema.get(keyword), dict):
            yield schema[keyword]
    for keyword in ("allOf", "anyOf", "oneOf", "prefixItems"):
        yield from schema.get(keyword, [])


def test_published_schemas_use_only_json_schema_keywords(document):
    pending = list(document["components"]["schemas"].items())
    seen = 0
    while pending:
        where, schema = pending.pop()
        assert set(schema) <= SCHEMA_KEYWORDS, (where, set(schema) - SCHEMA_KEYWORDS)
        assert schema.get("format", "date-time") in SCHEMA_FORMATS, where
        pending.extend((where, sub) for sub in subschemas(schema))
        seen += 1
    assert seen > 100


def test_request_examples_pass_the_real_validation(document):
    usage_body = document["paths"]["/usage"]["post"]["requestBody"]
    for example in usage_body["content"]["application/json"]["examples"].values():
        raw = json.dumps(example["value"]).encode()
        items = usage.parse_request(raw, "application/json")
        assert all(
            isinstance(usage.validate_event(item), usage.UsageEvent) for item in items
        )
    cancel_body = document["paths"]["/usage/cancel"]["post"]["requestBody"]
    for example in cancel_body["content"]["application/json"]["examples"].values():
        raw = json.dumps(example["value"]).encode()
        items = usage.parse_cancel_request(raw, "application/json")
        assert all(
            isinstance(usage.validate_cancel(item), usage.CancelEvent) for item in items
        )
    rec_body = document["paths"]["/reconciliation"]["post"]["requestBody"]
    for example in rec_body["content"]["application/json"]["examples"].values():
        raw = json.dumps(example["value"]).encode()
        parsed = reconciliation.parse_api_request(raw, "application/json")
        assert all(
            isinstance(item, reconciliation.ExternalAmount) for item in parsed.items
        )


def test_examples_dated_now_are_in_the_window_of_now():
    """Dated at a moment, the request examples are of that moment (in their own
    UTC offsets) and of its month, and still valid."""
    now = datetime(2026, 12, 1, 0, 30, tzinfo=timezone.utc)
    dated = openapi.build_openapi(now=now)
    usage_body = dated["paths"]["/usage"]["post"]["requestBody"]
    stamps = []
    for example in usage_body["content"]["application/json"]["examples"].values():
        raw = json.dumps(example["value"]).encode()
        for item in usage.parse_request(raw, "application/json"):
            stamps.append(item["timestamp"])
            assert usage.validate_event(item).timestamp == now
    assert "2026-12-01T00:30:00Z" in stamps
    assert "2026-12-01T01:30:00+01:00" in stamps
    rec_post = dated["paths"]["/reconciliation"]["post"]
    rec_examples = [
        *rec_post["requestBody"]["content"]["application/json"]["examples"].values(),
        *rec_post["responses"]["200"]["content"]["application/json"][
            "examples"
        ].values(),
    ]
    assert {example["value"]["period"] for example in rec_examples} == {"2026-12"}


def test_examples_match_their_schemas(document):
    for schema, value in media_examples(document):
        jsonschema.Draft202012Validator(schema).validate(value)


def test_openapi_spec_validator_accepts_the_document(document):
    validator.validate(document)


def _example(document, route, status, name=None):
    operation = document["paths"][route]["post"]
    part = (
        operation["requestBody"] if status is None else operation["responses"][status]
    )
    examples = part["content"]["application/json"]["examples"]
    return (examples[name] if name else next(iter(examples.values())))["value"]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("401", usage.UNAUTHENTICATED),
        ("405", usage.METHOD_NOT_ALLOWED),
        ("413", usage.PAYLOAD_TOO_LARGE),
        ("415", usage.UNSUPPORTED_MEDIA_TYPE),
    ],
)
def test_each_error_status_shows_its_own_code(document, status, code):
    for route in ROUTES:
        response = document["paths"][route]["post"]["responses"][status]
        assert response["description"]
        value = _example(document, route, status, code)
        assert value["status"] == "error"
        assert value["error"]["code"] == code
        assert value["results"] == []


def test_error_examples_are_what_the_api_answers(document):
    too_large = b" " * (usage.MAX_BODY_BYTES + 1)
    for route, parse in (
        ("/usage", usage.parse_request),
        ("/reconciliation", reconciliation.parse_api_request),
    ):
        assert _example(document, route, "413") == parse(too_large, JSON).body
        assert _example(document, route, "415") == parse(b"{}", "text/plain").body
    assert _example(document, "/usage", "400", "invalid_json") == (
        usage.parse_request(b'{"quantity":}', JSON).body
    )
    event = {**_example(document, "/usage", None, "single"), "quantity": -1}
    assert _example(document, "/usage", "400", "all_rejected") == (
        usage.build_response([usage.validate_event(event)]).body
    )


def test_bad_period_example_is_what_the_api_answers(document):
    example = _example(document, "/reconciliation", "400", "invalid_period")
    sent = {**_example(document, "/reconciliation", None, "month")}
    sent["period"] = openapi.BAD_PERIOD_EXAMPLE
    answer = reconciliation.parse_api_request(json.dumps(sent).encode(), JSON)
    assert example == answer.body
    assert example["error"] == {
        "code": "invalid_period",
        "message": "period: must be a month written YYYY-MM, from 0001-01 to"
        " 9998-12, not '2025-13'",
    }


def test_success_examples_count_their_results(document):
    usage_ok = _example(document, "/usage", "200")
    assert (usage_ok["status"], usage_ok["accepted"], usage_ok["rejected"]) == (
        "ok",
        1,
        1,
    )
    rec_ok = _example(document, "/reconciliation", "200")
    assert (rec_ok["status"], rec_ok["period"], rec_ok["accepted"]) == (
        "ok",
        "2025-02",
        1,
    )
    assert [item["status"] for item in rec_ok["results"]] == ["accepted", "rejected"]


def test_operations_are_named_and_need_a_body(document):
    operations = [document["paths"][route]["post"] for route in ROUTES]
    assert [op["operationId"] for op in operations] == [
        "postUsage",
        "cancelUsage",
        "postReconciliation",
    ]
    for operation in operations:
        assert operation["requestBody"]["required"] is True
        assert operation["summary"]
        assert operation["description"]
    batch = _example(document, "/usage", None, "batch")
    assert len(batch["events"]) == 2


def test_document_names_the_api_and_its_key(document):
    info = document["info"]
    assert (info["title"], info["version"]) == ("Fusion Billing API", "1.0.0")
    assert "snake_case code in error.code" in info["description"]
    assert "Odoo" in info["description"]
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert "Odoo API key, scope fusion_billing" in scheme["description"]
    bad_request = document["paths"]["/usage"]["post"]["responses"]["400"]
    assert bad_request["description"].startswith("Malformed body")
