# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import logging
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from markupsafe import Markup

from odoo import Command, api, fields, models, modules
from odoo.exceptions import UserError, ValidationError
from odoo.tools import SQL

from ..core import charges, periods, summary
from ..core import charts as charts_engine
from ..core.money import round_money, to_decimal

_logger = logging.getLogger(__name__)

STATES = [("draft", "Draft"), ("active", "Active"), ("closed", "Closed")]
# Subscriptions claimed, rated and committed together by the rating cron.
RATING_BATCH_SIZE = 200
FIXED_FEE = "fixed_fee"
RATEABLE = SQL("state = 'active' AND next_invoice_date IS NOT NULL")

# One pass over the usage of a whole batch: each row of the unnest is one
# (subscription, metric, window). The WHERE clause (the batch's subscriptions
# and outer window) lets PostgreSQL collect the batch's events with one bitmap
# scan of the event index (subscription_id, metric_id, timestamp) and read each
# heap page once, in order, instead of one index probe per (subscription,
# metric) pair. FILTER keeps the sorting aggregates (distinct values, latest) to
# the rows of the metrics that use them.
RATING_QUANTITIES_SQL = """
    SELECT w.subscription_id,
           w.metric_id,
           (CASE m.aggregation
                WHEN 'sum' THEN SUM(e.quantity)
                WHEN 'count' THEN COUNT(e.id)
                WHEN 'max' THEN MAX(e.quantity)
                WHEN 'unique_count' THEN
                    COUNT(DISTINCT e.properties ->> m.property_name)
                    FILTER (WHERE m.aggregation = 'unique_count'
                            AND jsonb_typeof(e.properties) = 'object'
                            AND e.properties ->> m.property_name <> '')
                WHEN 'latest' THEN
                    (ARRAY_AGG(e.quantity ORDER BY e.timestamp DESC, e.id DESC)
                     FILTER (WHERE m.aggregation = 'latest'))[1]
            END)::text
      FROM unnest(%s::int[], %s::int[], %s::timestamp[], %s::timestamp[])
           AS w(subscription_id, metric_id, date_from, date_to)
      JOIN fusion_billing_metric m ON m.id = w.metric_id
      JOIN fusion_billing_usage_event e
        ON e.subscription_id = w.subscription_id
       AND e.metric_id = w.metric_id
       AND e.timestamp >= w.date_from
       AND e.timestamp < w.date_to
     WHERE e.subscription_id = ANY(%s::int[])
       AND e.timestamp >= %s
       AND e.timestamp < %s
  GROUP BY w.subscription_id, w.metric_id, m.aggregation
"""


@dataclass(frozen=True)
class RatedLine:
    """One invoice line as rating computed it: a charge's usage, or the fixed fee."""

    key: object  # the charge id, or FIXED_FEE
    product: models.BaseModel
    title: str
    quantity: Decimal
    amount: Decimal
    pricing: str = ""


def utc_today():
    return datetime.now(timezone.utc).date()


