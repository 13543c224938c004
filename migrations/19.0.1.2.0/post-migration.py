# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Subscriptions activated before 1.2.0 have no plan history: record the plan
each is billed on from its start (before the effective date of a plan change
whose cut period is still open, the previous plan), so that usage is
authorized and rated by the plan in force at its timestamp."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    env = api.Environment(cr, SUPERUSER_ID, {})
    rows = []
    for subscription in env["fusion.billing.subscription"].search(
        [("state", "!=", "draft"), ("plan_history_ids", "=", False)]
    ):
        current = {
            "subscription_id": subscription.id,
            "plan_id": subscription.plan_id.id,
            "anchor_date": subscription._period_anchor(),
        }
        if subscription.previous_plan_id:
            rows += [
                {
                    "subscription_id": subscription.id,
                    "date_from": subscription.start_date,
                    "plan_id": subscription.previous_plan_id.id,
                    "anchor_date": subscription.previous_anchor_date
                    or subscription.start_date,
                },
                {**current, "date_from": subscription.plan_change_date},
            ]
        else:
            rows.append({**current, "date_from": subscription.start_date})
    env["fusion.billing.plan.history"].create(rows)
