# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class FusionBillingCustomer(models.Model):
    _name = "fusion.billing.customer"
    _description = "Customer of a Billed Service"
    _order = "service_id, external_ref"
    _rec_name = "external_ref"
    _check_company_auto = True

    service_id = fields.Many2one(
        "fusion.billing.service", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    partner_id = fields.Many2one(
        "res.partner",
        required=True,
        index=True,
        ondelete="restrict",
        check_company=True,
    )
    external_ref = fields.Char(
        string="External Reference",
        required=True,
        help="The customer's id in the app, as the app sends it in usage events.",
    )

    _external_ref_unique = models.Constraint(
        "UNIQUE(service_id, external_ref)",
        "This external reference is already linked to a customer of the service.",
    )
