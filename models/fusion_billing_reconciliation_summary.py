# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models, tools
from odoo.tools import SQL

from ..core import reconciliation


class FusionBillingReconciliationSummary(models.Model):
    _name = "fusion.billing.reconciliation.summary"
    _description = "Dual-run Reconciliation Summary"
    _auto = False
    _order = "service_id, period desc"
    _rec_name = "period"

    service_id = fields.Many2one("fusion.billing.service", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    period = fields.Char(readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)
    is_latest_period = fields.Boolean(
        string="Latest Period",
        readonly=True,
        help="The service's most recent period with reconciliation rows.",
    )
    row_count = fields.Integer(string="Customers", readonly=True)
    match_count = fields.Integer(string="Matched", readonly=True)
    delta_count = fields.Integer(string="Deltas", readonly=True)
    resolved_count = fields.Integer(string="Resolved", readonly=True)
    missing_external_count = fields.Integer(
        string="Not Reported by App",
        readonly=True,
        help="Customers billed in Odoo for whom the app sent no amount.",
    )
    odoo_amount = fields.Monetary(readonly=True, currency_field="currency_id")
    external_amount = fields.Monetary(
        string="App-actual Amount", readonly=True, currency_field="currency_id"
    )
    odoo_amount_one_off = fields.Monetary(
        string="One-off Invoices", readonly=True, currency_field="currency_id"
    )
    odoo_amount_partial_period = fields.Monetary(
        string="Partial Periods", readonly=True, currency_field="currency_id"
    )
    total_delta = fields.Monetary(readonly=True, currency_field="currency_id")
    total_abs_delta = fields.Monetary(
        string="Total Absolute Delta", readonly=True, currency_field="currency_id"
    )
    largest_delta = fields.Monetary(
        string="Largest Absolute Delta", readonly=True, currency_field="currency_id"
    )
    cutover_required_periods = fields.Integer(
        related="service_id.cutover_required_periods"
    )
    cutover_ready = fields.Boolean(
        string="Ready to Cut Over",
        compute="_compute_cutover_ready",
        search="_search_cutover_ready",
        help="As of this period: the service's last 'Periods Matched to Cut Over' "
        "closed months up to this one that had billing on either side have every "
        "row matched or resolved. Months without billing and the month still open "
        "are no evidence.",
    )
    cutover_matched_periods = fields.Integer(
        string="Matched Periods", compute="_compute_cutover_ready"
    )
    cutover_progress = fields.Char(string="Readiness", compute="_compute_cutover_ready")

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute(
            SQL(
                """
                CREATE VIEW %s AS (
                    SELECT MIN(r.id) AS id,
                           r.service_id,
                           r.company_id,
                           r.period,
                           r.currency_id,
                           r.period = MAX(r.period) OVER (PARTITION BY r.service_id)
                               AS is_latest_period,
                           COUNT(*) AS row_count,
                           COUNT(*) FILTER (WHERE r.status = 'match') AS match_count,
                           COUNT(*) FILTER (WHERE r.status = 'delta') AS delta_count,
                           COUNT(*) FILTER (WHERE r.status = 'resolved')
                               AS resolved_count,
                           COUNT(*) FILTER (WHERE r.external_source IS NULL)
                               AS missing_external_count,
                           SUM(COALESCE(r.odoo_amount, 0)) AS odoo_amount,
                           SUM(COALESCE(r.external_amount, 0)) AS external_amount,
                           SUM(COALESCE(r.odoo_amount_one_off, 0))
                               AS odoo_amount_one_off,
                           SUM(COALESCE(r.odoo_amount_partial_period, 0))
                               AS odoo_amount_partial_period,
                           SUM(COALESCE(r.delta, 0)) AS total_delta,
                           SUM(COALESCE(r.abs_delta, 0)) AS total_abs_delta,
                           MAX(COALESCE(r.abs_delta, 0)) AS largest_delta
                      FROM fusion_billing_reconciliation r
                  GROUP BY r.service_id, r.company_id, r.period, r.currency_id
                )
                """,
                SQL.identifier(self._table),
            )
        )

    @api.depends("service_id.cutover_required_periods", "period")
    def _compute_cutover_ready(self):
        history = self.service_id._cutover_history()
        open_period = fields.Date.context_today(self).strftime("%Y-%m")
        for summary in self:
            required = max(summary.service_id.cutover_required_periods, 1)
            matched = reconciliation.matched_periods(
                history[summary.service_id],
                required,
                latest_period=summary.period,
                open_period=open_period,
            )
            summary.cutover_matched_periods = matched
            summary.cutover_ready = matched == required
            summary.cutover_progress = self.env._(
                "%(matched)s of %(required)s periods",
                matched=matched,
                required=required,
            )

    def _search_cutover_ready(self, operator, value):
        # The ORM brings boolean conditions to ('in', [True]) / ('not in', [True]).
        if operator != "in":
            return NotImplemented
        # One row per service and month: small enough to evaluate whole.
        summaries = self.search([])  # pylint: disable=no-search-all
        summaries.invalidate_recordset(["cutover_ready"])
        ready = summaries.filtered(lambda summary: summary.cutover_ready in value)
        return [("id", "in", ready.ids)]

    def action_view_rows(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._(
                "%(service)s %(period)s",
                service=self.service_id.display_name,
                period=self.period,
            ),
            "res_model": "fusion.billing.reconciliation",
            "view_mode": "list,form",
            "domain": [
                ("service_id", "=", self.service_id.id),
                ("period", "=", self.period),
            ],
            "context": {"create": False},
        }

    def action_refresh_odoo_amounts(self):
        self.env["fusion.billing.reconciliation"]._sync_periods(
            {(summary.service_id.id, summary.period) for summary in self}
        )
        return True
