"""Tests of dual-run reconciliation rules (core.reconciliation)."""

import json
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import reconciliation as rec
from core import usage

D = Decimal
JSON = "application/json"


# --- Status ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("odoo", "external", "tolerance", "percent", "expected"),
    [
        ("100.00", "100.00", "0", "0", "match"),  # equal is a match
        ("0", "0", "0", "0", "match"),
        ("100.01", "100.00", "0", "0", "delta"),
        ("100.50", "100.00", "0.50", "0", "match"),  # exactly at the tolerance
        ("99.50", "100.00", "0.50", "0", "match"),
        ("100.51", "100.00", "0.50", "0", "delta"),
        ("202.00", "200.00", "0", "1", "match"),  # exactly 1 % of 200
        ("202.01", "200.00", "0", "1", "delta"),
        ("202.50", "200.00", "1", "1.25", "match"),  # max(1, 2.5)
        ("203.00", "200.00", "3", "1", "match"),  # max(3, 2)
        ("-102.00", "-100.00", "0", "2", "match"),  # credit notes: |external|
        ("5.00", "0", "0", "50", "delta"),  # percent of zero is zero
        ("5.00", "0", "5", "50", "match"),
        ("0.01", "0", "0", "100", "delta"),
    ],
)
def test_status(odoo, external, tolerance, percent, expected):
    assert rec.status(D(odoo), D(external), D(tolerance), D(percent)) == expected


def test_status_wrong_way_round():
    # 102 vs 100 is within 2 % of 100 only if the base is the external amount.
    assert rec.status(D(102), D(100), D(0), D(2)) == rec.MATCH
    assert rec.status(D(100), D(102), D(0), D("1.9")) == rec.DELTA


# --- Periods ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "bounds"),
    [
        ("2025-01", (date(2025, 1, 1), date(2025, 2, 1))),
        ("2024-02", (date(2024, 2, 1), date(2024, 3, 1))),
        ("2024-12", (date(2024, 12, 1), date(2025, 1, 1))),
        ("0001-01", (date(1, 1, 1), date(1, 2, 1))),
        ("9998-12", (date(9998, 12, 1), date(9999, 1, 1))),
        ("9998-11", (date(9998, 11, 1), date(9998, 12, 1))),
    ],
)
def test_period_bounds(period, bounds):
    assert rec.period_bounds(period) == bounds
    assert rec.PERIOD_RE.fullmatch(period)


@pytest.mark.parametrize(
    "period",
    [
        "2025-13",
        "2025-00",
        "2025-1",
        "25-01",
        "2025/01",
        "2025-01-01",
        "2025-01\n",
        "",
        "0000-01",
        "0000-12",
        "9999-01",
        "9999-12",
        "٢٠٢٥-01",
        202501,
        None,
    ],
)
def test_period_bounds_refuses(period):
    with pytest.raises(ValueError, match="period"):
        rec.period_bounds(period)


# --- Readiness -------------------------------------------------------------------


def summary(period, *statuses):
    return rec.PeriodSummary(period, statuses)


def test_ready_after_n_clean_months():
    periods = [
        summary("2025-01", "delta"),  # older than the window: does not matter
        summary("2025-02", "match", "match"),
        summary("2025-03", "match", "resolved"),
        summary("2025-04", "resolved"),
    ]
    assert rec.is_ready(periods, 3)
    assert not rec.is_ready(periods, 4)


def test_not_ready_with_a_delta_in_the_window():
    periods = [summary("2025-02", "match"), summary("2025-03", "match", "delta")]
    assert not rec.is_ready(periods, 1)
    assert not rec.is_ready(periods, 2)


