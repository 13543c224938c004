# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import base64
import binascii

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..core import reconciliation
from ..core.money import to_decimal
from ..models.fusion_billing_reconciliation import ExternalEntry

STATES = [("upload", "Upload"), ("preview", "Preview"), ("done", "Done")]


class FusionBillingReconciliationImport(models.TransientModel):
    _name = "fusion.billing.reconciliation.import"
    _description = "Import App-actual Amounts (CSV)"

    service_id = fields.Many2one(
        "fusion.billing.service",
        required=True,
        default=lambda self: (
            self.env.context.get("default_service_id")
            or self.env["fusion.billing.service"].search([], limit=1)
        ),
    )
    csv_file = fields.Binary(string="CSV File", attachment=False)
    csv_filename = fields.Char()
    state = fields.Selection(STATES, default="upload", required=True)
    layout_help = fields.Text(default=reconciliation.CSV_HELP, readonly=True)
    line_ids = fields.One2many(
        "fusion.billing.reconciliation.import.line", "wizard_id", readonly=True
    )
    file_error = fields.Text(
        readonly=True, help="A problem of the whole file (header, encoding)."
    )
    valid_count = fields.Integer(compute="_compute_counts")
    error_count = fields.Integer(compute="_compute_counts")
    imported_count = fields.Integer(compute="_compute_counts")

    @api.depends("line_ids.state")
    def _compute_counts(self):
        for wizard in self:
            states = wizard.line_ids.mapped("state")
            wizard.valid_count = states.count("valid")
            wizard.error_count = states.count("error")
            wizard.imported_count = states.count("imported")

    def action_preview(self):
        self.ensure_one()
        if not self.csv_file:
            raise UserError(self.env._("Choose the CSV file to import."))
        try:
            content = base64.b64decode(self.csv_file)
        except binascii.Error as error:
            raise UserError(self.env._("The file could not be read.")) from error
        rows, errors = reconciliation.parse_csv(content)
        # Line 1 is the header: its errors (and line 0's) concern the whole file.
        file_errors = [error.message for error in errors if error.line <= 1]
        line_values = [
            {
                "line_number": error.line,
                "state": "error",
                "message": error.message,
                "customer": error.values.get("customer") or error.values.get("partner"),
                "period": error.values.get("period"),
                "amount_text": error.values.get("amount"),
                "currency_code": error.values.get("currency"),
            }
            for error in errors
            if error.line > 1
        ]
        line_values += self._resolve_rows(rows)
        line_values.sort(key=lambda values: values["line_number"])
        self.line_ids.unlink()
        self.write(
            {
                "state": "preview",
                "file_error": "\n".join(file_errors) or False,
                "line_ids": [fields.Command.create(values) for values in line_values],
            }
        )
        return self._reopen()

    def _resolve_rows(self, rows):
        """Resolve valid CSV rows to partners and currencies (or a line error)."""
        service = self.service_id
        customers = self.env["fusion.billing.customer"].search(
            [("service_id", "=", service.id)]
        )
        by_ref = {customer.external_ref: customer for customer in customers}
        partners = customers.partner_id.commercial_partner_id
        currencies = self.env["fusion.billing.reconciliation"]._currencies_by_code(
            {row.currency for row in rows}
        )
        first_line = {}
        values_list = []
        for row in rows:
            values = {
                "line_number": row.line,
                "customer": row.customer or row.partner,
                "period": row.period,
                "amount": float(row.amount),
                "amount_text": row.amount_text,
                "currency_code": row.currency,
            }
            if row.customer:
                customer = by_ref.get(row.customer)
                partner = (
                    customer.partner_id.commercial_partner_id if customer else None
                )
                problem = (
                    None
                    if customer
                    else self.env._(
                        "no customer %(ref)s in service %(service)s",
                        ref=row.customer,
                        service=service.code,
                    )
                )
            else:
                partner, problem = self._match_partner(partners, row.partner)
            currency = currencies.get(row.currency)
            if not problem and not currency:
                problem = self.env._(
                    "currency %(code)s is not active", code=row.currency
                )
            if not problem and (partner.id, row.period) in first_line:
                problem = self.env._(
                    "%(partner)s already has an amount for %(period)s on line %(line)s",
                    partner=partner.display_name,
                    period=row.period,
                    line=first_line[(partner.id, row.period)],
                )
            if problem:
                values.update(state="error", message=problem)
            else:
                first_line[(partner.id, row.period)] = row.line
                values.update(
                    state="valid", partner_id=partner.id, currency_id=currency.id
                )
            values_list.append(values)
        return values_list

    def _match_partner(self, partners, text):
        """The one customer of the service whose reference, tax id or name is
        ``text`` (case-insensitive), or a problem."""
        wanted = text.casefold()
        found = partners.filtered(
            lambda partner: (
                wanted
                in {(value or "").casefold() for value in (partner.ref, partner.vat)}
                or (partner.name or "").casefold() == wanted
            )
        )
        if len(found) == 1:
            return found, None
        if not found:
            return None, self.env._(
                "no customer of the service has the reference, tax id or name"
                " %(partner)s",
                partner=text,
            )
        return None, self.env._(
            "%(partner)s matches several customers: %(names)s",
            partner=text,
            names=", ".join(found.mapped("display_name")),
        )

    def action_import(self):
        self.ensure_one()
        lines = self.line_ids.filtered(lambda line: line.state == "valid")
        if not lines:
            raise UserError(self.env._("No valid line to import."))
        errors = self.env["fusion.billing.reconciliation"]._receive_external_amounts(
            self.service_id,
            [
                ExternalEntry(
                    line.partner_id,
                    line.period,
                    to_decimal(line.amount),
                    line.currency_id,
                )
                for line in lines
            ],
            "import",
        )
        for line, error in zip(lines, errors, strict=True):
            line.write(
                {"state": "error", "message": error} if error else {"state": "imported"}
            )
        self.state = "done"
        return self._reopen()

    def action_view_rows(self):
        self.ensure_one()
        lines = self.line_ids.filtered(lambda line: line.state == "imported")
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Imported Amounts"),
            "res_model": "fusion.billing.reconciliation",
            "view_mode": "list,form",
            "domain": [
                ("service_id", "=", self.service_id.id),
                ("period", "in", list(set(lines.mapped("period")))),
                ("partner_id", "in", lines.partner_id.ids),
            ],
        }

    def _reopen(self):
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
        }
