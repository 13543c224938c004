# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models

from .fusion_billing_price_mixin import PRICE_FIELD, QUANTITY_FIELD


class FusionBillingChargeTier(models.Model):
    _name = "fusion.billing.charge.tier"
    _description = "Charge Tier"
    # By charge id: reading a charge's tiers joins no charge, plan or service.
    _order = "charge_id.id, up_to_sort, up_to"

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
    from_quantity = fields.Float(
        string="From",
        compute="_compute_from_quantity",
        min_display_digits=0,
        help="The tier starts above this quantity (the previous tier's To).",
    )
    up_to = fields.Float(
        string="To",
        help="Last unit of the tier, inclusive. Leave 0 on the last tier: "
        "it goes on without limit (and above).",
        **QUANTITY_FIELD,
    )
    range_label = fields.Char(string="Range", compute="_compute_from_quantity")
    # Orders the unbounded tier (up_to = 0) last.
    up_to_sort = fields.Boolean(compute="_compute_up_to_sort", store=True)
    unit_price = fields.Float(**PRICE_FIELD)
    flat_fee = fields.Float(
        help="Billed once when the quantity reaches this tier.", **PRICE_FIELD
    )

    _amounts_positive = models.Constraint(
        "CHECK(up_to >= 0 AND unit_price >= 0 AND flat_fee >= 0)",
        "Tier bounds and prices cannot be negative.",
    )

    @api.depends("filter_id")
    def _compute_charge_id(self):
        for tier in self:
            tier.charge_id = tier.filter_id.charge_id or tier.charge_id

    @api.depends("charge_id.tier_ids.up_to", "filter_id.tier_ids.up_to")
    def _compute_from_quantity(self):
        fmt = self.env["fusion.billing.charge"]._format_quantity
        # Each ladder (a charge's own, or one of its filters') starts at 0.
        ladders = self.filter_id.mapped("tier_ids") | self.charge_id.tier_ids
        for owner in (*self.filter_id, *self.charge_id):
            start = 0.0
            for tier in owner.tier_ids.sorted(lambda t: (not t.up_to, t.up_to)):
                tier.from_quantity = start
                tier.range_label = (
                    self.env._(
                        "%(start)s to %(end)s", start=fmt(start), end=fmt(tier.up_to)
                    )
                    if tier.up_to
                    else self.env._("%(start)s and above", start=fmt(start))
                )
                start = tier.up_to or start
        for tier in self - ladders:
            tier.from_quantity = 0.0
            tier.range_label = False

    @api.depends("up_to")
    def _compute_up_to_sort(self):
        for tier in self:
            tier.up_to_sort = not tier.up_to

    # Tiers edited on their own (over RPC, say) are tracked on their charge's
    # plan like any price change; edited from the charge, the charge tracks.
    @api.model_create_multi
    def create(self, vals_list):
        charge_ids = {vals.get("charge_id") for vals in vals_list}
        charges = self.env["fusion.billing.charge"].browse(filter(None, charge_ids))
        before = charges._pricing_before()
        tiers = super().create(vals_list)
        charges._post_pricing_changes(before)
        return tiers

    def write(self, vals):
        before = self.charge_id._pricing_before()
        result = super().write(vals)
        self.charge_id._post_pricing_changes(before)
        return result

    def unlink(self):
        charges = self.charge_id
        before = charges._pricing_before()
        result = super().unlink()
        charges.exists()._post_pricing_changes(before)
        return result