def test_a_month_without_billing_is_no_evidence():
    periods = [summary("2025-01", "match"), summary("2025-03", "match")]
    # No rows in February: the two billed months count, in a row.
    assert rec.is_ready(periods, 2)
    assert not rec.is_ready(periods, 3)
    # Both sides 0 (before any subscription): skipped, not a clean month.
    unbilled = rec.PeriodSummary("2025-02", ("match",), billed=False)
    assert rec.matched_periods([*periods, unbilled], 3) == 2
    assert rec.is_ready([*periods, summary("2025-02", "match")], 3)


def test_months_in_a_row_across_a_year_end():
    periods = [summary(month, "match") for month in ("2024-11", "2024-12", "2025-01")]
    assert rec.matched_periods(periods, 3) == 3
    periods[1] = summary("2024-12", "delta")
    assert rec.matched_periods(periods, 3) == 1  # January, back to December's delta
    assert rec.matched_periods([], 3, open_period="2025-03") == 0


def test_open_period_is_no_evidence():
    periods = [
        summary("2025-01", "match"),
        summary("2025-02", "match"),
        summary("2025-03", "match"),
    ]
    assert rec.matched_periods(periods, 3, open_period="2025-03") == 2
    assert not rec.is_ready(periods, 3, open_period="2025-03")
    assert rec.is_ready(periods, 3, open_period="2025-04")


def test_progress_stops_at_the_first_unclean_period():
    periods = [
        summary("2025-01", "match"),
        summary("2025-02", "delta"),
        summary("2025-03", "match"),
        summary("2025-04", "resolved"),
    ]
    assert rec.matched_periods(periods, 3) == 2
    assert rec.matched_periods(periods, 1) == 1
    assert rec.matched_periods(periods, 3, latest_period="2025-02") == 0


def test_gap_across_the_year_end():
    periods = [
        summary("2024-11", "match"),
        summary("2024-12", "match"),
        summary("2025-01", "match"),
    ]
    assert rec.is_ready(periods, 3)
    assert rec.matched_periods(periods[1:], 3) == 2


def test_latest_period_pins_the_window():
    periods = [
        summary("2025-01", "match"),
        summary("2025-02", "match"),
        summary("2025-03", "delta"),
    ]
    assert rec.is_ready(periods, 2, latest_period="2025-02")
    assert not rec.is_ready(periods, 2)
    # Months without billing up to the pinned one are skipped.
    assert rec.matched_periods(periods[:2], 3, latest_period="2025-04") == 2


def test_summaries_of_one_period_are_merged_in_any_order():
    periods = [
        summary("2025-02", "match"),
        summary("2025-01", "match"),
        summary("2025-02", "delta"),
    ]
    assert not rec.is_ready(periods, 1)
    assert rec.is_ready(periods[:2], 2)


def test_readiness_edge_arguments():
    assert not rec.is_ready([], 1)
    with pytest.raises(ValueError, match=r"^required_consecutive must be at least 1$"):
        rec.is_ready([summary("2025-01", "match")], 0)
    with pytest.raises(ValueError, match="period"):
        rec.is_ready([summary("2025-1", "match")], 1)


# --- CSV -------------------------------------------------------------------------


def test_csv_good_rows():
    rows, errors = rec.parse_csv(
        "customer,period,amount,currency\n"
        "cus_1,2025-01,100.50,EUR\n"
        "cus_2,2025-01,-20,eur\n"
        "cus_1,2025-02,0,USD\n"
    )
    assert errors == []
    assert rows == [
        rec.CsvRow(2, "2025-01", D("100.50"), "EUR", customer="cus_1"),
        rec.CsvRow(3, "2025-01", D("-20"), "EUR", customer="cus_2"),
        rec.CsvRow(4, "2025-02", D("0"), "USD", customer="cus_1"),
    ]


