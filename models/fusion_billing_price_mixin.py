# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models

# Unit prices such as 0.0125 per API call need more digits than "Product Price".
PRICE_DIGITS = (16, 6)


class FusionBillingPriceMixin(models.AbstractModel):
    """The prices a charge model reads: a charge's own, or one of its filters'."""

    _name = "fusion.billing.price.mixin"
    _description = "Usage Prices"

    unit_price = fields.Float(digits=PRICE_DIGITS)
    package_price = fields.Float(digits=PRICE_DIGITS)
    unit_batch = fields.Float(
        string="Package Size",
        default=1,
        digits=PRICE_DIGITS,
        help="Units per package (package model).",
    )
    free_units = fields.Float(
        digits=PRICE_DIGITS, help="Units given free before packages are counted."
    )

    _prices_positive = models.Constraint(
        "CHECK(unit_price >= 0 AND package_price >= 0 AND free_units >= 0)",
        "Prices and free units cannot be negative.",
    )
    _unit_batch_positive = models.Constraint(
        "CHECK(unit_batch > 0)", "The package size must be greater than zero."
    )
