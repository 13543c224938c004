# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import datetime

from odoo import Command, fields
from odoo.tests import HttpCase, new_test_user, tagged


@tagged("post_install", "-at_install")
class TestBackOfficeTours(HttpCase):
    """The back office as billing admins and accountants click it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = new_test_user(
            cls.env,
            login="fb_tour_admin",
            password="fb_tour_admin",
            groups="base.group_user,account.group_account_invoice,"
            "fusion_billing.group_fusion_billing_manager",
        )
        cls.product = cls.env["product.product"].create(
            {"name": "Tour Usage", "type": "service", "list_price": 0}
        )

    def test_admin_sets_up_an_app_from_nothing(self):
        self.env["res.partner"].create({"name": "Tour Admin Customer"})
        self.start_tour(
            "/odoo/action-fusion_billing.fusion_billing_service_action",
            "fusion_billing_admin_tour",
            login="fb_tour_admin",
        )
        service = self.env["fusion.billing.service"].search(
            [("code", "=", "fb_tour_admin")]
        )
        plan = service.plan_ids
        self.assertEqual(plan.charge_ids.charge_model, "graduated")
        self.assertEqual(plan.charge_ids.tier_ids.mapped("up_to"), [100, 0])
        self.assertEqual(service.customer_ids.external_ref, "cus_tour_admin")
        self.assertEqual(service.subscription_ids.state, "active")
        self.assertEqual(service.api_key_count, 1)

    def _subscription_with_usage(self, code, metric_name, partner_name):
        """An active subscription of a new service whose metric ``metric_name``
        (0.50 a unit) has 10 units used now."""
        service = self.env["fusion.billing.service"].create(
            {"name": f"Tour {code} Cloud", "code": f"fb_tour_{code}"}
        )
        metric = self.env["fusion.billing.metric"].create(
            {"service_id": service.id, "code": "calls", "name": metric_name}
        )
        plan = self.env["fusion.billing.plan"].create(
            {
                "service_id": service.id,
                "name": "Tour Plan",
                "code": "tour",
                "charge_ids": [
                    Command.create(
                        {
                            "metric_id": metric.id,
                            "product_id": self.product.id,
                            "unit_price": 0.5,
                        }
                    )
                ],
            }
        )
        partner = self.env["res.partner"].create({"name": partner_name})
        self.env["fusion.billing.customer"].create(
            {"service_id": service.id, "partner_id": partner.id, "external_ref": "c"}
        )
        subscription = self.env["fusion.billing.subscription"].create(
            {
                "service_id": service.id,
                "partner_id": partner.id,
                "plan_id": plan.id,
                "external_ref": f"sub_tour_{code}",
                "start_date": fields.Date.context_today(service).replace(day=1),
                "state": "active",
            }
        )
        self.env["fusion.billing.usage.event"].sudo().create(
            {
                "service_id": service.id,
                "subscription_id": subscription.id,
                "metric_id": metric.id,
                "quantity": 10,
                "timestamp": datetime.now().replace(microsecond=0),
                "idempotency_key": "fb_tour_evt",
            }
        )
        return subscription

    def test_accountant_rates_now_and_reads_the_draft(self):
        subscription = self._subscription_with_usage(
            "rate", "Tour Calls", "Tour Rate Co"
        )
        self.start_tour(
            "/odoo/action-fusion_billing.fusion_billing_subscription_action",
            "fusion_billing_accountant_tour",
            login="fb_tour_admin",
        )
        self.assertEqual(subscription.invoice_ids.amount_untaxed, 5)

    def test_billing_user_opens_usage_and_revenue_analysis(self):
        new_test_user(
            self.env,
            login="fb_tour_analyst",
            password="fb_tour_analyst",
            groups="base.group_user,fusion_billing.group_fusion_billing_user",
        )
        self._subscription_with_usage(
            "analysis", "Tour Analysis Calls", "Tour Analysis Co"
        )
        self.start_tour(
            "/odoo/action-fusion_billing.fusion_billing_subscription_action",
            "fusion_billing_analysis_tour",
            login="fb_tour_analyst",
        )

    def test_resolve_a_delta_with_a_note(self):
        service = self.env["fusion.billing.service"].create(
            {"name": "Tour Delta Cloud", "code": "fb_tour_delta"}
        )
        partner = self.env["res.partner"].create({"name": "Tour Delta Co"})
        row = (
            self.env["fusion.billing.reconciliation"]
            .sudo()
            .create(
                {
                    "service_id": service.id,
                    "partner_id": partner.id,
                    "period": "2026-01",
                    "currency_id": service.currency_id.id,
                    "odoo_amount": 120,
                    "external_amount": 100,
                }
            )
        )
        self.start_tour(
            "/odoo/action-fusion_billing.fusion_billing_reconciliation_action",
            "fusion_billing_resolve_delta_tour",
            login="fb_tour_admin",
        )
        self.assertEqual(row.status, "resolved")
        self.assertEqual(row.note, "The app billed the setup fee in advance.")
