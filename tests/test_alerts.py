# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
from datetime import date, datetime, time, timezone

from psycopg2 import IntegrityError

from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import FusionBillingCase

JAN_10 = datetime(2026, 1, 10, 12)
FEB_10 = datetime(2026, 2, 10, 12)


@tagged("post_install", "-at_install")
class TestAlerts(FusionBillingCase):
    """Usage alerts fire once per alert, subscription and period (SPEC §12)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Alert = cls.env["fusion.billing.alert"]
        cls.calls_alert = cls.Alert.create(
            {
                "name": "1000 calls",
                "plan_id": cls.plan.id,
                "metric_id": cls.metric_calls.id,
                "threshold": 1000,
            }
        )
        cls.amount_alert = cls.Alert.create(
            {
                "name": "Budget 60",
                "subscription_id": cls.subscription_a.id,
                "threshold": 60,
            }
        )

    def _event(self, subscription, quantity, timestamp):
        return self._store_event(subscription, self.metric_calls, quantity, timestamp)

    def _rate(self, today):
        self.env["fusion.billing.rating"]._cron_rate_usage(
            now=datetime.combine(today, time(), tzinfo=timezone.utc)
        )

    def _webhooks(self, subscription):
        events = (
            self.env["fusion.billing.webhook.event"]
            .sudo()
            .search(
                [
                    ("service_id", "=", self.service.id),
                    ("event_type", "=", "usage.threshold_reached"),
                ],
                order="id",
            )
        )
        return [
            json.loads(event.body)["data"]
            for event in events
            if json.loads(event.body)["data"]["subscription"]
            == subscription.external_ref
        ]

    def _alert_messages(self, subscription):
        return subscription.message_ids.filtered(
            lambda message: "Usage alert" in (message.body or "")
        )

    def test_metric_and_amount_alerts_fire_once_per_period(self):
        self._event(self.subscription_a, 600, JAN_10)
        self._rate(date(2026, 1, 15))
        self.assertFalse(self._webhooks(self.subscription_a))

        # 1000 calls exactly reach the threshold (>=); 49 + 12.50 = 61.50 >= 60.
        self._event(self.subscription_a, 400, JAN_10)
        self._rate(date(2026, 1, 16))
        self._rate(date(2026, 1, 17))
        self._event(self.subscription_a, 400, JAN_10)
        self._rate(date(2026, 1, 18))
        webhooks = self._webhooks(self.subscription_a)
        self.assertEqual(len(webhooks), 2)
        by_alert = {data["alert"]["id"]: data for data in webhooks}
        self.assertEqual(
            by_alert[self.calls_alert.id],
            {
                "alert": {"id": self.calls_alert.id, "name": "1000 calls"},
                "subscription": "sub_a",
                "customer": "cus_a",
                "metric": "api_calls",
                "threshold": "1000",
                "value": "1000",
                "period": {"start": "2026-01-01", "end": "2026-02-01"},
            },
        )
        self.assertEqual(by_alert[self.amount_alert.id]["metric"], None)
        self.assertEqual(by_alert[self.amount_alert.id]["value"], "61.5")
        self.assertEqual(len(self._alert_messages(self.subscription_a)), 2)
        self.assertEqual(
            self.calls_alert.trigger_ids.mapped("period_start"), [date(2026, 1, 1)]
        )

        # Closing January, then a February that reaches both again.
        self._rate(date(2026, 2, 2))
        self._event(self.subscription_a, 1500, FEB_10)
        self._rate(date(2026, 2, 11))
        self._rate(date(2026, 2, 12))
        webhooks = self._webhooks(self.subscription_a)
        self.assertEqual(len(webhooks), 4)
        self.assertEqual(
            [data["period"]["start"] for data in webhooks[2:]],
            ["2026-02-01", "2026-02-01"],
        )
        self.assertEqual(len(self._alert_messages(self.subscription_a)), 4)

    def test_plan_alert_watches_each_subscription_of_the_plan(self):
        self._event(self.subscription_a, 999, JAN_10)
        self._event(self.subscription_b, 1001, JAN_10)
        self._rate(date(2026, 1, 15))
        self.assertEqual(
            self.calls_alert.trigger_ids.subscription_id, self.subscription_b
        )
        # The amount alert is sub_a's: 49 + 12.49 = 61.49.
        self.assertEqual(
            self.amount_alert.trigger_ids.subscription_id, self.subscription_a
        )
        self.assertEqual(len(self._webhooks(self.subscription_b)), 1)
        self.assertEqual(len(self._webhooks(self.subscription_a)), 1)

    def test_amount_alert_uses_the_estimate_the_invoice_gets(self):
        self.amount_alert.threshold = 61.51
        self._event(self.subscription_a, 1000.8, JAN_10)  # 12.51 rounded
        self._rate(date(2026, 1, 15))
        invoice = self.subscription_a.invoice_ids
        self.assertEqual(invoice.amount_untaxed, 61.51)
        self.assertIn(
            "Budget 60",
            [data["alert"]["name"] for data in self._webhooks(self.subscription_a)],
        )

    def test_alert_targets_one_subscription_or_one_plan(self):
        for values in (
            {"subscription_id": self.subscription_a.id, "plan_id": self.plan.id},
            {},
        ):
            with (
                self.subTest(values=values),
                self.assertRaises(IntegrityError),
                mute_logger("odoo.sql_db"),
                self.cr.savepoint(),
            ):
                self.Alert.create({"name": "x", "threshold": 1, **values})

    def test_threshold_positive_and_metric_of_the_service(self):
        with (
            self.assertRaises(IntegrityError),
            mute_logger("odoo.sql_db"),
            self.cr.savepoint(),
        ):
            self.Alert.create({"name": "x", "plan_id": self.plan.id, "threshold": 0})
        other = self._create_service("Alert Other", "fb_test_alert_other")
        foreign_metric = self._create_metric(other, "api_calls", "sum")
        with self.assertRaises(ValidationError):
            self.Alert.create(
                {
                    "name": "x",
                    "plan_id": self.plan.id,
                    "metric_id": foreign_metric.id,
                    "threshold": 1,
                }
            )

    def test_billing_user_reads_alerts_manager_configures_them(self):
        self.assertEqual(
            self.calls_alert.with_user(self.billing_user).name, "1000 calls"
        )
        alert = self.Alert.with_user(self.billing_manager).create(
            {"name": "m", "subscription_id": self.subscription_b.id, "threshold": 5}
        )
        self.assertEqual(alert.service_id, self.service)