class FusionBillingSubscription(models.Model):
    _name = "fusion.billing.subscription"
    _description = "Usage Subscription"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "service_id, external_ref"
    _rec_name = "external_ref"
    _check_company_auto = True

    service_id = fields.Many2one(
        "fusion.billing.service",
        required=True,
        index=True,
        ondelete="restrict",
        tracking=True,
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    partner_id = fields.Many2one(
        "res.partner",
        string="Customer",
        required=True,
        index=True,
        ondelete="restrict",
        check_company=True,
        tracking=True,
    )
    plan_id = fields.Many2one(
        "fusion.billing.plan",
        required=True,
        ondelete="restrict",
        domain="[('service_id', '=', service_id)]",
        tracking=True,
    )
    currency_id = fields.Many2one(related="plan_id.currency_id", store=True)
    external_ref = fields.Char(
        string="External Reference",
        required=True,
        tracking=True,
        help="The subscription's id in the app, as sent in usage events.",
    )
    state = fields.Selection(
        STATES, required=True, default="draft", tracking=True, copy=False
    )
    start_date = fields.Date(
        required=True, default=fields.Date.context_today, tracking=True
    )
    last_invoice_date = fields.Date(
        copy=False,
        tracking=True,
        help="Start of the open billing period once a period has been closed.",
    )
    next_invoice_date = fields.Date(
        copy=False,
        tracking=True,
        help="End (exclusive) of the open billing period: when it passes, the period "
        "is rated a last time and closed.",
    )
    invoice_ids = fields.One2many(
        "account.move", "fusion_subscription_id", string="Invoices", readonly=True
    )
    invoice_count = fields.Integer(compute="_compute_invoice_count")
    alert_ids = fields.One2many("fusion.billing.alert", "subscription_id")
    rating_date = fields.Datetime(
        string="Last Rated",
        readonly=True,
        copy=False,
        help="When the rating cron last rated this subscription's usage.",
    )
    # Rating cycle the subscription was last rated in: a cron run interrupted
    # by its time limit resumes with the subscriptions not rated in the cycle.
    rating_cycle = fields.Integer(readonly=True, copy=False, default=0)
    rating_error = fields.Text(
        readonly=True,
        copy=False,
        help="Why the last rating of this subscription failed. Cleared by the next "
        "successful rating; other subscriptions are rated regardless.",
    )
    rating_error_date = fields.Datetime(readonly=True, copy=False)
    usage_summary = fields.Html(
        string="Current Period Usage",
        compute="_compute_usage_estimate",
        sanitize=False,
        help="Usage of the open period per charge, priced as the cron would.",
    )
    estimated_amount = fields.Monetary(
        compute="_compute_usage_estimate",
        currency_field="currency_id",
        help="Untaxed amount of the open period so far: usage charges plus the fixed "
        "fee.",
    )

    _external_ref_unique = models.Constraint(
        "UNIQUE(service_id, external_ref)",
        "A subscription with this external reference already exists for the service.",
    )
    _period_order = models.Constraint(
        "CHECK(next_invoice_date IS NULL OR "
        "next_invoice_date > COALESCE(last_invoice_date, start_date))",
        "The next invoice date must be after the start of the open period.",
    )

    def _compute_invoice_count(self):
        counts = dict(
            self.env["account.move"]._read_group(
                [("fusion_subscription_id", "in", self.ids)],
                ["fusion_subscription_id"],
                ["__count"],
            )
        )
        for subscription in self:
            subscription.invoice_count = counts.get(subscription, 0)

    def _compute_usage_estimate(self):
        rateable = self.filtered(
            lambda s: (
                isinstance(s.id, int) and s.state == "active" and s.next_invoice_date
            )
        )
        quantities = rateable._rating_quantities()
        for subscription in self:
            if subscription not in rateable:
                subscription.usage_summary = False
                subscription.estimated_amount = 0.0
                continue
            try:
                rated_lines = subscription._prepare_rated_lines(quantities)
            except ValueError as error:
                # A charge still being configured (e.g. tiers not added yet): say
                # so on the form instead of failing to open it.
                subscription.usage_summary = Markup(
                    "<p class='text-danger'>%s</p>"
                ) % self.env._("The current period cannot be priced: %s", error)
                subscription.estimated_amount = 0.0
                continue
            subscription.usage_summary = subscription._usage_summary_html(rated_lines)
            subscription.estimated_amount = float(
                sum((line.amount for line in rated_lines), Decimal(0))
            )

    @api.constrains("plan_id", "service_id")
    def _check_plan_service(self):
        for subscription in self:
            if subscription.plan_id.service_id != subscription.service_id:
                raise ValidationError(
                    self.env._(
                        "Plan %(plan)s is not a plan of service %(service)s.",
                        plan=subscription.plan_id.display_name,
                        service=subscription.service_id.display_name,
                    )
                )

    @api.onchange("service_id")
    def _onchange_service_id(self):
        if self.plan_id.service_id != self.service_id:
            self.plan_id = False

    def _period_start(self):
        self.ensure_one()
        return self.last_invoice_date or self.start_date

    def _first_period_end(self):
        self.ensure_one()
        plan = self.plan_id
        return periods.next_boundary(
            self.start_date,
            plan.interval_unit,
            plan.interval_count,
            self._period_start(),
        )

    def _period_end(self):
        """Exclusive end of the open period."""
        self.ensure_one()
        return self.next_invoice_date

    # ------------------------------------------------------------------
    # Rating cron
    # ------------------------------------------------------------------

    @api.model
    def _cron_rate_usage(self, today=None, batch_size=RATING_BATCH_SIZE):
        """Rate every active subscription once, batch by batch.

        ``today`` (a UTC date) decides which periods are over and get closed.
        Batches are claimed with SKIP LOCKED, so several workers share the book,
        and committed one by one; a run stopped by the cron time limit resumes
        with the subscriptions the cycle has not rated yet.
        """
        today = today or utc_today()
        cycle = self._rating_cycle()
        while batch := self._claim_rating_batch(cycle, batch_size):
            batch._rate_batch(today, cycle)
            remaining = self._rating_due_count(cycle)
            if self._rating_commit_progress(len(batch), remaining) <= 0:
                break

    @api.model
    def _rating_commit_progress(self, processed, remaining):
        """Commit the finished batch and report progress to the cron.

        Returns the cron's remaining time. Under tests nothing is committed
        (the test cursor forbids it); the work is only flushed.
        """
        if modules.module.current_test:
            self.env.flush_all()
            return float("inf")
        return self.env["ir.cron"]._commit_progress(processed, remaining=remaining)

    @api.model
    def _rating_cycle(self):
        """The rating cycle to work on: the unfinished one, else a new one."""
        self.flush_model(["state", "next_invoice_date", "rating_cycle"])
        self.env.cr.execute(
            SQL(
                """
                SELECT COALESCE(MIN(rating_cycle), 0), COALESCE(MAX(rating_cycle), 0)
                  FROM fusion_billing_subscription
                 WHERE %s
                """,
                RATEABLE,
            )
        )
        lowest, highest = self.env.cr.fetchone()
        return highest if lowest < highest else highest + 1

    @api.model
    def _rating_due_count(self, cycle):
        self.flush_model(["state", "next_invoice_date", "rating_cycle"])
        self.env.cr.execute(
            SQL(
                """
                SELECT COUNT(*) FROM fusion_billing_subscription
                 WHERE %s AND COALESCE(rating_cycle, 0) < %s
                """,
                RATEABLE,
                cycle,
            )
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _claim_rating_batch(self, cycle, batch_size):
        """Lock up to ``batch_size`` subscriptions not rated in ``cycle`` yet,
        skipping those another worker holds."""
        self.flush_model(["state", "next_invoice_date", "rating_cycle"])
        self.env.cr.execute(
            SQL(
                """
                SELECT id FROM fusion_billing_subscription
                 WHERE %s AND COALESCE(rating_cycle, 0) < %s
                 ORDER BY id
                 LIMIT %s
                   FOR UPDATE SKIP LOCKED
                """,
                RATEABLE,
                cycle,
                batch_size,
            )
        )
        return self.browse([row[0] for row in self.env.cr.fetchall()])

    def _rate_batch(self, today, cycle):
        """Rate the open period of each subscription, then close it if it is
        over, period after period for a subscription behind.

        Each subscription's work runs in its own savepoint: a failure rolls
        back that subscription only and is recorded on it. New invoices of the
        batch are created together (one ``create``: far cheaper per invoice).
        """
        errors = {}
        pending = self
        while pending:
            quantities = pending._rating_quantities()
            self.env["fusion.billing.alert"]._check_usage(pending, quantities)
            invoices = pending._period_invoices()
            new_invoice_values = {}
            for subscription in pending:
                invoice = invoices.get(subscription.id, self.env["account.move"])
                with subscription._rating_guard(errors):
                    values = subscription._rate_period(quantities, invoice)
                    if values:
                        new_invoice_values[subscription] = values
            invoices.update(self._create_period_invoices(new_invoice_values, errors))
            behind = self.browse()
            for subscription in pending.filtered(
                lambda s: s.id not in errors and s._period_end() <= today
            ):
                invoice = invoices.get(subscription.id, self.env["account.move"])
                with subscription._rating_guard(errors):
                    subscription._close_period(invoice)
                    behind |= subscription
            pending = behind
        now = fields.Datetime.now()
        self.write({"rating_cycle": cycle, "rating_date": now})
        failed = self.browse(list(errors))
        (self - failed).filtered("rating_error").write(
            {"rating_error": False, "rating_error_date": False}
        )
        for subscription in failed:
            subscription.write(
                {"rating_error": errors[subscription.id], "rating_error_date": now}
            )

    @contextmanager
    def _rating_guard(self, errors):
        """Savepoint around one subscription's rating step: an exception rolls
        the step back and lands in ``errors`` instead of stopping the batch."""
        try:
            with self.env.cr.savepoint():
                yield
        except Exception as error:  # one subscription's failure stays its own
            _logger.warning("Rating subscription %s failed", self.id, exc_info=True)
            errors[self.id] = str(error) or type(error).__name__

    def _rating_quantities(self):
        """Aggregate the open-period usage of every charged metric of ``self``
        in one query. Returns {(subscription id, metric id): Decimal}; a metric
        without events in the window is absent (its quantity is 0)."""
        metrics_by_plan = {plan: plan.charge_ids.metric_id.ids for plan in self.plan_id}
        subscription_ids, metric_ids, starts, ends = [], [], [], []
        for subscription in self:
            start, end = periods.billing_window(
                subscription.start_date,
                subscription.last_invoice_date,
                subscription.next_invoice_date,
            )
            start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
            for metric_id in metrics_by_plan[subscription.plan_id]:
                subscription_ids.append(subscription.id)
                metric_ids.append(metric_id)
                starts.append(start)
                ends.append(end)
        if not subscription_ids:
            return {}
        self.env["fusion.billing.usage.event"].flush_model()
        self.env["fusion.billing.metric"].flush_model(["aggregation", "property_name"])
        self.env.cr.execute(
            RATING_QUANTITIES_SQL,
            (
                subscription_ids,
                metric_ids,
                starts,
                ends,
                sorted(set(subscription_ids)),
                min(starts),
                max(ends),
            ),
        )
        return {
            (subscription_id, metric_id): Decimal(quantity or 0)
            for subscription_id, metric_id, quantity in self.env.cr.fetchall()
        }

    def _period_invoices(self):
        """Live (not cancelled) invoice of each subscription's open period, by
        subscription id."""
        invoices = self.env["account.move"].search(
            [
                ("fusion_subscription_id", "in", self.ids),
                ("fusion_period_start", "in", [s._period_start() for s in self]),
                ("move_type", "=", "out_invoice"),
                ("state", "!=", "cancel"),
            ]
        )
        open_periods = {(s.id, s._period_start()) for s in self}
        return {
            invoice.fusion_subscription_id.id: invoice
            for invoice in invoices
            if (invoice.fusion_subscription_id.id, invoice.fusion_period_start)
            in open_periods
        }

    def _rate_period(self, quantities, invoice):
        """Rate the open period: update its draft ``invoice``, or return the
        values of the invoice to create (None when there is nothing to bill).
        A posted invoice is final and left alone."""
        self.ensure_one()
        if invoice.state == "posted":
            return None
        rated_lines = self._prepare_rated_lines(quantities)
        if invoice:
            self._update_period_invoice(invoice, rated_lines)
            return None
        return self._prepare_invoice_values(rated_lines)

    def _prepare_rated_lines(self, quantities):
        """Price the open period: one RatedLine per charge of the subscription's
        own plan, plus the fixed fee when the plan has one."""
        self.ensure_one()
        plan = self.plan_id
        currency = self.currency_id
        rounding = to_decimal(currency.rounding)
        lang_self = self.with_context(lang=self.partner_id.lang or self.env.lang)
        rated_lines = []
        for charge in lang_self.plan_id.charge_ids:
            engine_charge = charge._engine_charge()
            metric = charge.metric_id
            quantity = quantities.get((self.id, metric.id), Decimal(0))
            rated_lines.append(
                RatedLine(
                    key=charge.id,
                    product=charge.product_id,
                    title=f"{metric.name} ({metric.unit_name})"
                    if metric.unit_name
                    else metric.name,
                    quantity=quantity,
                    amount=charges.amount(engine_charge, quantity, rounding),
                    pricing=charges.describe(engine_charge, quantity, currency.name),
                )
            )
        if plan.base_price:
            rated_lines.append(
                RatedLine(
                    key=FIXED_FEE,
                    product=plan.product_id,
                    title=self.env._("%(plan)s fixed fee", plan=plan.name),
                    quantity=Decimal(1),
                    amount=round_money(to_decimal(plan.base_price), rounding),
                )
            )
        return rated_lines

    def _period_text(self):
        """The open period as the customer reads it (end date inclusive)."""
        last_day = self._period_end() - timedelta(days=1)
        return self.env._(
            "%(start)s to %(end)s", start=self._period_start(), end=last_day
        )

    def _prepare_invoice_values(self, rated_lines):
        """The open period's new invoice: one line per non-zero rated line.
        None when every amount is zero: a period with nothing to bill gets no
        invoice."""
        self.ensure_one()
        lines = [
            Command.create(self._prepare_invoice_line_values(rated))
            for rated in rated_lines
            if rated.amount
        ]
        if not lines:
            return None
        values = {
            "move_type": "out_invoice",
            "partner_id": self.partner_id.id,
            "currency_id": self.currency_id.id,
            "invoice_origin": self.external_ref,
            "fusion_subscription_id": self.id,
            "fusion_period_start": self._period_start(),
            "fusion_period_end": self._period_end(),
            "invoice_line_ids": lines,
        }
        if self.service_id.journal_id:
            values["journal_id"] = self.service_id.journal_id.id
        return values

    def _prepare_invoice_line_values(self, rated_line):
        """An invoice line whose subtotal is exactly the engine's amount: one
        unit at the rounded amount (usage and pricing are in the description)."""
        name = f"{rated_line.title}, {self._period_text()}"
        if rated_line.pricing:
            name += f"\n{rated_line.pricing}"
        return {
            "product_id": rated_line.product.id,
            "name": name,
            "quantity": 1,
            "price_unit": float(rated_line.amount),
            "fusion_charge_id": rated_line.key
            if rated_line.key != FIXED_FEE
            else False,
            "fusion_is_fixed_fee": rated_line.key == FIXED_FEE,
            "fusion_usage_quantity": float(rated_line.quantity),
        }

    @api.model
    def _create_period_invoices(self, values_by_subscription, errors):
        """Create the new invoices, one ``create`` per company; if that fails,
        again one by one so that only the failing subscriptions are left out.
        Returns {subscription id: invoice}."""
        created = {}
        by_company = defaultdict(list)
        for subscription, values in values_by_subscription.items():
            by_company[subscription.company_id].append((subscription, values))
        for company, items in by_company.items():
            moves = self.env["account.move"].with_company(company)
            try:
                with self.env.cr.savepoint():
                    invoices = moves.create([values for _sub, values in items])
                    pairs = list(zip((sub for sub, _v in items), invoices, strict=True))
                    for subscription, invoice in pairs:
                        subscription._queue_invoice_event("invoice.created", invoice)
            except Exception:  # retried one by one below, which records the culprit
                pairs = []
                for subscription, values in items:
                    with subscription._rating_guard(errors):
                        invoice = moves.create(values)
                        subscription._queue_invoice_event("invoice.created", invoice)
                        pairs.append((subscription, invoice))
            created.update((sub.id, invoice) for sub, invoice in pairs)
        return created

    def _update_period_invoice(self, invoice, rated_lines):
        """Bring the draft ``invoice`` in line with ``rated_lines``: a line
        per key, updated in place (to zero too); no new line for a zero
        amount; untouched when nothing changed."""
        self.ensure_one()
        existing = {
            (line.fusion_charge_id.id or FIXED_FEE): line
            for line in invoice.invoice_line_ids
            if line.fusion_charge_id or line.fusion_is_fixed_fee
        }
        commands = []
        for rated in rated_lines:
            values = self._prepare_invoice_line_values(rated)
            line = existing.get(rated.key)
            if not line:
                if rated.amount:
                    commands.append(Command.create(values))
            elif self._line_differs(line, values):
                commands.append(Command.update(line.id, values))
        if commands:
            invoice.write({"invoice_line_ids": commands})

    @api.model
    def _line_differs(self, line, values):
        return (
            line.product_id.id != values["product_id"]
            or line.name != values["name"]
            or line.quantity != values["quantity"]
            or line.price_unit != values["price_unit"]
            or line.fusion_usage_quantity != values["fusion_usage_quantity"]
        )

    def _close_period(self, invoice):
        """Close the open period (already rated a last time): advance the
        billing dates by the plan interval, anchored on the start date so
        periods never drift; post the invoice if the service says so and tell
        the app the invoice is final."""
        self.ensure_one()
        plan = self.plan_id
        period_end = self._period_end()
        self.write(
            {
                "last_invoice_date": period_end,
                "next_invoice_date": periods.next_boundary(
                    self.start_date, plan.interval_unit, plan.interval_count, period_end
                ),
            }
        )
        if not invoice:
            return
        if invoice.state == "draft" and self.service_id.auto_post_invoices:
            invoice.action_post()
        self._queue_invoice_event("invoice.finalized", invoice)

    def _queue_invoice_event(self, event_type, invoice):
        self.env["fusion.billing.webhook.event"]._queue(
            self.service_id,
            event_type,
            self._invoice_event_data(invoice),
            dedupe_key=f"{event_type}:{invoice.id}",
        )

    def _invoice_event_data(self, invoice):
        """Webhook payload of an invoice event: amounts as exact decimal strings."""
        self.ensure_one()
        customer = self.env["fusion.billing.customer"].search(
            [
                ("service_id", "=", self.service_id.id),
                ("partner_id", "=", self.partner_id.id),
            ],
            limit=1,
        )
        currency = invoice.currency_id

        def money(value):
            return str(round_money(to_decimal(value), currency.rounding))

        return {
            "invoice": {
                "id": invoice.id,
                "number": invoice.name if invoice.state == "posted" else None,
                "state": invoice.state,
                "currency": currency.name,
                "amount_untaxed": money(invoice.amount_untaxed),
                "amount_tax": money(invoice.amount_tax),
                "amount_total": money(invoice.amount_total),
                "lines": [
                    {
                        "charge": line.fusion_charge_id.metric_id.code or None,
                        "fixed_fee": line.fusion_is_fixed_fee,
                        "usage_quantity": str(to_decimal(line.fusion_usage_quantity)),
                        "amount": money(line.price_subtotal),
                    }
                    for line in invoice.invoice_line_ids
                    if line.fusion_charge_id or line.fusion_is_fixed_fee
                ],
            },
            "subscription": self.external_ref,
            "customer": customer.external_ref or None,
            "period_start": invoice.fusion_period_start.isoformat(),
            "period_end": invoice.fusion_period_end.isoformat(),
        }

    def _usage_summary_html(self, rated_lines):
        currency = self.currency_id
        rows = Markup().join(
            Markup(
                "<tr><td>%s</td><td class='text-end'>%s</td><td>%s</td>"
                "<td class='text-end'>%s</td></tr>"
            )
            % (
                line.title,
                f"{line.quantity.normalize():,f}",
                line.pricing,
                f"{line.amount:,} {currency.symbol}",
            )
            for line in rated_lines
        )
        return Markup(
            "<table class='table table-sm o_fusion_usage'><thead><tr>"
            "<th>%s</th><th class='text-end'>%s</th><th>%s</th>"
            "<th class='text-end'>%s</th></tr></thead><tbody>%s</tbody></table>"
        ) % (
            self.env._("Charge"),
            self.env._("Usage"),
            self.env._("Pricing"),
            self.env._("Amount"),
            rows,
        )

    @api.model_create_multi
    def create(self, vals_list):
        subscriptions = super().create(vals_list)
        subscriptions._schedule_first_period()
        return subscriptions

    def write(self, vals):
        result = super().write(vals)
        if vals.get("state") == "active":
            self._schedule_first_period()
        return result

    def _schedule_first_period(self):
        """An active subscription is rated up to its next invoice date: one made
        active without it (by the API, an import) gets its first period's end."""
        for subscription in self.filtered(
            lambda s: s.state == "active" and not s.next_invoice_date
        ):
            subscription.next_invoice_date = subscription._first_period_end()

    def action_activate(self):
        if self.filtered(lambda s: s.state != "draft"):
            raise UserError(self.env._("Only draft subscriptions can be activated."))
        self.write({"state": "active"})
        return True

    def action_close(self):
        self.write({"state": "closed"})
        return True

    def action_view_invoices(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "account.action_move_out_invoice_type"
        )
        action["domain"] = [("fusion_subscription_id", "=", self.id)]
        action["context"] = {"default_move_type": "out_invoice", "create": False}
        return action

    # ------------------------------------------------------------------
    # Visibility: the running bill of the open period (SPEC §12)
    # ------------------------------------------------------------------

    def _open_period_estimate(self, quantities=None):
        """Price each subscription's open period as the rating would now,
        without writing: {subscription id: (rated lines, error)}. A
        subscription without an open period has no lines; one whose charge
        cannot be priced yet has the reason as ``error``. ``quantities`` are
        the rating's aggregates when the caller already has them."""
        rateable = self.filtered(lambda s: s.state == "active" and s.next_invoice_date)
        if quantities is None:
            quantities = rateable._rating_quantities()
        estimates = dict.fromkeys(self.ids, ((), None))
        for subscription in rateable:
            try:
                lines = subscription._prepare_rated_lines(quantities)
            except ValueError as error:
                estimates[subscription.id] = ((), str(error))
            else:
                estimates[subscription.id] = (tuple(lines), None)
        return estimates

    @api.model
    def _estimate_total(self, rated_lines):
        return sum((line.amount for line in rated_lines), Decimal(0))

    def _daily_usage(self, days):
        """Each charged metric's usage per UTC day in ``days``, aggregated the
        way the rating aggregates a period (the rating's own query, with the
        day as the window): {(subscription id, metric id, day): Decimal}, days
        without usage absent. One query per day, whatever the number of
        subscriptions."""
        pairs = [
            (subscription.id, metric_id)
            for subscription in self
            for metric_id in subscription.plan_id.charge_ids.metric_id.ids
        ]
        if not pairs:
            return {}
        self.env["fusion.billing.usage.event"].flush_model()
        self.env["fusion.billing.metric"].flush_model(["aggregation", "property_name"])
        subscription_ids = [subscription_id for subscription_id, _m in pairs]
        metric_ids = [metric_id for _s, metric_id in pairs]
        usage = {}
        for day in days:
            start = datetime.combine(day, datetime.min.time())
            end = start + timedelta(days=1)
            self.env.cr.execute(
                RATING_QUANTITIES_SQL,
                (
                    subscription_ids,
                    metric_ids,
                    [start] * len(pairs),
                    [end] * len(pairs),
                    sorted(set(subscription_ids)),
                    start,
                    end,
                ),
            )
            for subscription_id, metric_id, quantity in self.env.cr.fetchall():
                usage[subscription_id, metric_id, day] = Decimal(quantity or 0)
        return usage

    def _portal_usage(self, chart_days=()):
        """What the customer portal shows of each subscription, by id: the open
        period (last day inclusive), per charge its usage and amount as the
        rating would bill now, the estimate and, over ``chart_days``, one
        daily usage chart per charged metric."""
        estimates = self._open_period_estimate()
        daily = self._daily_usage(chart_days) if chart_days else {}
        charges_by_id = self.plan_id.charge_ids.grouped("id")
        usage = {}
        for subscription in self:
            rated_lines, error = estimates[subscription.id]
            open_period = (
                subscription.state == "active" and subscription.next_invoice_date
            )
            charts = (
                [
                    (
                        metric,
                        charts_engine.bar_chart(
                            chart_days,
                            {
                                day: daily.get(
                                    (subscription.id, metric.id, day), Decimal(0)
                                )
                                for day in chart_days
                            },
                        ),
                    )
                    for metric in subscription.plan_id.charge_ids.metric_id
                ]
                if chart_days
                else []
            )
            usage[subscription.id] = {
                "period": (
                    subscription._period_start(),
                    subscription._period_end() - timedelta(days=1),
                )
                if open_period
                else None,
                "lines": [
                    {
                        "title": line.title,
                        "metric": charges_by_id[line.key].metric_id
                        if line.key != FIXED_FEE
                        else None,
                        "quantity": f"{line.quantity.normalize():,f}",
                        "pricing": line.pricing,
                        "amount": float(line.amount),
                    }
                    for line in rated_lines
                ],
                "total": float(self._estimate_total(rated_lines)),
                "error": error,
                "charts": charts,
            }
        return usage

    @api.model
    def _usage_summary(self, service, external_ref):
        """The body of ``GET /usage/summary`` for ``service``'s subscription
        ``external_ref``, None when the service has none such. The open period
        is priced by ``_open_period_estimate``: what the rating bills now."""
        subscription = self.search(
            [("service_id", "=", service.id), ("external_ref", "=", external_ref)],
            limit=1,
        )
        if not subscription:
            return None
        rated_lines, error = subscription._open_period_estimate()[subscription.id]
        if error:
            raise UserError(error)
        customer = self.env["fusion.billing.customer"].search(
            [
                ("service_id", "=", service.id),
                ("partner_id", "=", subscription.partner_id.id),
            ],
            limit=1,
        )
        charges_by_id = subscription.plan_id.charge_ids.grouped("id")
        rounding = to_decimal(subscription.currency_id.rounding)
        base_price = round_money(Decimal(0), rounding)
        lines = []
        for line in rated_lines:
            if line.key == FIXED_FEE:
                base_price = line.amount
                continue
            charge = charges_by_id[line.key]
            lines.append(
                summary.SummaryLine(
                    metric=charge.metric_id.code,
                    charge_model=charge.charge_model,
                    quantity=line.quantity,
                    amount=line.amount,
                )
            )
        open_period = subscription.state == "active" and subscription.next_invoice_date
        return summary.build_summary(
            subscription=subscription.external_ref,
            customer=customer.external_ref or None,
            plan=subscription.plan_id.code,
            currency=subscription.currency_id.name,
            period=(subscription._period_start(), subscription._period_end())
            if open_period
            else None,
            lines=lines,
            base_price=base_price,
            as_of=fields.Datetime.now(),
        )
