# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..core import charges
from ..core.money import to_decimal

CHARGE_MODELS = [
    ("standard", "Standard (per unit)"),
    ("package", "Package"),
    ("graduated", "Graduated tiers"),
    ("volume", "Volume tiers"),
]
# Unit prices such as 0.0125 per API call need more digits than "Product Price".
PRICE_DIGITS = (16, 6)


class FusionBillingCharge(models.Model):
    _name = "fusion.billing.charge"
    _description = "Usage Charge"
    _order = "plan_id, sequence, id"
    _check_company_auto = True

    sequence = fields.Integer(default=10)
    plan_id = fields.Many2one(
        "fusion.billing.plan", required=True, index=True, ondelete="cascade"
    )
    service_id = fields.Many2one(related="plan_id.service_id", store=True)
    company_id = fields.Many2one(related="plan_id.company_id", store=True)
    metric_id = fields.Many2one(
        "fusion.billing.metric",
        required=True,
        index=True,
        ondelete="restrict",
        domain="[('service_id', '=', service_id)]",
    )
    product_id = fields.Many2one(
        "product.product",
        required=True,
        check_company=True,
        help="Product of the invoice line: taxes and income account come from it.",
    )
    charge_model = fields.Selection(CHARGE_MODELS, required=True, default="standard")
    currency_id = fields.Many2one(
        "res.currency",
        compute="_compute_currency_id",
        store=True,
        precompute=True,
        required=True,
    )
    unit_price = fields.Float(digits=PRICE_DIGITS)
    package_price = fields.Float(digits=PRICE_DIGITS)
    unit_batch = fields.Float(
        string="Package Size",
        default=1,
        digits=PRICE_DIGITS,
        help="Units per package (package model).",
    )
    free_units = fields.Float(
        digits=PRICE_DIGITS, help="Units given free before packages are counted."
    )
    tier_ids = fields.One2many("fusion.billing.charge.tier", "charge_id", copy=True)

    _prices_positive = models.Constraint(
        "CHECK(unit_price >= 0 AND package_price >= 0 AND free_units >= 0)",
        "Prices and free units cannot be negative.",
    )
    _unit_batch_positive = models.Constraint(
        "CHECK(unit_batch > 0)", "The package size must be greater than zero."
    )

    @api.depends("plan_id.currency_id")
    def _compute_currency_id(self):
        for charge in self:
            charge.currency_id = charge.plan_id.currency_id

    @api.constrains("metric_id", "plan_id")
    def _check_metric_service(self):
        for charge in self:
            if charge.metric_id.service_id != charge.plan_id.service_id:
                raise ValidationError(
                    self.env._(
                        "Metric %(metric)s belongs to another service than plan "
                        "%(plan)s.",
                        metric=charge.metric_id.display_name,
                        plan=charge.plan_id.display_name,
                    )
                )

    @api.constrains("charge_model", "tier_ids")
    def _check_tiers(self):
        # A ladder is checked once it has tiers, so a charge can be created first
        # and its tiers after it (over RPC, say); rating refuses an empty ladder.
        for charge in self.filtered(
            lambda c: c.charge_model in charges.TIERED_MODELS and c.tier_ids
        ):
            try:
                charges.validate_tiers(charge._engine_charge().tiers)
            except ValueError as error:
                raise ValidationError(
                    self.env._(
                        "Tiers of %(charge)s: %(reason)s",
                        charge=charge.display_name,
                        reason=error,
                    )
                ) from error

    @api.depends("plan_id", "metric_id")
    def _compute_display_name(self):
        for charge in self:
            charge.display_name = f"{charge.plan_id.name} / {charge.metric_id.name}"

    def _rate(self, quantity):
        """Price ``quantity`` units: (amount rounded once to the currency, how
        it was computed for the invoice line).

        The extension point of charge models: an addon adding one to
        ``charge_model`` (``selection_add``) overrides this for its model and
        calls ``super()`` for the others. A model nobody prices raises.
        """
        self.ensure_one()
        engine_charge = self._engine_charge()
        currency = self.currency_id
        return (
            charges.amount(engine_charge, quantity, to_decimal(currency.rounding)),
            charges.describe(engine_charge, quantity, currency.name),
        )

    def _engine_charge(self):
        """The charge as the engine prices it."""
        self.ensure_one()
        return charges.Charge(
            model=self.charge_model,
            unit_price=to_decimal(self.unit_price),
            package_price=to_decimal(self.package_price),
            unit_batch=to_decimal(self.unit_batch),
            free_units=to_decimal(self.free_units),
            tiers=tuple(
                charges.Tier(
                    up_to=to_decimal(tier.up_to) if tier.up_to else None,
                    unit_price=to_decimal(tier.unit_price),
                    flat_fee=to_decimal(tier.flat_fee),
                )
                for tier in self.tier_ids.sorted(lambda t: (not t.up_to, t.up_to))
            ),
        )
