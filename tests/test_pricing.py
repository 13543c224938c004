# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import date
from decimal import Decimal

from psycopg2 import IntegrityError

from odoo import Command
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import Form, tagged
from odoo.tools import mute_logger

from .common import FusionBillingCase


@tagged("post_install", "-at_install")
class TestPricingModels(FusionBillingCase):
    """Custom prices, charge filters, minimum commitments and credits as data:
    what they accept, what they refuse and who may change them."""

    def _own_charge(self, subscription, metric=None, **values):
        return self._create_charge(
            subscription.plan_id,
            metric or self.metric_calls,
            values.pop("charge_model", "standard"),
            subscription_id=subscription.id,
            **values,
        )

    def test_own_charge_is_not_among_the_plan_charges(self):
        own = self._own_charge(self.subscription_a, unit_price=0.01)
        self.assertEqual(self.plan.charge_ids, self.charge_calls)
        self.assertEqual(self.subscription_a.charge_ids, own)
        self.assertFalse(self.subscription_b.charge_ids)
        self.assertEqual(self.subscription_a.plan_charge_ids, self.charge_calls)
        self.assertIn("sub_a", own.display_name)

    def test_own_charge_must_be_on_the_subscription_plan(self):
        other_plan = self.plan.copy({"code": "pro_copy"})
        with self.assertRaisesRegex(ValidationError, "must be on its plan"):
            self._create_charge(
                other_plan,
                self.metric_calls,
                "standard",
                subscription_id=self.subscription_a.id,
            )

    def test_own_charge_metric_must_be_charged_on_the_plan(self):
        with self.assertRaisesRegex(ValidationError, "not charged on plan"):
            self._own_charge(self.subscription_a, self.metric_storage)

    def test_one_own_charge_per_metric(self):
        self._own_charge(self.subscription_a, unit_price=0.01)
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self._own_charge(self.subscription_a, unit_price=0.02)

    def test_own_charge_starts_from_the_plan_price_on_the_form(self):
        self.charge_calls.write({"charge_model": "package", "package_price": 5})
        form = Form(
            self.env["fusion.billing.charge"].with_context(
                default_plan_id=self.plan.id,
                default_subscription_id=self.subscription_a.id,
            )
        )
        form.metric_id = self.metric_calls
        self.assertEqual(form.product_id, self.product_usage)
        self.assertEqual(form.charge_model, "package")
        self.assertEqual(form.package_price, 5)
        form.package_price = 4
        charge = form.save()
        self.assertEqual(charge.subscription_id, self.subscription_a)
        self.assertEqual(self.charge_calls.package_price, 5)

    def test_custom_fixed_fee_needs_the_plan_product(self):
        plan = self.env["fusion.billing.plan"].create(
            {"service_id": self.service.id, "name": "Free", "code": "fb_free"}
        )
        subscription = self._create_subscription(
            self.service, self.partner_a, plan, "sub_free", date(2026, 1, 1)
        )
        with self.assertRaisesRegex(ValidationError, "no fixed fee product"):
            subscription.write({"override_base_price": True, "base_price": 10})
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self.subscription_a.write({"override_base_price": True, "base_price": -1})
            self.subscription_a.flush_recordset()

    def test_minimum_commitment_bounds(self):
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self.plan.minimum_amount = -1
            self.plan.flush_recordset()

    def test_minimum_commitment_needs_a_product(self):
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self.env["fusion.billing.plan"].create(
                {
                    "service_id": self.service.id,
                    "name": "Committed",
                    "code": "fb_committed",
                    "minimum_amount": 100,
                }
            )

    def test_filter_values_and_prices(self):
        charge_filter = self.env["fusion.billing.charge.filter"].create(
            {
                "charge_id": self.charge_calls.id,
                "property_name": "region",
                "values": " eu, uk,",
                "unit_price": 0.02,
            }
        )
        self.assertEqual(charge_filter.display_name, "region = eu, uk")
        self.assertEqual(charge_filter._engine_filter().values, ("eu", "uk"))
        with self.assertRaisesRegex(ValidationError, "at least one value"):
            charge_filter.values = " , "
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            charge_filter.write({"values": "eu", "unit_price": -1})
            charge_filter.flush_recordset()

    def test_filter_tiers_are_the_filter_own(self):
        ladder = [
            {"up_to": 100, "unit_price": 0.1},
            {"up_to": 0, "unit_price": 0.05},
        ]
        charge = self._create_charge(
            self.plan, self.metric_storage, "graduated", tiers=ladder
        )
        charge_filter = self.env["fusion.billing.charge.filter"].create(
            {
                "charge_id": charge.id,
                "property_name": "region",
                "values": "eu",
                "tier_ids": [Command.create({"up_to": 0, "unit_price": 0.2})],
            }
        )
        self.assertEqual(charge_filter.tier_ids.charge_id, charge)
        self.assertEqual(
            len(charge.tier_ids), 2, "the filter's tier is not the charge's"
        )
        self.assertEqual(
            [t.unit_price for t in charge_filter._engine_filter().charge.tiers],
            [Decimal("0.2")],
        )
        with self.assertRaisesRegex(ValidationError, "Tiers of filter"):
            charge_filter.tier_ids = [
                Command.create({"up_to": 0, "unit_price": 0.1}),
            ]
        # Deleting the charge deletes its filters and their tiers.
        tiers = charge_filter.tier_ids
        charge.unlink()
        self.assertFalse(tiers.exists())

    def test_credit_remaining_follows_its_consumptions(self):
        credit = self.env["fusion.billing.credit"].create(
            {"name": "Promo", "subscription_id": self.subscription_a.id, "amount": 50}
        )
        self.assertEqual(credit.remaining_amount, 50)
        self.assertEqual(credit.currency_id, self.subscription_a.currency_id)
        invoice = self.init_invoice("out_invoice", self.partner_a, amounts=[100])
        self.env["fusion.billing.credit.consumption"].sudo().create(
            {"credit_id": credit.id, "move_id": invoice.id, "amount": 20}
        )
        self.assertEqual(credit.remaining_amount, 30)
        invoice.button_cancel()
        self.assertEqual(credit.remaining_amount, 50, "cancelling gives it back")
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            credit.amount = 0
            credit.flush_recordset()

    def test_credit_cannot_be_used_beyond_its_amount(self):
        credit = self.env["fusion.billing.credit"].create(
            {"name": "Promo", "subscription_id": self.subscription_a.id, "amount": 10}
        )
        invoice = self.init_invoice("out_invoice", self.partner_a, amounts=[100])
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self.env["fusion.billing.credit.consumption"].sudo().create(
                {"credit_id": credit.id, "move_id": invoice.id, "amount": 11}
            )
            credit.flush_recordset()

    def test_users_read_managers_write(self):
        own = self._own_charge(self.subscription_a, unit_price=0.01)
        charge_filter = self.env["fusion.billing.charge.filter"].create(
            {"charge_id": own.id, "property_name": "region", "values": "eu"}
        )
        credit = self.env["fusion.billing.credit"].create(
            {"name": "Promo", "subscription_id": self.subscription_a.id, "amount": 10}
        )
        as_user = self.env(user=self.billing_user)
        for record in (own, charge_filter, credit, self.plan):
            record.with_env(as_user).read(["display_name"])
            with self.subTest(model=record._name), self.assertRaises(AccessError):
                record.with_env(as_user).write({})
        with self.assertRaises(AccessError):
            as_user["fusion.billing.credit"].create(
                {"name": "Free", "subscription_id": self.subscription_a.id, "amount": 1}
            )
        with self.assertRaises(AccessError):
            self.subscription_a.with_env(as_user).base_price = 1
        as_manager = self.env(user=self.billing_manager)
        credit.with_env(as_manager).write({"amount": 20, "priority": 1})
        charge_filter.with_env(as_manager).values = "eu,us"
        self.subscription_a.with_env(as_manager).write(
            {"override_base_price": True, "base_price": 10}
        )
        self.assertEqual(credit.remaining_amount, 20)
        with self.assertRaises(AccessError):
            as_manager["fusion.billing.credit.consumption"].create(
                {"credit_id": credit.id, "move_id": False, "amount": 1}
            )

    def test_other_company_credit_is_invisible(self):
        credit = self.env["fusion.billing.credit"].create(
            {"name": "Promo", "subscription_id": self.subscription_a.id, "amount": 10}
        )
        other_company = self.env["res.company"].create({"name": "Other Co"})
        outsider = self.billing_user.copy(
            {
                "login": "fb_user_other",
                "company_id": other_company.id,
                "company_ids": [Command.set(other_company.ids)],
            }
        )
        found = (
            self.env["fusion.billing.credit"]
            .with_user(outsider)
            .search([("id", "=", credit.id)])
        )
        self.assertFalse(found)
