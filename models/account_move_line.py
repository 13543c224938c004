# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class AccountMoveLine(models.Model):
    _inherit = "account.move.line"

    fusion_charge_id = fields.Many2one(
        "fusion.billing.charge",
        string="Usage Charge",
        index="btree_not_null",
        readonly=True,
        copy=False,
        ondelete="restrict",
    )
    fusion_is_fixed_fee = fields.Boolean(
        string="Plan Fixed Fee", readonly=True, copy=False
    )
    fusion_usage_quantity = fields.Float(
        string="Rated Usage", digits=False, readonly=True, copy=False
    )

    # A rerun updates the line of a charge instead of adding another one.
    _fusion_charge_unique = models.UniqueIndex(
        "(move_id, fusion_charge_id) WHERE fusion_charge_id IS NOT NULL",
        "The invoice already has a line for this charge.",
    )
    _fusion_fixed_fee_unique = models.UniqueIndex(
        "(move_id) WHERE fusion_is_fixed_fee",
        "The invoice already has a fixed fee line.",
    )
