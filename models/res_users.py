# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class ResUsers(models.Model):
    _inherit = "res.users"

    fusion_billing_service_ids = fields.One2many(
        "fusion.billing.service", "user_id", string="Billed Services (API user)"
    )
