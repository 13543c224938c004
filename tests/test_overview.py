# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json

from dateutil.relativedelta import relativedelta

from odoo import Command, fields
from odoo.tests import tagged

from .common import FusionBillingCase


@tagged("post_install", "-at_install")
class TestOverview(FusionBillingCase):
    """The landing page: each figure of a service's card and the list behind it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.today = fields.Date.context_today(cls.service)
        cls.this_month = cls._one_off_invoice(100.0, cls.today)
        cls.last_month = cls._one_off_invoice(
            40.0, cls.today.replace(day=1) - relativedelta(days=1)
        )
        cls.partner_c = cls.env["res.partner"].create({"name": "Gemini Furniture"})
        cls.draft = cls.env["fusion.billing.subscription"].create(
            {
                "service_id": cls.service.id,
                "partner_id": cls.partner_c.id,
                "plan_id": cls.plan.id,
                "external_ref": "sub_c",
            }
        )
        cls.subscription_b.rating_error = "Tiers of Pro / Api Calls: no tiers"
        Event = cls.env["fusion.billing.webhook.event"]
        cls.waiting = Event._queue(cls.service, "invoice.created", {"invoice": 1})
        cls.failed = Event._queue(cls.service, "invoice.created", {"invoice": 2})
        cls.failed.state = "failed"
        cls.delta = cls._create_reconciliation_row(cls.partner_a, "2026-01", 100, 90)

    @classmethod
    def _one_off_invoice(cls, amount, invoice_date):
        invoice = cls.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": cls.partner_a.id,
                "invoice_date": invoice_date,
                "fusion_service_id": cls.service.id,
                "invoice_line_ids": [
                    Command.create(
                        {
                            "product_id": cls.product_usage.id,
                            "price_unit": amount,
                            "tax_ids": [Command.clear()],
                        }
                    )
                ],
            }
        )
        invoice.action_post()
        return invoice

    def _open(self, key):
        action = self.service.with_context(overview=key).action_open_overview()
        return self.env[action["res_model"]].search(action["domain"])

    def test_amounts_and_graph(self):
        service = self.service
        self.assertEqual(service.billed_current_amount, 100.0)
        self.assertEqual(service.billed_previous_amount, 40.0)
        # The two active subscriptions' open periods: their fixed fee so far.
        self.assertEqual(service.estimated_amount, 98.0)
        (graph,) = json.loads(service.overview_graph)
        values = graph["values"]
        self.assertEqual(len(values), 6)
        self.assertEqual([v["value"] for v in values[-2:]], [40.0, 100.0])
        self.assertEqual(values[-1]["type"], "future")
        self.assertEqual(self._open("billed_current"), self.this_month)
        self.assertEqual(self._open("billed_previous"), self.last_month)

    def test_counts_open_exactly_their_records(self):
        service = self.service
        self.assertEqual(
            (
                service.active_subscription_count,
                service.draft_subscription_count,
                service.closed_subscription_count,
                service.rating_error_count,
                service.webhook_pending_count,
                service.webhook_failed_count,
                service.open_delta_count,
            ),
            (2, 1, 0, 1, 1, 1, 1),
        )
        self.assertEqual(
            self._open("active"), self.subscription_a | self.subscription_b
        )
        self.assertEqual(self._open("draft"), self.draft)
        self.assertFalse(self._open("closed"))
        self.assertEqual(self._open("deltas"), self.delta)
        self.assertFalse(service.cutover_ready)
        self.assertEqual(service.cutover_progress, "0 of 3 periods")

    def test_overview_is_the_landing_page(self):
        root = self.env.ref("fusion_billing.menu_fusion_billing_root")
        self.assertEqual(
            root.action, self.env.ref("fusion_billing.fusion_billing_overview_action")
        )
        # The kanban renders for a billing user too.
        self.service.with_user(self.billing_user).get_views([(False, "kanban")])