def test_csv_semicolon_bom_crlf_header_case_and_extra_columns():
    text = (
        "\ufeff Amount ;Name;CUSTOMER;Period;Currency\r\n"
        "1234.5;Acme, Inc.;cus_1;2025-03;CHF\r\n"
        '"7";"Bob; Co";"cus_2";2025-03;CHF\r\n'
    )
    rows, errors = rec.parse_csv(text)
    assert errors == []
    assert [(r.line, r.customer, r.amount) for r in rows] == [
        (2, "cus_1", D("1234.5")),
        (3, "cus_2", D("7")),
    ]
    assert rec.parse_csv(text.encode()) == (rows, errors)


def test_csv_partner_column():
    rows, errors = rec.parse_csv(
        "partner,period,amount,currency\nAcme SA,2025-01,5,EUR"
    )
    assert errors == []
    assert rows[0].partner == "Acme SA"
    assert rows[0].customer is None


def test_csv_periods_outside_the_usable_months_are_line_errors():
    rows, errors = rec.parse_csv(
        "customer,period,amount,currency\n"
        "cus_1,0000-01,1,EUR\n"
        "cus_2,9999-12,1,EUR\n"
        "cus_3,0001-01,1,EUR\n"
        "cus_4,9998-12,1,EUR\n"
    )
    assert [(row.customer, row.period) for row in rows] == [
        ("cus_3", "0001-01"),
        ("cus_4", "9998-12"),
    ]
    assert [error.line for error in errors] == [2, 3]
    for error in errors:
        assert "from 0001-01 to 9998-12" in error.message


def test_csv_bad_rows_are_reported_by_line():
    text = (
        "customer,period,amount,currency\n"
        "cus_1,2025-01,10,EUR\n"  # line 2: good
        "\n"  # line 3: blank, skipped
        "cus_2,2025-13,10,EUR\n"  # line 4
        'cus_3,2025-01,"1,234.56",EUR\n'  # line 5: good, thousands grouped
        "cus_4,2025-01,12.5e3,EUR\n"  # line 6: exponent
        ",2025-01,1,EUR\n"  # line 7: no customer
        "cus_5,2025-01,1,EURO\n"  # line 8
        "cus_1,2025-01,11,EUR\n"  # line 9: duplicate of line 2
        "cus_6,2025-01\n"  # line 10: short row
        '"cus\n7",2025-01,abc,EUR\n'  # lines 11-12: quoted newline
        "cus_8,2025-01,1e400,EUR\n"  # line 13
        "cus_9,2025-01,10000000000000000,EUR\n"  # line 14: over the bound
        "cus_10,2025-01,.5,EUR\n"  # line 15
        "cus_11,2025-02,3,GBP\n"  # line 16: good
    )
    rows, errors = rec.parse_csv(text)
    assert [row.line for row in rows] == [2, 5, 16]
    assert rows[1].amount == D("1234.56")
    assert [error.line for error in errors] == [4, 6, 7, 8, 9, 10, 12, 13, 14, 15]
    messages = {error.line: error.message for error in errors}
    assert "period" in messages[4]
    assert "amount" in messages[6]
    # An error keeps the line's values, to show and correct it.
    assert errors[1].values == {
        "customer": "cus_4",
        "period": "2025-01",
        "amount": "12.5e3",
        "currency": "EUR",
    }
    assert "customer: must be 1 to 255 characters long, not 0" in messages[7]
    assert "currency" in messages[8]
    assert "line 2" in messages[9]
    assert "amount" in messages[10]
    assert "currency" in messages[10]
    assert "at most" in messages[14]


def test_csv_semicolon_file_reads_the_decimal_comma():
    rows, errors = rec.parse_csv(
        "customer;period;amount;currency\n"
        "cus_1;2025-01;12,5;EUR\n"
        "cus_2;2025-01;1.200,50;EUR\n"
        "cus_3;2025-01;1 200,50;EUR\n"
        "cus_4;2025-01;1,200.50;EUR\n"
        "cus_5;2025-01;1,234;EUR\n"
    )
    assert errors == []
    assert [row.amount for row in rows] == [
        D("12.5"),
        D("1200.50"),
        D("1200.50"),
        D("1200.50"),
        D("1.234"),  # ambiguous: a ';' file writes decimals with a comma
    ]
    assert [row.amount_text for row in rows][-2:] == ["1,200.50", "1,234"]


