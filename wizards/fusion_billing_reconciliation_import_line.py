# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models

LINE_STATES = [("valid", "Valid"), ("error", "Error"), ("imported", "Imported")]


class FusionBillingReconciliationImportLine(models.TransientModel):
    _name = "fusion.billing.reconciliation.import.line"
    _description = "Line of an App-actual Amounts Import"
    _order = "line_number"

    wizard_id = fields.Many2one(
        "fusion.billing.reconciliation.import", required=True, ondelete="cascade"
    )
    line_number = fields.Integer(string="Line")
    customer = fields.Char(help="Customer or partner as written in the file.")
    partner_id = fields.Many2one("res.partner", string="Odoo Customer")
    period = fields.Char()
    amount = fields.Float(digits=False)
    amount_text = fields.Char(string="Amount in File")
    currency_code = fields.Char()
    currency_id = fields.Many2one("res.currency")
    state = fields.Selection(LINE_STATES, required=True)
    message = fields.Char(string="Error")
