# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL

from ..core import reconciliation
from ..core.money import round_money, to_decimal
from .account_move import RECONCILED_MOVE_TYPES

STATUSES = [
    (reconciliation.MATCH, "Match"),
    (reconciliation.DELTA, "Delta"),
    (reconciliation.RESOLVED, "Resolved"),
]
EXTERNAL_SOURCES = [("import", "CSV Import"), ("api", "API")]
# cr.precommit.data key of the (service id, period) pairs whose invoices changed.
REFRESH_QUEUE = "fusion_billing.reconciliation_refresh"
AMOUNT_FIELDS = (
    "odoo_amount",
    "odoo_amount_subscription",
    "odoo_amount_one_off",
    "odoo_amount_partial_period",
    "unlinked_amount",
)
# What people (any group) may give: amounts come from invoices, the CSV import
# and the app's API only, which write them with elevated rights after checking
# the caller's. A hand-made amount would fake a match and a cut-over.
HAND_CREATED_FIELDS = {"service_id", "partner_id", "period", "currency_id", "note"}
HAND_WRITTEN_FIELDS = {"status", "note"}


@dataclass(frozen=True)
class ExternalEntry:
    """One app-actual amount, resolved to Odoo records (CSV line or API item)."""

    partner: models.BaseModel  # a commercial res.partner
    period: str
    amount: Decimal
    currency: models.BaseModel  # res.currency


class InvoiceGroup(NamedTuple):
    """Invoices of one row sharing kind and currency (``_odoo_amount_groups``)."""

    one_off: bool
    partial_period: bool
    currency: models.BaseModel
    amount: float  # untaxed, signed (credit notes negative), in ``currency``
    company_amount: float  # the same in the company currency, at the booked rate
    count: int


