# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models

# Prices are stored exactly (0.0125 per API call) and shown with at least the
# decimals of Odoo's "Product Price" precision; quantities as they are.
PRICE_FIELD = {"digits": False, "min_display_digits": "Product Price"}
QUANTITY_FIELD = {"digits": False, "min_display_digits": 0}


class FusionBillingPriceMixin(models.AbstractModel):
    """The prices a charge model reads: a charge's own, or one of its filters'."""

    _name = "fusion.billing.price.mixin"
    _description = "Usage Prices"

    unit_price = fields.Float(**PRICE_FIELD)
    package_price = fields.Float(**PRICE_FIELD)
    unit_batch = fields.Float(
        string="Package Size",
        default=1,
        help="Units per package (package model).",
        **QUANTITY_FIELD,
    )
    free_units = fields.Float(
        help="Units given free before packages are counted.", **QUANTITY_FIELD
    )

    _prices_positive = models.Constraint(
        "CHECK(unit_price >= 0 AND package_price >= 0 AND free_units >= 0)",
        "Prices and free units cannot be negative.",
    )
    _unit_batch_positive = models.Constraint(
        "CHECK(unit_batch > 0)", "The package size must be greater than zero."
    )
