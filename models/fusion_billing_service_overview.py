# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
from collections import defaultdict

from dateutil.relativedelta import relativedelta

from odoo import fields, models
from odoo.tools.misc import format_date

from ..core import reconciliation
from .account_move import RECONCILED_MOVE_TYPES

# Months of billing in the overview graph, the current one included.
GRAPH_MONTHS = 6


class FusionBillingService(models.Model):
    """The Overview: one card per service with what it billed, what is open and
    what needs someone, each figure a way into the records behind it."""

    _inherit = "fusion.billing.service"

    overview_currency_id = fields.Many2one(
        related="company_id.currency_id", string="Company Currency"
    )
    billed_current_amount = fields.Monetary(
        string="Billed This Month",
        compute="_compute_overview_amounts",
        currency_field="overview_currency_id",
        help="Untaxed customer invoices (draft and posted, credit notes subtracted) "
        "of the billing periods starting this month, in the company currency.",
    )
    billed_previous_amount = fields.Monetary(
        string="Billed Last Month",
        compute="_compute_overview_amounts",
        currency_field="overview_currency_id",
    )
    estimated_amount = fields.Monetary(
        string="Open Periods Estimate",
        compute="_compute_overview_amounts",
        currency_field="overview_currency_id",
        help="What the active subscriptions' open periods come to so far, priced "
        "as the rating would (company currency).",
    )
    overview_graph = fields.Text(compute="_compute_overview_amounts")
    draft_subscription_count = fields.Integer(compute="_compute_overview_counts")
    active_subscription_count = fields.Integer(compute="_compute_overview_counts")
    closed_subscription_count = fields.Integer(compute="_compute_overview_counts")
    open_delta_count = fields.Integer(compute="_compute_overview_counts")
    cutover_ready = fields.Boolean(
        string="Ready to Cut Over", compute="_compute_overview_counts"
    )
    cutover_progress = fields.Char(
        string="Cut-over Readiness", compute="_compute_overview_counts"
    )

    def _overview_months(self):
        """The graph's months, oldest first, as YYYY-MM; the last is this month."""
        today = fields.Date.context_today(self).replace(day=1)
        return [
            today - relativedelta(months=offset)
            for offset in range(GRAPH_MONTHS - 1, -1, -1)
        ]

    def _compute_overview_amounts(self):
        months = self._overview_months()
        periods = [month.strftime("%Y-%m") for month in months]
        billed = defaultdict(float)
        for service, period, amount in self.env["account.move"]._read_group(
            [
                ("fusion_service_id", "in", self.ids),
                ("fusion_reconciliation_period", "in", periods),
                ("move_type", "in", RECONCILED_MOVE_TYPES),
                ("state", "!=", "cancel"),
            ],
            ["fusion_service_id", "fusion_reconciliation_period"],
            ["amount_untaxed_signed:sum"],
        ):
            billed[service.id, period] = amount
        estimates = defaultdict(float)
        today = fields.Date.context_today(self)
        for subscription in self.env["fusion.billing.subscription"].search(
            [("service_id", "in", self.ids), ("state", "=", "active")]
        ):
            company = subscription.company_id
            estimates[subscription.service_id.id] += subscription.currency_id._convert(
                subscription.estimated_amount, company.currency_id, company, today
            )
        for service in self:
            service.billed_current_amount = billed[service.id, periods[-1]]
            service.billed_previous_amount = billed[service.id, periods[-2]]
            service.estimated_amount = estimates[service.id]
            values = [
                {
                    "label": format_date(self.env, month, date_format="MMM"),
                    "value": billed[service.id, period],
                    "type": "past",
                }
                for month, period in zip(months, periods, strict=True)
            ]
            # The month still billing shows its estimate, coloured as to come.
            values[-1].update(
                value=max(values[-1]["value"], service.estimated_amount),
                type="future",
            )
            service.overview_graph = json.dumps(
                [
                    {
                        "values": values,
                        "key": self.env._("Billed"),
                        "is_sample_data": not any(v["value"] for v in values),
                    }
                ]
            )

    def _compute_overview_counts(self):
        subscriptions = self.env["fusion.billing.subscription"]
        by_state = {
            (service.id, state): count
            for service, state, count in subscriptions._read_group(
                [("service_id", "in", self.ids)], ["service_id", "state"], ["__count"]
            )
        }
        deltas = dict(
            self.env["fusion.billing.reconciliation"]._read_group(
                [("service_id", "in", self.ids), ("status", "=", "delta")],
                ["service_id"],
                ["__count"],
            )
        )
        history = self._cutover_history()
        open_period = fields.Date.context_today(self).strftime("%Y-%m")
        for service in self:
            service.draft_subscription_count = by_state.get((service.id, "draft"), 0)
            service.active_subscription_count = by_state.get((service.id, "active"), 0)
            service.closed_subscription_count = by_state.get((service.id, "closed"), 0)
            service.open_delta_count = deltas.get(service, 0)
            required = max(service.cutover_required_periods, 1)
            matched = reconciliation.matched_periods(
                history[service], required, open_period=open_period
            )
            service.cutover_ready = matched == required
            service.cutover_progress = self.env._(
                "%(matched)s of %(required)s periods",
                matched=matched,
                required=required,
            )

    def _cutover_history(self):
        """Every reconciled period of the services, as the engine's readiness
        rule reads it: {service: [PeriodSummary]}."""
        history = defaultdict(list)
        for service, period, statuses, odoo_amounts, app_amounts in self.env[
            "fusion.billing.reconciliation"
        ]._read_group(
            [("service_id", "in", self.ids)],
            ["service_id", "period"],
            ["status:array_agg", "odoo_amount:array_agg", "external_amount:array_agg"],
        ):
            history[service].append(
                reconciliation.PeriodSummary(
                    period,
                    tuple(statuses),
                    billed=any(odoo_amounts) or any(app_amounts),
                )
            )
        return history

    def action_open_overview(self):
        """Open the records behind one figure of the overview card; the figure
        is named by the ``overview`` context key."""
        self.ensure_one()
        key = self.env.context.get("overview")
        service = [("service_id", "=", self.id)]
        months = self._overview_months()
        targets = {
            "billed_current": (
                "fusion_billing.fusion_billing_invoice_action",
                [
                    ("fusion_service_id", "=", self.id),
                    ("fusion_reconciliation_period", "=", months[-1].strftime("%Y-%m")),
                ],
            ),
            "billed_previous": (
                "fusion_billing.fusion_billing_invoice_action",
                [
                    ("fusion_service_id", "=", self.id),
                    ("fusion_reconciliation_period", "=", months[-2].strftime("%Y-%m")),
                ],
            ),
            "draft": (
                "fusion_billing.fusion_billing_subscription_action",
                [*service, ("state", "=", "draft")],
            ),
            "active": (
                "fusion_billing.fusion_billing_subscription_action",
                [*service, ("state", "=", "active")],
            ),
            "closed": (
                "fusion_billing.fusion_billing_subscription_action",
                [*service, ("state", "=", "closed")],
            ),
            "deltas": (
                "fusion_billing.fusion_billing_reconciliation_action",
                [*service, ("status", "=", "delta")],
            ),
            "readiness": (
                "fusion_billing.fusion_billing_reconciliation_summary_action",
                service,
            ),
        }
        xml_id, domain = targets[key]
        action = self.env["ir.actions.act_window"]._for_xml_id(xml_id)
        action.update(
            domain=domain,
            context={"default_service_id": self.id, "create": False},
            display_name=f"{self.display_name}: {action['name']}",
        )
        return action
