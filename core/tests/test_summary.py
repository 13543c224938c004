import doctest
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import openapi, summary, usage


def test_doctests():
    assert doctest.testmod(summary).failed == 0


def test_numbers_are_exact_strings():
    body = summary.build_summary(
        subscription="sub_1",
        customer=None,
        plan="pro",
        currency="EUR",
        period=(date(2026, 1, 31), date(2026, 2, 28)),
        lines=[
            summary.SummaryLine(
                "a", "standard", Decimal("0.000000000001"), Decimal("0.01")
            ),
            summary.SummaryLine("b", "volume", Decimal("1E+15"), Decimal("12.34")),
        ],
        base_price=Decimal("49.00"),
        total=Decimal("61.35"),
        as_of=datetime(2026, 2, 1, 1, 2, 3, tzinfo=timezone.utc),
    )
    assert body["total"] == "61.35"
    assert [line["quantity"] for line in body["lines"]] == [
        "0.000000000001",
        "1000000000000000",
    ]
    assert body["period"] == {"start": "2026-01-31", "end": "2026-02-28"}
    assert body["as_of"] == "2026-02-01T01:02:03Z"


@given(st.decimals(min_value=0, max_value=10**15, places=12, allow_nan=False))
def test_quantity_text_is_exact(quantity):
    text = summary.decimal_text(quantity)
    assert "E" not in text
    assert Decimal(text) == quantity


@pytest.mark.parametrize(
    "values", [[], [""], ["a", "b"], ["x" * 256], ["\x00"], ["sub\n1"], ["\ud800"]]
)
def test_subscription_parameter_must_be_one_reference(values):
    reply = summary.parse_subscription_param(values)
    assert reply.http_status == 400
    assert reply.body["error"]["code"] == usage.INVALID_PAYLOAD


def test_documented_with_examples_matching_their_schemas():
    jsonschema = pytest.importorskip("jsonschema")
    document = openapi.build_openapi()
    operation = document["paths"]["/usage/summary"]["get"]
    assert operation["parameters"][0]["name"] == "subscription"
    schemas = document["components"]["schemas"]
    for response in operation["responses"].values():
        media = response["content"]["application/json"]
        schema = schemas[media["schema"]["$ref"].rsplit("/", 1)[1]]
        for example in media["examples"].values():
            jsonschema.Draft202012Validator(schema).validate(example["value"])
    assert schemas["UsageSummary"] == summary.SUMMARY_SCHEMA
