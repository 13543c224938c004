# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class AccountMove(models.Model):
    _inherit = "account.move"

    fusion_subscription_id = fields.Many2one(
        "fusion.billing.subscription",
        string="Usage Subscription",
        index="btree_not_null",
        readonly=True,
        copy=False,
        ondelete="restrict",
    )
    fusion_service_id = fields.Many2one(
        related="fusion_subscription_id.service_id", store=True, string="Billed Service"
    )
    fusion_period_start = fields.Date(
        string="Billing Period Start", readonly=True, copy=False
    )
    fusion_period_end = fields.Date(
        string="Billing Period End",
        readonly=True,
        copy=False,
        help="Exclusive: the period covers usage up to the day before.",
    )

    # One live invoice per subscription and period, even with two rating workers.
    _fusion_period_unique = models.UniqueIndex(
        "(fusion_subscription_id, fusion_period_start) "
        "WHERE fusion_subscription_id IS NOT NULL AND state != 'cancel' "
        "AND move_type = 'out_invoice'",
        "This subscription already has an invoice for the period.",
    )
