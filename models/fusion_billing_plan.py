# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from markupsafe import Markup

from odoo import api, fields, models

INTERVAL_UNITS = [
    ("day", "Day(s)"),
    ("week", "Week(s)"),
    ("month", "Month(s)"),
    ("year", "Year(s)"),
]


class FusionBillingPlan(models.Model):
    _name = "fusion.billing.plan"
    _description = "Price Plan"
    _inherit = ["mail.thread"]
    _order = "service_id, name"
    _check_company_auto = True

    service_id = fields.Many2one(
        "fusion.billing.service",
        required=True,
        index=True,
        ondelete="cascade",
        tracking=True,
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    name = fields.Char(required=True, tracking=True)
    code = fields.Char(required=True, tracking=True)
    active = fields.Boolean(default=True)
    currency_id = fields.Many2one(
        "res.currency",
        required=True,
        tracking=True,
        compute="_compute_currency_id",
        store=True,
        readonly=False,
        precompute=True,
    )
    interval_unit = fields.Selection(
        INTERVAL_UNITS, required=True, default="month", tracking=True
    )
    interval_count = fields.Integer(default=1, required=True, tracking=True)
    base_price = fields.Monetary(
        string="Fixed Fee",
        currency_field="currency_id",
        tracking=True,
        help="Recurring fee billed once per period, on top of usage charges.",
    )
    prorate_base_price = fields.Boolean(
        string="Prorate Fixed Fee",
        default=True,
        tracking=True,
        help="A period shorter than the billing interval (a subscription ending, "
        "a plan change) pays the fixed fee by days: fee x days used / days of the "
        "full period. Off: every period pays the whole fee.",
    )
    product_id = fields.Many2one(
        "product.product",
        string="Fixed Fee Product",
        check_company=True,
        help="Product of the fixed fee and minimum commitment invoice lines (taxes "
        "and income account).",
    )
    # A subscription's own prices (SPEC 13) are charges of the plan too, but
    # not the plan's.
    charge_ids = fields.One2many(
        "fusion.billing.charge",
        "plan_id",
        domain=[("subscription_id", "=", False)],
        copy=True,
    )
    minimum_amount = fields.Monetary(
        string="Minimum Commitment",
        currency_field="currency_id",
        tracking=True,
        help="Least amount billed per period (prorated like the fixed fee): when "
        "usage and fixed fee stay below it, one more line bills the difference.",
    )
    pricing_summary = fields.Text(string="Pricing", compute="_compute_pricing_summary")
    alert_ids = fields.One2many("fusion.billing.alert", "plan_id")

    _code_unique = models.Constraint(
        "UNIQUE(service_id, code)", "A plan with this code already exists."
    )
    _interval_count_positive = models.Constraint(
        "CHECK(interval_count > 0)", "The billing interval must be at least 1."
    )
    _base_price_positive = models.Constraint(
        "CHECK(base_price >= 0)", "The fixed fee cannot be negative."
    )
    _fee_has_product = models.Constraint(
        "CHECK(base_price = 0 OR product_id IS NOT NULL)",
        "A plan with a fixed fee needs a product for its invoice line.",
    )
    _minimum_amount_positive = models.Constraint(
        "CHECK(minimum_amount >= 0)", "The minimum commitment cannot be negative."
    )
    _minimum_has_product = models.Constraint(
        "CHECK(minimum_amount = 0 OR product_id IS NOT NULL)",
        "A plan with a minimum commitment needs a product for its invoice line.",
    )

    def _post_pricing_change(self, change):
        """Log a price change in the plan's chatter, with what it does to the
        bills already running."""
        self.ensure_one()
        active = self.env["fusion.billing.subscription"].search_count(
            [("plan_id", "=", self.id), ("state", "=", "active")]
        )
        body = Markup("<p>%s</p>") % change
        if active:
            body += Markup("<p class='text-warning'>%s</p>") % self.env._(
                "The open periods of the %(count)s active subscriptions are "
                "re-rated with the new prices at the next rating run: their draft "
                "invoices change too.",
                count=active,
            )
        self.message_post(body=body, subtype_xmlid="mail.mt_note")

    @api.depends(
        "base_price",
        "currency_id",
        "interval_unit",
        "interval_count",
        "charge_ids.pricing_summary",
        "charge_ids.metric_id.name",
    )
    def _compute_pricing_summary(self):
        charges = self.env["fusion.billing.charge"]
        for plan in self:
            lines = []
            if plan.base_price:
                lines.append(
                    self.env._(
                        "%(fee)s %(interval)s",
                        fee=charges._format_price(plan.base_price, plan.currency_id),
                        interval=plan._interval_text(),
                    )
                )
            lines.extend(
                f"{charge.metric_id.name}: {charge.pricing_summary}"
                for charge in plan.charge_ids
            )
            plan.pricing_summary = "\n".join(lines)

    def _interval_text(self):
        self.ensure_one()
        if not self.interval_unit:
            return ""
        unit = dict(self._fields["interval_unit"]._description_selection(self.env))[
            self.interval_unit
        ]
        if self.interval_count == 1:
            return self.env._("per %(unit)s", unit=unit.replace("(s)", "").lower())
        return self.env._(
            "every %(count)s %(unit)s",
            count=self.interval_count,
            unit=unit.replace("(s)", "s").lower(),
        )

    @api.depends("service_id")
    def _compute_currency_id(self):
        for plan in self:
            plan.currency_id = plan.service_id.currency_id or plan.currency_id
