# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
from datetime import datetime, time, timedelta, timezone
from unittest.mock import patch

from dateutil.relativedelta import relativedelta

from odoo.tests import HttpCase, tagged

from ..core import usage
from ..models.fusion_billing_service import FusionBillingService
from .common import FusionBillingCase
from .test_usage_api import generate_key, iso


@tagged("post_install", "-at_install")
class TestUsageRetention(FusionBillingCase):
    """The retention cron deletes old usage of closed, posted periods only
    (SPEC §14), by batches that commit, and leaves the invoices alone."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Event = cls.env["fusion.billing.usage.event"].sudo()
        cls.Service = cls.env["fusion.billing.service"]
        cls.service.auto_post_invoices = True
        today = datetime.now(timezone.utc).date()
        # Four months back: two periods closed by the rating below, then the
        # periods still open for rating (the open one and the current month).
        cls.m0 = today.replace(day=1) - relativedelta(months=4)
        cls.m1 = cls.m0 + relativedelta(months=1)
        cls.m2 = cls.m0 + relativedelta(months=2)
        cls.posted = cls._create_subscription(
            cls.service, cls.partner_a, cls.plan, "fb_ret_posted", cls.m0
        )
        cls.draft = cls._create_subscription(
            cls.service, cls.partner_b, cls.plan, "fb_ret_draft", cls.m0
        )
        cls.events = {}
        for subscription in (cls.posted, cls.draft):
            for month in (cls.m0, cls.m1):
                cls.events[subscription, month] = cls._events(subscription, month, 3)
        cls._close(cls.posted | cls.draft, cls.m2)
        # An accountant takes one closed invoice back to draft.
        cls._invoice(cls.draft, cls.m0).button_draft()
        # The cutoff falls in the middle of m1: m0 ended before it, m1 did not.
        cls.service.usage_retention_days = (today - cls.m1).days - 14

    @classmethod
    def _events(cls, subscription, month, count):
        return cls.Event.create(
            [
                {
                    "service_id": subscription.service_id.id,
                    "subscription_id": subscription.id,
                    "metric_id": cls.metric_calls.id,
                    "quantity": 100,
                    "timestamp": datetime.combine(month, time(9)) + timedelta(days=n),
                    "idempotency_key": f"fb-ret-{month}-{n}",
                }
                for n in range(count)
            ]
        )

    @classmethod
    def _close(cls, subscriptions, day):
        """Rate ``subscriptions`` only, on ``day`` once the grace has passed:
        their periods ended by then are closed."""
        now = datetime.combine(day, time(), timezone.utc) + timedelta(days=1)
        cls.env["fusion.billing.rating"]._rate_subscriptions(subscriptions.ids, now=now)

    @classmethod
    def _invoice(cls, subscription, period_start):
        return cls.env["account.move"].search(
            [
                ("fusion_subscription_id", "=", subscription.id),
                ("fusion_period_start", "=", period_start),
            ]
        )

    def _purge(self, **kwargs):
        self.Service._cron_purge_usage(**kwargs)

    def test_only_old_closed_posted_periods_lose_their_events(self):
        invoice = self._invoice(self.posted, self.m0)
        self.assertEqual(invoice.state, "posted")
        self.assertEqual(self._invoice(self.draft, self.m0).state, "draft")
        self._purge()
        self.assertFalse(self.events[self.posted, self.m0].exists())
        # Closed and posted, but it ended after the cutoff: a late event in it
        # would need all of its events to be re-rated.
        self.assertEqual(
            self.events[self.posted, self.m1].exists(),
            self.events[self.posted, self.m1],
        )
        # Old and closed, but its invoice is a draft again.
        self.assertEqual(
            self.events[self.draft, self.m0].exists(), self.events[self.draft, self.m0]
        )
        self.assertEqual(
            self.events[self.draft, self.m1].exists(), self.events[self.draft, self.m1]
        )

    def test_open_period_keeps_its_events(self):
        """Events of a period that is not closed stay, however old, even when
        its invoice was posted early."""
        late = self._create_subscription(
            self.service, self.partner_a, self.plan, "fb_ret_open", self.m0
        )
        events = self._events(late, self.m0, 2)
        self._close(late, self.m0 + timedelta(days=5))
        invoice = self._invoice(late, self.m0)
        # Posted behind the period's back (the back office refuses it by hand).
        self.env.cr.execute(
            "UPDATE account_move SET state = 'posted' WHERE id = %s", [invoice.id]
        )
        invoice.invalidate_recordset()
        self._purge()
        self.assertEqual(events.exists(), events)
        late.write({"last_invoice_date": self.m1, "next_invoice_date": self.m2})
        self._purge()
        self.assertFalse(events.exists())

    def test_invoices_keep_the_billed_quantities(self):
        invoice = self._invoice(self.posted, self.m0)
        lines = invoice.invoice_line_ids
        snapshot = [
            (line.id, line.name, line.fusion_usage_quantity, line.price_subtotal)
            for line in lines
        ]
        write_date, total = invoice.write_date, invoice.amount_total
        self._purge()
        self.assertFalse(self.events[self.posted, self.m0].exists())
        invoice.invalidate_recordset()
        self.assertEqual(invoice.state, "posted")
        self.assertEqual(invoice.write_date, write_date)
        self.assertEqual(invoice.amount_total, total)
        self.assertEqual(
            [
                (line.id, line.name, line.fusion_usage_quantity, line.price_subtotal)
                for line in invoice.invoice_line_ids
            ],
            snapshot,
        )
        usage_line = lines.filtered(lambda line: line.fusion_charge_id)
        self.assertEqual(usage_line.fusion_usage_quantity, 300)

    def test_adjust_policy_keeps_events_late_usage_may_still_re_rate(self):
        """Under the adjust policy a late event re-rates its closed period on
        the invoice of the period open when it arrives: the events stay until
        that invoice is posted."""
        self.service.write({"late_usage_policy": "adjust", "late_usage_days": 35})
        self._purge()
        # Late usage of m0 could arrive until 35 days after m0 ended, while m2
        # was open; m2 is not closed yet.
        self.assertEqual(
            self.events[self.posted, self.m0].exists(),
            self.events[self.posted, self.m0],
        )
        self._close(self.posted, self.m2 + relativedelta(months=1))
        self.assertEqual(self._invoice(self.posted, self.m2).state, "posted")
        self._purge()
        self.assertFalse(self.events[self.posted, self.m0].exists())

    def test_zero_retention_keeps_everything(self):
        self.service.usage_retention_days = 0
        self._purge()
        self.assertEqual(
            (self.events[self.posted, self.m0]),
            self.events[self.posted, self.m0],
        )

    def test_batches_commit_and_a_stopped_run_resumes(self):
        committed = []

        def progress(records, processed, remaining):
            committed.append(processed)
            return 0 if len(committed) == 1 else float("inf")

        with patch.object(FusionBillingService, "_purge_commit_progress", progress):
            self._purge(batch_size=2)
            # The time limit stopped the run after its first batch.
            self.assertEqual(committed, [2])
            self.assertEqual(len(self.events[self.posted, self.m0].exists()), 1)
            self._purge(batch_size=2)
        self.assertFalse(self.events[self.posted, self.m0].exists())
        self.assertEqual(committed[:2], [2, 1])
        self.assertEqual(
            (self.events[self.draft, self.m0]), self.events[self.draft, self.m0]
        )

    def test_many_periods_take_many_batches(self):
        """More purgeable periods than a batch holds: the run walks them all."""
        subscriptions = self.posted
        for n in range(3):
            subscription = self._create_subscription(
                self.service, self.partner_a, self.plan, f"fb_ret_many_{n}", self.m0
            )
            self._events(subscription, self.m0, 1)
            subscriptions |= subscription
        self._close(subscriptions, self.m2)
        doomed = self.Event.search(
            [("subscription_id", "in", subscriptions.ids), ("timestamp", "<", self.m1)]
        )
        self.assertEqual(len(doomed), 6)
        self._purge(batch_size=2)
        self.assertFalse(doomed.exists())

    def test_cron_record_runs_the_purge(self):
        cron = self.env.ref("fusion_billing.ir_cron_usage_retention")
        self.assertEqual((cron.interval_number, cron.interval_type), (1, "days"))
        cron.sudo().ir_actions_server_id.run()
        self.assertFalse(self.events[self.posted, self.m0].exists())


@tagged("post_install", "-at_install")
class TestRetentionIngestion(FusionBillingCase, HttpCase):
    """The API refuses events older than the service keeps usage."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = generate_key(cls.env, cls.service, cls.billing_manager)
        # A yearly period open for 120 days: old events are in its window.
        yearly = cls.env["fusion.billing.plan"].create(
            {
                "service_id": cls.service.id,
                "name": "Yearly",
                "code": "fb_ret_yearly",
                "interval_unit": "year",
                "interval_count": 1,
            }
        )
        cls._create_charge(yearly, cls.metric_calls, "standard", unit_price=1)
        cls._create_subscription(
            cls.service,
            cls.partner_a,
            yearly,
            "fb_ret_api",
            datetime.now(timezone.utc).date() - timedelta(days=120),
        )

    def _post(self, timestamp, key):
        self.env.flush_all()
        response = self.url_open(
            "/usage",
            data=json.dumps(
                {
                    "idempotency_key": key,
                    "subscription": "fb_ret_api",
                    "customer": "cus_a",
                    "metric": "api_calls",
                    "timestamp": iso(timestamp),
                }
            ),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.key}",
            },
        )
        return response.status_code, response.json()

    def test_events_older_than_the_retention_are_refused(self):
        now = datetime.now(timezone.utc).replace(microsecond=0)
        self.assertEqual(self._post(now - timedelta(days=60), "fb-old-1")[0], 200)
        self.service.usage_retention_days = 30
        status, body = self._post(now - timedelta(days=31), "fb-old-2")
        self.assertEqual(status, 400, body)
        error = body["results"][0]["error"]
        self.assertEqual(error["code"], usage.TIMESTAMP_OUT_OF_WINDOW)
        self.assertIn("keeps usage", error["message"])
        status, body = self._post(now - timedelta(days=29), "fb-old-3")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["accepted"], 1)
