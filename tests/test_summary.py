# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import date, datetime, time, timezone

from odoo.tests import HttpCase, tagged

from .common import FusionBillingCase
from .test_usage_api import generate_key

JAN_20 = date(2026, 1, 20)


@tagged("post_install", "-at_install")
class TestUsageSummary(FusionBillingCase, HttpCase):
    """GET /usage/summary gives the running bill the rating would write (§12)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = generate_key(cls.env, cls.service, cls.billing_manager)
        cls._create_charge(
            cls.plan,
            cls.metric_storage,
            "graduated",
            tiers=[
                {"up_to": 100, "unit_price": 0.10, "flat_fee": 5.0},
                {"up_to": 0, "unit_price": 0.08},
            ],
        )
        cls._create_charge(
            cls.plan,
            cls.metric_requests,
            "package",
            package_price=5.0,
            unit_batch=10,
            free_units=5,
        )
        # Another service reusing the reference sub_a: keys never cross.
        cls.service_other = cls._create_service("Summary Other", "fb_test_sum_other")
        metric = cls._create_metric(cls.service_other, "api_calls", "sum")
        plan = cls.env["fusion.billing.plan"].create(
            {"service_id": cls.service_other.id, "name": "O", "code": "o"}
        )
        cls._create_charge(plan, metric, "standard", unit_price=1)
        cls._create_customer(cls.service_other, cls.partner_a, "cus_other")
        cls._create_subscription(
            cls.service_other, cls.partner_a, plan, "sub_other_only", date(2026, 1, 1)
        )

    def _event(self, subscription, metric, quantity, day):
        self._store_event(subscription, metric, quantity, datetime(2026, 1, day, 12))

    def _usage(self):
        self._event(self.subscription_a, self.metric_calls, 1000.8, 2)
        self._event(self.subscription_a, self.metric_calls, 0.2, 3)
        for quantity in (40, 150.5, 90):
            self._event(self.subscription_a, self.metric_storage, quantity, 4)
        for day in range(1, 17):
            self._event(self.subscription_a, self.metric_requests, 7, day)

    def _get(self, reference="sub_a", key=None, method="GET"):
        self.env.flush_all()
        headers = {} if key is False else {"Authorization": f"Bearer {key or self.key}"}
        query = "" if reference is None else f"?subscription={reference}"
        return self.url_open(f"/usage/summary{query}", headers=headers, method=method)

    def _rate(self, today):
        self.env["fusion.billing.rating"]._cron_rate_usage(
            now=datetime.combine(today, time(), tzinfo=timezone.utc)
        )

    def test_summary_is_what_the_draft_invoice_gets(self):
        self._usage()
        response = self._get()
        self.assertEqual(response.status_code, 200)
        self.assertIn("application/json", response.headers["Content-Type"])
        before = response.json()
        self._rate(JAN_20)
        invoice = self.subscription_a.invoice_ids
        self.assertEqual(invoice.state, "draft")
        after = self._get().json()
        self.assertEqual(after["total"], before["total"])
        self.assertEqual(after["total"], f"{invoice.amount_untaxed:.2f}")
        self.assertEqual(
            {key: value for key, value in after.items() if key != "as_of"},
            {
                "subscription": "sub_a",
                "customer": "cus_a",
                "plan": "pro",
                "currency": self.currency.name,
                "period": {"start": "2026-01-01", "end": "2026-02-01"},
                "lines": [
                    # 1001 calls x 0.0125
                    {
                        "metric": "api_calls",
                        "charge_model": "standard",
                        "quantity": "1001",
                        "amount": "12.51",
                    },
                    # max 150.5 GB: 100 x 0.10 + 5 + 50.5 x 0.08
                    {
                        "metric": "storage_gb",
                        "charge_model": "graduated",
                        "quantity": "150.5",
                        "amount": "19.04",
                    },
                    # 16 requests, 5 free, packages of 10: 2 x 5
                    {
                        "metric": "requests",
                        "charge_model": "package",
                        "quantity": "16",
                        "amount": "10.00",
                    },
                ],
                "base_price": "49.00",
                "total": "90.55",
            },
        )
        self.assertRegex(after["as_of"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

    def test_draft_subscription_has_no_period(self):
        self.env["fusion.billing.subscription"].create(
            {
                "service_id": self.service.id,
                "partner_id": self.partner_b.id,
                "plan_id": self.plan.id,
                "external_ref": "sub_b_draft",
            }
        )
        body = self._get("sub_b_draft").json()
        self.assertEqual(
            (body["period"], body["lines"], body["base_price"], body["total"]),
            (None, [], "0.00", "0.00"),
        )

    def test_unknown_and_other_service_subscriptions_are_404(self):
        for reference in ("sub_nope", "sub_other_only"):
            with self.subTest(reference=reference):
                response = self._get(reference)
                self.assertEqual(response.status_code, 404)
                self.assertEqual(
                    response.json()["error"]["code"], "unknown_subscription"
                )

    def test_refusals_are_json(self):
        cases = [
            ("no key", {"key": False}, 401, "unauthenticated"),
            ("unknown key", {"key": "not-a-key"}, 401, "unauthenticated"),
            ("no parameter", {"reference": None}, 400, "invalid_payload"),
            ("post", {"method": "POST"}, 405, "method_not_allowed"),
            ("NUL", {"reference": "sub%00a"}, 400, "invalid_payload"),
            ("control", {"reference": "sub%0Aa"}, 400, "invalid_payload"),
        ]
        for label, kwargs, status, code in cases:
            with self.subTest(label):
                response = self._get(**kwargs)
                self.assertEqual(response.status_code, status)
                self.assertEqual(response.json()["error"]["code"], code)

    def test_unpriceable_charge_is_a_409(self):
        self.plan.charge_ids.filtered(
            lambda charge: charge.charge_model == "graduated"
        ).tier_ids.unlink()
        response = self._get()
        self.assertEqual(response.status_code, 409)
        self.assertEqual(response.json()["error"]["code"], "subscription_not_priceable")

    def test_constant_number_of_queries(self):
        # As the controller calls it: the service's user, rights raised.
        Subscription = (
            self.env["fusion.billing.subscription"]
            .with_user(self.service.user_id)
            .sudo()
        )

        def queries(reference):
            self.env.flush_all()
            self.env.invalidate_all()
            before = self.cr.sql_log_count
            Subscription._usage_summary(self.service, reference)
            return self.cr.sql_log_count - before

        plan_small = self.env["fusion.billing.plan"].create(
            {"service_id": self.service.id, "name": "Small", "code": "small"}
        )
        self._create_charge(
            plan_small,
            self.metric_calls,
            "volume",
            tiers=[{"up_to": 0, "unit_price": 1}],
        )
        partner = self.env["res.partner"].create({"name": "Small Co"})
        self._create_customer(self.service, partner, "cus_small")
        small = self._create_subscription(
            self.service, partner, plan_small, "sub_small", date(2026, 1, 1)
        )
        self._event(small, self.metric_calls, 1, 2)
        self._usage()
        for day in range(1, 29):
            self._event(self.subscription_a, self.metric_calls, day, day)
        queries("sub_a")  # Odoo's own caches (languages, currencies) warm up
        # Three charges and 50 events cost what one tiered charge and one event
        # do: the subscription, the customer, the aggregation, and a read of
        # each pricing table (plan, charges with the subscription's own,
        # metrics, filters, tiers and their rows, currency, the customer's
        # language).
        self.assertEqual(queries("sub_a"), queries("sub_small"))
        self.assertLessEqual(queries("sub_a"), 11)

    def test_in_the_openapi_document(self):
        document = self.url_open("/usage/openapi.json").json()
        operation = document["paths"]["/usage/summary"]["get"]
        self.assertEqual(
            set(operation["responses"]), {"200", "400", "401", "404", "405", "409"}
        )
        self.assertIn("UsageSummary", document["components"]["schemas"])

    def test_charge_filters_give_a_line_per_filter_with_usage_and_the_rest(self):
        self.env["fusion.billing.charge.filter"].create(
            [
                {
                    "charge_id": self.charge_calls.id,
                    "property_name": "region",
                    "values": "eu, uk",
                    "unit_price": 0.02,
                },
                {
                    "charge_id": self.charge_calls.id,
                    "property_name": "region",
                    "values": "apac",
                    "unit_price": 0.05,
                },
            ]
        )
        alert = self.env["fusion.billing.alert"].create(
            {
                "name": "calls",
                "subscription_id": self.subscription_a.id,
                "metric_id": self.metric_calls.id,
                "threshold": 150,
            }
        )
        Event = self.env["fusion.billing.usage.event"].sudo()
        for key, quantity, region in (("f1", 100, "uk"), ("f2", 50, "us")):
            Event.create(
                {
                    "service_id": self.service.id,
                    "subscription_id": self.subscription_a.id,
                    "metric_id": self.metric_calls.id,
                    "quantity": quantity,
                    "timestamp": datetime(2026, 1, 5),
                    "idempotency_key": key,
                    "properties": {"region": region},
                }
            )
        body = self._get().json()
        calls = [line for line in body["lines"] if line["metric"] == "api_calls"]
        self.assertEqual(
            calls,
            [
                {
                    "metric": "api_calls",
                    "charge_model": "standard",
                    "quantity": "100",
                    "amount": "2.00",
                    "filter": {"property": "region", "values": ["eu", "uk"]},
                },
                # 50 x 0.0125 = 0.625, half up
                {
                    "metric": "api_calls",
                    "charge_model": "standard",
                    "quantity": "50",
                    "amount": "0.63",
                },
            ],
        )
        self._rate(JAN_20)
        self.assertEqual(
            f"{self.subscription_a.invoice_ids.amount_untaxed:.2f}", body["total"]
        )
        # The metric alert sees all buckets together: 150 calls.
        self.assertEqual(alert.trigger_ids.value, 150)
