# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL
from odoo.tools.misc import formatLang

from ..core import charges, pricing
from ..core.money import to_decimal

CHARGE_MODELS = [
    ("standard", "Standard (per unit)"),
    ("package", "Package"),
    ("graduated", "Graduated tiers"),
    ("volume", "Volume tiers"),
]
# Decimals shown at most in a pricing summary.
SUMMARY_MAX_DECIMALS = 6
# Decimals an invoice line shows of a unit price at most: Odoo shows a price
# without fixed digits with up to 6 (and at least Product Price's).
PRICE_DISPLAY_DECIMALS = 6


class FusionBillingCharge(models.Model):
    _name = "fusion.billing.charge"
    _description = "Usage Charge"
    _inherit = ["fusion.billing.price.mixin"]
    # By plan id, not by the plan's own order: reading a plan's charges (the
    # rating, the usage summary) then joins no plan nor service.
    _order = "plan_id.id, sequence, id"
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
    pricing_summary = fields.Char(string="Pricing", compute="_compute_pricing_summary")

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

    def _invoice_lines(self, quantity, amount, prices=None):
        """The invoice lines of ``quantity`` billed ``amount`` (by ``_rate``):
        the engine's breakdown, quantity x unit price per tier, flat fee or
        packages, within the invoice's precision and computed as the invoice
        computes a line. None for a charge model the engine does not price,
        or lines that would not sum to ``amount`` (``_rate`` overridden): the
        charge is then billed on one line of one unit at ``amount``."""
        self.ensure_one()
        if self.charge_model not in charges.CHARGE_MODELS:
            return None
        currency = self.currency_id
        precision = self.env["decimal.precision"].precision_get
        lines = charges.invoice_lines(
            self._engine_charge(prices),
            quantity,
            to_decimal(currency.rounding),
            quantity_places=precision("Product Unit"),
            price_places=max(precision("Product Price"), PRICE_DISPLAY_DECIMALS),
            subtotal=lambda units, price: to_decimal(
                currency.round(float(units) * float(price))
            ),
        )
        if sum(line.amount for line in lines) != amount:
            return None
        return lines

    def _invoice_line_text(self, line, quantity, prices=None):
        """What one of the charge's invoice lines (``line``, from
        ``_invoice_lines`` of ``quantity``) bills, in the context's language:
        the usage and unit, the tier and its range; the exact units and price
        too when the line is one unit at its amount."""
        self.ensure_one()
        prices = prices or self
        unit = self.metric_id.unit_name or self.env._("units")
        exact = not line.itemized

        def qty(value):
            return self._format_quantity(value, exact=exact)

        tier = (
            line.tier is not None
            and prices.tier_ids.sorted(lambda t: (not t.up_to, t.up_to))[line.tier]
        )
        if line.flat_fee:
            return self.env._(
                "Flat fee of tier %(tier)s (%(range)s)",
                tier=line.tier + 1,
                range=tier.range_label,
            )
        usage = self.env._("%(quantity)s %(unit)s", quantity=qty(line.units), unit=unit)
        if self.charge_model == "package":
            usage = self.env._(
                "%(usage)s in packages of %(size)s",
                usage=self.env._(
                    "%(quantity)s %(unit)s", quantity=qty(quantity), unit=unit
                ),
                size=qty(prices.unit_batch),
            )
            if prices.free_units:
                usage += self.env._(", %(free)s free", free=qty(prices.free_units))
        elif self.charge_model == "graduated":
            usage = self.env._(
                "Tier %(tier)s (%(range)s): %(usage)s",
                tier=line.tier + 1,
                range=tier.range_label,
                usage=usage,
            )
        elif self.charge_model == "volume":
            usage = self.env._(
                "%(usage)s, all at the price of tier %(tier)s (%(range)s)",
                usage=usage,
                tier=line.tier + 1,
                range=tier.range_label,
            )
        if line.itemized:
            return usage
        price = self._format_price(line.price, self.currency_id, exact=True)
        if self.charge_model == "package":
            return self.env._(
                "%(usage)s: %(packages)s x %(price)s",
                usage=usage,
                packages=qty(line.units),
                price=price,
            )
        return self.env._("%(usage)s, %(price)s each", usage=usage, price=price)

    @api.model_create_multi
    def create(self, vals_list):
        charges = super(
            FusionBillingCharge, self.with_context(fusion_billing_pricing_tracked=True)
        ).create(vals_list)
        charges._post_pricing_changes({})
        return self.browse(charges.ids)

    def write(self, vals):
        before = self._pricing_before()
        result = super(
            FusionBillingCharge, self.with_context(fusion_billing_pricing_tracked=True)
        ).write(vals)
        self._post_pricing_changes(before)
        return result

    def unlink(self):
        for charge in self:
            charge._log_pricing(
                self.env._(
                    "Usage charge %(metric)s removed (was: %(old)s).",
                    metric=charge.metric_id.name,
                    old=charge.pricing_summary,
                )
            )
        return super().unlink()

    def _log_pricing(self, change):
        """Log a change of this charge's prices where its prices are read: a
        subscription's own price on the subscription, else on the plan."""
        self.ensure_one()
        if not self.subscription_id:
            self.plan_id._post_pricing_change(change)
            return
        self.subscription_id.message_post(
            body=self.env._(
                "%(change)s. The open period is re-rated with it at the next "
                "rating run.",
                change=change,
            ),
            subtype_xmlid="mail.mt_note",
        )

    def _pricing_before(self):
        """The charges' prices before a change, unless an enclosing change of
        the charge (its tiers edited from the charge) already tracks them."""
        if self.env.context.get("fusion_billing_pricing_tracked"):
            return None
        return {charge.id: charge.pricing_summary for charge in self}

    def _post_pricing_changes(self, before):
        """Log in each plan's chatter how its prices changed: who, when, from
        what to what (``before``: see ``_pricing_before``; None: not here)."""
        if before is None:
            return
        for charge in self:
            old, new = before.get(charge.id), charge.pricing_summary
            if old == new:
                continue
            charge._log_pricing(
                self.env._(
                    "Usage charge %(metric)s: %(old)s → %(new)s",
                    metric=charge.metric_id.name,
                    old=old,
                    new=new,
                )
                if old
                else self.env._(
                    "Usage charge %(metric)s added: %(new)s",
                    metric=charge.metric_id.name,
                    new=new,
                )
            )

    @api.depends(
        "charge_model",
        "unit_price",
        "package_price",
        "unit_batch",
        "free_units",
        "tier_ids.up_to",
        "tier_ids.unit_price",
        "tier_ids.flat_fee",
        "metric_id.unit_name",
        "currency_id",
    )
    def _compute_pricing_summary(self):
        for charge in self:
            charge.pricing_summary = charge._pricing_summary()

    def _pricing_summary(self):
        """The price list in words: "$5.00 per 100 GB, 50 GB free", "first 10
        at $1.00, then $0.50 + $2.00"."""
        self.ensure_one()
        unit = self.metric_id.unit_name or self.env._("unit")

        def price(value):
            return self._format_price(value, self.currency_id)

        qty = self._format_quantity
        if self.charge_model == "standard":
            return self.env._(
                "%(price)s per %(unit)s", price=price(self.unit_price), unit=unit
            )
        if self.charge_model == "package":
            text = self.env._(
                "%(price)s per %(size)s %(unit)s",
                price=price(self.package_price),
                size=qty(self.unit_batch),
                unit=unit,
            )
            if self.free_units:
                text += self.env._(", %(free)s free", free=qty(self.free_units))
            return text
        tiers = self.tier_ids.sorted(lambda t: (not t.up_to, t.up_to))
        if not tiers:
            return self.env._("No tiers yet")
        terms = []
        for tier in tiers:
            rate = price(tier.unit_price)
            if tier.flat_fee:
                rate = self.env._(
                    "%(rate)s + %(fee)s", rate=rate, fee=price(tier.flat_fee)
                )
            if self.charge_model == "volume":
                terms.append(
                    self.env._(
                        "%(rate)s each up to %(to)s", rate=rate, to=qty(tier.up_to)
                    )
                    if tier.up_to
                    else self.env._("%(rate)s each above", rate=rate)
                )
            elif not tier.up_to:
                terms.append(
                    self.env._("then %(rate)s", rate=rate)
                    if terms
                    else self.env._("%(rate)s per %(unit)s", rate=rate, unit=unit)
                )
            elif not terms:
                terms.append(
                    self.env._(
                        "first %(to)s at %(rate)s", to=qty(tier.up_to), rate=rate
                    )
                )
            else:
                terms.append(
                    self.env._(
                        "next %(count)s at %(rate)s",
                        count=qty(tier.up_to - tier.from_quantity),
                        rate=rate,
                    )
                )
        if self.charge_model == "volume":
            return self.env._(
                "All units at one rate: %(terms)s", terms="; ".join(terms)
            )
        return ", ".join(terms)

    @api.model
    def _format_price(self, value, currency, exact=False):
        """A price with the decimals of Odoo's price precision, more when the
        price has them (0.0125, up to SUMMARY_MAX_DECIMALS unless ``exact``),
        and the currency symbol where it goes."""
        precision = self.env["decimal.precision"].precision_get("Product Price")
        decimals = -to_decimal(value).normalize().as_tuple().exponent
        digits = max(precision, decimals)
        if not exact:
            digits = min(digits, SUMMARY_MAX_DECIMALS)
        number = formatLang(self.env, float(value), digits=digits)
        currency = currency or self.env.company.currency_id
        if currency.position == "before":
            return f"{currency.symbol}{number}"
        return f"{number}\N{NO-BREAK SPACE}{currency.symbol}"

    @api.model
    def _format_quantity(self, value, exact=False):
        """A quantity with its decimals, up to SUMMARY_MAX_DECIMALS unless
        ``exact``."""
        decimals = max(-to_decimal(value).normalize().as_tuple().exponent, 0)
        if not exact:
            decimals = min(decimals, SUMMARY_MAX_DECIMALS)
        return formatLang(self.env, float(value), digits=decimals)

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
            )
            # Other models never read tiers: no query for them.
            if self.charge_model in charges.TIERED_MODELS
            else (),
        )
