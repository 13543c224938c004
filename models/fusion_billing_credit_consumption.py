# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class FusionBillingCreditConsumption(models.Model):
    _name = "fusion.billing.credit.consumption"
    _description = "Credit Used by an Invoice"
    _order = "credit_id, id"

    credit_id = fields.Many2one(
        "fusion.billing.credit", required=True, index=True, ondelete="cascade"
    )
    # Deleting the (draft) invoice gives its credit back, as cancelling it does.
    move_id = fields.Many2one(
        "account.move",
        string="Invoice",
        required=True,
        index=True,
        ondelete="cascade",
    )
    company_id = fields.Many2one(related="credit_id.company_id", store=True)
    currency_id = fields.Many2one(related="credit_id.currency_id")
    amount = fields.Monetary(required=True)
    state = fields.Selection(related="move_id.state", string="Invoice Status")
    period_start = fields.Date(related="move_id.fusion_period_start")

    _amount_positive = models.Constraint(
        "CHECK(amount > 0)", "A credit consumption must be greater than zero."
    )
    _credit_move_unique = models.UniqueIndex(
        "(credit_id, move_id)", "The invoice already used this credit."
    )
