# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import datetime, time, timezone

from odoo import api, fields, models
from odoo.tools import SQL


def _utc_today():
    return datetime.now(timezone.utc).date()


class FusionBillingChangePlan(models.TransientModel):
    _name = "fusion.billing.change.plan"
    _description = "Change the Plan of a Subscription"

    subscription_id = fields.Many2one(
        "fusion.billing.subscription", required=True, readonly=True
    )
    service_id = fields.Many2one(related="subscription_id.service_id")
    current_plan_id = fields.Many2one(
        related="subscription_id.plan_id", string="Current Plan"
    )
    plan_id = fields.Many2one(
        "fusion.billing.plan",
        string="New Plan",
        required=True,
        domain="[('service_id', '=', service_id), ('id', '!=', current_plan_id)]",
    )
    effective_date = fields.Date(
        required=True,
        default=_utc_today,
        help="First day billed on the new plan (UTC). Usage before it is billed on "
        "the current plan, in a short period closed after the grace period.",
    )
    unbilled_event_count = fields.Integer(
        string="Events Not Billed",
        compute="_compute_unbilled_event_count",
        help="Events already received from the effective date on, for metrics the "
        "new plan does not charge: they will not be billed.",
    )

    @api.depends("subscription_id", "plan_id", "effective_date")
    def _compute_unbilled_event_count(self):
        for wizard in self:
            if not (wizard.plan_id and wizard.effective_date):
                wizard.unbilled_event_count = 0
                continue
            charged = wizard.plan_id.charge_ids.metric_id.ids
            self.env["fusion.billing.usage.event"].flush_model()
            self.env.cr.execute(
                SQL(
                    """SELECT COUNT(*) FROM fusion_billing_usage_event
                        WHERE subscription_id = %s
                          AND "timestamp" >= %s
                          AND cancelled IS NOT TRUE
                          AND metric_id != ALL(%s::int[])""",
                    wizard.subscription_id.id,
                    datetime.combine(wizard.effective_date, time()),
                    charged,
                )
            )
            wizard.unbilled_event_count = self.env.cr.fetchone()[0]

    def action_apply(self):
        self.ensure_one()
        self.subscription_id.change_plan(self.plan_id, self.effective_date)
        return {"type": "ir.actions.act_window_close"}