class FusionBillingReconciliation(models.Model):
    _name = "fusion.billing.reconciliation"
    _description = "Dual-run Reconciliation"
    _inherit = ["mail.thread"]
    _order = "period desc, service_id, abs_delta desc, partner_id"
    _check_company_auto = True

    service_id = fields.Many2one(
        "fusion.billing.service", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    partner_id = fields.Many2one(
        "res.partner",
        string="Customer",
        required=True,
        index=True,
        ondelete="restrict",
        help="The commercial partner billed: invoices to its contacts count too.",
    )
    period = fields.Char(required=True, index=True, help="Billing month, YYYY-MM.")
    currency_id = fields.Many2one(
        "res.currency",
        required=True,
        help="Currency of the app's amount; Odoo amounts are converted into it.",
    )
    odoo_amount = fields.Monetary(
        currency_field="currency_id",
        readonly=True,
        tracking=True,
        help="Untaxed total of the service's customer invoices of the period, draft "
        "and posted, credit notes subtracted: subscription invoices by the start of "
        "their billing period, one-off invoices by invoice date.",
    )
    odoo_amount_subscription = fields.Monetary(
        string="Subscription Invoices",
        currency_field="currency_id",
        readonly=True,
        help="Part of the Odoo amount from usage subscription invoices.",
    )
    odoo_amount_one_off = fields.Monetary(
        string="One-off Invoices",
        currency_field="currency_id",
        readonly=True,
        help="Part of the Odoo amount from invoices linked to the service by hand, "
        "outside any subscription (counted by invoice date).",
    )
    odoo_amount_partial_period = fields.Monetary(
        string="Partial Periods",
        currency_field="currency_id",
        readonly=True,
        help="Part of the subscription amount billing a period shorter than the "
        "plan's interval (proration): a frequent source of deltas.",
    )
    odoo_invoice_count = fields.Integer(string="Invoices", readonly=True)
    unlinked_amount = fields.Monetary(
        string="Unlinked Invoices",
        currency_field="currency_id",
        readonly=True,
        help="NOT in the Odoo amount: other customer invoices of this customer dated "
        "in the period and linked to no service. If one belongs to this service, "
        "set its Billed Service.",
    )
    external_amount = fields.Monetary(
        string="App-actual Amount",
        currency_field="currency_id",
        readonly=True,
        tracking=True,
    )
    external_source = fields.Selection(
        EXTERNAL_SOURCES,
        string="App Amount From",
        readonly=True,
        tracking=True,
        help="Empty while the app has not reported this customer for the period.",
    )
    delta = fields.Monetary(
        compute="_compute_delta",
        store=True,
        currency_field="currency_id",
        help="Odoo amount minus the app-actual amount.",
    )
    abs_delta = fields.Monetary(
        string="Absolute Delta",
        compute="_compute_delta",
        store=True,
        currency_field="currency_id",
    )
    status = fields.Selection(
        STATUSES,
        compute="_compute_status",
        store=True,
        readonly=False,
        index=True,
        tracking=True,
    )
    note = fields.Text(tracking=True)
    resolved_amounts = fields.Char(
        readonly=True,
        copy=False,
        help="Technical: the amounts a person resolved; any change reopens the row.",
    )

    _period_unique = models.Constraint(
        "UNIQUE(service_id, partner_id, period)",
        "There is already a reconciliation for this customer and period.",
    )
    _period_format = models.Constraint(
        f"CHECK(period ~ '{reconciliation.PERIOD_PATTERN}')",
        f"The period must be {reconciliation.PERIOD_HINT}.",
    )

    @api.depends("service_id.name", "partner_id.name", "period")
    def _compute_display_name(self):
        for record in self:
            record.display_name = " · ".join(
                filter(
                    None,
                    (record.service_id.name, record.partner_id.name, record.period),
                )
            )

    @api.depends("odoo_amount", "external_amount")
    def _compute_delta(self):
        for record in self:
            record.delta = record.currency_id.round(
                record.odoo_amount - record.external_amount
            )
            record.abs_delta = abs(record.delta)

    @api.depends(
        "odoo_amount",
        "external_amount",
        "resolved_amounts",
        "service_id.reconciliation_tolerance",
        "service_id.reconciliation_tolerance_percent",
    )
    def _compute_status(self):
        for record in self:
            # A resolution holds for the amounts it judged: a change of either
            # amount reopens the row, a change of the tolerances does not.
            if (
                record.status == reconciliation.RESOLVED
                and record.resolved_amounts == record._amounts_key()
            ):
                record.status = reconciliation.RESOLVED
                continue
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
                    self.env._(
                        "Explain in a note why the delta of %(period)s is resolved.",
                        period=record.period,
                    )
                )

    def _amounts_key(self):
        self.ensure_one()
        return f"{self.odoo_amount!r}|{self.external_amount!r}"

    def _check_hand_edit(self, vals, allowed):
        refused = set(vals) - allowed
        if refused and not self.env.su:
            raise AccessError(
                self.env._(
                    "Reconciliation amounts come from invoices, the CSV import and "
                    "the app's API; only the status and the note are edited by hand "
                    "(refused: %(fields)s).",
                    fields=", ".join(sorted(refused)),
                )
            )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._check_hand_edit(vals, HAND_CREATED_FIELDS)
        return super().create(vals_list)

    def write(self, vals):
        self._check_hand_edit(vals, HAND_WRITTEN_FIELDS)
        status = vals.get("status")
        if status and status != reconciliation.RESOLVED:
            raise UserError(
                self.env._(
                    "Match and Delta follow from the amounts; use Reopen instead."
                )
            )
        if status != reconciliation.RESOLVED:
            return super().write(vals)
        for record in self:
            super(FusionBillingReconciliation, record).write(
                {**vals, "resolved_amounts": record._amounts_key()}
            )
        return True

    def action_resolve(self):
        """Resolve the deltas; a single row without a note first asks why."""
        if len(self) == 1 and not (self.note or "").strip():
            return {
                "type": "ir.actions.act_window",
                "name": self.env._("Mark Resolved"),
                "res_model": self._name,
                "res_id": self.id,
                "view_mode": "form",
                "views": [
                    (
                        self.env.ref(
                            "fusion_billing.fusion_billing_reconciliation_view_form_resolve"
                        ).id,
                        "form",
                    )
                ],
                "target": "new",
            }
        self.write({"status": reconciliation.RESOLVED})
        return True

    def action_reopen(self):
        resolved = self.filtered(lambda r: r.status == reconciliation.RESOLVED)
        resolved.check_access("write")
        resolved.sudo().write({"resolved_amounts": False})
        return True

    def action_import_csv(self):
        return self.env["ir.actions.act_window"]._for_xml_id(
            "fusion_billing.fusion_billing_reconciliation_import_action"
        )

    def action_refresh_odoo_amounts(self):
        self._sync_periods({(r.service_id.id, r.period) for r in self})
        return True

    # --- drill-down -------------------------------------------------------------

    def _invoice_domain(self):
        """The invoices behind the Odoo amount (the rule of ``_odoo_amount_groups``)."""
        self.ensure_one()
        return [
            ("fusion_service_id", "=", self.service_id.id),
            ("commercial_partner_id", "=", self.partner_id.id),
            ("fusion_reconciliation_period", "=", self.period),
            ("move_type", "in", RECONCILED_MOVE_TYPES),
            ("state", "!=", "cancel"),
        ]

    def _unlinked_invoice_domain(self):
        self.ensure_one()
        start, end = reconciliation.period_bounds(self.period)
        return [
            ("fusion_service_id", "=", False),
            ("company_id", "=", self.company_id.id),
            ("commercial_partner_id", "=", self.partner_id.id),
            ("invoice_date", ">=", start),
            ("invoice_date", "<", end),
            ("move_type", "in", RECONCILED_MOVE_TYPES),
            ("state", "!=", "cancel"),
        ]

    def _invoice_action(self, name, domain):
        return {
            "type": "ir.actions.act_window",
            "name": name,
            "res_model": "account.move",
            "view_mode": "list,form",
            "views": [
                (
                    self.env.ref(
                        "fusion_billing.fusion_billing_reconciliation_invoice_view_list"
                    ).id,
                    "list",
                ),
                (False, "form"),
            ],
            "domain": domain,
            "context": {"create": False},
        }

    def action_view_invoices(self):
        self.ensure_one()
        return self._invoice_action(
            self.env._("Invoices of %(period)s", period=self.period),
            self._invoice_domain(),
        )

    def action_view_unlinked_invoices(self):
        self.ensure_one()
        return self._invoice_action(
            self.env._("Unlinked invoices of %(period)s", period=self.period),
            self._unlinked_invoice_domain(),
        )

    def action_view_invoice_lines(self):
        self.ensure_one()
        moves = self.env["account.move"].search(self._invoice_domain())
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Invoice lines of %(period)s", period=self.period),
            "res_model": "account.move.line",
            "view_mode": "list",
            "views": [
                (
                    self.env.ref(
                        "fusion_billing.fusion_billing_reconciliation_line_view_list"
                    ).id,
                    "list",
                )
            ],
            "domain": [("move_id", "in", moves.ids), ("display_type", "=", "product")],
            "context": {"create": False, "group_by": ["move_id"]},
        }

    # --- Odoo amounts -------------------------------------------------------------

    @api.model
    def _queue_refresh(self, keys):
        """Refresh the rows of these (service id, period) pairs before the commit.

        Called by invoices on every change; deduplicated so a batch of invoice
        writes costs one refresh per row set, at the end of the transaction.
        """
        data = self.env.cr.precommit.data
        queued = data.get(REFRESH_QUEUE)
        if queued is None:
            queued = data[REFRESH_QUEUE] = set()
            self.env.cr.precommit.add(self._refresh_queued)
        queued.update(keys)

    @api.model
    def _refresh_queued(self):
        keys = self.env.cr.precommit.data.pop(REFRESH_QUEUE, set())
        # Invoice changes only update periods whose dual run has begun (rows
        # exist), so rating the open month does not start a period on its own.
        self.sudo()._sync_periods(keys, start_periods=False)

    @api.model
    def _sync_periods(self, keys, start_periods=True):
        """Bring the rows of the (service id, period) pairs ``keys`` up to date.

        Every customer with invoices of the service in the period gets a row (the
        app not reporting a billed customer is a delta too); then the Odoo amounts
        of all the rows of those periods are recomputed. With ``start_periods``
        false, pairs without any row yet are left alone.
        """
        keys = set(keys)
        if not keys:
            return self.browse()
        service_ids = {service_id for service_id, _period in keys}
        period_names = {period for _service_id, period in keys}
        if not start_periods:
            started = self._read_group(
                [
                    ("service_id", "in", list(service_ids)),
                    ("period", "in", list(period_names)),
                ],
                ["service_id", "period"],
            )
            keys &= {(service.id, period) for service, period in started}
            if not keys:
                return self.browse()
        groups = self._odoo_amount_groups(service_ids, period_names, keys)
        services = self.env["fusion.billing.service"].browse(service_ids)
        for service in services:
            new_rows = {}
            for (service_id, partner_id, period), parts in groups.items():
                if service_id == service.id:
                    currencies = {group.currency for group in parts}
                    currency = (
                        currencies.pop()
                        if len(currencies) == 1
                        else service.currency_id
                    )
                    new_rows[(partner_id, period)] = currency.id
            self._ensure_rows(service, new_rows)
        rows = self.search(
            [
                ("service_id", "in", list(service_ids)),
                ("period", "in", list(period_names)),
            ]
        ).filtered(lambda row: (row.service_id.id, row.period) in keys)
        rows._write_odoo_amounts(groups)
        return rows

    @api.model
    def _odoo_amount_groups(self, service_ids, period_names, keys):
        """Invoice totals per (service id, partner id, period), split by kind.

        Each value is a list of ``InvoiceGroup``.
        """
        Move = self.env["account.move"].sudo()
        groups = defaultdict(list)
        for (
            service,
            partner,
            period,
            one_off,
            partial,
            currency,
            in_currency,
            in_company_currency,
            count,
        ) in Move._read_group(
            [
                ("fusion_service_id", "in", list(service_ids)),
                ("fusion_reconciliation_period", "in", list(period_names)),
                ("move_type", "in", RECONCILED_MOVE_TYPES),
                ("state", "!=", "cancel"),
            ],
            [
                "fusion_service_id",
                "commercial_partner_id",
                "fusion_reconciliation_period",
                "fusion_is_one_off",
                "fusion_is_partial_period",
                "currency_id",
            ],
            [
                "amount_untaxed_in_currency_signed:sum",
                "amount_untaxed_signed:sum",
                "__count",
            ],
        ):
            if (service.id, period) in keys:
                groups[(service.id, partner.id, period)].append(
                    InvoiceGroup(
                        one_off,
                        partial,
                        currency,
                        in_currency,
                        in_company_currency,
                        count,
                    )
                )
        return groups

    def _unlinked_amount_groups(self):
        """Totals of the rows' customers' invoices linked to no service, per
        (company id, partner id, month)."""
        if not self:
            return {}
        starts = [
            reconciliation.period_bounds(period)[0] for period in self.mapped("period")
        ]
        ends = [
            reconciliation.period_bounds(period)[1] for period in self.mapped("period")
        ]
        groups = defaultdict(list)
        for company, partner, month, currency, in_currency, in_company_currency in (
            self.env["account.move"]
            .sudo()
            ._read_group(
                [
                    ("fusion_service_id", "=", False),
                    ("company_id", "in", self.company_id.ids),
                    ("commercial_partner_id", "in", self.partner_id.ids),
                    ("invoice_date", ">=", min(starts)),
                    ("invoice_date", "<", max(ends)),
                    ("move_type", "in", RECONCILED_MOVE_TYPES),
                    ("state", "!=", "cancel"),
                ],
                [
                    "company_id",
                    "commercial_partner_id",
                    "invoice_date:month",
                    "currency_id",
                ],
                ["amount_untaxed_in_currency_signed:sum", "amount_untaxed_signed:sum"],
            )
        ):
            groups[(company.id, partner.id, month.strftime("%Y-%m"))].append(
                InvoiceGroup(
                    False, False, currency, in_currency, in_company_currency, 0
                )
            )
        return groups

    def _convert(self, group):
        """An invoice total in the row's currency: as invoiced when the currencies
        agree, else from the company-currency amount booked on the invoices
        (converted at the first day of the period if the row is in a third one)."""
        self.ensure_one()
        if group.currency == self.currency_id:
            return group.amount
        company = self.company_id
        if self.currency_id == company.currency_id:
            return group.company_amount
        start, _end = reconciliation.period_bounds(self.period)
        return company.currency_id._convert(
            group.company_amount, self.currency_id, company, start
        )

    def _write_odoo_amounts(self, groups):
        unlinked = self._unlinked_amount_groups()
        for row in self:
            # Summed exactly, rounded once to the row's currency.
            amounts = dict.fromkeys(AMOUNT_FIELDS, Decimal(0))
            invoice_count = 0
            for group in groups.get(
                (row.service_id.id, row.partner_id.id, row.period), ()
            ):
                amount = to_decimal(row._convert(group))
                if group.one_off:
                    amounts["odoo_amount_one_off"] += amount
                else:
                    amounts["odoo_amount_subscription"] += amount
                if group.partial_period:
                    amounts["odoo_amount_partial_period"] += amount
                invoice_count += group.count
            amounts["odoo_amount"] = (
                amounts["odoo_amount_subscription"] + amounts["odoo_amount_one_off"]
            )
            for group in unlinked.get(
                (row.company_id.id, row.partner_id.id, row.period), ()
            ):
                amounts["unlinked_amount"] += to_decimal(row._convert(group))
            # Write only what changed: an unchanged amount must not reopen a
            # resolved row nor add tracking noise.
            rounding = to_decimal(row.currency_id.rounding)
            rounded = {
                name: round_money(amount, rounding) for name, amount in amounts.items()
            }
            changed = {
                name: float(amount)
                for name, amount in rounded.items()
                if amount != to_decimal(row[name])
            }
            if invoice_count != row.odoo_invoice_count:
                changed["odoo_invoice_count"] = invoice_count
            if changed:
                row.sudo().write(changed)

    # --- app-actual amounts -------------------------------------------------------

    @api.model
    def _ensure_rows(self, service, currency_by_key):
        """Create the missing rows of ``service`` for the (partner id, period) keys.

        INSERT ... ON CONFLICT: two imports of the same period at once cannot
        create a row twice. Returns nothing; callers search the rows they need.
        """
        if not currency_by_key:
            return
        keys = list(currency_by_key)
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO fusion_billing_reconciliation
                    (service_id, company_id, partner_id, period, currency_id,
                     odoo_amount, external_amount, odoo_invoice_count,
                     create_uid, create_date, write_uid, write_date)
                SELECT %(service)s, %(company)s, key.partner_id, key.period,
                       key.currency_id, 0, 0, 0,
                       %(uid)s, %(now)s, %(uid)s, %(now)s
                  FROM unnest(%(partners)s::int[], %(periods)s::varchar[],
                              %(currencies)s::int[])
                       AS key(partner_id, period, currency_id)
                ON CONFLICT (service_id, partner_id, period) DO NOTHING
                RETURNING id
                """,
                service=service.id,
                company=service.company_id.id,
                partners=[partner_id for partner_id, _period in keys],
                periods=[period for _partner_id, period in keys],
                currencies=[currency_by_key[key] for key in keys],
                uid=self.env.uid,
                now=self.env.cr.now(),
            )
        )
        created = self.browse([row_id for (row_id,) in self.env.cr.fetchall()])
        for name in ("delta", "abs_delta", "status"):
            self.env.add_to_compute(self._fields[name], created)

    @api.model
    def _receive_external_amounts(self, service, entries, source):
        """Store the app-actual amounts ``entries`` (``ExternalEntry``) of ``service``.

        A re-sent amount updates its row. Returns, in order, None for each stored
        entry or the message of a refused one: a row keeps the currency of the
        app's first amount. Then the Odoo amounts of the periods are refreshed.
        """
        service.ensure_one()
        # Rows are inserted in SQL below: check the ORM rights first.
        self.check_access("create")
        self.check_access("write")
        existing = {
            (row.partner_id.id, row.period): row
            for row in self.search(
                [
                    ("service_id", "=", service.id),
                    ("partner_id", "in", [entry.partner.id for entry in entries]),
                    ("period", "in", list({entry.period for entry in entries})),
                ]
            )
        }
        errors = []
        accepted = []
        for entry in entries:
            row = existing.get((entry.partner.id, entry.period))
            if row and row.external_source and row.currency_id != entry.currency:
                errors.append(
                    self.env._(
                        "%(period)s is reconciled in %(row)s for this customer, not"
                        " %(sent)s",
                        period=entry.period,
                        row=row.currency_id.name,
                        sent=entry.currency.name,
                    )
                )
                continue
            errors.append(None)
            accepted.append(entry)
        self._ensure_rows(
            service,
            {(entry.partner.id, entry.period): entry.currency.id for entry in accepted},
        )
        rows = {
            (row.partner_id.id, row.period): row
            for row in self.search(
                [
                    ("service_id", "=", service.id),
                    ("partner_id", "in", [entry.partner.id for entry in accepted]),
                    ("period", "in", list({entry.period for entry in accepted})),
                ]
            )
        }
        for entry in accepted:
            row = rows[(entry.partner.id, entry.period)]
            values = {"external_amount": float(entry.amount), "external_source": source}
            if row.currency_id != entry.currency:
                values["currency_id"] = entry.currency.id
            elif row.external_source == source and not row.currency_id.compare_amounts(
                values["external_amount"], row.external_amount
            ):
                continue  # the same amount again: nothing to track, nothing reopens
            row.sudo().write(values)
        self._sync_periods({(service.id, entry.period) for entry in accepted})
        return errors

    @api.model
    def _receive_api_request(self, service, request):
        """Apply a parsed ``POST /reconciliation`` body (a
        ``core.reconciliation.ReconciliationRequest``) of the authenticated
        ``service``; returns the per-item results in request order."""
        valid = [
            item
            for item in request.items
            if isinstance(item, reconciliation.ExternalAmount)
        ]
        customers = {
            customer.external_ref: customer
            for customer in self.env["fusion.billing.customer"].search(
                [
                    ("service_id", "=", service.id),
                    ("external_ref", "in", [item.customer for item in valid]),
                ]
            )
        }
        currencies = self._currencies_by_code({item.currency for item in valid})
        results = list(request.items)
        entries, positions, first_ref = [], [], {}
        for position, item in enumerate(request.items):
            if not isinstance(item, reconciliation.ExternalAmount):
                continue
            customer = customers.get(item.customer)
            currency = currencies.get(item.currency)
            if not customer:
                results[position] = reconciliation.rejected(
                    item.customer,
                    reconciliation.UNKNOWN_CUSTOMER,
                    f"no customer with this external_ref in service {service.code}",
                )
                continue
            if not currency:
                results[position] = reconciliation.rejected(
                    item.customer,
                    reconciliation.INVALID_ITEM,
                    f"currency {item.currency} is not active in Odoo",
                )
                continue
            partner = customer.partner_id.commercial_partner_id
            if partner.id in first_ref:
                results[position] = reconciliation.rejected(
                    item.customer,
                    reconciliation.DUPLICATE_CUSTOMER,
                    f"same Odoo customer as {first_ref[partner.id]!r} sent above",
                )
                continue
            first_ref[partner.id] = item.customer
            entries.append(
                ExternalEntry(partner, request.period, item.amount, currency)
            )
            positions.append(position)
        errors = self._receive_external_amounts(service, entries, "api")
        for position, error in zip(positions, errors, strict=True):
            customer = request.items[position].customer
            results[position] = (
                reconciliation.rejected(
                    customer, reconciliation.CURRENCY_MISMATCH, error
                )
                if error
                else reconciliation.accepted(customer)
            )
        return results

    @api.model
    def _currencies_by_code(self, codes):
        return {
            currency.name: currency
            for currency in self.env["res.currency"].search(
                [("name", "in", list(codes))]
            )
        }
