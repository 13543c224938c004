# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Subscriptions billed before 1.2.0 have no plan history: record the plans
each has been billed on, so that usage is authorized and rated by the plan in
force at its timestamp.

1.1.0 kept the plan of a closed period on its invoice only (the plan of the
charges its lines bill, which its re-rating read), and on the subscription its
plan and, until the period a change cut has closed, the previous plan and its
anchor. A plan is recorded from the start of the first period billed on it
(the effective date of a change still open); a period whose invoice bills no
charge goes with the plan before it. Anchors follow Change Plan: a plan billed
at another interval than the one before counts its periods from its first
day."""

from odoo import SUPERUSER_ID, api

from odoo.addons.fusion_billing.models.account_move import PERIOD_MOVE_TYPES


def migrate(cr, version):
    env = api.Environment(cr, SUPERUSER_ID, {})
    subscriptions = env["fusion.billing.subscription"].search(
        [
            ("state", "!=", "draft"),
            ("plan_history_ids", "=", False),
            # Not closed straight from draft: never billed, it has no plan.
            "|",
            ("next_invoice_date", "!=", False),
            ("last_invoice_date", "!=", False),
        ]
    )
    env["fusion.billing.plan.history"].create(
        [row for subscription in subscriptions for row in _history(subscription)]
    )


def _billed_plans(subscription):
    """{period start: plan} of the subscription's invoices whose own lines
    (not adjustments of earlier periods) bill the charges of one plan."""
    billed = {}
    for invoice in subscription.invoice_ids:
        plan = invoice.invoice_line_ids.filtered(
            lambda line: not line.fusion_adjusted_period_start
        ).fusion_charge_id.plan_id
        if (
            invoice.move_type in PERIOD_MOVE_TYPES
            and invoice.state != "cancel"
            and len(plan) == 1
        ):
            billed[invoice.fusion_period_start] = plan
    return billed


def _history(subscription):
    """The plan history rows of ``subscription``, oldest first."""
    plans = _billed_plans(subscription)
    # What the subscription says of its open period (of a closed one, of the
    # day after its last) outweighs its invoices.
    plans[subscription._period_start()] = (
        subscription.previous_plan_id or subscription.plan_id
    )
    if subscription.plan_change_date:
        plans[subscription.plan_change_date] = subscription.plan_id
    rows = []
    previous = None
    for day in sorted(plans):
        plan = plans[day]
        if plan == previous:
            continue
        if not previous:
            first = anchor = subscription.start_date
        elif (plan.interval_unit, plan.interval_count) != (
            previous.interval_unit,
            previous.interval_count,
        ):
            first = anchor = day
        else:
            first, anchor = day, rows[-1]["anchor_date"]
        rows.append(
            {
                "subscription_id": subscription.id,
                "date_from": first,
                "plan_id": plan.id,
                "anchor_date": anchor,
            }
        )
        previous = plan
    rows[-1]["anchor_date"] = subscription._period_anchor()
    if subscription.previous_plan_id and subscription.previous_anchor_date:
        rows[-2]["anchor_date"] = subscription.previous_anchor_date
    return rows
