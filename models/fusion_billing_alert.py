# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import logging
from decimal import Decimal

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..core.money import to_decimal

_logger = logging.getLogger(__name__)


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
    def _check_ratings(self, ratings):
        """Fire the alerts that the rated open periods (PeriodRatings of the
        rating run) have reached.

        A metric alert compares the metric's aggregated quantity, an amount
        alert the period's untaxed amount: what the invoice and the usage
        summary show. The unique trigger row per alert, subscription and
        period start decides: a rerun inserts nothing and queues nothing.
        """
        Trigger = self.env["fusion.billing.alert.trigger"]
        rated = [rating for rating in ratings if not rating.error]
        if not rated:
            return Trigger
        subscriptions = self.env["fusion.billing.subscription"].browse(
            {rating.period.subscription.id for rating in rated}
        )
        alerts = self.search(
            [
                "|",
                ("subscription_id", "in", subscriptions.ids),
                ("plan_id", "in", subscriptions.plan_id.ids),
            ]
        )
        if not alerts:
            return Trigger
        watched = [
            (rating, watching)
            for rating in rated
            if (
                watching := alerts.filtered(
                    lambda a, r=rating: a._watches(r.period.subscription)
                )
            )
        ]
        totals = self._filtered_metric_totals([rating for rating, _w in watched])
        reached = []
        for index, (rating, watching) in enumerate(watched):
            # A charge's line quantity is its metric's; a filtered charge's
            # lines are buckets, whose total the aggregation gives apart.
            quantities = {
                line.charge.metric_id.id: line.quantity
                for line in rating.lines
                if line.charge and not line.charge.filter_ids
            }
            quantities.update(totals.get(index, {}))
            for alert in watching:
                value = (
                    quantities.get(alert.metric_id.id, Decimal(0))
                    if alert.metric_id
                    else rating.amount
                )
                if value >= to_decimal(alert.threshold):
                    reached.append((alert, rating.period, value))
        # Alerts never stop billing: a failure here is logged, and the next
        # rating, finding no trigger row, tries again.
        try:
            with self.env.cr.savepoint():
                return Trigger._record(reached)
        except Exception:
            _logger.exception("Usage alerts of a rating batch failed")
            return Trigger

    @api.model
    def _filtered_metric_totals(self, ratings):
        """{rating index: {metric id: Decimal}}: the whole aggregate of each
        metric charged with filters, all buckets together (one query)."""
        indexes = [
            index
            for index, rating in enumerate(ratings)
            if any(line.charge_filter for line in rating.lines)
        ]
        if not indexes:
            return {}
        errors = {}
        quantities = self.env["fusion.billing.rating"]._aggregate(
            [ratings[index].period for index in indexes], errors
        )
        return {
            index: {
                key: value
                for key, value in quantities.get(position, {}).items()
                if isinstance(key, int)
            }
            for position, index in enumerate(indexes)
        }

    def _watches(self, subscription):
        self.ensure_one()
        if self.subscription_id:
            return self.subscription_id == subscription
        return self.plan_id == subscription.plan_id
