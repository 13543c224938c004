# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
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

    @api.depends("service_id")
    def _compute_currency_id(self):
        for plan in self:
            plan.currency_id = plan.service_id.currency_id or plan.currency_id
