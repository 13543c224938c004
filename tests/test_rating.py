# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
import math
from datetime import date, datetime, time, timezone
from decimal import Decimal
from unittest.mock import patch

from psycopg2 import IntegrityError

from odoo import SUPERUSER_ID, Command
from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..core import charges
from ..models.fusion_billing_charge import FusionBillingCharge
from ..models.fusion_billing_rating import FusionBillingRating
from ..models.fusion_billing_subscription import FusionBillingSubscription
from .common import FusionBillingCase

JAN = date(2026, 1, 1)
FEB = date(2026, 2, 1)
MAR = date(2026, 3, 1)
APR = date(2026, 4, 1)
MAY = date(2026, 5, 1)


@tagged("post_install", "-at_install")
class TestRating(FusionBillingCase):
    """The rating cron turns usage into draft invoice lines (SPEC section 5)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Subscription = cls.env["fusion.billing.subscription"]
        cls.WebhookEvent = cls.env["fusion.billing.webhook.event"]
        # A plan without fixed fee, so that usage alone decides about invoices.
        cls.plan_usage = cls.env["fusion.billing.plan"].create(
            {"service_id": cls.service.id, "name": "Usage only", "code": "usage"}
        )
        cls.charge_usage_calls = cls._create_charge(
            cls.plan_usage, cls.metric_calls, "standard", unit_price=0.0125
        )
        cls.partner_c = cls.env["res.partner"].create({"name": "Gemini Furniture"})
        cls._create_customer(cls.service, cls.partner_c, "cus_c")
        cls.subscription_c = cls._create_subscription(
            cls.service, cls.partner_c, cls.plan_usage, "sub_c", JAN
        )

    # -- helpers ---------------------------------------------------------

    @classmethod
    def _event(cls, subscription, metric, quantity, timestamp, properties=None):
        return cls._store_event(
            subscription, metric, quantity, timestamp, properties=properties or {}
        )

    def _rate(self, day, **kwargs):
        """Run the rating cron as it runs at 01:00 UTC on ``day``: a period
        ending that day has just closed (its grace is one hour)."""
        now = datetime.combine(day, time(1), tzinfo=timezone.utc)
        self.env["fusion.billing.rating"]._cron_rate_usage(now=now, **kwargs)

    def _invoices(self, subscription):
        return self.env["account.move"].search(
            [("fusion_subscription_id", "=", subscription.id)],
            order="fusion_period_start",
        )

    def _line(self, invoice, charge):
        """The lines billing ``charge`` (not its section)."""
        return invoice.invoice_line_ids.filtered(
            lambda line: (
                line.fusion_charge_id == charge and line.display_type == "product"
            )
        )

    def _webhooks(self, event_type, invoice):
        return self.WebhookEvent.sudo().search(
            [("dedupe_key", "=", f"{event_type}:{invoice.id}")]
        )

    # -- the billing window ---------------------------------------------

    def test_window_is_half_open_and_anchored_on_period_start(self):
        sub = self.subscription_c
        self._event(sub, self.metric_calls, 100, datetime(2026, 1, 1, 0, 0, 0))
        self._event(sub, self.metric_calls, 10, datetime(2026, 1, 31, 23, 59, 59))
        self._event(sub, self.metric_calls, 1000, datetime(2026, 2, 1, 0, 0, 0))
        self._rate(date(2026, 1, 20))
        invoice = self._invoices(sub)
        self.assertEqual(len(invoice), 1)
        self.assertEqual(
            (invoice.fusion_period_start, invoice.fusion_period_end), (JAN, FEB)
        )
        line = self._line(invoice, self.charge_usage_calls)
        # 110 x 0.0125 = 1.375, rounded half up once.
        self.assertEqual(line.fusion_usage_quantity, 110)
        self.assertEqual(line.price_subtotal, 1.38)

        self._rate(FEB)
        january, february = self._invoices(sub)
        self.assertEqual(
            self._line(january, self.charge_usage_calls).price_subtotal, 1.38
        )
        self.assertEqual(
            self._line(february, self.charge_usage_calls).fusion_usage_quantity, 1000
        )
        self.assertEqual((sub.last_invoice_date, sub.next_invoice_date), (FEB, MAR))

    def test_charges_of_other_plans_never_rate_a_subscription(self):
        # Another plan prices the same metric, and a metric Pro does not charge.
        plan_basic = self.env["fusion.billing.plan"].create(
            {"service_id": self.service.id, "name": "Basic", "code": "basic"}
        )
        basic_calls = self._create_charge(
            plan_basic, self.metric_calls, "standard", unit_price=1.0
        )
        basic_storage = self._create_charge(
            plan_basic, self.metric_storage, "standard", unit_price=2.0
        )
        partner = self.env["res.partner"].create({"name": "Basic customer"})
        self._create_customer(self.service, partner, "cus_basic")
        sub_basic = self._create_subscription(
            self.service, partner, plan_basic, "sub_basic", JAN
        )
        sub = self.subscription_a
        self._event(sub, self.metric_calls, 800, datetime(2026, 1, 5))
        self._event(sub, self.metric_storage, 5, datetime(2026, 1, 5))
        self._event(sub_basic, self.metric_calls, 3, datetime(2026, 1, 5))
        self._rate(date(2026, 1, 20))

        invoice = self._invoices(sub)
        rated = invoice.invoice_line_ids.filtered("fusion_charge_id")
        self.assertEqual(rated.fusion_charge_id, self.charge_calls)
        self.assertEqual(rated.price_subtotal, 10.0)  # 800 x 0.0125
        basic_lines = self._invoices(sub_basic).invoice_line_ids
        self.assertEqual(basic_lines.fusion_charge_id, basic_calls)
        self.assertEqual(basic_lines.price_subtotal, 3.0)
        self.assertNotIn(basic_storage, basic_lines.fusion_charge_id)

    # -- charge models and aggregations, end to end ------------------------

    def test_each_charge_model_and_aggregation_to_invoice_amounts(self):
        plan = self.env["fusion.billing.plan"].create(
            {"service_id": self.service.id, "name": "All models", "code": "all"}
        )
        standard = self._create_charge(
            plan, self.metric_calls, "standard", unit_price=0.0125
        )
        package = self._create_charge(
            plan,
            self.metric_requests,
            "package",
            package_price=5.0,
            unit_batch=10,
            free_units=5,
        )
        graduated = self._create_charge(
            plan,
            self.metric_storage,
            "graduated",
            tiers=[
                {"up_to": 100, "unit_price": 0.10, "flat_fee": 5.0},
                {"up_to": 0, "unit_price": 0.08},
            ],
        )
        volume = self._create_charge(
            plan,
            self.metric_seats,
            "volume",
            tiers=[
                {"up_to": 10, "unit_price": 2.0, "flat_fee": 1.0},
                {"up_to": 0, "unit_price": 1.5},
            ],
        )
        latest = self._create_charge(
            plan, self.metric_plan_tier, "standard", unit_price=3.0
        )
        partner = self.env["res.partner"].create({"name": "Every model"})
        self._create_customer(self.service, partner, "cus_every")
        sub = self._create_subscription(self.service, partner, plan, "sub_every", JAN)

        # sum: 1000 + 250 = 1250 calls.
        self._event(sub, self.metric_calls, 1000, datetime(2026, 1, 2))
        self._event(sub, self.metric_calls, 250, datetime(2026, 1, 3))
        # count: 16 requests, whatever their quantity.
        for day in range(1, 17):
            self._event(sub, self.metric_requests, 7, datetime(2026, 1, day))
        # max: 150 GB.
        for quantity in (40, 150, 90):
            self._event(sub, self.metric_storage, quantity, datetime(2026, 1, 4))
        # unique_count: u1 and u2; empty values and other properties do not count.
        for properties in (
            {"user_id": "u1"},
            {"user_id": "u2"},
            {"user_id": "u1"},
            {"user_id": ""},
            {"other": "u3"},
            {},
        ):
            self._event(sub, self.metric_seats, 1, datetime(2026, 1, 5), properties)
        # latest: the latest timestamp wins; on a tie the event stored last.
        self._event(sub, self.metric_plan_tier, 9, datetime(2026, 1, 20))
        self._event(sub, self.metric_plan_tier, 4, datetime(2026, 1, 25))
        self._event(sub, self.metric_plan_tier, 2, datetime(2026, 1, 25))
        self._event(sub, self.metric_plan_tier, 7, datetime(2026, 1, 10))

        self._rate(date(2026, 1, 28))
        invoice = self._invoices(sub)
        # Per charge: its usage, and its lines as (quantity, unit price, subtotal).
        expected = {
            # 1250 x 0.0125 = 15.625
            standard: (1250, [(1250, 0.0125, 15.63)]),
            # ceil((16 - 5) / 10) = 2 packages x 5
            package: (16, [(2, 5.0, 10.0)]),
            # 100 x 0.10, the first tier's fee 5, 50 x 0.08
            graduated: (150, [(100, 0.10, 10.0), (1, 5.0, 5.0), (50, 0.08, 4.0)]),
            # 2 seats in the first tier: 2 x 2 and its fee 1
            volume: (2, [(2, 2.0, 4.0), (1, 1.0, 1.0)]),
            # latest quantity 2 x 3
            latest: (2, [(2, 3.0, 6.0)]),
        }
        for charge, (quantity, lines) in expected.items():
            charge_lines = self._line(invoice, charge).sorted("fusion_line_part")
            self.assertEqual(
                [
                    (line.quantity, line.price_unit, line.price_subtotal)
                    for line in charge_lines
                ],
                lines,
                charge.display_name,
            )
            self.assertEqual(
                set(charge_lines.mapped("fusion_usage_quantity")), {quantity}
            )
            self.assertEqual(charge_lines.product_id, charge.product_id)
        self.assertAlmostEqual(invoice.amount_untaxed, 55.63, places=2)
        tier_lines = self._line(invoice, graduated).sorted("fusion_line_part")
        self.assertEqual(
            tier_lines.mapped("name"),
            [
                "Tier 1 (0 to 100): 100 units",
                "Flat fee of tier 1 (0 to 100)",
                "Tier 2 (100 and above): 50 units",
            ],
        )
        self.assertEqual(
            self._line(invoice, package)[0].name.split("\n")[1],
            "16 units in packages of 10, 5 free",
        )

    def test_lines_carry_product_taxes_accounts_and_a_readable_description(self):
        sub = self.subscription_a
        self.metric_calls.unit_name = "API calls"
        self._event(sub, self.metric_calls, 1250, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))
        invoice = self._invoices(sub)
        self.assertEqual(invoice.move_type, "out_invoice")
        self.assertEqual(invoice.state, "draft")
        self.assertEqual(invoice.partner_id, self.partner_a)
        self.assertEqual(invoice.currency_id, self.plan.currency_id)
        self.assertEqual(invoice.journal_id.type, "sale")
        self.assertEqual(invoice.invoice_origin, "Test Cloud, Pro (sub_a)")
        # The service's salesperson: who created it, never Odoo's own user.
        self.assertEqual(invoice.invoice_user_id, self.env.user)
        self.assertEqual(self.service.salesperson_id, self.env.user)
        self.assertEqual(invoice.fusion_period_last_day, date(2026, 1, 31))
        line = self._line(invoice, self.charge_calls)
        self.assertEqual(
            line.tax_ids,
            self.product_usage.taxes_id.filtered(
                lambda tax: tax.company_id == invoice.company_id
            ),
        )
        self.assertEqual(
            line.account_id,
            self.product_usage.property_account_income_id
            or self.company_data["default_account_revenue"],
        )
        self.assertEqual(
            line.name, "Api Calls, 01/01/2026 to 01/31/2026\n1,250 API calls"
        )
        self.assertEqual((line.quantity, line.price_unit), (1250, 0.0125))
        self.assertEqual(line.price_subtotal, 15.63)
        fee = invoice.invoice_line_ids.filtered("fusion_is_fixed_fee")
        self.assertEqual(fee.product_id, self.product_fee)
        self.assertEqual(fee.price_subtotal, 49.0)
        self.assertEqual(invoice.amount_untaxed, 49.0 + 15.63)

    def test_usage_invoices_show_the_quantity_column(self):
        """Without Sales, Odoo hides the invoice lines' Quantity by default:
        a usage invoice is read by its quantities, so it shows them."""
        self._event(self.subscription_a, self.metric_calls, 1250, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))
        self.assertTrue(self._invoices(self.subscription_a).is_sale_installed)
        other = self.env["account.move"].create(
            {"move_type": "out_invoice", "partner_id": self.partner_a.id}
        )
        sales = "sale_management" in self.env["ir.module.module"]._installed()
        self.assertEqual(other.is_sale_installed, sales)

    def test_tier_lines_follow_the_usage_on_reruns(self):
        """A graduated charge bills a line per tier reached and one per flat
        fee; reratings update them in place, add the tiers newly reached,
        remove those no longer reached, and a charge billing nothing keeps
        one line at zero. The webhook reports the charge's amount whole."""
        self.metric_storage.unit_name = "GB"
        storage = self._create_charge(
            self.plan_usage,
            self.metric_storage,
            "graduated",
            tiers=[
                {"up_to": 1000, "unit_price": 0.0},
                {"up_to": 5000, "unit_price": 0.0125, "flat_fee": 5.0},
                {"up_to": 0, "unit_price": 0.01},
            ],
        )
        sub = self.subscription_c
        self._event(sub, self.metric_storage, 2080, datetime(2026, 1, 9))
        self._event(sub, self.metric_calls, 80, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))
        invoice = self._invoices(sub)

        def layout():
            return [
                (
                    line.fusion_line_part,
                    line.quantity,
                    line.price_unit,
                    line.price_subtotal,
                    line.name,
                )
                for line in self._line(invoice, storage).sorted("fusion_line_part")
            ]

        # The free first tier bills no line.
        self.assertEqual(
            layout(),
            [
                (2, 1080, 0.0125, 13.5, "Tier 2 (1,000 to 5,000): 1,080 GB"),
                (3, 1, 5.0, 5.0, "Flat fee of tier 2 (1,000 to 5,000)"),
            ],
        )
        # Under a section naming the charge and the period, after the lines
        # of other charges.
        self.assertEqual(
            [(line.display_type, line.name) for line in invoice.invoice_line_ids],
            [
                ("product", "Api Calls, 01/01/2026 to 01/31/2026\n80 units"),
                ("line_section", "Storage Gb, 01/01/2026 to 01/31/2026"),
                ("product", "Tier 2 (1,000 to 5,000): 1,080 GB"),
                ("product", "Flat fee of tier 2 (1,000 to 5,000)"),
            ],
        )
        tier_2 = self._line(invoice, storage)
        self._rate(date(2026, 1, 20))
        self.assertEqual(self._line(invoice, storage), tier_2, "a rerun adds nothing")

        self._event(sub, self.metric_storage, 6000, datetime(2026, 1, 10))
        self._rate(date(2026, 1, 21))
        self.assertEqual(
            layout(),
            [
                (2, 4000, 0.0125, 50.0, "Tier 2 (1,000 to 5,000): 4,000 GB"),
                (3, 1, 5.0, 5.0, "Flat fee of tier 2 (1,000 to 5,000)"),
                (4, 1000, 0.01, 10.0, "Tier 3 (5,000 and above): 1,000 GB"),
            ],
        )
        self.assertLess(tier_2, self._line(invoice, storage), "updated in place")
        self._rate(date(2026, 1, 21))
        data = sub._invoice_event_data(invoice, "cus_c")["invoice"]["lines"]
        self.assertEqual(
            [(line["charge"], line["amount"]) for line in data],
            [("api_calls", "1.00"), ("storage_gb", "65.00")],
        )

        # The big event cancelled: tier 3 goes, tier 2 follows the usage.
        self.env["fusion.billing.usage.event"].sudo().search(
            [("subscription_id", "=", sub.id), ("quantity", "=", 6000)]
        ).cancelled = True
        self._rate(date(2026, 1, 22))
        self.assertEqual([part for part, *_ in layout()], [2, 3])
        self.assertEqual(invoice.amount_untaxed, 1.0 + 18.5)

        # Free again: the charge keeps one line, at zero.
        self.env["fusion.billing.usage.event"].sudo().search(
            [("subscription_id", "=", sub.id)]
        ).cancelled = True
        self._event(sub, self.metric_storage, 500, datetime(2026, 1, 11))
        self._rate(date(2026, 1, 23))
        self.assertEqual(
            [(part, qty, subtotal) for part, qty, _price, subtotal, _ in layout()],
            [(0, 500, 0.0)],
        )
        self.assertNotIn(
            "line_section", invoice.invoice_line_ids.mapped("display_type")
        )

    def test_a_line_the_invoice_cannot_show_is_one_unit_at_its_amount(self):
        """Usage finer than the line's quantity precision: one unit at the
        amount, the exact usage and price in the description."""
        sub = self.subscription_c
        self._event(sub, self.metric_calls, 1.125, datetime(2026, 1, 9))
        self._event(sub, self.metric_calls, 1000, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))
        line = self._line(self._invoices(sub), self.charge_usage_calls)
        # 1,001.125 x 0.0125 = 12.5140625
        self.assertEqual((line.quantity, line.price_unit), (1, 12.51))
        self.assertEqual(line.price_subtotal, 12.51)
        self.assertTrue(
            line.name.endswith("1,001.125 units, $0.0125 each"),
            line.name,
        )

    def test_the_database_refuses_a_second_copy_of_a_charge_line(self):
        graduated = self._create_charge(
            self.plan_usage,
            self.metric_storage,
            "graduated",
            tiers=[{"up_to": 10, "unit_price": 1.0}, {"up_to": 0, "unit_price": 0.5}],
        )
        self._event(self.subscription_c, self.metric_storage, 20, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))
        invoice = self._invoices(self.subscription_c)
        lines = self._line(invoice, graduated)
        self.assertEqual(sorted(lines.mapped("fusion_line_part")), [0, 2])
        with (
            self.assertRaises(IntegrityError),
            mute_logger("odoo.sql_db"),
            self.env.cr.savepoint(),
        ):
            lines[0].copy(
                {
                    "move_id": invoice.id,
                    "fusion_charge_id": graduated.id,
                    "fusion_line_part": lines[0].fusion_line_part,
                }
            )

    def test_invoice_texts_are_in_the_customers_language(self):
        """The cron's user reads French; the customer, English in the United
        Kingdom: the whole invoice is in the customer's language and date
        format."""
        self.env["res.lang"]._activate_lang("fr_FR")
        self.env["res.lang"]._activate_lang("en_GB")
        self.env.user.lang = "fr_FR"
        self.partner_a.lang = "en_GB"
        self._event(self.subscription_a, self.metric_calls, 80, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))
        invoice = self._invoices(self.subscription_a)
        self.assertEqual(
            invoice.invoice_line_ids.mapped("name"),
            [
                "Api Calls, 01/01/2026 to 31/01/2026\n80 units",
                "Pro fixed fee, 01/01/2026 to 31/01/2026",
            ],
        )

    def test_a_service_made_by_odoo_itself_gives_its_invoices_no_salesperson(self):
        service = (
            self.env["fusion.billing.service"]
            .with_user(SUPERUSER_ID)
            .create({"name": "Data file", "code": "fb_data_file"})
        )
        self.assertFalse(service.salesperson_id)
        self.service.salesperson_id = False
        self._event(self.subscription_c, self.metric_calls, 100, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))
        self.assertFalse(self._invoices(self.subscription_c).invoice_user_id)

    def test_service_journal_is_used(self):
        journal = self.company_data["default_journal_sale"].copy(
            {"name": "Usage sales", "code": "USG"}
        )
        self.service.journal_id = journal
        self._event(self.subscription_c, self.metric_calls, 100, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))
        self.assertEqual(self._invoices(self.subscription_c).journal_id, journal)

    # -- zero rule ------------------------------------------------------------

    def test_nothing_to_bill_creates_no_invoice(self):
        self._rate(date(2026, 1, 20))
        self.assertFalse(self._invoices(self.subscription_c))
        # The fixed fee alone is something to bill.
        fee_invoice = self._invoices(self.subscription_a)
        self.assertEqual(
            fee_invoice.invoice_line_ids.mapped("fusion_is_fixed_fee"), [True]
        )

    def test_zero_amount_adds_no_line_but_updates_an_existing_one(self):
        storage = self._create_charge(
            self.plan_usage, self.metric_storage, "standard", unit_price=1.0
        )
        sub = self.subscription_c
        self._event(sub, self.metric_calls, 400, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))
        invoice = self._invoices(sub)
        self.assertFalse(self._line(invoice, storage), "no usage, no line")
        line = self._line(invoice, self.charge_usage_calls)
        self.assertEqual(line.price_subtotal, 5.0)

        self.charge_usage_calls.unit_price = 0.0
        self._rate(date(2026, 1, 21))
        self.assertEqual(self._line(invoice, self.charge_usage_calls), line)
        self.assertEqual(line.price_subtotal, 0.0)
        self.assertEqual(line.fusion_usage_quantity, 400)

    # -- reruns, errors, progress --------------------------------------------

    def test_rerun_gives_the_same_invoices_and_lines(self):
        sub = self.subscription_a
        self._event(sub, self.metric_calls, 1250, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))
        invoice = self._invoices(sub)
        lines = invoice.invoice_line_ids
        snapshot = [(line.id, line.name, line.price_subtotal) for line in lines]
        write_date = invoice.write_date

        self._rate(date(2026, 1, 20))
        self._rate(date(2026, 1, 20), batch_size=1)
        self.assertEqual(self._invoices(sub), invoice)
        self.assertEqual(
            [
                (line.id, line.name, line.price_subtotal)
                for line in invoice.invoice_line_ids
            ],
            snapshot,
        )
        self.assertEqual(invoice.write_date, write_date, "nothing rewritten")
        self.assertEqual(len(self._webhooks("invoice.created", invoice)), 1)

        # New usage updates the same line.
        self._event(sub, self.metric_calls, 750, datetime(2026, 1, 19))
        self._rate(date(2026, 1, 20))
        self.assertEqual(invoice.invoice_line_ids, lines)
        self.assertEqual(self._line(invoice, self.charge_calls).price_subtotal, 25.0)

    def test_a_run_stopped_by_the_time_limit_resumes_where_it_stopped(self):
        """Each call rates a subscription once per cycle: a run that stops
        after one batch is resumed by the next call, not restarted."""
        ours = self.subscription_a | self.subscription_b | self.subscription_c
        calls = []
        original = FusionBillingRating._rate_batch

        def spy(records, subscriptions, now, cycle=None):
            calls.append(subscriptions.ids)
            return original(records, subscriptions, now, cycle)

        with (
            patch.object(FusionBillingRating, "_rate_batch", spy),
            patch.object(
                FusionBillingRating, "_rating_commit_progress", return_value=0
            ),
        ):
            self._rate(date(2026, 1, 20), batch_size=1)
        self.assertEqual(len(calls), 1, "stopped after its first batch")
        with patch.object(FusionBillingRating, "_rate_batch", spy):
            self._rate(date(2026, 1, 20), batch_size=1)
        rated = [sub_id for batch in calls for sub_id in batch]
        self.assertEqual(len(rated), len(set(rated)), "nobody rated twice")
        self.assertLessEqual(set(ours.ids), set(rated))
        self.assertEqual(len(set(ours.mapped("rating_cycle"))), 1)

    def test_every_run_rates_every_subscription_new_ones_too(self):
        """A subscription added since the last run does not make the next run
        rate only it: usage and price changes reach every invoice."""
        sub = self.subscription_c
        self._event(sub, self.metric_calls, 100, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 10))
        invoice = self._invoices(sub)
        partner = self.env["res.partner"].create({"name": "Newcomer"})
        self._create_customer(self.service, partner, "cus_new")
        newcomer = self._create_subscription(
            self.service, partner, self.plan_usage, "sub_new", JAN
        )
        self._event(newcomer, self.metric_calls, 80, datetime(2026, 1, 10))
        self._event(sub, self.metric_calls, 100, datetime(2026, 1, 10))
        self.charge_usage_calls.unit_price = 0.02
        self._rate(date(2026, 1, 11))
        self.assertEqual(
            self._line(invoice, self.charge_usage_calls).price_subtotal, 4.0
        )
        self.assertEqual(self._invoices(newcomer).amount_untaxed, 1.6)

    def test_a_broken_subscription_does_not_block_the_others(self):
        plan = self.env["fusion.billing.plan"].create(
            {"service_id": self.service.id, "name": "Broken", "code": "broken"}
        )
        charge = self._create_charge(
            plan,
            self.metric_calls,
            "graduated",
            tiers=[{"up_to": 10, "unit_price": 1.0}, {"up_to": 0, "unit_price": 0.5}],
        )
        partner = self.env["res.partner"].create({"name": "Broken customer"})
        self._create_customer(self.service, partner, "cus_broken")
        broken = self._create_subscription(self.service, partner, plan, "sub_x", JAN)
        # A ladder corrupted behind the ORM's back: its last tier is bounded.
        self.env.cr.execute(
            "UPDATE fusion_billing_charge_tier SET up_to = 50 "
            "WHERE charge_id = %s AND up_to = 0",
            (charge.id,),
        )
        self.env.invalidate_all()
        for sub in (self.subscription_a, broken, self.subscription_c):
            self._event(sub, self.metric_calls, 100, datetime(2026, 1, 9))

        self._rate(FEB, batch_size=2)
        self.assertIn("last tier", broken.rating_error)
        self.assertTrue(broken.rating_error_date)
        self.assertFalse(self._invoices(broken))
        self.assertEqual(broken.next_invoice_date, FEB, "its period stays open")
        for sub in (self.subscription_a, self.subscription_c):
            self.assertFalse(sub.rating_error)
            self.assertEqual(sub.next_invoice_date, MAR)
            january = self._invoices(sub)[0]
            self.assertEqual(january.fusion_period_start, JAN)
            self.assertTrue(self._webhooks("invoice.finalized", january))

        self.env.cr.execute(
            "UPDATE fusion_billing_charge_tier SET up_to = 0 "
            "WHERE charge_id = %s AND up_to = 50",
            (charge.id,),
        )
        self.env.invalidate_all()
        self._rate(FEB)
        self.assertFalse(broken.rating_error)
        self.assertEqual(broken.next_invoice_date, MAR)
        # 10 x 1.0 + 90 x 0.5
        self.assertEqual(self._invoices(broken).amount_untaxed, 55.0)

    def test_an_invoice_failing_in_the_shared_create_spares_the_others(self):
        """New invoices of a batch are created together; when that fails they
        are created one by one and only the failing subscription is left out."""
        subs = self.subscription_a | self.subscription_b | self.subscription_c
        for sub in subs:
            self._event(sub, self.metric_calls, 100, datetime(2026, 1, 9))
        original = FusionBillingSubscription._prepare_invoice_values

        def sabotaged(records, period, rated_lines):
            values = original(records, period, rated_lines)
            if records == self.subscription_b:
                values["invoice_line_ids"][0][2]["product_id"] = 987654321
            return values

        with patch.object(
            FusionBillingSubscription, "_prepare_invoice_values", sabotaged
        ):
            self._rate(FEB)
        self.assertFalse(self._invoices(self.subscription_b))
        self.assertTrue(self.subscription_b.rating_error)
        self.assertEqual(self.subscription_b.next_invoice_date, FEB)
        for sub in (self.subscription_a, self.subscription_c):
            self.assertFalse(sub.rating_error)
            invoice = self._invoices(sub)[0]
            self.assertEqual(invoice.fusion_period_start, JAN)
            self.assertEqual(len(self._webhooks("invoice.created", invoice)), 1)
            self.assertEqual(len(self._webhooks("invoice.finalized", invoice)), 1)

    def test_an_invoice_created_by_a_failed_close_is_announced_by_the_next(self):
        """The invoice of a period created by the run that closes it is
        announced by the close; when the close fails, the invoice stays and
        the close that succeeds announces it, once."""
        sub = self.subscription_c
        self._event(sub, self.metric_calls, 800, datetime(2026, 1, 9))

        def failing(records, invoice, customer_ref):
            raise RuntimeError("posting is broken")

        with (
            patch.object(FusionBillingSubscription, "_close_period", failing),
            mute_logger("odoo.addons.fusion_billing.models.fusion_billing_rating"),
        ):
            self._rate(FEB)
        invoice = self._invoices(sub)
        self.assertEqual((invoice.state, invoice.amount_untaxed), ("draft", 10.0))
        self.assertEqual(sub.rating_error, "posting is broken")
        self.assertFalse(self._webhooks("invoice.created", invoice))

        self._rate(date(2026, 2, 2))
        self.assertEqual(sub.next_invoice_date, MAR)
        self.assertEqual(self._invoices(sub), invoice)
        created = self._webhooks("invoice.created", invoice)
        self.assertEqual(len(created), 1)
        self.assertIn('"amount_untaxed":"10.00"', created.body)
        self.assertEqual(len(self._webhooks("invoice.finalized", invoice)), 1)

    # -- period close ---------------------------------------------------------

    def test_catch_up_over_three_periods(self):
        self.service.auto_post_invoices = True
        sub = self.subscription_c
        for day, quantity in ((JAN, 80), (FEB, 160), (MAR, 240), (APR, 320)):
            self._event(
                sub,
                self.metric_calls,
                quantity,
                datetime.combine(day, datetime.min.time()),
            )
        self._rate(date(2026, 4, 10))

        invoices = self._invoices(sub)
        self.assertEqual(
            [(i.fusion_period_start, i.fusion_period_end) for i in invoices],
            [(JAN, FEB), (FEB, MAR), (MAR, APR), (APR, MAY)],
        )
        self.assertEqual(
            invoices.mapped("state"), ["posted", "posted", "posted", "draft"]
        )
        self.assertEqual(
            [self._line(i, self.charge_usage_calls).price_subtotal for i in invoices],
            [1.0, 2.0, 3.0, 4.0],
        )
        self.assertEqual((sub.last_invoice_date, sub.next_invoice_date), (APR, MAY))
        for invoice in invoices[:3]:
            self.assertEqual(len(self._webhooks("invoice.finalized", invoice)), 1)
        self.assertFalse(self._webhooks("invoice.finalized", invoices[3]))

        queued = self.WebhookEvent.sudo().search_count(
            [("service_id", "=", self.service.id)]
        )
        self._rate(date(2026, 4, 10))
        self.assertEqual(self._invoices(sub), invoices)
        self.assertEqual(
            self.WebhookEvent.sudo().search_count(
                [("service_id", "=", self.service.id)]
            ),
            queued,
        )

    def test_periods_stay_anchored_on_the_start_date(self):
        partner = self.env["res.partner"].create({"name": "Month end"})
        self._create_customer(self.service, partner, "cus_31")
        sub = self._create_subscription(
            self.service, partner, self.plan_usage, "sub_31", date(2026, 1, 31)
        )
        self.assertEqual(sub.next_invoice_date, date(2026, 2, 28))
        self._rate(date(2026, 4, 1))
        # Feb 28 -> Mar 31, not Mar 28: computed from the anchor, never chained.
        self.assertEqual(sub.last_invoice_date, date(2026, 3, 31))
        self.assertEqual(sub.next_invoice_date, date(2026, 4, 30))

    def test_close_queues_finalized_and_posts_only_if_the_service_says_so(self):
        sub = self.subscription_c
        self._event(sub, self.metric_calls, 800, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))
        invoice = self._invoices(sub)
        created = self._webhooks("invoice.created", invoice)
        self.assertEqual(len(created), 1)
        self.assertIn('"subscription":"sub_c"', created.body)
        self.assertFalse(self._webhooks("invoice.finalized", invoice))

        self._rate(FEB)
        self.assertEqual(invoice.state, "draft", "auto-post is off")
        finalized = self._webhooks("invoice.finalized", invoice)
        self.assertEqual(len(finalized), 1)
        self.assertIn('"amount_untaxed":"10.00"', finalized.body)
        self.assertIn('"period_end":"2026-02-01"', finalized.body)

    def test_a_partner_that_is_two_customers_is_named_by_its_first_reference(self):
        """Invoice events, usage alerts and the usage summary name the same
        customer of a partner that is two customers of the service: the first
        reference in the customers' order (a customer of another service
        aside)."""
        partner = self.env["res.partner"].create({"name": "Twice a customer"})
        other = self._create_service("Other Cloud", "fb_other_cloud")
        self._create_customer(other, partner, "cus_a_elsewhere")
        for external_ref in ("cus_z_twice", "cus_m_twice"):
            self._create_customer(self.service, partner, external_ref)
        sub = self._create_subscription(
            self.service, partner, self.plan_usage, "sub_twice", JAN
        )
        alert = self.env["fusion.billing.alert"].create(
            {"name": "Any usage", "subscription_id": sub.id, "threshold": 1}
        )
        self._event(sub, self.metric_calls, 800, datetime(2026, 1, 9))
        self._rate(FEB)
        january = self._invoices(sub)
        bodies = [
            self._webhooks(event_type, january).body
            for event_type in ("invoice.created", "invoice.finalized")
        ] + [alert.trigger_ids.webhook_event_id.body]
        self.assertEqual(
            [json.loads(body)["data"]["customer"] for body in bodies],
            ["cus_m_twice"] * 3,
        )
        self.assertEqual(
            self.Subscription._usage_summary(self.service, "sub_twice")["customer"],
            "cus_m_twice",
        )

    def test_a_posted_invoice_is_never_modified(self):
        sub = self.subscription_a
        self._event(sub, self.metric_calls, 800, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))
        invoice = self._invoices(sub)
        invoice.with_context(fusion_billing_post_open_period=True).action_post()
        total = invoice.amount_total
        self._event(sub, self.metric_calls, 800, datetime(2026, 1, 19))
        self._rate(date(2026, 1, 20))
        self._rate(FEB)
        self.assertEqual(invoice.amount_total, total)
        self.assertEqual(self._invoices(sub)[0], invoice)
        self.assertEqual(len(self._webhooks("invoice.finalized", invoice)), 1)

    # -- money ------------------------------------------------------------------

    def test_invoice_rounding_equals_the_engine_amount(self):
        chf = self.setup_other_currency("CHF", rounding=0.05)
        plan = self.env["fusion.billing.plan"].create(
            {
                "service_id": self.service.id,
                "name": "Swiss",
                "code": "chf",
                "currency_id": chf.id,
            }
        )
        charge = self._create_charge(
            plan, self.metric_calls, "standard", unit_price=0.0125
        )
        partner = self.env["res.partner"].create({"name": "Swiss customer"})
        self._create_customer(self.service, partner, "cus_chf")
        sub = self._create_subscription(self.service, partner, plan, "sub_chf", JAN)
        for quantity in (1, 2, 0.5):
            self._event(sub, self.metric_calls, quantity, datetime(2026, 1, 9))
        self._event(self.subscription_c, self.metric_calls, 3, datetime(2026, 1, 9))
        self._rate(date(2026, 1, 20))

        cases = (
            # 3.5 x 0.0125 = 0.04375 -> 0.05 in steps of 0.05
            (sub, charge, chf, Decimal("0.05")),
            # 3 x 0.0125 = 0.0375 -> 0.04 half up
            (
                self.subscription_c,
                self.charge_usage_calls,
                self.currency,
                Decimal("0.04"),
            ),
        )
        for subscription, rated_charge, currency, expected in cases:
            invoice = self._invoices(subscription)
            quantity = Decimal(
                str(self._line(invoice, rated_charge).fusion_usage_quantity)
            )
            engine = charges.amount(
                rated_charge._engine_charge(), quantity, str(currency.rounding)
            )
            self.assertEqual(engine, expected)
            self.assertEqual(invoice.currency_id, currency)
            self.assertEqual(invoice.amount_untaxed, float(engine))
            self.assertEqual(
                self._line(invoice, rated_charge).price_subtotal, float(engine)
            )

    # -- the subscription form ----------------------------------------------------

    def test_form_shows_current_usage_and_the_amount_the_cron_bills(self):
        sub = self.subscription_a
        self._event(sub, self.metric_calls, 1250, datetime(2026, 1, 9))
        self._event(sub, self.metric_calls, 99, datetime(2025, 12, 31, 23, 59))
        self.assertEqual(sub.estimated_amount, 49.0 + 15.63)
        self.assertIn("1,250", sub.usage_summary)
        self.assertIn("0.0125", sub.usage_summary)
        self._rate(date(2026, 1, 20))
        self.assertEqual(self._invoices(sub).amount_untaxed, sub.estimated_amount)
        self.assertEqual(sub.invoice_count, 1)
        action = sub.action_view_invoices()
        self.assertEqual(
            self.env["account.move"].search(action["domain"]), self._invoices(sub)
        )

    # -- extension points ------------------------------------------------------

    def test_a_charge_model_added_by_another_addon_is_rated_by_its_hook(self):
        """An addon adds a charge model (selection_add) and prices it in
        ``_rate``; rating, invoice and form go through that hook."""
        charge_model = self.env["fusion.billing.charge"]._fields["charge_model"]
        original = FusionBillingCharge._rate

        def _rate(charge, quantity):
            if charge.charge_model == "per_thousand":
                thousands = math.ceil(quantity / 1000)
                return thousands * Decimal("2.50"), f"{thousands} x 2.50 per 1,000"
            return original(charge, quantity)

        self.enterContext(patch.dict(charge_model._selection, per_thousand="1,000s"))
        self.enterContext(patch.object(FusionBillingCharge, "_rate", _rate))
        self.charge_usage_calls.charge_model = "per_thousand"
        sub = self.subscription_c
        self._event(sub, self.metric_calls, 2001, datetime(2026, 1, 9))
        self.assertEqual(sub.estimated_amount, 7.5)
        self._rate(date(2026, 1, 20))
        line = self._line(self._invoices(sub), self.charge_usage_calls)
        self.assertEqual(line.price_subtotal, 7.5)
        self.assertIn("3 x 2.50 per 1,000", line.name)

    def test_an_unknown_aggregation_is_an_error_never_a_zero(self):
        aggregation = self.env["fusion.billing.metric"]._fields["aggregation"]
        self.enterContext(patch.dict(aggregation._selection, p95="95th percentile"))
        latency = self._create_metric(self.service, "latency", "p95")
        self._create_charge(self.plan_usage, latency, "standard", unit_price=1.0)
        sub = self.subscription_c
        self._event(sub, self.metric_calls, 100, datetime(2026, 1, 9))
        self._event(sub, latency, 30, datetime(2026, 1, 9))
        self._event(self.subscription_a, self.metric_calls, 100, datetime(2026, 1, 9))

        self.assertIn("p95", sub.usage_summary, "the form says why, and opens")
        self.assertEqual(sub.estimated_amount, 0.0)
        self._rate(FEB)
        self.assertIn("p95", sub.rating_error)
        self.assertFalse(self._invoices(sub), "no invoice billing the usage as 0")
        self.assertEqual(sub.next_invoice_date, FEB, "its period stays open")
        self.assertFalse(self.subscription_a.rating_error)
        self.assertEqual(self.subscription_a.next_invoice_date, MAR)

    # -- quantities ----------------------------------------------------------------

    def test_a_tiny_quantity_never_makes_a_subscription_unratable(self):
        """The smallest step (1e-12) beside a large quantity sums to more
        digits than a float holds, priced exactly; a finer quantity (5e-324: 324
        places, more digits than any context holds) is refused when it is
        created, never stored as 0 or left to break the rating."""
        sub = self.subscription_a
        self._event(sub, self.metric_calls, 1e-12, datetime(2026, 1, 9))
        self._event(sub, self.metric_calls, 999_999_999, datetime(2026, 1, 9))
        with self.assertRaisesRegex(ValidationError, "at most 12 decimal places"):
            self._event(sub, self.metric_calls, 5e-324, datetime(2026, 1, 10))
        # 999,999,999.000000000001 x 0.0125 = 12,499,999.9875000000000125
        self.assertEqual(sub.estimated_amount, 12_500_048.99)
        self._rate(FEB)
        self.assertFalse(sub.rating_error)
        invoice = self._invoices(sub)[0]
        line = self._line(invoice, self.charge_calls)
        self.assertEqual(line.price_subtotal, 12_499_999.99)
        self.env.cr.execute(
            "SELECT SUM(quantity)::text FROM fusion_billing_usage_event"
            " WHERE subscription_id = %s",
            [sub.id],
        )
        self.assertEqual(
            Decimal(self.env.cr.fetchone()[0]),
            Decimal("999999999.000000000001"),
        )
        self.assertEqual(sub.next_invoice_date, MAR)

    def test_a_bill_beyond_what_odoo_books_is_a_clear_rating_error(self):
        """10^15 calls (the most one event may carry) at 0.0125 bill
        1.25 x 10^13, where Odoo's float accounting refuses the invoice as "not
        balanced". The period is refused saying what to do, the other
        subscriptions are invoiced, and nothing is written for it."""
        huge = self._event(
            self.subscription_a, self.metric_calls, 10**15, datetime(2026, 1, 9)
        )
        self._event(self.subscription_b, self.metric_calls, 100, datetime(2026, 1, 9))
        self._rate(FEB)
        self.assertIn(
            "an Odoo invoice holds to the cent", self.subscription_a.rating_error
        )
        self.assertIn("12500000000049.00", self.subscription_a.rating_error)
        self.assertFalse(self._invoices(self.subscription_a))
        self.assertEqual(self.subscription_a.next_invoice_date, FEB)
        self.assertFalse(self.subscription_b.rating_error)
        self.assertTrue(self._invoices(self.subscription_b))
        huge.cancelled = True
        self._rate(FEB)
        self.assertFalse(self.subscription_a.rating_error)
        self.assertEqual(self._invoices(self.subscription_a)[0].amount_untaxed, 49)

    # -- companies -----------------------------------------------------------------

    def test_the_cron_rates_every_company_in_that_company(self):
        """The cron's user need not see a subscription's company: each is
        rated and invoiced in its own company."""
        other = self.setup_other_company(name="Other billing company")["company"]
        service = self._create_service("Elsewhere", "fb_elsewhere", company_id=other.id)
        metric = self._create_metric(service, "api_calls", "sum")
        plan = self.env["fusion.billing.plan"].create(
            {"service_id": service.id, "name": "Elsewhere", "code": "else"}
        )
        charge = self._create_charge(plan, metric, "standard", unit_price=0.5)
        partner = self.env["res.partner"].create({"name": "Remote customer"})
        self._create_customer(service, partner, "cus_remote")
        sub = self._create_subscription(service, partner, plan, "sub_remote", JAN)
        self._event(sub, metric, 10, datetime(2026, 1, 9))
        self._event(self.subscription_c, self.metric_calls, 80, datetime(2026, 1, 9))
        self.env.user.write({"company_ids": [Command.unlink(other.id)]})

        self._rate(date(2026, 1, 20))
        invoice = (
            self.env["account.move"]
            .sudo()
            .search([("fusion_subscription_id", "=", sub.id)])
        )
        self.assertEqual(invoice.company_id, other)
        self.assertEqual(invoice.journal_id.company_id, other)
        self.assertEqual(self._line(invoice, charge).price_subtotal, 5.0)
        self.assertEqual(self._invoices(self.subscription_c).amount_untaxed, 1.0)
