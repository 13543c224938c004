"""OpenAPI 3.1 document of the service API, served at ``GET /usage/openapi.json``.

Built from the JSON Schemas that ``core.usage`` and ``core.reconciliation``
derive from their validating field specs, so the published contract is the
enforced one.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

from . import reconciliation, summary, usage

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: str, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": _ref(schema)}
    if examples:
        media["examples"] = {
            name: {"summary": summary, "value": value}
            for name, (summary, value) in examples.items()
        }
    return {"content": {"application/json": media}}


def _error(code: str, message: str) -> dict[str, Any]:
    return usage.error_response(code, message, 400).body


# Status, description, code and example message of the errors every route shares.
_COMMON_ERRORS = (
    (
        "401",
        "Missing, unknown, revoked or expired API key.",
        usage.UNAUTHENTICATED,
        "invalid or missing API key",
    ),
    ("405", "Only POST is allowed.", usage.METHOD_NOT_ALLOWED, "use POST"),
    (
        "413",
        f"Body larger than {usage.MAX_BODY_BYTES} bytes.",
        usage.PAYLOAD_TOO_LARGE,
        f"the body exceeds {usage.MAX_BODY_BYTES} bytes",
    ),
    (
        "415",
        "Body not sent as application/json.",
        usage.UNSUPPORTED_MEDIA_TYPE,
        "the body must be JSON sent as Content-Type: application/json (UTF-8)",
    ),
)


def _error_responses(schema: str, bad_request_examples: dict) -> dict[str, Any]:
    """The 400/401/405/413/415 answers of a POST route."""
    responses = {
        "400": {
            "description": "Malformed body, too many items, or nothing accepted.",
            **_json(schema, bad_request_examples),
        }
    }
    for status, description, code, message in _COMMON_ERRORS:
        responses[status] = {
            "description": description,
            **_json(schema, {code: (description, _error(code, message))}),
        }
    return responses


# The period of the invalid_period example: a 7-character string, so that its
# answer shows the rule of a month, not only a length.
BAD_PERIOD_EXAMPLE = "2025-13"

_EVENT_EXAMPLE = {
    "idempotency_key": "evt_01J9Z8Q4K7",
    "subscription": "sub_azure_pro",
    "customer": "cus_azure",
    "metric": "api_calls",
    "quantity": 250,
    "timestamp": "2025-03-14T09:26:53Z",
    "properties": {"region": "eu-west-1"},
}

_USAGE_POST = {
    "operationId": "postUsage",
    "summary": "Send metered usage events",
    "description": "One event, or a batch of up to"
    f" {usage.MAX_EVENTS}. Each event is validated and authorized on its own."
    " A replay of a stored key answers duplicate (or conflict when its quantity"
    " or timestamp differ), even after its period closed or the event was"
    " cancelled. Quantities are exact decimals: at most"
    f" {usage.QUANTITY_PLACES} decimal places and at most {usage.MAX_QUANTITY};"
    " a finer number is invalid, never rounded. properties: at most"
    f" {usage.MAX_PROPERTIES_DEPTH} levels and {usage.MAX_PROPERTIES_BYTES} bytes"
    " of compact JSON. Events before the open period are refused, unless the"
    " service bills late usage as adjustments (then back to its late usage"
    " days); events at or after the subscription's end date are refused.",
    "requestBody": {
        "required": True,
        **_json(
            "UsageRequest",
            {
                "single": ("One event", _EVENT_EXAMPLE),
                "batch": (
                    "A batch",
                    {
                        "events": [
                            _EVENT_EXAMPLE,
                            {
                                "idempotency_key": "evt_01J9Z8Q4K8",
                                "subscription": "sub_azure_pro",
                                "customer": "cus_azure",
                                "metric": "gpu_hours",
                                "quantity": 12.5,
                                "timestamp": "2025-03-14T10:26:53+01:00",
                            },
                        ]
                    },
                ),
            },
        ),
    },
    "responses": {
        "200": {
            "description": "At least one event accepted or a duplicate.",
            **_json(
                "UsageResponse",
                {
                    "mixed": (
                        "One accepted, one rejected",
                        usage.build_response(
                            [
                                usage.result("evt_01J9Z8Q4K7", usage.ACCEPTED),
                                usage.rejected(
                                    "evt_01J9Z8Q4K8",
                                    usage.UNKNOWN_METRIC,
                                    "no metric 'gpu_hours' in this service",
                                ),
                            ]
                        ).body,
                    )
                },
            ),
        },
        **_error_responses(
            "UsageError",
            {
                "invalid_json": (
                    "Unparsable body",
                    _error(
                        usage.INVALID_JSON,
                        "invalid JSON: Expecting value at line 1 column 13",
                    ),
                ),
                "all_rejected": (
                    "No event accepted",
                    usage.build_response(
                        [
                            usage.rejected(
                                "evt_01J9Z8Q4K7",
                                usage.INVALID_EVENT,
                                "quantity: must be at least 0",
                            )
                        ]
                    ).body,
                ),
            },
        ),
    },
}

_CANCEL_POST = {
    "operationId": "cancelUsage",
    "summary": "Cancel usage events sent earlier",
    "description": f"A batch of up to {usage.MAX_EVENTS} events, each named by"
    " its idempotency key, subscription and metric. A cancelled event stays"
    " stored for audit, is never billed, and its key stays used (sending the"
    " event again answers duplicate). An event of the open period is"
    " cancelled; one of a closed period is period_closed, unless the service"
    " bills late usage as adjustments and the event is within its late usage"
    " days: then the cancellation is credited on the next invoice.",
    "requestBody": {
        "required": True,
        **_json(
            "CancelRequest",
            {
                "batch": (
                    "Two events",
                    {
                        "events": [
                            {
                                "idempotency_key": "evt_01J9Z8Q4K7",
                                "subscription": "sub_1042",
                                "metric": "api_calls",
                            },
                            {
                                "idempotency_key": "evt_01J9Z8Q4K8",
                                "subscription": "sub_1042",
                                "metric": "storage_gb",
                            },
                        ]
                    },
                )
            },
        ),
    },
    "responses": {
        "200": {
            "description": "At least one event cancelled or already cancelled.",
            **_json(
                "CancelResponse",
                {
                    "mixed": (
                        "One cancelled, one of a closed period",
                        usage.build_cancel_response(
                            [
                                usage.result("evt_01J9Z8Q4K7", usage.CANCELLED),
                                usage.rejected(
                                    "evt_01J9Z8Q4K8",
                                    usage.PERIOD_CLOSED,
                                    "event 'evt_01J9Z8Q4K8' belongs to a closed"
                                    " billing period",
                                ),
                            ]
                        ).body,
                    )
                },
            ),
        },
        **_error_responses(
            "CancelError",
            {
                "all_rejected": (
                    "Nothing cancelled",
                    usage.build_cancel_response(
                        [
                            usage.rejected(
                                "evt_unknown",
                                usage.UNKNOWN_EVENT,
                                "no event 'evt_unknown' of metric 'api_calls' on"
                                " subscription 'sub_1042' in this service",
                            )
                        ]
                    ).body,
                ),
                "invalid_payload": (
                    "Not a batch",
                    _error(
                        usage.INVALID_PAYLOAD,
                        'the body must be {"events": [...]}, each event naming'
                        " idempotency_key, subscription and metric",
                    ),
                ),
            },
        ),
    },
}

_RECONCILIATION_POST = {
    "operationId": "postReconciliation",
    "summary": "Send what the app itself charged, per customer, for a month",
    "description": "Dual-run reconciliation: each amount is compared with Odoo's"
    " figure for that customer and month; sending a customer's amount for a"
    " month again replaces the earlier one. At most"
    f" {reconciliation.MAX_AMOUNTS} amounts.",
    "requestBody": {
        "required": True,
        **_json(
            "ReconciliationRequest",
            {
                "month": (
                    "One month",
                    {
                        "period": "2025-02",
                        "amounts": [
                            {
                                "customer": "cus_azure",
                                "amount": 1249.9,
                                "currency": "USD",
                            },
                            {"customer": "cus_9999", "amount": -20, "currency": "USD"},
                        ],
                    },
                )
            },
        ),
    },
    "responses": {
        "200": {
            "description": "At least one amount accepted.",
            **_json(
                "ReconciliationResponse",
                {
                    "mixed": (
                        "One accepted, one unknown customer",
                        reconciliation.build_response(
                            "2025-02",
                            [
                                reconciliation.accepted("cus_azure"),
                                reconciliation.rejected(
                                    "cus_9999",
                                    reconciliation.UNKNOWN_CUSTOMER,
                                    "no customer with this external_ref"
                                    " in service nexacloud",
                                ),
                            ],
                        ).body,
                    )
                },
            ),
        },
        **_error_responses(
            "ReconciliationError",
            {
                "invalid_period": (
                    "Bad period",
                    reconciliation.period_refusal(BAD_PERIOD_EXAMPLE).body,
                )
            },
        ),
    },
}

_SUMMARY_GET = {
    "operationId": "getUsageSummary",
    "summary": "The open period's usage and running bill",
    "description": "What the rating would bill for the subscription's open"
    " period right now, computed by the same query and engine: after a rating"
    " with no new events, total equals the draft invoice's untaxed amount. A"
    " subscription without an open period (draft, closed) has period null and"
    " no lines.",
    "parameters": [
        {
            "name": summary.SUBSCRIPTION_PARAM,
            "in": "query",
            "required": True,
            "description": "The subscription's external_ref.",
            "schema": summary.SUBSCRIPTION_REF.schema(),
            "example": "sub_1042",
        }
    ],
    "responses": {
        "200": {
            "description": "The open period so far.",
            **_json(
                "UsageSummary",
                {"open_period": ("An open period", summary.SUMMARY_EXAMPLE)},
            ),
        },
        **{
            status: {
                "description": description,
                **_json(
                    "UsageSummaryError",
                    {reply.body["error"]["code"]: (description, reply.body)},
                ),
            }
            for status, description, reply in (
                (
                    "400",
                    "No or several subscription parameters.",
                    summary.parse_subscription_param([]),
                ),
                (
                    "401",
                    "Missing, unknown, revoked or expired API key.",
                    usage.error_response(
                        usage.UNAUTHENTICATED, "invalid or missing API key", 401
                    ),
                ),
                (
                    "404",
                    "No such subscription in the key's service.",
                    summary.unknown_subscription("sub_9999"),
                ),
                (
                    "405",
                    "Only GET and HEAD are allowed.",
                    usage.error_response(
                        usage.METHOD_NOT_ALLOWED, "use GET, HEAD", 405
                    ),
                ),
                (
                    "409",
                    "A charge of the plan cannot be priced yet.",
                    summary.not_priceable("charge api_calls (graduated) has no tiers"),
                ),
            )
        },
    },
}

_SCHEMAS = {
    "UsageRequest": usage.REQUEST_SCHEMA,
    "UsageEvent": usage.EVENT_SCHEMA,
    "UsageResponse": usage.RESPONSE_SCHEMA,
    "UsageError": usage.ERROR_SCHEMA,
    "CancelRequest": usage.CANCEL_REQUEST_SCHEMA,
    "CancelEvent": usage.CANCEL_EVENT_SCHEMA,
    "CancelResponse": usage.CANCEL_RESPONSE_SCHEMA,
    "CancelError": usage.CANCEL_ERROR_SCHEMA,
    "ReconciliationRequest": reconciliation.REQUEST_SCHEMA,
    "ReconciliationResponse": reconciliation.RESPONSE_SCHEMA,
    "ReconciliationError": reconciliation.ERROR_SCHEMA,
    "UsageSummary": summary.SUMMARY_SCHEMA,
    "UsageSummaryError": summary.ERROR_SCHEMA,
}


def build_openapi(now: datetime | None = None) -> dict[str, Any]:
    """Return the OpenAPI document (a fresh copy the caller may change).

    The server is relative ("/": the host the document was fetched from), so the
    document is the same whatever Host header a request carries and a shared
    cache cannot be made to keep a forged one.

    With ``now`` (aware), the request examples are dated then (and the
    reconciliation examples are for its month), so they are accepted as they
    are, e.g. against the demo data, instead of falling out of the window.
    """
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Fusion Billing API",
            "version": API_VERSION,
            "description": "Usage ingestion, usage summary and dual-run"
            " reconciliation for the"
            " apps billed through Odoo. Every answer is JSON; errors carry a stable"
            " snake_case code in error.code.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": {
            "/usage": {"post": _USAGE_POST},
            "/usage/cancel": {"post": _CANCEL_POST},
            "/usage/summary": {"get": _SUMMARY_GET},
            "/reconciliation": {"post": _RECONCILIATION_POST},
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key of the service (Odoo API key,"
                    " scope fusion_billing), created on the service form.",
                }
            },
            "schemas": _SCHEMAS,
        },
    }
    document = copy.deepcopy(document)
    if now:
        _date_examples(document, now)
    return document


def _date_examples(document: dict[str, Any], now: datetime) -> None:
    """Date the usage request examples ``now`` (each in its own UTC offset) and
    put the reconciliation examples in ``now``'s month."""
    usage_examples = _request_examples(document, "/usage")
    for example in usage_examples.values():
        value = example["value"]
        for event in value.get("events", [value]):
            stamp = event["timestamp"].replace("Z", "+00:00")
            offset = datetime.fromisoformat(stamp).utcoffset()
            moment = now.astimezone(timezone(offset)).isoformat(timespec="seconds")
            event["timestamp"] = moment.replace("+00:00", "Z")
    month = now.strftime("%Y-%m")
    reconciliation_post = document["paths"]["/reconciliation"]["post"]
    for example in _request_examples(document, "/reconciliation").values():
        example["value"]["period"] = month
    for example in reconciliation_post["responses"]["200"]["content"][
        "application/json"
    ]["examples"].values():
        example["value"]["period"] = month


def _request_examples(document: dict[str, Any], path: str) -> dict[str, Any]:
    body = document["paths"][path]["post"]["requestBody"]
    return body["content"]["application/json"]["examples"]
