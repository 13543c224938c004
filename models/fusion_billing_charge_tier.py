# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models

from .fusion_billing_price_mixin import PRICE_DIGITS


class FusionBillingChargeTier(models.Model):
    _name = "fusion.billing.charge.tier"
    _description = "Charge Tier"
    _order = "charge_id, up_to_sort, up_to"

    # A filter's tiers belong to its charge too (deleted with it), and are kept
    # out of the charge's own ladder by the charge's tier_ids domain. Not
    # copied: a copied tier belongs to the copy of its charge or filter.
    charge_id = fields.Many2one(
        "fusion.billing.charge",
        required=True,
        index=True,
        ondelete="cascade",
        compute="_compute_charge_id",
        store=True,
        readonly=False,
        precompute=True,
        copy=False,
    )
    filter_id = fields.Many2one(
        "fusion.billing.charge.filter", index="btree_not_null", ondelete="cascade"
    )
    company_id = fields.Many2one(related="charge_id.company_id", store=True)
    up_to = fields.Float(
        digits=PRICE_DIGITS,
        help="Last unit of the tier, inclusive. 0 means no upper bound (last tier).",
    )
    # Orders the unbounded tier (up_to = 0) last.
    up_to_sort = fields.Boolean(compute="_compute_up_to_sort", store=True)
    unit_price = fields.Float(digits=PRICE_DIGITS)
    flat_fee = fields.Float(
        digits=PRICE_DIGITS,
        help="Billed once when the quantity reaches this tier.",
    )

    _amounts_positive = models.Constraint(
        "CHECK(up_to >= 0 AND unit_price >= 0 AND flat_fee >= 0)",
        "Tier bounds and prices cannot be negative.",
    )

    @api.depends("filter_id")
    def _compute_charge_id(self):
        for tier in self:
            tier.charge_id = tier.filter_id.charge_id or tier.charge_id

    @api.depends("up_to")
    def _compute_up_to_sort(self):
        for tier in self:
            tier.up_to_sort = not tier.up_to
