# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models


class FusionBillingPlanHistory(models.Model):
    """The plan a subscription is billed on from one day on: closed periods
    keep their plan after later changes, and late usage of one is authorized
    and rated by it (SPEC §11)."""

    _name = "fusion.billing.plan.history"
    _description = "Subscription Plan History"
    _order = "subscription_id, date_from"

    subscription_id = fields.Many2one(
        "fusion.billing.subscription", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="subscription_id.company_id", store=True)
    date_from = fields.Date(
        string="From", required=True, help="First day (00:00 UTC) billed on the plan."
    )
    plan_id = fields.Many2one("fusion.billing.plan", required=True, ondelete="restrict")
    anchor_date = fields.Date(
        string="Period Anchor",
        required=True,
        help="Date the plan's billing periods are counted from.",
    )

    _subscription_day_unique = models.Constraint(
        "UNIQUE(subscription_id, date_from)",
        "The subscription already has a plan from this day.",
    )

    @api.model
    def _record(self, subscription, date_from):
        """From ``date_from`` on, ``subscription`` is billed on its current
        plan and anchor (a change on the same day replaces the earlier one)."""
        values = {
            "plan_id": subscription.plan_id.id,
            "anchor_date": subscription._period_anchor(),
        }
        row = self.search(
            [("subscription_id", "=", subscription.id), ("date_from", "=", date_from)]
        )
        if row:
            row.write(values)
        else:
            self.create(
                {"subscription_id": subscription.id, "date_from": date_from, **values}
            )
