# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models

from ..core import pricing
from ..core.money import to_decimal


class FusionBillingCredit(models.Model):
    _name = "fusion.billing.credit"
    _description = "Credit Grant"
    _inherit = ["mail.thread"]
    _order = "subscription_id, priority, expiration_date, id"
    _check_company_auto = True

    name = fields.Char(string="Description", required=True, tracking=True)
    subscription_id = fields.Many2one(
        "fusion.billing.subscription",
        required=True,
        index=True,
        ondelete="cascade",
        check_company=True,
        tracking=True,
    )
    company_id = fields.Many2one(related="subscription_id.company_id", store=True)
    partner_id = fields.Many2one(related="subscription_id.partner_id", store=True)
    currency_id = fields.Many2one(related="subscription_id.currency_id", store=True)
    amount = fields.Monetary(required=True, tracking=True)
    remaining_amount = fields.Monetary(
        compute="_compute_remaining_amount",
        store=True,
        help="Amount not yet used by an invoice. Credit used by an invoice that "
        "is cancelled is given back.",
    )
    expiration_date = fields.Date(
        tracking=True,
        help="Last day the credit can be used (inclusive): a period whose last "
        "day is after it no longer uses it. Empty: never expires.",
    )
    priority = fields.Integer(
        default=10,
        tracking=True,
        help="Credits of lower priority are used first; then those expiring first, "
        "credits that never expire last.",
    )
    consumption_ids = fields.One2many(
        "fusion.billing.credit.consumption",
        "credit_id",
        string="Used by",
        readonly=True,
    )

    _amount_positive = models.Constraint(
        "CHECK(amount > 0)", "The amount of a credit must be greater than zero."
    )
    _remaining_positive = models.Constraint(
        "CHECK(remaining_amount >= 0)",
        "A credit cannot be used beyond its amount.",
    )

    @api.depends("amount", "consumption_ids.amount", "consumption_ids.move_id.state")
    def _compute_remaining_amount(self):
        for credit in self:
            used = sum(
                credit.consumption_ids.filtered(
                    lambda c: c.move_id.state != "cancel"
                ).mapped("amount")
            )
            credit.remaining_amount = credit.currency_id.round(credit.amount - used)

    def _engine_grant(self):
        self.ensure_one()
        return pricing.Grant(
            key=self.id,
            remaining=to_decimal(self.remaining_amount),
            priority=self.priority,
            expiration_date=self.expiration_date or None,
        )
