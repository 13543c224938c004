# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.tools import SQL

from ..core import summary
from ..core.money import to_decimal

THRESHOLD_EVENT = "usage.threshold_reached"


class FusionBillingAlertTrigger(models.Model):
    _name = "fusion.billing.alert.trigger"
    _description = "Usage Alert Trigger"
    _order = "id desc"

    alert_id = fields.Many2one(
        "fusion.billing.alert", required=True, ondelete="cascade", readonly=True
    )
    subscription_id = fields.Many2one(
        "fusion.billing.subscription",
        required=True,
        index=True,
        ondelete="cascade",
        readonly=True,
    )
    company_id = fields.Many2one(related="alert_id.company_id", store=True)
    period_start = fields.Date(required=True, readonly=True)
    period_end = fields.Date(required=True, readonly=True)
    value = fields.Float(digits=False, readonly=True)
    threshold = fields.Float(digits=False, readonly=True)
    webhook_event_id = fields.Many2one(
        "fusion.billing.webhook.event", readonly=True, ondelete="set null"
    )

    _once_per_period = models.UniqueIndex("(alert_id, subscription_id, period_start)")

    @api.model
    def _record(self, reached):
        """Insert a trigger per (alert, BillingPeriod, value) in ``reached``
        unless its period already has one, then queue the webhook and post on
        the chatter of the new ones only. Returns the new triggers."""
        if not reached:
            return self.browse()
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO fusion_billing_alert_trigger
                    (alert_id, subscription_id, company_id, period_start,
                     period_end, value, threshold,
                     create_uid, write_uid, create_date, write_date)
                VALUES %s
                ON CONFLICT (alert_id, subscription_id, period_start) DO NOTHING
                RETURNING id
                """,
                SQL(", ").join(
                    SQL(
                        "(%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                        " now() at time zone 'utc', now() at time zone 'utc')",
                        alert.id,
                        period.subscription.id,
                        alert.company_id.id,
                        period.start,
                        period.end,
                        value,
                        alert.threshold,
                        self.env.uid,
                        self.env.uid,
                    )
                    for alert, period, value in reached
                ),
            )
        )
        triggers = self.browse([row[0] for row in self.env.cr.fetchall()])
        customer_refs = triggers.subscription_id._customer_refs()
        for trigger in triggers:
            trigger._notify(customer_refs[trigger.subscription_id.id])
        return triggers

    def _notify(self, customer_ref):
        self.ensure_one()
        alert = self.alert_id
        subscription = self.subscription_id
        data = summary.threshold_data(
            alert_id=alert.id,
            alert_name=alert.name,
            subscription=subscription.external_ref,
            customer=customer_ref,
            metric=alert.metric_id.code or None,
            threshold=to_decimal(self.threshold),
            value=to_decimal(self.value),
            period=(self.period_start, self.period_end),
        )
        # Triggers are the system's record: nobody edits them, rating links
        # the webhook it queued.
        self.sudo().webhook_event_id = self.env["fusion.billing.webhook.event"]._queue(
            subscription.service_id,
            THRESHOLD_EVENT,
            data,
            dedupe_key=f"{THRESHOLD_EVENT}:{self.id}",
        )
        subscription.message_post(
            body=self.env._(
                "Usage alert %(alert)s reached: %(value)s for a threshold of "
                "%(threshold)s (period from %(start)s).",
                alert=alert.name,
                value=data["value"],
                threshold=data["threshold"],
                start=self.period_start,
            ),
            subtype_xmlid="mail.mt_note",
        )