@pytest.mark.parametrize(
    ("text", "decimal_comma", "amount"),
    [
        ("1200", False, D(1200)),
        ("-1,200.00", False, D("-1200.00")),
        ("1'200.5", False, D("1200.5")),
        ("+1\u00a0200.5", False, D("1200.5")),
        ("1,234,567.1", False, D("1234567.1")),
        ("1.234.567,1", True, D("1234567.1")),
        ("1,234", True, D("1.234")),
        ("1,234", False, D(1234)),
        ("1,234,567", True, D(1234567)),
        ("1.234.567", False, D(1234567)),
        ("12,5X", False, None),
        ("1.234", True, D(1234)),
        ("12,5", False, D("12.5")),
        ("1234.5", True, D("1234.5")),
        ("1,23,456", False, None),
        ("1.2.3", False, None),
        (".5", False, None),
        ("5.", False, None),
        ("1e3", False, None),
        ("", False, None),
        ("1 2", False, None),
    ],
)
def test_parse_amount(text, decimal_comma, amount):
    assert rec.parse_amount(text, decimal_comma) == amount


def test_parse_amount_reads_a_lone_comma_as_thousands_by_default():
    assert rec.parse_amount("1,234") == D(1234)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty"),
        ("customer,period,amount\ncus_1,2025-01,1", "missing column(s) currency"),
        ("period,amount,currency\n2025-01,1,EUR", "exactly one of"),
        ("customer,partner,period,amount,currency\n", "exactly one of"),
        (b"customer,period,amount,currency\n\xff,2025-01,1,EUR", "not UTF-8"),
    ],
)
def test_csv_file_level_errors(text, expected):
    rows, errors = rec.parse_csv(text)
    assert rows == []
    assert len(errors) == 1
    assert expected in errors[0].message


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", rec.CsvError(0, "the file is empty")),
        (
            b"customer,period,amount,currency\n\xff,2025-01,1,EUR",
            rec.CsvError(0, "the file is not UTF-8 (byte 32)"),
        ),
        (
            "customer,amount\ncus_1,1",
            rec.CsvError(1, f"missing column(s) period, currency. {rec.CSV_HELP}"),
        ),
        (
            "period,amount,currency\n2025-01,1,EUR",
            rec.CsvError(
                1,
                "exactly one of the columns customer and partner is needed."
                f" {rec.CSV_HELP}",
            ),
        ),
        # A header row spread over two lines by a quoted newline: the error
        # names the line where the header ends.
        (
            'customer,"amount\n",currency\ncus_1,1,EUR',
            rec.CsvError(2, f"missing column(s) period. {rec.CSV_HELP}"),
        ),
    ],
)
def test_csv_file_level_errors_in_full(text, error):
    assert rec.parse_csv(text) == ([], [error])


def test_csv_row_errors_in_full():
    rows, errors = rec.parse_csv(
        "customer,period,amount,currency\n"
        "cus_1,2025-01\n"  # line 2: short row, the missing cells are empty
        "cus_1,2025-01,1,EUR\n"
        "cus_1,2025-01,2,EUR\n"  # line 4: duplicate of line 3
        "cus_2,2025-01,1,EURO\n"
    )
    assert [row.line for row in rows] == [3]
    assert errors == [
        rec.CsvError(
            2,
            "amount must be a number like -1234.56 or 1,234.56, not '';"
            " currency must be a 3-letter ISO 4217 code, not ''",
        ),
        rec.CsvError(4, "customer 'cus_1' already has an amount for 2025-01 on line 3"),
        rec.CsvError(5, "currency must be a 3-letter ISO 4217 code, not 'EURO'"),
    ]


