# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import uuid

from odoo import api, fields, models

from ..core import signing

STATES = [
    ("pending", "Pending"),
    ("sending", "Sending"),
    ("delivered", "Delivered"),
    ("failed", "Failed"),
]


class FusionBillingWebhookEvent(models.Model):
    _name = "fusion.billing.webhook.event"
    _description = "Webhook Delivery"
    _order = "id desc"
    _rec_name = "event_id"
    _check_company_auto = True

    service_id = fields.Many2one(
        "fusion.billing.service", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    event_id = fields.Char(
        string="Event ID",
        required=True,
        readonly=True,
        copy=False,
        default=lambda self: str(uuid.uuid4()),
    )
    event_type = fields.Char(required=True, readonly=True, index=True)
    dedupe_key = fields.Char(
        readonly=True,
        copy=False,
        help="Identifies the billing fact behind the event, so queuing it again "
        "never creates a second delivery.",
    )
    body = fields.Text(readonly=True, help="Canonical JSON, sent verbatim.")
    state = fields.Selection(
        STATES, required=True, default="pending", index=True, copy=False
    )
    attempts = fields.Integer(readonly=True, copy=False)
    next_attempt_at = fields.Datetime(
        default=fields.Datetime.now, index=True, copy=False
    )
    last_attempt_at = fields.Datetime(readonly=True, copy=False)
    delivered_at = fields.Datetime(readonly=True, copy=False)
    last_status_code = fields.Integer(readonly=True, copy=False)
    last_error = fields.Text(readonly=True, copy=False)

    _event_id_unique = models.Constraint(
        "UNIQUE(event_id)", "Webhook event ids are unique."
    )
    _dedupe_key_unique = models.UniqueIndex(
        "(service_id, dedupe_key) WHERE dedupe_key IS NOT NULL",
        "This billing event was already queued.",
    )

    @api.model
    def _queue(self, service, event_type, data, dedupe_key=None):
        """Queue one delivery of ``event_type`` with ``data``; at most once per
        ``dedupe_key`` (the insert is skipped by the database on a replay)."""
        event_id = str(uuid.uuid4())
        body = signing.canonical_json(
            {
                "id": event_id,
                "type": event_type,
                "created_at": fields.Datetime.now().isoformat() + "Z",
                "service": service.code,
                "data": data,
            }
        ).decode()
        self.env.cr.execute(
            """
            INSERT INTO fusion_billing_webhook_event
                (service_id, event_id, event_type, dedupe_key, body, state, attempts,
                 next_attempt_at, create_uid, write_uid, create_date, write_date)
            VALUES (%s, %s, %s, %s, %s, 'pending', 0, now() at time zone 'utc',
                    %s, %s, now() at time zone 'utc', now() at time zone 'utc')
            ON CONFLICT (service_id, dedupe_key) WHERE dedupe_key IS NOT NULL
            DO NOTHING
            RETURNING id
            """,
            (
                service.id,
                event_id,
                event_type,
                dedupe_key,
                body,
                self.env.uid,
                self.env.uid,
            ),
        )
        row = self.env.cr.fetchone()
        return self.browse(row[0] if row else ())

    def action_retry(self):
        """Send failed (or waiting) deliveries again at the next cron run."""
        self.filtered(lambda event: event.state in ("failed", "pending")).write(
            {"state": "pending", "next_attempt_at": fields.Datetime.now()}
        )
        self.env.ref("fusion_billing.ir_cron_deliver_webhooks")._trigger()
        return True
