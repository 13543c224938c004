# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import ValidationError

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