def test_csv_amount_bound_is_inclusive():
    rows, errors = rec.parse_csv(
        "customer,period,amount,currency\n"
        "cus_1,2025-01,1000000000000000,EUR\n"
        "cus_2,2025-01,-1000000000000000.00,EUR\n"
        "cus_3,2025-01,1000000000000000.01,EUR\n"
    )
    assert [row.amount for row in rows] == [D(10**15), D("-1000000000000000.00")]
    assert errors == [
        rec.CsvError(4, "amount must be at most 1000000000000000 in absolute value")
    ]


def test_csv_delimiter_is_chosen_by_the_header_line_alone():
    # A comma file whose later lines hold more ';' than the whole file has ','.
    text = (
        'customer,period,amount,currency,"note; free text"\n'
        'cus_1,2025-01,1,EUR,"a;b;c;d;e;f;g;h;i;j;k;l"\n'
    )
    rows, errors = rec.parse_csv(text)
    assert errors == []
    assert rows == [rec.CsvRow(2, "2025-01", D(1), "EUR", customer="cus_1")]


def test_csv_delimiter_tie_goes_to_comma():
    rows, errors = rec.parse_csv("customer;period;amount;currency,a,b,c\n")
    assert rows == []
    assert errors == [
        rec.CsvError(1, f"missing column(s) period, amount, currency. {rec.CSV_HELP}")
    ]


def test_csv_control_characters_in_ids_are_refused():
    rows, errors = rec.parse_csv("customer,period,amount,currency\nc\x00,2025-01,1,EUR")
    assert rows == []
    assert "control characters" in errors[0].message


def test_csv_unreadable_rest_keeps_the_rows_before():
    text = (
        "customer,period,amount,currency\n"
        "cus_1,2025-01,1,EUR\n"
        f'"{"x" * 200_000}",2025-01,1,EUR\n'  # over csv.field_size_limit()
    )
    rows, errors = rec.parse_csv(text)
    assert [row.customer for row in rows] == ["cus_1"]
    assert errors[0].line == 3
    assert errors[0].message.startswith("unreadable CSV: ")


def test_csv_header_only_is_no_rows_and_no_errors():
    assert rec.parse_csv("customer,period,amount,currency\n") == ([], [])


@given(st.text(max_size=300))
def test_csv_never_raises(text):
    rows, errors = rec.parse_csv("customer,period,amount,currency\n" + text)
    assert all(isinstance(row, rec.CsvRow) for row in rows)
    assert all(error.line >= 2 for error in errors)


# --- POST /reconciliation --------------------------------------------------------

GOOD_BODY = {
    "period": "2025-02",
    "amounts": [
        {"customer": "cus_1", "amount": 100.5, "currency": "EUR"},
        {"customer": "cus_2", "amount": -3, "currency": "EUR"},
    ],
}


def body(payload) -> bytes:
    return json.dumps(payload).encode()


def test_api_good_request():
    parsed = rec.parse_api_request(body(GOOD_BODY), JSON)
    assert parsed == rec.ReconciliationRequest(
        "2025-02",
        [
            rec.ExternalAmount("cus_1", D("100.5"), "EUR"),
            rec.ExternalAmount("cus_2", D("-3"), "EUR"),
        ],
    )


