# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models

from .fusion_billing_rating import FIXED_FEE, MINIMUM


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
    fusion_charge_filter_id = fields.Many2one(
        "fusion.billing.charge.filter",
        string="Charge Filter",
        index="btree_not_null",
        readonly=True,
        copy=False,
        ondelete="restrict",
    )
    fusion_is_fixed_fee = fields.Boolean(
        string="Plan Fixed Fee", readonly=True, copy=False
    )
    fusion_is_minimum = fields.Boolean(
        string="Minimum Commitment", readonly=True, copy=False
    )
    fusion_is_credit = fields.Boolean(
        string="Prepaid Credits", readonly=True, copy=False
    )
    fusion_usage_quantity = fields.Float(
        string="Rated Usage",
        digits=False,
        readonly=True,
        copy=False,
        help="The usage the charge rated for the period (on each of its lines).",
    )
    fusion_line_part = fields.Integer(
        string="Charge Line",
        readonly=True,
        copy=False,
        help="Which line of its charge this is (a tier's units or flat fee): the "
        "charge's lines are updated in place on every rating.",
    )

    fusion_adjusted_period_start = fields.Date(
        string="Adjusted Period",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="Start of the closed billing period this line adjusts: late usage "
        "or cancellations billed after that period's invoice.",
    )

    # A rerun updates the lines of a charge, or its adjustment of a period,
    # instead of adding others.
    _fusion_charge_unique = models.UniqueIndex(
        "(move_id, fusion_charge_id, COALESCE(fusion_charge_filter_id, 0), "
        "COALESCE(fusion_line_part, 0)) "
        "WHERE fusion_charge_id IS NOT NULL AND fusion_adjusted_period_start IS NULL",
        "The invoice already has this line of the charge.",
    )
    _fusion_adjustment_unique = models.UniqueIndex(
        "(move_id, fusion_charge_id, fusion_adjusted_period_start) "
        "WHERE fusion_adjusted_period_start IS NOT NULL",
        "The invoice already adjusts this charge for this period.",
    )
    _fusion_fixed_fee_unique = models.UniqueIndex(
        "(move_id) WHERE fusion_is_fixed_fee",
        "The invoice already has a fixed fee line.",
    )
    _fusion_minimum_unique = models.UniqueIndex(
        "(move_id) WHERE fusion_is_minimum",
        "The invoice already has a minimum commitment line.",
    )

    def _fusion_rated_key(self):
        """The key of the rated line this invoice line was written from (see
        RatedLine), None for a line rating does not own."""
        self.ensure_one()
        if self.fusion_adjusted_period_start:
            return (self.fusion_charge_id.id, self.fusion_adjusted_period_start)
        if self.fusion_charge_filter_id:
            return (self.fusion_charge_id.id, self.fusion_charge_filter_id.id)
        if self.fusion_charge_id:
            return self.fusion_charge_id.id
        if self.fusion_is_fixed_fee:
            return FIXED_FEE
        if self.fusion_is_minimum:
            return MINIMUM
        return None
