# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
from datetime import date, datetime, time, timezone
from decimal import Decimal

from psycopg2 import IntegrityError

from odoo import Command
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import Form, tagged
from odoo.tools import mute_logger

from ..core import pricing
from .common import FusionBillingCase

JAN = date(2026, 1, 1)
FEB = date(2026, 2, 1)
MAR = date(2026, 3, 1)


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

    def test_copied_plan_copies_filters_and_their_tiers(self):
        charge = self._create_charge(
            self.plan,
            self.metric_storage,
            "volume",
            tiers=[{"up_to": 0, "unit_price": 1}],
        )
        self.env["fusion.billing.charge.filter"].create(
            {
                "charge_id": charge.id,
                "property_name": "region",
                "values": "eu",
                "tier_ids": [Command.create({"up_to": 0, "unit_price": 2})],
            }
        )
        self._own_charge(self.subscription_a, unit_price=0.01)
        copy = self.plan.copy({"code": "pro_copy"})
        copied = copy.charge_ids.filtered(lambda c: c.metric_id == self.metric_storage)
        self.assertEqual(len(copy.charge_ids), 2, "own prices stay with their plan")
        self.assertEqual(copied.tier_ids.mapped("unit_price"), [1])
        self.assertEqual(copied.filter_ids.tier_ids.mapped("unit_price"), [2])
        self.assertEqual(copied.filter_ids.tier_ids.charge_id, copied)
        self.assertEqual(charge.filter_ids.tier_ids.charge_id, charge)

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


