# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo.tests import Form, tagged

from .common import FusionBillingCase


@tagged("post_install", "-at_install")
class TestPricingDisplay(FusionBillingCase):
    """Prices as people read them on charges, tiers and plans."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.currency.write({"symbol": "$", "position": "before"})
        cls.metric_storage.unit_name = "GB"

    def test_standard_and_package(self):
        self.assertEqual(self.charge_calls.pricing_summary, "$0.0125 per unit")
        package = self._create_charge(
            self.plan,
            self.metric_storage,
            "package",
            package_price=5,
            unit_batch=100,
            free_units=50,
        )
        self.assertEqual(package.pricing_summary, "$5.00 per 100 GB, 50 free")

    def test_tiers_from_to_and_summary(self):
        ladder = [
            {"up_to": 10, "unit_price": 1},
            {"up_to": 50, "unit_price": 0.5, "flat_fee": 2},
            {"up_to": 0, "unit_price": 0.25},
        ]
        graduated = self._create_charge(
            self.plan, self.metric_requests, "graduated", tiers=ladder
        )
        self.assertEqual(
            graduated.pricing_summary,
            "first 10 at $1.00, next 40 at $0.50 + $2.00, then $0.25",
        )
        tiers = graduated.tier_ids
        self.assertEqual(tiers.mapped("from_quantity"), [0, 10, 50])
        self.assertEqual(
            tiers.mapped("range_label"), ["0 to 10", "10 to 50", "50 and above"]
        )
        volume = self._create_charge(
            self.plan, self.metric_seats, "volume", tiers=ladder[::2]
        )
        self.assertEqual(
            volume.pricing_summary,
            "All units at one rate: $1.00 each up to 10; $0.25 each above",
        )

    def test_price_precision_is_odoo_s(self):
        self.env.ref("product.decimal_price").digits = 3
        self.charge_calls.unit_price = 2
        self.assertEqual(self.charge_calls.pricing_summary, "$2.000 per unit")
        # Stored exactly, shown with all its digits.
        self.charge_calls.unit_price = 0.00125
        self.env.invalidate_all()
        self.assertEqual(self.charge_calls.unit_price, 0.00125)
        self.assertEqual(self.charge_calls.pricing_summary, "$0.00125 per unit")

    def test_plan_summary(self):
        self.assertEqual(
            self.plan.pricing_summary, "$49.00 per month\nApi Calls: $0.0125 per unit"
        )

    def test_charge_with_tiers_added_before_the_plan_is_saved(self):
        form = Form(self.env["fusion.billing.plan"])
        form.service_id = self.service
        form.name = "Scale"
        form.code = "fb_scale"
        with form.charge_ids.new() as charge:
            charge.metric_id = self.metric_storage
            charge.product_id = self.product_usage
            charge.charge_model = "graduated"
            with charge.tier_ids.new() as tier:
                tier.up_to = 100
                tier.unit_price = 0.1
            with charge.tier_ids.new() as tier:
                tier.unit_price = 0.05
        plan = form.save()
        self.assertEqual(plan.charge_ids.metric_id, self.metric_storage)
        self.assertEqual(
            plan.charge_ids.pricing_summary, "first 100 at $0.10, then $0.05"
        )
