# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import date

from odoo import Command
from odoo.tests import new_test_user

from odoo.addons.account.tests.common import AccountTestInvoicingCommon


class FusionBillingCase(AccountTestInvoicingCommon):
    """One service with a metric per aggregation, a plan charging each model, two
    linked customers with active monthly subscriptions, and users of both groups.
    The test environment's user (account's "accountman") is a billing manager."""

    @classmethod
    def get_default_groups(cls):
        return super().get_default_groups() | cls.env.ref(
            "fusion_billing.group_fusion_billing_manager"
        )

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.currency = cls.env.company.currency_id
        cls.billing_user = new_test_user(
            cls.env,
            login="fb_user",
            groups="base.group_user,fusion_billing.group_fusion_billing_user",
        )
        cls.billing_manager = new_test_user(
            cls.env,
            login="fb_manager",
            groups="base.group_user,fusion_billing.group_fusion_billing_manager",
        )
        cls.service = cls._create_service("Test Cloud", "fb_test_cloud")
        cls.metric_calls = cls._create_metric(cls.service, "api_calls", "sum")
        cls.metric_storage = cls._create_metric(cls.service, "storage_gb", "max")
        cls.metric_requests = cls._create_metric(cls.service, "requests", "count")
        cls.metric_seats = cls._create_metric(
            cls.service, "active_users", "unique_count", property_name="user_id"
        )
        cls.metric_plan_tier = cls._create_metric(cls.service, "plan_tier", "latest")
        cls.product_usage = cls._create_product(name="Usage", lst_price=0.0)
        cls.product_fee = cls._create_product(name="Pro fee", lst_price=49.0)
        cls.plan = cls.env["fusion.billing.plan"].create(
            {
                "service_id": cls.service.id,
                "name": "Pro",
                "code": "pro",
                "interval_unit": "month",
                "interval_count": 1,
                "base_price": 49.0,
                "product_id": cls.product_fee.id,
            }
        )
        cls.charge_calls = cls._create_charge(
            cls.plan, cls.metric_calls, "standard", unit_price=0.0125
        )
        cls.partner_a = cls.env["res.partner"].create({"name": "Azure Interior"})
        cls.partner_b = cls.env["res.partner"].create({"name": "Deco Addict"})
        cls.customer_a = cls._create_customer(cls.service, cls.partner_a, "cus_a")
        cls.customer_b = cls._create_customer(cls.service, cls.partner_b, "cus_b")
        cls.subscription_a = cls._create_subscription(
            cls.service, cls.partner_a, cls.plan, "sub_a", date(2026, 1, 1)
        )
        cls.subscription_b = cls._create_subscription(
            cls.service, cls.partner_b, cls.plan, "sub_b", date(2026, 1, 1)
        )

    @classmethod
    def _create_service(cls, name, code, **values):
        return cls.env["fusion.billing.service"].create(
            {"name": name, "code": code, **values}
        )

    @classmethod
    def _create_metric(cls, service, code, aggregation, **values):
        return cls.env["fusion.billing.metric"].create(
            {
                "service_id": service.id,
                "code": code,
                "name": code.replace("_", " ").title(),
                "aggregation": aggregation,
                **values,
            }
        )

    @classmethod
    def _create_charge(cls, plan, metric, charge_model, tiers=(), **values):
        return cls.env["fusion.billing.charge"].create(
            {
                "plan_id": plan.id,
                "metric_id": metric.id,
                "product_id": values.pop("product_id", cls.product_usage.id),
                "charge_model": charge_model,
                "tier_ids": [Command.create(dict(tier)) for tier in tiers],
                **values,
            }
        )

    @classmethod
    def _create_reconciliation_row(cls, partner, period, odoo=0.0, external=0.0):
        """A row of ``cls.service`` with both amounts, as invoices and the app
        would give them (amounts are never written by hand)."""
        return (
            cls.env["fusion.billing.reconciliation"]
            .sudo()
            .create(
                {
                    "service_id": cls.service.id,
                    "partner_id": partner.id,
                    "period": period,
                    "currency_id": cls.currency.id,
                    "odoo_amount": odoo,
                    "external_amount": external,
                }
            )
            .sudo(False)
        )

    @classmethod
    def _create_customer(cls, service, partner, external_ref):
        return cls.env["fusion.billing.customer"].create(
            {
                "service_id": service.id,
                "partner_id": partner.id,
                "external_ref": external_ref,
            }
        )

    @classmethod
    def _create_subscription(cls, service, partner, plan, external_ref, start_date):
        subscription = cls.env["fusion.billing.subscription"].create(
            {
                "service_id": service.id,
                "partner_id": partner.id,
                "plan_id": plan.id,
                "external_ref": external_ref,
                "start_date": start_date,
            }
        )
        subscription.action_activate()
        return subscription
