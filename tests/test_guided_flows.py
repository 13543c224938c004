# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import datetime

from odoo import Command, fields
from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import FusionBillingCase


@tagged("post_install", "-at_install")
class TestGuidedFlows(FusionBillingCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.currency.write({"symbol": "$", "position": "before"})

    def _plan_notes(self):
        bodies = self.plan.message_ids.mapped("body")
        return [body for body in bodies if "Usage charge" in body]

    def test_price_changes_are_logged_on_the_plan_with_a_warning(self):
        before = len(self._plan_notes())
        self.charge_calls.unit_price = 0.02
        notes = self._plan_notes()
        self.assertEqual(len(notes), before + 1)
        note = notes[0]
        self.assertIn("Api Calls", note)
        self.assertIn("0.0125", note)
        self.assertIn("0.02", note)
        self.assertIn("2 active subscriptions are re-rated", note)
        # A write that changes no price logs nothing.
        self.charge_calls.sequence = 3
        self.assertEqual(len(self._plan_notes()), before + 1)

    def test_tier_changes_are_logged_once(self):
        before = len(self._plan_notes())
        charge = self._create_charge(
            self.plan,
            self.metric_requests,
            "graduated",
            tiers=[{"up_to": 10, "unit_price": 1}, {"unit_price": 0.5}],
        )
        self.assertEqual(len(self._plan_notes()), before + 1, "added")
        charge.write(
            {"tier_ids": [Command.update(charge.tier_ids[0].id, {"unit_price": 2})]}
        )
        self.assertEqual(len(self._plan_notes()), before + 2)
        charge.tier_ids[1].flat_fee = 5
        notes = self._plan_notes()
        self.assertEqual(len(notes), before + 3)
        self.assertIn("$0.50 + $5.00", notes[0])
        charge.unlink()
        self.assertIn("removed", self._plan_notes()[0])

    def test_metrics_archive_and_a_used_metric_says_why_it_stays(self):
        with self.assertRaisesRegex(UserError, "archive"):
            self.metric_calls.unlink()
        self.metric_calls.active = False
        self.assertNotIn(
            self.metric_calls,
            self.env["fusion.billing.metric"].search(
                [("service_id", "=", self.service.id)]
            ),
        )
        self.metric_calls.active = True
        unused = self._create_metric(self.service, "fb_unused", "sum")
        unused.unlink()
        self.assertFalse(unused.exists())

    def test_rate_now_bills_the_open_period(self):
        today = fields.Date.context_today(self.service)
        partner = self.env["res.partner"].create({"name": "Rate Now Ltd"})
        subscription = self._create_subscription(
            self.service, partner, self.plan, "fb_sub_rate_now", today.replace(day=1)
        )
        self.env["fusion.billing.usage.event"].sudo().create(
            {
                "service_id": self.service.id,
                "subscription_id": subscription.id,
                "metric_id": self.metric_calls.id,
                "quantity": 800,
                "timestamp": datetime.now().replace(microsecond=0),
                "idempotency_key": "fb_rate_now_1",
            }
        )
        self.assertFalse(subscription.invoice_ids)
        action = subscription.action_rate_now()
        self.assertEqual(action["params"]["type"], "success")
        invoice = subscription.invoice_ids
        self.assertEqual(invoice.state, "draft")
        self.assertEqual(invoice.amount_untaxed, 49 + 10)
        self.assertTrue(subscription.rating_date)
        with self.assertRaisesRegex(UserError, "Only active"):
            self.env["fusion.billing.subscription"].create(
                {
                    "service_id": self.service.id,
                    "partner_id": partner.id,
                    "plan_id": self.plan.id,
                    "external_ref": "fb_sub_draft",
                }
            ).action_rate_now()

    def test_mark_resolved_asks_for_the_note(self):
        row = self._create_reconciliation_row(self.partner_a, "2026-01", 100, 90)
        action = row.action_resolve()
        self.assertEqual((action["target"], action["res_id"]), ("new", row.id))
        self.assertEqual(row.status, "delta")
        row.note = "The app prorated the first month."
        self.assertTrue(row.action_resolve())
        self.assertEqual(row.status, "resolved")