API_ENVELOPE_ERRORS = [
    ("not json type", body(GOOD_BODY), "text/csv", 415, usage.UNSUPPORTED_MEDIA_TYPE),
    ("bad json", b'{"period": ', JSON, 400, usage.INVALID_JSON),
    ("NaN", b'{"period": "2025-01", "amounts": [NaN]}', JSON, 400, "invalid_json"),
    ("array", body([GOOD_BODY]), JSON, 400, usage.INVALID_PAYLOAD),
    ("unknown member", body({**GOOD_BODY, "x": 1}), JSON, 400, "invalid_payload"),
    (
        "no period",
        body({"amounts": GOOD_BODY["amounts"]}),
        JSON,
        400,
        rec.INVALID_PERIOD,
    ),
    (
        "bad period",
        body({**GOOD_BODY, "period": "2025-2"}),
        JSON,
        400,
        rec.INVALID_PERIOD,
    ),
    ("year 0", body({**GOOD_BODY, "period": "0000-01"}), JSON, 400, "invalid_period"),
    (
        "year 9999",
        body({**GOOD_BODY, "period": "9999-12"}),
        JSON,
        400,
        "invalid_period",
    ),
    (
        "period number",
        body({**GOOD_BODY, "period": 202502}),
        JSON,
        400,
        rec.INVALID_PERIOD,
    ),
    ("no amounts", body({"period": "2025-01"}), JSON, 400, usage.INVALID_PAYLOAD),
    ("empty amounts", body({**GOOD_BODY, "amounts": []}), JSON, 400, "invalid_payload"),
    (
        "amounts object",
        body({**GOOD_BODY, "amounts": {}}),
        JSON,
        400,
        "invalid_payload",
    ),
    (
        "too many",
        body({**GOOD_BODY, "amounts": [GOOD_BODY["amounts"][0]] * 10_001}),
        JSON,
        400,
        rec.TOO_MANY_ITEMS,
    ),
]


@pytest.mark.parametrize(
    ("raw", "content_type", "http_status", "code"),
    [case[1:] for case in API_ENVELOPE_ERRORS],
    ids=[case[0] for case in API_ENVELOPE_ERRORS],
)
def test_api_envelope_errors(raw, content_type, http_status, code):
    reply = rec.parse_api_request(raw, content_type)
    assert isinstance(reply, usage.Reply)
    assert (reply.http_status, reply.body["error"]["code"]) == (http_status, code)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([GOOD_BODY], "the body must be an object, not an array"),
        ("x", "the body must be an object, not a string"),
        (
            {**GOOD_BODY, **dict.fromkeys("gfedcba", 1)},
            "unknown member 'a', 'b', 'c', 'd', 'e'",
        ),
        ({**GOOD_BODY, "amounts": []}, "amounts must be a non-empty array of objects"),
        ({"period": "2025-01"}, "amounts must be a non-empty array of objects"),
        (
            {**GOOD_BODY, "amounts": [GOOD_BODY["amounts"][0]] * 10_001},
            "10001 amounts sent; at most 10000 per request",
        ),
    ],
)
def test_api_envelope_messages(payload, message):
    reply = rec.parse_api_request(body(payload), JSON)
    assert reply.body["error"]["message"] == message


def test_api_period_problem_names_the_member():
    reply = rec.parse_api_request(body({**GOOD_BODY, "period": 202502}), JSON)
    assert reply.body["error"]["message"].startswith("period: ")
    assert reply.body["error"]["message"] != "period: "


@pytest.mark.parametrize("period", ["0001-01", "9998-12"])
def test_api_first_and_last_periods_are_usable(period):
    parsed = rec.parse_api_request(body({**GOOD_BODY, "period": period}), JSON)
    assert parsed.period == period
    start, end = rec.period_bounds(parsed.period)
    assert start < end


