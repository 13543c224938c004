# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..core import charges, pricing


class FusionBillingChargeFilter(models.Model):
    _name = "fusion.billing.charge.filter"
    _description = "Charge Filter"
    _inherit = ["fusion.billing.price.mixin"]
    # By charge id: reading a charge's filters joins no charge, plan or service.
    _order = "charge_id.id, sequence, id"

    charge_id = fields.Many2one(
        "fusion.billing.charge", required=True, index=True, ondelete="cascade"
    )
    sequence = fields.Integer(
        default=10, help="An event is priced by the first filter it matches."
    )
    company_id = fields.Many2one(related="charge_id.company_id", store=True)
    currency_id = fields.Many2one(related="charge_id.currency_id")
    charge_model = fields.Selection(related="charge_id.charge_model")
    property_name = fields.Char(
        required=True, help="Event property compared, e.g. region."
    )
    values = fields.Char(
        required=True,
        help="Comma-separated values of the property this filter prices, e.g. "
        "eu,uk. JSON numbers and booleans are compared as their text (1, true).",
    )
    tier_ids = fields.One2many("fusion.billing.charge.tier", "filter_id", copy=True)

    @api.constrains("values", "property_name")
    def _check_values(self):
        for charge_filter in self:
            if not pricing.parse_values(charge_filter.values):
                raise ValidationError(
                    self.env._(
                        "Filter on %(property)s needs at least one value.",
                        property=charge_filter.property_name,
                    )
                )

    @api.constrains("tier_ids")
    def _check_tiers(self):
        for charge_filter in self.filtered(
            lambda f: f.charge_model in charges.TIERED_MODELS and f.tier_ids
        ):
            try:
                charges.validate_tiers(charge_filter._engine_filter().charge.tiers)
            except ValueError as error:
                raise ValidationError(
                    self.env._(
                        "Tiers of filter %(filter)s: %(reason)s",
                        filter=charge_filter.display_name,
                        reason=error,
                    )
                ) from error

    @api.depends("property_name", "values")
    def _compute_display_name(self):
        for charge_filter in self:
            charge_filter.display_name = "{} = {}".format(
                charge_filter.property_name,
                ", ".join(pricing.parse_values(charge_filter.values)),
            )

    def _engine_filter(self):
        """The filter as the engine prices it: its charge's model with its own
        prices and tiers."""
        self.ensure_one()
        return pricing.Filter(
            property_name=self.property_name,
            values=pricing.parse_values(self.values),
            charge=self.charge_id._engine_charge(prices=self),
        )
