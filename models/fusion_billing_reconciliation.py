# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..core import reconciliation
from ..core.money import to_decimal

STATUSES = [
    ("match", "Match"),
    ("delta", "Delta"),
    ("resolved", "Resolved"),
]


class FusionBillingReconciliation(models.Model):
    _name = "fusion.billing.reconciliation"
    _description = "Dual-run Reconciliation"
    _inherit = ["mail.thread"]
    _order = "period desc, service_id, partner_id"
    _check_company_auto = True

    service_id = fields.Many2one(
        "fusion.billing.service", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    partner_id = fields.Many2one(
        "res.partner", string="Customer", required=True, index=True, ondelete="restrict"
    )
    period = fields.Char(required=True, index=True, help="Billing month, YYYY-MM.")
    currency_id = fields.Many2one("res.currency", required=True)
    odoo_amount = fields.Monetary(
        string="Odoo Amount", currency_field="currency_id", tracking=True
    )
    external_amount = fields.Monetary(
        string="App-actual Amount", currency_field="currency_id", tracking=True
    )
    delta = fields.Monetary(
        compute="_compute_delta", store=True, currency_field="currency_id"
    )
    status = fields.Selection(
        STATUSES,
        compute="_compute_status",
        store=True,
        readonly=False,
        tracking=True,
    )
    note = fields.Text(tracking=True)

    _period_unique = models.Constraint(
        "UNIQUE(service_id, partner_id, period)",
        "There is already a reconciliation for this customer and period.",
    )
    _period_format = models.Constraint(
        "CHECK(period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$')",
        "The period must be a month written YYYY-MM.",
    )

    @api.depends("odoo_amount", "external_amount")
    def _compute_delta(self):
        for record in self:
            record.delta = record.odoo_amount - record.external_amount

    @api.depends("odoo_amount", "external_amount", "service_id")
    def _compute_status(self):
        # A change of either amount also reopens a resolved row.
        for record in self:
            record.status = reconciliation.status(
                to_decimal(record.odoo_amount),
                to_decimal(record.external_amount),
                to_decimal(record.service_id.reconciliation_tolerance),
                to_decimal(record.service_id.reconciliation_tolerance_percent),
            )

    @api.constrains("status", "note")
    def _check_resolution_note(self):
        for record in self:
            if record.status == "resolved" and not (record.note or "").strip():
                raise ValidationError(
                    _(
                        "Explain in a note why the delta of %(period)s is resolved.",
                        period=record.period,
                    )
                )

    def action_resolve(self):
        self.write({"status": "resolved"})
        return True
