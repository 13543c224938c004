# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools.sql import column_exists, create_column

from ..core import periods

RECONCILED_MOVE_TYPES = ("out_invoice", "out_refund")
# A period is billed on an invoice, or on a credit note when its total is
# negative at its close.
PERIOD_MOVE_TYPES = ("out_invoice", "out_refund")
# Context key: post the invoice of a period that has not closed yet.
POST_OPEN_PERIOD = "fusion_billing_post_open_period"
# Changes of these invoice fields can move an invoice into another reconciliation row.
RECONCILIATION_FIELDS = {
    "state",
    "move_type",
    "partner_id",
    "currency_id",
    "invoice_date",
    "date",
    "fusion_service_id",
    "fusion_subscription_id",
    "fusion_period_start",
}


class AccountMove(models.Model):
    _inherit = "account.move"

    fusion_subscription_id = fields.Many2one(
        "fusion.billing.subscription",
        string="Usage Subscription",
        index="btree_not_null",
        readonly=True,
        copy=False,
        ondelete="restrict",
    )
    fusion_service_id = fields.Many2one(
        "fusion.billing.service",
        string="Billed Service",
        compute="_compute_fusion_service_id",
        store=True,
        recursive=True,
        readonly=False,
        index="btree_not_null",
        copy=False,
        check_company=True,
        help="Service this invoice bills. Set from the usage subscription, or from the "
        "reversed invoice for a credit note; set it by hand on a one-off invoice so "
        "the dual-run reconciliation counts it.",
    )
    fusion_reconciliation_period = fields.Char(
        string="Reconciliation Period",
        compute="_compute_fusion_reconciliation_period",
        store=True,
        recursive=True,
        index="btree_not_null",
        help="YYYY-MM month in which the dual-run reconciliation counts this invoice: "
        "the start of its billing period, the period of the invoice a credit note "
        "reverses, or else (one-off invoices) the invoice date.",
    )
    fusion_is_one_off = fields.Boolean(
        string="One-off (no subscription)",
        compute="_compute_fusion_is_one_off",
        store=True,
    )
    fusion_is_partial_period = fields.Boolean(
        string="Partial Billing Period",
        compute="_compute_fusion_is_partial_period",
        store=True,
        recursive=True,
        help="The billing period is shorter than the plan's interval (proration).",
    )
    fusion_period_start = fields.Date(
        string="Billing Period Start", readonly=True, copy=False
    )
    fusion_period_end = fields.Date(
        string="Billing Period End",
        readonly=True,
        copy=False,
        help="Exclusive: the period covers usage up to the day before.",
    )
    fusion_period_last_day = fields.Date(
        string="Billing Period To",
        compute="_compute_fusion_period_last_day",
        help="Last day of the billing period, inclusive.",
    )

    # One live invoice per subscription and period, even with two rating workers.
    _fusion_period_unique = models.UniqueIndex(
        "(fusion_subscription_id, fusion_period_start) "
        "WHERE fusion_subscription_id IS NOT NULL AND state != 'cancel' "
        "AND move_type = 'out_invoice'",
        "This subscription already has an invoice for the period.",
    )

    def _auto_init(self):
        # These columns are empty for every entry outside usage billing: create
        # them empty rather than compute them for every journal entry at install,
        # and compute them only for the entries already linked to a service.
        new_columns = []
        for name, column_type in (
            ("fusion_reconciliation_period", "varchar"),
            ("fusion_is_one_off", "bool"),
            ("fusion_is_partial_period", "bool"),
        ):
            if not column_exists(self.env.cr, self._table, name):
                create_column(self.env.cr, self._table, name, column_type)
                new_columns.append(name)
        result = super()._auto_init()
        if new_columns and column_exists(self.env.cr, self._table, "fusion_service_id"):
            linked = self.search([("fusion_service_id", "!=", False)])
            for name in new_columns:
                self.env.add_to_compute(self._fields[name], linked)
        return result

    @api.depends("fusion_period_end")
    def _compute_fusion_period_last_day(self):
        for move in self:
            move.fusion_period_last_day = move.fusion_period_end and (
                move.fusion_period_end - timedelta(days=1)
            )

    @api.depends(
        "fusion_subscription_id.service_id", "reversed_entry_id.fusion_service_id"
    )
    def _compute_fusion_service_id(self):
        for move in self:
            # Without a subscription or reversed invoice, keep the service set by hand.
            move.fusion_service_id = (
                move.fusion_subscription_id.service_id
                or move.reversed_entry_id.fusion_service_id
                or move.fusion_service_id
            )

    @api.depends(
        "fusion_service_id",
        "move_type",
        "fusion_period_start",
        "invoice_date",
        "date",
        "reversed_entry_id.fusion_reconciliation_period",
    )
    def _compute_fusion_reconciliation_period(self):
        for move in self:
            if (
                not move.fusion_service_id
                or move.move_type not in RECONCILED_MOVE_TYPES
            ):
                move.fusion_reconciliation_period = False
                continue
            # A credit note corrects the month of the invoice it reverses.
            day = move.fusion_period_start or move.invoice_date or move.date
            move.fusion_reconciliation_period = (
                move.reversed_entry_id.fusion_reconciliation_period
                or (day and day.strftime("%Y-%m"))
            )

    @api.depends(
        "fusion_service_id",
        "fusion_subscription_id",
        "reversed_entry_id.fusion_subscription_id",
    )
    def _compute_fusion_is_one_off(self):
        for move in self:
            move.fusion_is_one_off = bool(move.fusion_service_id) and not (
                move.fusion_subscription_id
                or move.reversed_entry_id.fusion_subscription_id
            )

    @api.depends(
        "fusion_period_start",
        "fusion_period_end",
        "fusion_subscription_id.plan_id.interval_unit",
        "fusion_subscription_id.plan_id.interval_count",
        "reversed_entry_id.fusion_is_partial_period",
    )
    def _compute_fusion_is_partial_period(self):
        for move in self:
            plan = move.fusion_subscription_id.plan_id
            start, end = move.fusion_period_start, move.fusion_period_end
            # A plan written with no interval is refused by its own constraint
            # when flushed: leave that error to it.
            full_end = (
                plan.interval_count > 0
                and start
                and periods.add_interval(start, plan.interval_unit, plan.interval_count)
            )
            move.fusion_is_partial_period = bool(
                move.reversed_entry_id.fusion_is_partial_period
                or (full_end and end and end < full_end)
            )

    # Reconciliation rows follow their invoices. Only invoices linked to a service
    # queue anything, and the rows are refreshed once per transaction, just before
    # it commits, so invoicing in general is not slowed down.
    @api.model_create_multi
    def create(self, vals_list):
        moves = super().create(vals_list)
        moves._fusion_queue_reconciliation_refresh()
        return moves

    def write(self, vals):
        moves_rows_change = not RECONCILIATION_FIELDS.isdisjoint(vals)
        if moves_rows_change:
            self._fusion_queue_reconciliation_refresh()  # the rows they leave
        result = super().write(vals)
        if moves_rows_change:
            self._fusion_queue_reconciliation_refresh()  # the rows they join
        return result

    def unlink(self):
        self._fusion_queue_reconciliation_refresh()
        return super().unlink()

    def _compute_amount(self):
        # Catches every change of the lines, whichever way they were written.
        result = super()._compute_amount()
        self._fusion_queue_reconciliation_refresh()
        return result

    def _compute_is_sale_installed(self):
        # The only use of this field: without Sales, Odoo's invoice form hides
        # the lines' Quantity column by default. Usage invoices are read by
        # their quantities.
        usage_invoices = self.filtered("fusion_subscription_id")
        usage_invoices.is_sale_installed = True
        return super(AccountMove, self - usage_invoices)._compute_is_sale_installed()

    def _post(self, soft=True):
        self._fusion_check_period_closed()
        return super()._post(soft)

    def _fusion_check_period_closed(self):
        """The invoice of a billing period is final only once the period has
        closed: until then the rating cron still adds the period's usage to
        it. Posting it earlier (only with ``fusion_billing_post_open_period``
        in the context) bills the usage that comes after as an adjustment on
        the next invoice."""
        if self.env.context.get(POST_OPEN_PERIOD):
            return
        for move in self.filtered(
            lambda m: (
                m.fusion_subscription_id
                and m.fusion_period_end
                and m.move_type == "out_invoice"
            )
        ):
            subscription = move.fusion_subscription_id
            closed_until = subscription.last_invoice_date
            if closed_until and closed_until >= move.fusion_period_end:
                continue
            closes_at = periods.closes_at(
                move.fusion_period_end, subscription.service_id.grace_period_hours
            )
            raise UserError(
                self.env._(
                    "Invoice %(invoice)s bills a period of %(subscription)s that has "
                    "not closed: its usage is rated into it until the period closes "
                    "at %(closes)s UTC. It is finalized then (and posted, if the "
                    "service posts invoices automatically).",
                    invoice=move.display_name,
                    subscription=subscription.display_name,
                    closes=closes_at.strftime("%Y-%m-%d %H:%M"),
                )
            )

    def _fusion_queue_reconciliation_refresh(self):
        keys = {
            (move.fusion_service_id.id, move.fusion_reconciliation_period)
            for move in self
            if move.fusion_service_id and move.fusion_reconciliation_period
        }
        if keys:
            self.env["fusion.billing.reconciliation"]._queue_refresh(keys)

    def action_open_fusion_subscription(self):
        """From the invoice back to the usage subscription it bills."""
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": "fusion.billing.subscription",
            "res_id": self.fusion_subscription_id.id,
            "view_mode": "form",
        }