def test_api_10000_amounts_accepted():
    amounts = [
        {"customer": f"c{i}", "amount": i, "currency": "EUR"} for i in range(10_000)
    ]
    parsed = rec.parse_api_request(
        body({"period": "2025-01", "amounts": amounts}), JSON
    )
    assert len(parsed.items) == 10_000


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ([], "object"),
        ({"customer": "c", "amount": "1.5", "currency": "EUR"}, "amount"),
        ({"customer": "c", "amount": True, "currency": "EUR"}, "amount"),
        ({"customer": "c", "amount": None, "currency": "EUR"}, "amount"),
        ({"customer": "c", "amount": 1e16, "currency": "EUR"}, "amount"),
        ({"customer": "c", "amount": -1e16, "currency": "EUR"}, "amount"),
        ({"customer": "c", "amount": 1, "currency": "eur"}, "currency"),
        ({"customer": "c", "amount": 1, "currency": "EURO"}, "currency"),
        ({"customer": "c", "amount": 1}, "currency: is required"),
        ({"customer": "", "amount": 1, "currency": "EUR"}, "customer"),
        ({"amount": 1, "currency": "EUR"}, "customer: is required"),
        ({"customer": "c", "amount": 1, "currency": "EUR", "period": "x"}, "unknown"),
    ],
)
def test_api_invalid_items(item, expected):
    parsed = rec.parse_api_request(body({"period": "2025-01", "amounts": [item]}), JSON)
    (outcome,) = parsed.items
    assert outcome["status"] == usage.REJECTED
    assert outcome["error"]["code"] == rec.INVALID_ITEM
    assert expected in outcome["error"]["message"]
    expected_customer = item.get("customer") if isinstance(item, dict) else None
    assert outcome["customer"] == expected_customer


def test_api_duplicate_customer_rejects_the_later_item():
    amounts = [
        {"customer": "c", "amount": 1, "currency": "EUR"},
        {"customer": "c", "amount": 2, "currency": "EUR"},
    ]
    parsed = rec.parse_api_request(
        body({"period": "2025-01", "amounts": amounts}), JSON
    )
    assert parsed.items[0] == rec.ExternalAmount("c", D(1), "EUR")
    assert parsed.items[1] == {
        "customer": "c",
        "status": usage.REJECTED,
        "error": {
            "code": rec.DUPLICATE_CUSTOMER,
            "message": "customer already sent above",
        },
    }


def test_api_items_after_a_rejected_item_are_still_validated():
    amounts = [
        {"customer": "a", "amount": 1, "currency": "EUR"},
        {"customer": "b", "amount": "1", "currency": "EUR"},  # invalid
        {"customer": "a", "amount": 2, "currency": "EUR"},  # duplicate
        {"customer": "c", "amount": 3, "currency": "EUR"},
        {"customer": "d", "amount": 4, "currency": "EUR"},
    ]
    parsed = rec.parse_api_request(
        body({"period": "2025-01", "amounts": amounts}), JSON
    )
    assert len(parsed.items) == 5
    assert parsed.items[1]["error"]["code"] == rec.INVALID_ITEM
    assert parsed.items[2]["error"]["code"] == rec.DUPLICATE_CUSTOMER
    assert parsed.items[3:] == [
        rec.ExternalAmount("c", D(3), "EUR"),
        rec.ExternalAmount("d", D(4), "EUR"),
    ]


def test_api_build_response():
    results = [rec.accepted("a"), rec.rejected("b", rec.UNKNOWN_CUSTOMER, "no b")]
    status, reply_body = rec.build_response("2025-01", results)
    assert status == 200
    assert reply_body == {
        "status": "ok",
        "period": "2025-01",
        "accepted": 1,
        "rejected": 1,
        "results": results,
    }
    assert results[0] == {"customer": "a", "status": usage.ACCEPTED}
    status, reply_body = rec.build_response("2025-01", results[1:])
    assert status == 400
    assert reply_body["error"] == {
        "code": usage.ALL_REJECTED,
        "message": "no amount was accepted",
    }
    assert (reply_body["accepted"], reply_body["rejected"]) == (0, 1)


def test_api_schemas_state_the_enforced_patterns():
    period = rec.REQUEST_SCHEMA["properties"]["period"]
    assert period["pattern"] == rec.PERIOD_PATTERN
    amount = rec.AMOUNT_SCHEMA["properties"]["amount"]
    assert (amount["minimum"], amount["maximum"]) == (-(10**15), 10**15)
    assert rec.AMOUNT_SCHEMA["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"
    assert rec.AMOUNT_SCHEMA["additionalProperties"] is False
