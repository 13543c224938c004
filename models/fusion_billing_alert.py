# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from decimal import Decimal

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..core.money import to_decimal


class FusionBillingAlert(models.Model):
    _name = "fusion.billing.alert"
    _description = "Usage Alert"
    _order = "service_id, name, id"
    _check_company_auto = True

    name = fields.Char(required=True)
    active = fields.Boolean(default=True)
    subscription_id = fields.Many2one(
        "fusion.billing.subscription",
        index="btree_not_null",
        ondelete="cascade",
        check_company=True,
        help="Watch this subscription only.",
    )
    plan_id = fields.Many2one(
        "fusion.billing.plan",
        index="btree_not_null",
        ondelete="cascade",
        check_company=True,
        help="Watch every subscription on this plan.",
    )
    service_id = fields.Many2one(
        "fusion.billing.service",
        compute="_compute_service_id",
        store=True,
        precompute=True,
        index=True,
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    metric_id = fields.Many2one(
        "fusion.billing.metric",
        ondelete="cascade",
        domain="[('service_id', '=', service_id)]",
        help="Empty: the threshold is on the period's estimated untaxed amount.",
    )
    # NUMERIC without fixed scale: compared exactly with quantities and amounts.
    threshold = fields.Float(digits=False, required=True)
    trigger_ids = fields.One2many(
        "fusion.billing.alert.trigger", "alert_id", string="Triggered", readonly=True
    )

    _one_target = models.Constraint(
        "CHECK((subscription_id IS NULL) <> (plan_id IS NULL))",
        "An alert watches either one subscription or one plan.",
    )
    _threshold_positive = models.Constraint(
        "CHECK(threshold > 0)", "The alert threshold must be greater than zero."
    )

    @api.depends("subscription_id.service_id", "plan_id.service_id")
    def _compute_service_id(self):
        for alert in self:
            alert.service_id = (
                alert.subscription_id.service_id or alert.plan_id.service_id
            )

    @api.constrains("metric_id", "service_id")
    def _check_metric_service(self):
        for alert in self.filtered("metric_id"):
            if alert.metric_id.service_id != alert.service_id:
                raise ValidationError(
                    self.env._(
                        "Metric %(metric)s is not a metric of service %(service)s.",
                        metric=alert.metric_id.display_name,
                        service=alert.service_id.display_name,
                    )
                )

    @api.model
    def _check_usage(self, subscriptions, quantities):
        """Fire the alerts the open periods of ``subscriptions`` have reached.

        ``quantities`` are the rating's aggregates of those periods, so a
        metric alert sees what the invoice bills, and an amount alert the
        summary's total. The unique trigger row per alert, subscription and
        period start decides: a rerun inserts nothing and queues nothing.
        """
        subscriptions = subscriptions.filtered(
            lambda s: s.state == "active" and s.next_invoice_date
        )
        if not subscriptions:
            return self.env["fusion.billing.alert.trigger"]
        alerts = self.search(
            [
                "|",
                ("subscription_id", "in", subscriptions.ids),
                ("plan_id", "in", subscriptions.plan_id.ids),
            ]
        )
        if not alerts:
            return self.env["fusion.billing.alert.trigger"]
        estimates = {}
        if alerts.filtered(lambda a: not a.metric_id):
            estimates = subscriptions._open_period_estimate(quantities)
        reached = []
        for subscription in subscriptions:
            for alert in alerts:
                if not alert._watches(subscription):
                    continue
                value = alert._value(subscription, quantities, estimates)
                if value is not None and value >= to_decimal(alert.threshold):
                    reached.append((alert, subscription, value))
        return self.env["fusion.billing.alert.trigger"]._record(reached)

    def _watches(self, subscription):
        self.ensure_one()
        if self.subscription_id:
            return self.subscription_id == subscription
        return self.plan_id == subscription.plan_id

    def _value(self, subscription, quantities, estimates):
        """What this alert compares with its threshold for ``subscription``'s
        open period; None while the period cannot be priced."""
        self.ensure_one()
        if self.metric_id:
            return quantities.get((subscription.id, self.metric_id.id), Decimal(0))
        lines, error = estimates[subscription.id]
        if error:
            return None
        return subscription._estimate_total(lines)
