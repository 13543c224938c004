# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class FusionBillingUsageEvent(models.Model):
    _name = "fusion.billing.usage.event"
    _description = "Usage Event"
    _order = "timestamp desc, id desc"
    _rec_name = "idempotency_key"
    _check_company_auto = True

    service_id = fields.Many2one(
        "fusion.billing.service", required=True, index=True, ondelete="restrict"
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    subscription_id = fields.Many2one(
        "fusion.billing.subscription", required=True, ondelete="restrict"
    )
    partner_id = fields.Many2one(related="subscription_id.partner_id")
    metric_id = fields.Many2one(
        "fusion.billing.metric", required=True, index=True, ondelete="restrict"
    )
    # NUMERIC without fixed scale: quantities are summed exactly in SQL.
    quantity = fields.Float(digits=False, required=True, default=1)
    timestamp = fields.Datetime(
        required=True, help="When the usage happened (UTC), as sent by the app."
    )
    idempotency_key = fields.Char(required=True)
    properties = fields.Json()

    _idempotency_unique = models.Constraint(
        "UNIQUE(subscription_id, metric_id, idempotency_key)",
        "This usage event was already recorded.",
    )
    _quantity_positive = models.Constraint(
        "CHECK(quantity >= 0)", "A usage quantity cannot be negative."
    )
    # Serves the rating aggregation: one subscription, one metric, a time window.
    _rating_idx = models.Index("(subscription_id, metric_id, timestamp)")
