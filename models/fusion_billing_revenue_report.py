# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models, tools
from odoo.tools import SQL

from .account_move import RECONCILED_MOVE_TYPES


class FusionBillingRevenueReport(models.Model):
    """Invoiced revenue of the services: one row per invoice line of their
    invoices and credit notes, untaxed, in the company's currency, a credit
    note's lines negative. Cancelled invoices are left out."""

    _name = "fusion.billing.revenue.report"
    _description = "Usage Billing Revenue Analysis"
    _auto = False
    _order = "period_start desc, id desc"
    _rec_name = "move_id"

    move_id = fields.Many2one("account.move", string="Invoice", readonly=True)
    move_type = fields.Selection(
        [("out_invoice", "Invoice"), ("out_refund", "Credit Note")],
        string="Type",
        readonly=True,
    )
    state = fields.Selection(
        [("draft", "Draft"), ("posted", "Posted")], string="Status", readonly=True
    )
    service_id = fields.Many2one("fusion.billing.service", readonly=True)
    subscription_id = fields.Many2one("fusion.billing.subscription", readonly=True)
    partner_id = fields.Many2one("res.partner", string="Customer", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    currency_id = fields.Many2one("res.currency", readonly=True)
    invoice_date = fields.Date(readonly=True)
    period_start = fields.Date(
        string="Billing Period",
        readonly=True,
        help="Start of the billing period the line bills; a credit note's is "
        "the one of the invoice it reverses, a one-off invoice's its date.",
    )
    line_kind = fields.Selection(
        [
            ("usage", "Usage"),
            ("fixed_fee", "Fixed Fee"),
            ("minimum", "Minimum Commitment"),
            ("credit", "Prepaid Credits"),
            ("other", "Other"),
        ],
        string="Line",
        readonly=True,
    )
    charge_id = fields.Many2one("fusion.billing.charge", readonly=True)
    metric_id = fields.Many2one("fusion.billing.metric", readonly=True)
    product_id = fields.Many2one("product.product", readonly=True)
    amount_untaxed = fields.Monetary(
        string="Untaxed Revenue", readonly=True, currency_field="currency_id"
    )

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute(
            SQL(
                """
                CREATE VIEW %s AS (
                    SELECT l.id,
                           m.id AS move_id,
                           m.move_type,
                           m.state,
                           m.fusion_service_id AS service_id,
                           COALESCE(m.fusion_subscription_id,
                                    r.fusion_subscription_id) AS subscription_id,
                           m.commercial_partner_id AS partner_id,
                           m.company_id,
                           c.currency_id,
                           m.invoice_date,
                           COALESCE(m.fusion_period_start, r.fusion_period_start,
                                    m.invoice_date, m.date) AS period_start,
                           CASE WHEN l.fusion_charge_id IS NOT NULL THEN 'usage'
                                WHEN l.fusion_is_fixed_fee THEN 'fixed_fee'
                                WHEN l.fusion_is_minimum THEN 'minimum'
                                WHEN l.fusion_is_credit THEN 'credit'
                                ELSE 'other'
                           END AS line_kind,
                           l.fusion_charge_id AS charge_id,
                           ch.metric_id,
                           l.product_id,
                           -l.balance AS amount_untaxed
                      FROM account_move_line l
                      JOIN account_move m ON m.id = l.move_id
                      JOIN res_company c ON c.id = m.company_id
                 LEFT JOIN account_move r ON r.id = m.reversed_entry_id
                 LEFT JOIN fusion_billing_charge ch ON ch.id = l.fusion_charge_id
                     WHERE m.fusion_service_id IS NOT NULL
                       AND m.move_type = ANY(%s)
                       AND m.state != 'cancel'
                       AND l.display_type = 'product'
                )
                """,
                SQL.identifier(self._table),
                list(RECONCILED_MOVE_TYPES),
            )
        )