@tagged("post_install", "-at_install")
class TestPricingRating(FusionBillingCase):
    """Custom prices, filters, minimums and credits as the rating cron bills
    them (SPEC section 13). Prices are chosen so amounts check by hand."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.product_untaxed = cls._create_product(
            name="Platform fee", taxes_id=cls.env["account.tax"]
        )
        cls.plan_p = cls.env["fusion.billing.plan"].create(
            {
                "service_id": cls.service.id,
                "name": "Pay as you go",
                "code": "fb_payg",
                "product_id": cls.product_untaxed.id,
            }
        )
        # 0.01 per call, taxed (the usage product carries the 15% sale tax).
        cls.charge_p = cls._create_charge(
            cls.plan_p, cls.metric_calls, "standard", unit_price=0.01
        )
        cls.sub_x = cls._create_subscription(
            cls.service, cls.partner_a, cls.plan_p, "fb_sub_x", JAN
        )
        cls.sub_y = cls._create_subscription(
            cls.service, cls.partner_b, cls.plan_p, "fb_sub_y", JAN
        )

    @classmethod
    def _event(cls, subscription, quantity, day, properties=None, metric=None):
        return cls._store_event(
            subscription,
            metric or cls.metric_calls,
            quantity,
            datetime.combine(day, time(12)),
            properties=properties or {},
        )

    def _rate(self, day):
        """Run the rating cron as it runs at 01:00 UTC on ``day``: a period
        ending that day has just closed (its grace is one hour)."""
        now = datetime.combine(day, time(1), tzinfo=timezone.utc)
        self.env["fusion.billing.rating"]._cron_rate_usage(now=now)

    def _invoices(self, subscription):
        return self.env["account.move"].search(
            [("fusion_subscription_id", "=", subscription.id)],
            order="fusion_period_start",
        )

    def _credit(self, subscription, amount, **values):
        return self.env["fusion.billing.credit"].create(
            {
                "name": values.pop("name", f"Credit {amount}"),
                "subscription_id": subscription.id,
                "amount": amount,
                **values,
            }
        )

    # -- custom prices ----------------------------------------------------

    def test_own_price_and_fixed_fee_apply_to_their_subscription_only(self):
        own = self._create_charge(
            self.plan_p,
            self.metric_calls,
            "standard",
            unit_price=0.02,
            subscription_id=self.sub_x.id,
        )
        self.plan_p.base_price = 49
        self.sub_x.write({"override_base_price": True, "base_price": 30})
        for subscription in (self.sub_x, self.sub_y):
            self._event(subscription, 1000, date(2026, 1, 10))
        self._rate(date(2026, 1, 20))
        x_invoice, y_invoice = self._invoices(self.sub_x), self._invoices(self.sub_y)
        # x: 1000 x 0.02 = 20.00 plus its own fee 30.00
        x_usage = x_invoice.invoice_line_ids.filtered("fusion_charge_id")
        self.assertEqual(x_usage.fusion_charge_id, own)
        self.assertEqual(x_usage.price_subtotal, 20.0)
        self.assertEqual(x_invoice.amount_untaxed, 50.0)
        # y: 1000 x 0.01 = 10.00 plus the plan's fee 49.00
        y_usage = y_invoice.invoice_line_ids.filtered("fusion_charge_id")
        self.assertEqual(y_usage.fusion_charge_id, self.charge_p)
        self.assertEqual(y_invoice.amount_untaxed, 59.0)
        self.assertEqual(self.sub_x.estimated_amount, 50.0)

    def test_own_price_added_mid_period_replaces_the_plan_line(self):
        self._event(self.sub_x, 1000, date(2026, 1, 10))
        self._rate(date(2026, 1, 11))
        invoice = self._invoices(self.sub_x)
        self.assertEqual(invoice.invoice_line_ids.fusion_charge_id, self.charge_p)
        own = self._create_charge(
            self.plan_p,
            self.metric_calls,
            "standard",
            unit_price=0.02,
            subscription_id=self.sub_x.id,
        )
        self._rate(date(2026, 1, 12))
        self.assertEqual(invoice.invoice_line_ids.fusion_charge_id, own)
        self.assertEqual(invoice.amount_untaxed, 20.0)

    def test_own_price_stops_with_the_plan_it_was_made_for(self):
        other_plan = self.plan_p.copy({"code": "fb_payg_2"})
        self._create_charge(
            self.plan_p,
            self.metric_calls,
            "standard",
            unit_price=0.02,
            subscription_id=self.sub_x.id,
        )
        self.sub_x.change_plan(other_plan, JAN)
        self._event(self.sub_x, 1000, date(2026, 1, 10))
        self._rate(date(2026, 1, 20))
        line = self._invoices(self.sub_x).invoice_line_ids
        self.assertEqual(line.fusion_charge_id, other_plan.charge_ids)
        self.assertEqual(line.price_subtotal, 10.0)

    # -- charge filters ---------------------------------------------------

    def _add_filters(self, charge):
        Filter = self.env["fusion.billing.charge.filter"]
        eu = Filter.create(
            {
                "charge_id": charge.id,
                "sequence": 10,
                "property_name": "region",
                "values": "eu,uk",
                "unit_price": 0.02,
            }
        )
        gpu = Filter.create(
            {
                "charge_id": charge.id,
                "sequence": 20,
                "property_name": "gpu",
                "values": "true",
                "unit_price": 0.05,
            }
        )
        return eu, gpu

    def test_filters_bill_a_line_per_bucket_with_usage(self):
        eu, gpu = self._add_filters(self.charge_p)
        day = date(2026, 1, 10)
        self._event(self.sub_x, 100, day, {"region": "eu"})
        self._event(self.sub_x, 50, day, {"region": "uk", "gpu": True})  # eu first
        self._event(self.sub_x, 30, day, {"gpu": True})  # JSON true is "true"
        self._event(self.sub_x, 20, day, {"gpu": "true"})
        self._event(self.sub_x, 7, day, {"region": "EU"})  # compared exactly
        self._event(self.sub_x, 3, day, {"region": ["eu"]})  # not a scalar
        self._event(self.sub_x, 10, day)
        self._rate(date(2026, 1, 20))
        invoice = self._invoices(self.sub_x)
        lines = {
            line.fusion_charge_filter_id: line
            for line in invoice.invoice_line_ids.sorted("id")
        }
        # eu: 150 x 0.02 = 3.00; gpu: 50 x 0.05 = 2.50; rest: 20 x 0.01 = 0.20
        self.assertEqual(
            {
                f: (line.fusion_usage_quantity, line.price_subtotal)
                for f, line in lines.items()
            },
            {eu: (150, 3.0), gpu: (50, 2.5), eu.browse(): (20, 0.2)},
        )
        self.assertIn("region = eu, uk", lines[eu].name)
        self.assertIn("gpu = true", lines[gpu].name)
        self.assertIn("other usage", lines[eu.browse()].name)
        self.assertEqual(
            set(invoice.invoice_line_ids.fusion_charge_id), {self.charge_p}
        )
        # The form's estimate is what the invoice bills; a rerun changes nothing.
        self.assertEqual(self.sub_x.estimated_amount, 5.7)
        self.assertEqual(invoice.amount_untaxed, 5.7)
        self._rate(date(2026, 1, 21))
        self.assertEqual(self._invoices(self.sub_x), invoice)
        self.assertEqual(len(invoice.invoice_line_ids), 3)

    def test_sql_buckets_follow_the_engine_rule(self):
        """The SQL that buckets events agrees with the engine's statement of
        the rule on awkward property values (quantities are powers of two, so
        each bucket's sum tells which events it holds)."""
        Filter = self.env["fusion.billing.charge.filter"]
        filters = Filter.create(
            [
                {
                    "charge_id": self.charge_p.id,
                    "sequence": 10,
                    "property_name": "tier",
                    "values": "1, 2.5,true",
                },
                {
                    "charge_id": self.charge_p.id,
                    "sequence": 20,
                    "property_name": "zone",
                    "values": "null,{},eu west",
                },
                {
                    "charge_id": self.charge_p.id,
                    "sequence": 30,
                    "property_name": "tier",
                    "values": "false,0,2",
                },
            ]
        )
        samples = [
            {"tier": 1},
            {"tier": "1"},
            {"tier": 1.0},
            {"tier": 2.5},
            {"tier": True},
            {"tier": "true"},
            {"tier": False},
            {"tier": 0},
            {"tier": 2, "zone": "eu west"},
            {"tier": None},
            {"tier": [1]},
            {"tier": {"a": 1}},
            {"zone": None},
            {"zone": {}},
            {"zone": "null"},
            {"Tier": 1},
            {},
        ]
        engine_filters = [f._engine_filter() for f in filters]
        expected = dict.fromkeys([*filters, Filter], 0)
        for power, properties in enumerate(samples):
            self._event(self.sub_x, 2**power, date(2026, 1, 10), properties)
            index = pricing.matching_filter(engine_filters, properties)
            expected[filters[index] if index is not None else Filter] += 2**power
        rating = self.sub_x._open_period_rating()[self.sub_x.id]
        self.assertEqual(
            {line.charge_filter or Filter: line.quantity for line in rating.lines},
            expected,
        )

    def test_filter_without_usage_has_no_line_and_buckets_price_alone(self):
        # Storage is a max: each bucket is its own maximum, priced by its own
        # volume tiers; the other subscription's events never count.
        charge = self._create_charge(
            self.plan_p,
            self.metric_storage,
            "volume",
            tiers=[{"up_to": 10, "unit_price": 1}, {"up_to": 0, "unit_price": 0.5}],
        )
        eu, gpu = self._add_filters(charge)
        eu.tier_ids = [
            Command.create({"up_to": 10, "unit_price": 2}),
            Command.create({"up_to": 0, "unit_price": 1.5, "flat_fee": 4}),
        ]
        gpu.tier_ids = [Command.create({"up_to": 0, "unit_price": 3, "flat_fee": 1})]
        day = date(2026, 1, 10)
        for quantity, region in ((40, "eu"), (12, "eu"), (8, "us"), (25, None)):
            properties = {"region": region} if region else {}
            self._event(self.sub_x, quantity, day, properties, self.metric_storage)
        self._event(self.sub_y, 90, day, {"region": "eu"}, self.metric_storage)
        self._rate(date(2026, 1, 20))
        lines = self._invoices(self.sub_x).invoice_line_ids.filtered(
            lambda line: line.fusion_charge_id == charge
        )
        # eu bills two lines: under a section of its own.
        section = lines.filtered(lambda line: line.display_type == "line_section")
        self.assertEqual(section.fusion_charge_filter_id, eu)
        self.assertTrue(section.name.startswith("Storage Gb, region = eu, uk, 01/01"))
        lines -= section
        # eu: max 40 -> 40 x 1.50 and the tier's fee 4; rest: max 25 -> 25 x 0.50
        self.assertEqual(
            {
                (line.fusion_charge_filter_id, line.quantity, line.price_unit)
                for line in lines
            },
            {(eu, 40, 1.5), (eu, 1, 4.0), (eu.browse(), 25, 0.5)},
        )
        self.assertEqual(
            sum(lines.filtered("fusion_charge_filter_id").mapped("price_subtotal")),
            64.0,
        )
        self.assertEqual(
            (lines - lines.filtered("fusion_charge_filter_id")).price_subtotal, 12.5
        )

    # -- minimum commitment ----------------------------------------------

    def test_minimum_commitment_is_prorated_like_the_fixed_fee(self):
        # The last period runs 1-15 January: 15 of 31 days of a 31.00 minimum
        # and of a 62.00 fee are 15.00 and 30.00; usage 10.00 + fee 30.00 is
        # above the minimum, so only the fee-less subscription trues up.
        self.plan_p.minimum_amount = 31
        self.sub_x.end_date = date(2026, 1, 16)
        self.sub_y.write(
            {
                "end_date": date(2026, 1, 16),
                "override_base_price": True,
                "base_price": 62,
            }
        )
        for subscription in (self.sub_x, self.sub_y):
            self._event(subscription, 1000, date(2026, 1, 10))
        self._rate(date(2026, 1, 16))
        x_minimum = self._invoices(self.sub_x).invoice_line_ids.filtered(
            "fusion_is_minimum"
        )
        self.assertEqual(x_minimum.price_subtotal, 5.0)
        self.assertIn("15 of 31 days", x_minimum.name)
        self.assertEqual(self._invoices(self.sub_x).amount_untaxed, 15.0)
        y_invoice = self._invoices(self.sub_y)
        self.assertEqual(y_invoice.amount_untaxed, 40.0)
        self.assertFalse(y_invoice.invoice_line_ids.filtered("fusion_is_minimum"))

    def test_minimum_commitment_trues_up_at_close(self):
        self.plan_p.minimum_amount = 25
        self._event(self.sub_x, 1000, date(2026, 1, 10))  # 10.00
        sub_z = self._create_subscription(
            self.service, self.partner_a, self.plan_p, "fb_sub_z", JAN
        )
        self._event(sub_z, 4000, date(2026, 1, 10))  # 40.00: above the minimum
        self._rate(date(2026, 1, 20))
        self.assertFalse(
            self._invoices(self.sub_x).invoice_line_ids.filtered("fusion_is_minimum"),
            "the minimum is billed when the period closes",
        )
        self.assertFalse(self._invoices(self.sub_y))
        self._rate(FEB)
        x_invoice = self._invoices(self.sub_x)
        minimum = x_invoice.invoice_line_ids.filtered("fusion_is_minimum")
        self.assertEqual(minimum.price_subtotal, 15.0)
        self.assertEqual(minimum.product_id, self.product_untaxed)
        self.assertTrue(minimum.name.startswith("Minimum commitment, 01/01/2026"))
        self.assertEqual(x_invoice.amount_untaxed, 25.0)
        # A period with no usage gets an invoice for the minimum alone.
        y_invoice = self._invoices(self.sub_y)
        self.assertEqual(y_invoice.amount_untaxed, 25.0)
        self.assertEqual(
            (y_invoice.fusion_period_start, y_invoice.fusion_period_end), (JAN, FEB)
        )
        finalized = (
            self.env["fusion.billing.webhook.event"]
            .sudo()
            .search([("dedupe_key", "=", f"invoice.finalized:{y_invoice.id}")])
        )
        lines = json.loads(finalized.body)["data"]["invoice"]["lines"]
        self.assertEqual(
            [(line["minimum_commitment"], line["amount"]) for line in lines],
            [(True, "25.00")],
        )
        self.assertEqual(self._invoices(sub_z).amount_untaxed, 40.0)
        self.assertFalse(
            self._invoices(sub_z).invoice_line_ids.filtered("fusion_is_minimum")
        )

    # -- credits ----------------------------------------------------------

    def test_credits_by_priority_then_expiry_across_two_periods(self):
        late = self._credit(self.sub_x, 8, name="Launch promotion")
        soon = self._credit(
            self.sub_x, 5, priority=10, expiration_date=date(2026, 1, 31)
        )
        expired = self._credit(self.sub_x, 100, expiration_date=date(2026, 1, 30))
        self._event(self.sub_x, 1000, date(2026, 1, 10))  # 10.00
        self._event(self.sub_x, 500, date(2026, 2, 10))  # 5.00
        self._rate(FEB)
        january = self._invoices(self.sub_x)[0]
        credit_line = january.invoice_line_ids.filtered("fusion_is_credit")
        # Same priority: the credit expiring on the period's last day first.
        self.assertEqual(credit_line.price_subtotal, -10.0)
        self.assertTrue(credit_line.name.startswith("Prepaid credits, 01/01/2026"))
        self.assertEqual(credit_line.tax_ids, self.charge_p.product_id.taxes_id)
        self.assertEqual(january.amount_untaxed, 0.0)
        self.assertEqual(january.amount_total, 0.0)
        self.assertEqual(
            (soon.remaining_amount, late.remaining_amount, expired.remaining_amount),
            (0.0, 3.0, 100.0),
        )
        self._rate(MAR)
        february = self._invoices(self.sub_x)[1]
        self.assertEqual(
            february.invoice_line_ids.filtered("fusion_is_credit").price_subtotal, -3.0
        )
        self.assertEqual(february.amount_untaxed, 2.0)
        self.assertEqual(late.remaining_amount, 0.0)
        self.assertEqual(
            {(c.move_id, c.amount) for c in late.consumption_ids},
            {(january, 5.0), (february, 3.0)},
        )
        self.assertFalse(expired.consumption_ids, "an expired credit is never used")

    def test_credit_split_per_set_of_taxes(self):
        # 10.00 of taxed usage, 10.00 of untaxed fee, 10.00 of credit: each set
        # of taxes is reduced by half, so the tax is on 5.00 only.
        self.sub_x.write({"override_base_price": True, "base_price": 10})
        self._credit(self.sub_x, 10)
        self._event(self.sub_x, 1000, date(2026, 1, 10))
        self._rate(FEB)
        invoice = self._invoices(self.sub_x)[0]
        credit_lines = invoice.invoice_line_ids.filtered("fusion_is_credit")
        self.assertEqual(
            sorted((line.price_subtotal, len(line.tax_ids)) for line in credit_lines),
            [(-5.0, 0), (-5.0, 1)],
        )
        self.assertEqual(invoice.amount_untaxed, 10.0)
        rate = self.charge_p.product_id.taxes_id.amount / 100
        self.assertAlmostEqual(invoice.amount_tax, 5.0 * rate)

    def test_cancelled_invoice_gives_its_credit_back(self):
        credit = self._credit(self.sub_x, 50)
        self._event(self.sub_x, 1000, date(2026, 1, 10))
        self._rate(FEB)
        invoice = self._invoices(self.sub_x)
        self.assertEqual(credit.remaining_amount, 40.0)
        invoice.button_cancel()
        self.assertEqual(credit.remaining_amount, 50.0)
        self.assertEqual(credit.consumption_ids.state, "cancel")
        # The next period uses it again.
        self._event(self.sub_x, 2000, date(2026, 2, 10))
        self._rate(MAR)
        self.assertEqual(credit.remaining_amount, 30.0)

    def test_credit_of_another_subscription_is_not_used(self):
        self._credit(self.sub_y, 50)
        self._event(self.sub_x, 1000, date(2026, 1, 10))
        self._rate(FEB)
        self.assertEqual(self._invoices(self.sub_x).amount_untaxed, 10.0)
