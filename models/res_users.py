# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class ResUsers(models.Model):
    _inherit = "res.users"

    fusion_billing_service_ids = fields.One2many(
        "fusion.billing.service",
        "user_id",
        string="Billed Services (API user)",
        readonly=True,
        groups="fusion_billing.group_fusion_billing_manager",
    )
    fusion_billing_technical = fields.Boolean(
        string="Fusion Billing Technical User",
        readonly=True,
        copy=False,
        help="Created by Fusion Billing for a service's API keys: archiving the "
        "service archives it. Other users are never touched by a service.",
    )
