# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL

from ..core import charges, pricing
from ..core.money import to_decimal

CHARGE_MODELS = [
    ("standard", "Standard (per unit)"),
    ("package", "Package"),
    ("graduated", "Graduated tiers"),
    ("volume", "Volume tiers"),
]


class FusionBillingCharge(models.Model):
    _name = "fusion.billing.charge"
    _description = "Usage Charge"
    _inherit = ["fusion.billing.price.mixin"]
    _order = "plan_id, sequence, id"
    _check_company_auto = True

    sequence = fields.Integer(default=10)
    plan_id = fields.Many2one(
        "fusion.billing.plan", required=True, index=True, ondelete="cascade"
    )
    subscription_id = fields.Many2one(
        "fusion.billing.subscription",
        index="btree_not_null",
        ondelete="cascade",
        help="Set on a subscription's own price for a metric: it replaces the "
        "plan's charge on that metric for this subscription only.",
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
    tier_ids = fields.One2many(
        "fusion.billing.charge.tier",
        "charge_id",
        domain=[("filter_id", "=", False)],
        copy=True,
    )
    filter_ids = fields.One2many(
        "fusion.billing.charge.filter",
        "charge_id",
        copy=True,
        help="Prices by event property (e.g. region): an event is priced by the "
        "first filter it matches, else by the charge's own prices.",
    )

    _subscription_metric_unique = models.UniqueIndex(
        "(subscription_id, plan_id, metric_id) WHERE subscription_id IS NOT NULL",
        "The subscription already has its own price for this metric.",
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

    @api.onchange("metric_id")
    def _onchange_metric_id(self):
        # A subscription's own price starts from the plan's price for the metric.
        if not self.subscription_id or self.product_id:
            return
        plan_charge = self.plan_id.charge_ids.filtered(
            lambda c: c.metric_id == self.metric_id
        )[:1]
        if plan_charge:
            self.update(
                {
                    name: plan_charge[name]
                    for name in (
                        "product_id",
                        "charge_model",
                        "unit_price",
                        "package_price",
                        "unit_batch",
                        "free_units",
                    )
                }
            )

    @api.constrains("subscription_id", "plan_id", "metric_id")
    def _check_subscription_charge(self):
        for charge in self.filtered("subscription_id"):
            subscription = charge.subscription_id
            if charge.plan_id != subscription.plan_id:
                raise ValidationError(
                    self.env._(
                        "The own price of subscription %(subscription)s must be on "
                        "its plan %(plan)s.",
                        subscription=subscription.display_name,
                        plan=subscription.plan_id.display_name,
                    )
                )
            if charge.metric_id not in charge.plan_id.charge_ids.metric_id:
                raise ValidationError(
                    self.env._(
                        "Metric %(metric)s is not charged on plan %(plan)s: a "
                        "subscription's own price replaces a charge of its plan.",
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
        # A filter's tiers follow its charge's model.
        self.filter_ids._check_tiers()

    @api.depends("plan_id", "metric_id", "subscription_id")
    def _compute_display_name(self):
        for charge in self:
            name = f"{charge.plan_id.name} / {charge.metric_id.name}"
            if charge.subscription_id:
                name += f" ({charge.subscription_id.display_name})"
            charge.display_name = name

    def _filter_bucket_sql(self):
        """SQL giving the id of the first filter (by sequence) a usage event
        ``e`` matches, NULL when it falls to the charge's own prices; None for
        a charge without filters.

        A property matches when it is a JSON scalar whose text (``->>``: 1,
        true, eu) is one of the filter's values.
        """
        self.ensure_one()
        if not self.filter_ids:
            return None
        return SQL(
            "CASE %s END",
            SQL(" ").join(
                SQL(
                    "WHEN jsonb_typeof(e.properties -> %s) IN "
                    "('string', 'number', 'boolean') "
                    "AND e.properties ->> %s = ANY(%s::text[]) THEN %s",
                    charge_filter.property_name,
                    charge_filter.property_name,
                    list(pricing.parse_values(charge_filter.values)),
                    charge_filter.id,
                )
                for charge_filter in self.filter_ids
            ),
        )

    def _rate(self, quantity, prices=None):
        """Price ``quantity`` units: (amount rounded once to the currency, how
        it was computed for the invoice line). With ``prices`` (one of the
        charge's filters), the bucket of that filter.

        The extension point of charge models: an addon adding one to
        ``charge_model`` (``selection_add``) overrides this for its model and
        calls ``super()`` for the others. A model nobody prices raises.
        """
        self.ensure_one()
        engine_charge = self._engine_charge(prices)
        currency = self.currency_id
        return (
            charges.amount(engine_charge, quantity, to_decimal(currency.rounding)),
            charges.describe(engine_charge, quantity, currency.name),
        )

    def _engine_charge(self, prices=None):
        """The charge as the engine prices it; with ``prices`` (one of its
        filters), its model with the filter's prices and tiers."""
        self.ensure_one()
        prices = prices or self
        return charges.Charge(
            model=self.charge_model,
            unit_price=to_decimal(prices.unit_price),
            package_price=to_decimal(prices.package_price),
            unit_batch=to_decimal(prices.unit_batch),
            free_units=to_decimal(prices.free_units),
            tiers=tuple(
                charges.Tier(
                    up_to=to_decimal(tier.up_to) if tier.up_to else None,
                    unit_price=to_decimal(tier.unit_price),
                    flat_fee=to_decimal(tier.flat_fee),
                )
                for tier in prices.tier_ids.sorted(lambda t: (not t.up_to, t.up_to))
            ),
        )
