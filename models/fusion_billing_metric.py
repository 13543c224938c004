# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import SQL

AGGREGATIONS = [
    ("sum", "Sum of quantities"),
    ("count", "Count of events"),
    ("max", "Maximum quantity"),
    ("unique_count", "Count of distinct property values"),
    ("latest", "Latest quantity"),
]


class FusionBillingMetric(models.Model):
    _name = "fusion.billing.metric"
    _description = "Billable Metric"
    _order = "service_id, code"
    _check_company_auto = True

    service_id = fields.Many2one(
        "fusion.billing.service", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    code = fields.Char(
        required=True, help="Code the app sends as 'metric' in usage events."
    )
    name = fields.Char(required=True, translate=True)
    active = fields.Boolean(
        default=True,
        help="Archive a metric the app no longer sends: its usage and charges stay.",
    )
    description = fields.Text()
    aggregation = fields.Selection(AGGREGATIONS, required=True, default="sum")
    property_name = fields.Char(
        help="Event property whose distinct non-empty values are counted "
        "(aggregation 'unique_count')."
    )
    unit_name = fields.Char(
        string="Unit", help="Shown on invoice lines, e.g. 'GB', 'API calls'."
    )

    _code_unique = models.Constraint(
        "UNIQUE(service_id, code)", "A metric with this code already exists."
    )

    @api.constrains("aggregation", "property_name")
    def _check_property_name(self):
        for metric in self:
            if metric.aggregation == "unique_count" and not metric.property_name:
                raise ValidationError(
                    self.env._(
                        "Metric %(metric)s counts distinct values: set the event "
                        "property to count.",
                        metric=metric.display_name,
                    )
                )

    @api.ondelete(at_uninstall=False)
    def _unlink_except_used(self):
        charges = self.env["fusion.billing.charge"].sudo()
        events = self.env["fusion.billing.usage.event"].sudo()
        for metric in self:
            charge = charges.search([("metric_id", "=", metric.id)], limit=1)
            if charge:
                raise UserError(
                    self.env._(
                        "Metric %(metric)s is priced in plan %(plan)s: remove the "
                        "charge first, or archive the metric.",
                        metric=metric.display_name,
                        plan=charge.plan_id.display_name,
                    )
                )
            if events.search_count([("metric_id", "=", metric.id)], limit=1):
                raise UserError(
                    self.env._(
                        "Metric %(metric)s has usage, which must stay explained: "
                        "archive it instead.",
                        metric=metric.display_name,
                    )
                )

    def _aggregation_sql(self):
        """The SQL aggregate giving this metric's quantity over the usage
        events (alias ``e``) of one window; no events give NULL (0).

        The extension point of aggregations: an addon adding one to
        ``aggregation`` (``selection_add``) overrides this for it. An
        aggregation nobody computes raises, so that it is an error on the
        subscriptions it rates, never a silent zero.
        """
        self.ensure_one()
        match self.aggregation:
            case "sum":
                return SQL("SUM(e.quantity)")
            case "count":
                return SQL("COUNT(e.id)")
            case "max":
                return SQL("MAX(e.quantity)")
            case "unique_count":
                value = SQL("e.properties ->> %s", self.property_name)
                return SQL(
                    "COUNT(DISTINCT %s) FILTER (WHERE "
                    "jsonb_typeof(e.properties) = 'object' AND %s <> '')",
                    value,
                    value,
                )
            case "latest":
                return SQL(
                    "(ARRAY_AGG(e.quantity ORDER BY e.timestamp DESC, e.id DESC))[1]"
                )
        raise UserError(
            self.env._(
                "Metric %(metric)s: no rating knows the aggregation %(aggregation)r.",
                metric=self.display_name,
                aggregation=self.aggregation,
            )
        )
