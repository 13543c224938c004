# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from markupsafe import Markup

from odoo import Command, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, format_date, formatLang

from ..core import charts, money, periods, pricing, summary
from ..core.money import round_money, to_decimal
from .account_move import PERIOD_MOVE_TYPES
from .fusion_billing_rating import (
    FIXED_FEE,
    MINIMUM,
    BillingPeriod,
    RatedLine,
    utc_now,
)

STATES = [("draft", "Draft"), ("active", "Active"), ("closed", "Closed")]
# Written on an active subscription only through change_plan.
PLAN_CHANGE_FIELDS = {"plan_id", "partner_id", "service_id"}
CHANGING_PLAN = "fusion_billing_changing_plan"
# A charge billed on several lines (tiers, fees) has them under a section of its
# own (line part SECTION_PART), after every other line (Odoo's default line
# sequence): Odoo shows the lines following a section in it.
SECTION_PART = -1
LINE_SEQUENCE = 100
SECTION_SEQUENCE = 1000


class FusionBillingSubscription(models.Model):
    _name = "fusion.billing.subscription"
    _description = "Usage Subscription"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "service_id, external_ref"
    _rec_name = "external_ref"
    _rec_names_search = ["external_ref", "partner_id.name", "plan_id.name"]
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
    end_date = fields.Date(
        copy=False,
        tracking=True,
        help="End of the subscription (exclusive, 00:00 UTC); may be in the future. "
        "The last period ends on it, usage at or after it is refused, and once it "
        "and the grace period have passed the last period is invoiced and the "
        "subscription closed.",
    )
    anchor_date = fields.Date(
        string="Period Anchor",
        readonly=True,
        copy=False,
        help="Date the billing periods are counted from: the start date, or the "
        "effective date of a change to a plan billed at another interval.",
    )
    plan_change_date = fields.Date(
        readonly=True,
        copy=False,
        help="Effective date of a plan change whose cut period has not closed yet: "
        "usage before it is billed on the previous plan.",
    )
    previous_plan_id = fields.Many2one(
        "fusion.billing.plan",
        readonly=True,
        copy=False,
        ondelete="restrict",
        help="Plan of the period cut by the plan change, until that period closes.",
    )
    previous_anchor_date = fields.Date(readonly=True, copy=False)
    rerate_from = fields.Date(
        string="Re-rate From",
        readonly=True,
        copy=False,
        help="Closed periods from this date on may bill differently than invoiced "
        "(late usage, cancellations, an invoice posted before its period closed): "
        "each rating re-rates them and adjusts the difference on the open period's "
        "invoice, until that invoice is final.",
    )
    invoice_ids = fields.One2many(
        "account.move", "fusion_subscription_id", string="Invoices", readonly=True
    )
    plan_history_ids = fields.One2many(
        "fusion.billing.plan.history",
        "subscription_id",
        readonly=True,
        help="The plan billed from each day on: usage of a closed period is "
        "authorized and rated by the plan it was billed on.",
    )
    invoice_count = fields.Integer(compute="_compute_invoice_count")
    plan_charge_ids = fields.One2many(
        related="plan_id.charge_ids", string="Plan Prices"
    )
    charge_ids = fields.One2many(
        "fusion.billing.charge",
        "subscription_id",
        string="Custom Prices",
        help="This subscription's own prices: each replaces the plan's charge on "
        "its metric, while the subscription stays on that plan.",
    )
    override_base_price = fields.Boolean(
        string="Custom Fixed Fee",
        help="Bill the fixed fee below instead of the plan's.",
    )
    base_price = fields.Monetary(
        string="Fixed Fee",
        currency_field="currency_id",
        tracking=True,
        help="Recurring fee of this subscription, replacing the plan's when Custom "
        "Fixed Fee is set.",
    )
    credit_ids = fields.One2many(
        "fusion.billing.credit", "subscription_id", string="Credits"
    )
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
    _end_after_start = models.Constraint(
        "CHECK(end_date IS NULL OR end_date > start_date)",
        "The end date must be after the start date.",
    )
    _base_price_positive = models.Constraint(
        "CHECK(base_price >= 0)", "The fixed fee cannot be negative."
    )
    _period_order = models.Constraint(
        "CHECK(next_invoice_date IS NULL OR "
        "next_invoice_date > COALESCE(last_invoice_date, start_date))",
        "The next invoice date must be after the start of the open period.",
    )

    @api.depends("partner_id.name", "plan_id.name", "external_ref")
    def _compute_display_name(self):
        for subscription in self:
            subscription.display_name = self.env._(
                "%(customer)s · %(plan)s (%(ref)s)",
                customer=subscription.partner_id.name or "",
                plan=subscription.plan_id.name or "",
                ref=subscription.external_ref or "",
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
        ratings = self.filtered(lambda s: isinstance(s.id, int))._open_period_rating()
        for subscription in self:
            rating = ratings.get(subscription.id)
            if not rating:
                subscription.usage_summary = False
                subscription.estimated_amount = 0.0
            elif rating.error:
                # Say why on the form (e.g. tiers not added yet) instead of
                # failing to open it.
                subscription.usage_summary = Markup(
                    "<p class='text-danger'>%s</p>"
                ) % self.env._("The current period cannot be priced: %s", rating.error)
                subscription.estimated_amount = 0.0
            else:
                subscription.usage_summary = subscription._usage_summary_html(
                    rating.lines
                )
                subscription.estimated_amount = float(rating.amount)

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

    @api.constrains("override_base_price", "base_price", "plan_id")
    def _check_base_price_product(self):
        for subscription in self:
            if (
                subscription.override_base_price
                and subscription.base_price
                and not subscription.plan_id.product_id
            ):
                raise ValidationError(
                    self.env._(
                        "Plan %(plan)s has no fixed fee product for the custom "
                        "fixed fee's invoice line.",
                        plan=subscription.plan_id.display_name,
                    )
                )

    @api.constrains("end_date", "last_invoice_date")
    def _check_end_date(self):
        # Before the first close, the database's end > start check suffices.
        for subscription in self.filtered(
            lambda s: s.end_date and s.last_invoice_date and s.state != "closed"
        ):
            if subscription.end_date <= subscription._period_start():
                raise ValidationError(
                    self.env._(
                        "The end date of %(subscription)s must be after %(start)s: "
                        "the periods before it are already billed.",
                        subscription=subscription.display_name,
                        start=subscription._period_start(),
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
        """Exclusive end of the open period: the next invoice date, or the
        end date when the subscription ends first."""
        self.ensure_one()
        if self.end_date and self.next_invoice_date:
            return min(self.next_invoice_date, self.end_date)
        return self.next_invoice_date

    def _period_anchor(self):
        """The date the plan's interval series starts from."""
        self.ensure_one()
        return self.anchor_date or self.start_date

    def _open_period(self):
        """The open BillingPeriod (after a plan change, the new plan's), None
        when the subscription is not rated."""
        self.ensure_one()
        if self.state != "active" or not self.next_invoice_date:
            return None
        return BillingPeriod(
            self,
            self.plan_id,
            self.plan_change_date or self._period_start(),
            self._period_end(),
            self._period_anchor(),
        )

    def _rated_periods(self):
        """The periods rating works on, oldest first: the period a plan change
        cut, until it closes, then the open period. The first closes first."""
        self.ensure_one()
        open_period = self._open_period()
        if not open_period:
            return []
        if not self.plan_change_date:
            return [open_period]
        cut_period = BillingPeriod(
            self,
            self.previous_plan_id,
            self._period_start(),
            self.plan_change_date,
            self.previous_anchor_date,
        )
        return [cut_period, open_period]

    def _open_period_rating(self):
        """What the rating cron would bill for each subscription's open period
        right now (same SQL, same engine), writing nothing: {subscription id:
        PeriodRating}. Subscriptions without an open period are absent."""
        open_periods = [period for period in (s._open_period() for s in self) if period]
        return {
            rating.period.subscription.id: rating
            for rating in self.env["fusion.billing.rating"]._rate_periods(open_periods)
            if rating.period in open_periods
        }

    def _period_due(self, now):
        """Whether the first rated period closes at ``now`` (an aware UTC
        datetime): its end and the service's grace period have passed."""
        self.ensure_one()
        return now >= periods.closes_at(
            self._rated_periods()[0].end, self.service_id.grace_period_hours
        )

    def _write_period_rating(self, rating, invoice):
        """Write the ``rating`` of the open period (or of a closed period
        re-rated in place): update its draft ``invoice``, or return the values
        of the invoice to create (None when there is nothing to bill). A
        posted invoice is final and left alone."""
        self.ensure_one()
        if invoice.state == "posted":
            return None
        if not money.bookable(line.amount for line in rating.lines):
            raise UserError(
                self.env._(
                    "The period from %(start)s bills %(amount)s, beyond the "
                    "%(limit)s an Odoo invoice holds to the cent: check its usage "
                    "(cancel events sent in error).",
                    start=rating.period.start,
                    amount=rating.amount,
                    limit=money.MAX_INVOICE_AMOUNT,
                )
            )
        if invoice:
            self._update_period_invoice(rating.period, invoice, rating.lines)
            if rating.in_place:
                # Its close trued up the minimum and took credits for the
                # usage it had then.
                self._settle_period(rating.period, invoice)
            return None
        return self._prepare_invoice_values(rating.period, rating.lines)

    def _prepare_rated_lines(self, period, charges, quantities):
        """Price ``period``: one RatedLine per charge rating it (``charges``,
        as ``fusion.billing.rating._period_charges`` finds them), priced by the
        charge's ``_rate`` hook, plus the fixed fee when the plan has one.
        ``quantities`` maps metric ids to the period's aggregated usage. Texts
        are in the customer's language."""
        self.ensure_one()
        self = self._in_customer_lang()  # noqa: PLW0642
        plan = period.plan
        rounding = to_decimal(plan.currency_id.rounding)
        rated_lines = []
        for charge in charges.with_env(self.env):
            metric = charge.metric_id
            if charge.filter_ids:
                rated_lines += self._prepare_filter_lines(charge, quantities)
                continue
            quantity = quantities.get(metric.id, Decimal(0))
            amount, pricing = charge._rate(quantity)
            rated_lines.append(
                RatedLine(
                    key=charge.id,
                    product=charge.product_id,
                    title=metric.name,
                    unit=metric.unit_name or "",
                    quantity=quantity,
                    amount=amount,
                    pricing=pricing,
                    charge=charge,
                )
            )
        if base_price := self._base_price(period):
            rated_lines.append(
                self._prepare_fixed_fee_line(period, base_price, rounding)
            )
        return rated_lines

    def _in_customer_lang(self):
        """The subscription in its customer's language: invoice texts are
        built in it."""
        self.ensure_one()
        return self.with_context(lang=self.partner_id.lang or self.env.lang)

    def _prepare_filter_lines(self, charge, quantities):
        """The lines of a charge with filters: one per filter, its description
        naming its values, then the rest at the charge's own prices; each
        bucket aggregated and priced on its own."""
        metric = charge.metric_id
        lines = []
        for charge_filter in [*charge.filter_ids, None]:
            quantity = quantities.get(
                (metric.id, charge_filter.id if charge_filter else None), Decimal(0)
            )
            amount, pricing = charge._rate(quantity, prices=charge_filter)
            lines.append(
                RatedLine(
                    key=(charge.id, charge_filter.id) if charge_filter else charge.id,
                    product=charge.product_id,
                    title=f"{metric.name}, {charge_filter.display_name}"
                    if charge_filter
                    else self.env._("%(charge)s, other usage", charge=metric.name),
                    unit=metric.unit_name or "",
                    quantity=quantity,
                    amount=amount,
                    pricing=pricing,
                    charge=charge,
                    charge_filter=charge_filter,
                )
            )
        return lines

    def _base_price(self, period):
        """The fixed fee of ``period``: this subscription's own when it
        overrides the plan's."""
        self.ensure_one()
        if self.override_base_price:
            return to_decimal(self.base_price)
        return to_decimal(period.plan.base_price)

    def _prepare_fixed_fee_line(self, period, base_price, rounding):
        """The fixed fee, prorated for a short period."""
        amount, how = self._prorated(period, base_price, rounding)
        return RatedLine(
            key=FIXED_FEE,
            product=period.plan.product_id,
            title=self.env._("%(plan)s fixed fee", plan=period.plan.name),
            quantity=Decimal(1),
            amount=amount,
            pricing=how,
        )

    def _prorated(self, period, amount, rounding):
        """(``amount`` due for ``period`` rounded once, how it was computed):
        a period shorter than the plan's interval pays it by days, against
        the full period containing its start, unless the plan does not
        prorate. The fixed fee and the minimum commitment both go by it."""
        plan = period.plan
        days, full_days = periods.prorated_days(
            period.start,
            period.end,
            period.anchor,
            plan.interval_unit,
            plan.interval_count,
        )
        if days < full_days and plan.prorate_base_price:
            return (
                pricing.prorate(amount, days, full_days, rounding),
                self.env._(
                    "%(days)s of %(full_days)s days", days=days, full_days=full_days
                ),
            )
        return round_money(amount, rounding), ""

    def _period_text(self, period):
        """The period as the customer reads it: their language and date
        format, the last day inclusive."""
        env = self._in_customer_lang().env
        return env._(
            "%(start)s to %(end)s",
            start=format_date(env, period.start),
            end=format_date(env, period.end - timedelta(days=1)),
        )

    def _prepare_invoice_values(self, period, rated_lines):
        """The period's new invoice: the lines of each non-zero rated line.
        None when every amount is zero: a period with nothing to bill gets no
        invoice."""
        self.ensure_one()
        lines = [
            Command.create(values)
            for position, rated in enumerate(rated_lines)
            if rated.amount
            for values in self._prepare_invoice_line_values(period, rated, position)
        ]
        if not lines:
            return None
        values = {
            "move_type": "out_invoice",
            "partner_id": self.partner_id.id,
            "currency_id": period.plan.currency_id.id,
            "invoice_origin": self._in_customer_lang().env._(
                "%(service)s, %(plan)s (%(subscription)s)",
                service=self.service_id.name,
                plan=period.plan.name,
                subscription=self.external_ref,
            ),
            "invoice_user_id": self.service_id.salesperson_id.id,
            "fusion_subscription_id": self.id,
            "fusion_period_start": period.start,
            "fusion_period_end": period.end,
            "invoice_line_ids": lines,
        }
        if self.service_id.journal_id:
            values["journal_id"] = self.service_id.journal_id.id
        return values

    def _prepare_invoice_line_values(self, period, rated_line, position=0):
        """The invoice lines of ``rated_line`` (the ``position``-th of the
        period's rating), their subtotals summing exactly to its amount: a
        charge's usage as the charge breaks it down (quantity x unit price per
        tier, flat fee, packages: see ``_invoice_lines``), under a section
        naming the charge and period when they are several; anything else one
        unit at the amount with how it was computed in the description. An
        adjustment names the period it adjusts. Descriptions are in the
        customer's language."""
        self = self._in_customer_lang()  # noqa: PLW0642
        adjusted = rated_line.adjusted_period
        charge = rated_line.charge
        common = {
            "product_id": rated_line.product.id,
            "fusion_charge_id": charge.id if charge else False,
            "fusion_charge_filter_id": rated_line.charge_filter.id
            if rated_line.charge_filter
            else False,
            "fusion_is_fixed_fee": rated_line.key == FIXED_FEE,
            "fusion_is_minimum": rated_line.key == MINIMUM,
            "fusion_usage_quantity": float(rated_line.quantity),
            "fusion_adjusted_period_start": adjusted.start if adjusted else False,
            "sequence": LINE_SEQUENCE,
        }
        heading = f"{rated_line.title}, {self._period_text(adjusted or period)}"
        parts = None
        if charge and not adjusted:
            charge = charge.with_env(self.env)
            parts = charge._invoice_lines(
                rated_line.quantity, rated_line.amount, rated_line.charge_filter
            )
        if not parts:
            name = heading
            if rated_line.pricing:
                name += f"\n{rated_line.pricing}"
            return [
                {
                    **common,
                    "name": name,
                    "quantity": 1,
                    "price_unit": float(rated_line.amount),
                    "fusion_line_part": 0,
                }
            ]

        def part_values(part, name, **values):
            return {
                **common,
                "name": name,
                "quantity": float(part.quantity),
                "price_unit": float(part.price_unit),
                "fusion_line_part": part.part,
                **values,
            }

        def part_text(part):
            return charge._invoice_line_text(
                part, rated_line.quantity, rated_line.charge_filter
            )

        if len(parts) == 1:
            (part,) = parts
            return [part_values(part, f"{heading}\n{part_text(part)}")]
        sequence = SECTION_SEQUENCE + 100 * position
        section = {
            **common,
            "product_id": False,
            "display_type": "line_section",
            "name": heading,
            "quantity": 0,
            "price_unit": 0,
            "fusion_line_part": SECTION_PART,
            "sequence": sequence,
        }
        return [
            section,
            *(
                part_values(part, part_text(part), sequence=sequence + index)
                for index, part in enumerate(parts, start=1)
            ),
        ]

    def _prepare_adjustment_line(self, closed_period, charge, rated_lines, billed):
        """The line adjusting ``closed_period`` for ``charge``: the whole
        period re-rated (``rated_lines``: the charge's lines, one per filter
        bucket) minus what was ``billed`` for it already."""
        env = self._in_customer_lang().env
        rerated = sum((line.amount for line in rated_lines), Decimal(0))
        quantity = sum((line.quantity for line in rated_lines), Decimal(0))
        metric = charge.metric_id.with_env(env)
        currency = closed_period.plan.currency_id
        return RatedLine(
            key=(charge.id, closed_period.start),
            product=charge.product_id,
            title=env._("Adjustment of %(metric)s", metric=metric.name),
            unit=metric.unit_name or "",
            quantity=quantity,
            amount=rerated - billed,
            pricing=env._(
                "%(usage)s in the period bill %(rerated)s; %(billed)s were billed",
                usage=env._(
                    "%(quantity)s %(unit)s",
                    quantity=charge.with_env(env)._format_quantity(quantity),
                    unit=metric.unit_name or env._("units"),
                ),
                rerated=formatLang(env, float(rerated), currency_obj=currency),
                billed=formatLang(env, float(billed), currency_obj=currency),
            ),
            charge=charge,
            adjusted_period=closed_period,
        )

    def _rerate_from(self, day):
        """Have the closed periods from ``day`` on re-rated and adjusted."""
        for subscription in self:
            if not subscription.rerate_from or day < subscription.rerate_from:
                subscription.rerate_from = day

    def _plan_segments(self):
        """[(first day, plan, anchor)] of the plans the subscription has been
        billed on, oldest first (its plan history; the current plan from the
        start when it has none)."""
        self.ensure_one()
        history = self.plan_history_ids.sorted("date_from")
        if not history:
            return [(self.start_date, self.plan_id, self._period_anchor())]
        return [(row.date_from, row.plan_id, row.anchor_date) for row in history]

    def _closed_periods_since(self, days):
        """{subscription id: its closed periods ending after its day in
        ``days`` ({subscription id: day}), oldest first}, each with the plan
        in force at its start and that plan's anchor: those of their invoices
        (or credit notes), and the anchored periods that billed nothing. The
        invoices of all the subscriptions are read in one query."""
        if not self:
            return {}
        first_open = {}
        for subscription in self:
            rated = subscription._rated_periods()
            # A closed subscription has no open period: all of it is closed.
            first_open[subscription.id] = (
                rated[0].start if rated else subscription._period_start()
            )
        invoices = defaultdict(list)
        for invoice in self.env["account.move"].search_fetch(
            [
                ("fusion_subscription_id", "in", self.ids),
                ("move_type", "in", PERIOD_MOVE_TYPES),
                ("state", "!=", "cancel"),
                ("fusion_period_end", ">", min(days.values())),
                ("fusion_period_start", "<", max(first_open.values())),
            ],
            ["fusion_subscription_id", "fusion_period_start", "fusion_period_end"],
            order="fusion_period_start",
        ):
            subscription_id = invoice.fusion_subscription_id.id
            if (
                invoice.fusion_period_end > days[subscription_id]
                and invoice.fusion_period_start < first_open[subscription_id]
            ):
                invoices[subscription_id].append(invoice)

        def segment_at(segments, open_start, start):
            """(first day, plan, anchor, end) of the plan in force at start."""
            index = periods.in_force([segment[0] for segment in segments], start) or 0
            end = segments[index + 1][0] if index + 1 < len(segments) else open_start
            return (*segments[index], end)

        closed = {}
        for subscription in self:
            day, open_start = days[subscription.id], first_open[subscription.id]
            segments = subscription._plan_segments()
            found = []
            for invoice in invoices[subscription.id]:
                _first, plan, anchor, _end = segment_at(
                    segments, open_start, invoice.fusion_period_start
                )
                found.append(
                    BillingPeriod(
                        subscription,
                        plan,
                        invoice.fusion_period_start,
                        invoice.fusion_period_end,
                        anchor,
                    )
                )
            start = max(day, segments[0][0])
            while start < open_start:
                first, plan, anchor, segment_end = segment_at(
                    segments, open_start, start
                )
                full_start, full_end = periods.period_containing(
                    anchor, plan.interval_unit, plan.interval_count, start
                )
                # A plan change cuts the period it falls in.
                period_start = max(full_start, first)
                end = min(full_end, segment_end, open_start)
                if not any(p.start < end and start < p.end for p in found):
                    found.append(
                        BillingPeriod(subscription, plan, period_start, end, anchor)
                    )
                start = end
            closed[subscription.id] = sorted(found, key=lambda p: p.start)
        return closed

    def _billed_by_charge_and_period(self, open_periods):
        """{subscription id: {(charge id, period start): amount}} billed so
        far on each subscription's invoices, read in one query: each period's
        own charge lines plus the adjustments of it, those on the invoice of
        its open period in ``open_periods`` ({subscription id: period}) aside
        (rating rewrites them). What a credit note of a period carries counts
        negatively."""
        billed = {subscription.id: {} for subscription in self}
        if not self:
            return billed
        self.env["account.move.line"].flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT m.fusion_subscription_id,
                       l.fusion_charge_id,
                       COALESCE(l.fusion_adjusted_period_start, m.fusion_period_start),
                       SUM(CASE WHEN m.move_type = 'out_refund'
                                THEN -l.price_subtotal ELSE l.price_subtotal END)
                  FROM account_move_line l
                  JOIN account_move m ON m.id = l.move_id
                  JOIN unnest(%s::int[], %s::date[]) AS o(subscription_id, open_start)
                    ON o.subscription_id = m.fusion_subscription_id
                 WHERE m.fusion_subscription_id = ANY(%s)
                   AND m.move_type = ANY(%s)
                   AND m.state != 'cancel'
                   AND l.fusion_charge_id IS NOT NULL
                   AND NOT (m.fusion_period_start = o.open_start
                            AND l.fusion_adjusted_period_start IS NOT NULL)
              GROUP BY 1, 2, 3
                """,
                self.ids,
                [open_periods[subscription_id].start for subscription_id in self.ids],
                self.ids,
                list(PERIOD_MOVE_TYPES),
            )
        )
        for subscription_id, charge_id, start, amount in self.env.cr.fetchall():
            billed[subscription_id][charge_id, start] = to_decimal(amount)
        return billed

    def _update_period_invoice(self, period, invoice, rated_lines):
        """Bring the draft ``invoice`` in line with ``rated_lines``: each line
        (by rated key and line part: a tier's units, its fee) updated in
        place, lines of tiers no longer reached removed, new ones added; no
        new line for a zero amount, but a charge that bills nothing now keeps
        one line, at zero; untouched when nothing changed. The lines of a
        charge no longer in force (replaced by a custom price, its plan
        changed from the period's start) go; the minimum commitment's belongs
        to the period's close, adjustments of other periods stay. The period's
        end follows it (an end date, a plan change)."""
        self.ensure_one()
        existing = {
            (line._fusion_rated_key(), line.fusion_line_part): line
            for line in invoice.invoice_line_ids
            if line._fusion_rated_key()
        }
        commands = []
        kept = set()
        for position, rated in enumerate(rated_lines):
            lines_values = self._prepare_invoice_line_values(period, rated, position)
            parts = {values["fusion_line_part"] for values in lines_values}
            # Billing nothing now, a charge keeps one of its lines, at zero.
            spare = [
                line
                for (key, part), line in existing.items()
                if key == rated.key
                and part not in parts
                and line.display_type == "product"
                and not rated.amount
            ]
            for values in lines_values:
                line = existing.get((rated.key, values["fusion_line_part"]))
                if not line and spare:
                    line = spare.pop(0)
                if not line:
                    if rated.amount:
                        commands.append(Command.create(values))
                    continue
                kept.add(line)
                if self._line_differs(line, values):
                    commands.append(Command.update(line.id, values))
        commands += [
            Command.unlink(line.id)
            for (key, _part), line in existing.items()
            if line not in kept
            and key != MINIMUM
            and not line.fusion_adjusted_period_start
        ]
        values = {"invoice_line_ids": commands} if commands else {}
        if invoice.fusion_period_end != period.end:
            values["fusion_period_end"] = period.end
        if values:
            invoice.write(values)

    @api.model
    def _line_differs(self, line, values):
        return (
            line.fusion_line_part != values["fusion_line_part"]
            or line.sequence != values["sequence"]
            or line.product_id.id != values["product_id"]
            or line.name != values["name"]
            or line.quantity != values["quantity"]
            or line.price_unit != values["price_unit"]
            or line.fusion_usage_quantity != values["fusion_usage_quantity"]
        )

    def _close_period(self, invoice, customer_ref):
        """Close the open period (already rated a last time): advance the
        billing dates by the plan interval, anchored on the start date so
        periods never drift; post the invoice if the service says so and tell
        the app the invoice is final (its events name ``customer_ref``, as
        ``_customer_refs`` reads it)."""
        self.ensure_one()
        invoice = self._settle_period(self._rated_periods()[0], invoice)
        if invoice.state == "posted":
            # Posted before its period closed: what came after is adjusted on
            # the next invoices.
            self._rerate_from(invoice.fusion_period_start)
        elif not self.plan_change_date:
            # The invoice now final carries the adjustments rated so far.
            self.rerate_from = False
        if self.plan_change_date:
            # The period a plan change cut: the new plan's period goes on.
            self.write(
                {
                    "last_invoice_date": self.plan_change_date,
                    "plan_change_date": False,
                    "previous_plan_id": False,
                    "previous_anchor_date": False,
                }
            )
            self._finalize_period_invoice(invoice, customer_ref)
            return
        plan = self.plan_id
        period_end = self._period_end()
        values = {
            "last_invoice_date": period_end,
            "next_invoice_date": periods.next_boundary(
                self._period_anchor(),
                plan.interval_unit,
                plan.interval_count,
                period_end,
            ),
        }
        if period_end == self.end_date:
            # The last period: nothing is rated after it.
            values.update(next_invoice_date=False, state="closed")
        self.write(values)
        self._finalize_period_invoice(invoice, customer_ref)
        if self.state == "closed" and self.rerate_from:
            self._bill_final_adjustments(customer_ref)

    def _bill_final_adjustments(self, customer_ref):
        """A subscription closed with its last invoice posted before the
        period closed has no next invoice for the adjustments still due: they
        go on an invoice of their own, dated at the end (a credit note when
        negative), finalized at once; closed periods whose invoice is a draft
        are re-rated in place. Nothing accepted is dropped."""
        rating_model = self.env["fusion.billing.rating"]
        rating, in_place = rating_model._rate_final_adjustments(self)
        if rating.error:
            raise UserError(rating.error)
        invoices = rating_model._period_invoices([r.period for r in in_place])
        for closed in in_place:
            self._write_period_rating(closed, invoices[self.id, closed.period.start])
        if values := self._write_period_rating(rating, self.env["account.move"]):
            self._finalize_period_invoice(
                self.env["account.move"].create(values), customer_ref
            )
        self.rerate_from = False

    def _finalize_period_invoice(self, invoice, customer_ref):
        """The closed period's invoice is final: post it if the service says
        so and tell the app. One created by the close is announced here, after
        a negative one became a credit note: its first webhook says what it
        is."""
        if not invoice:
            return
        if invoice.state == "draft" and not invoice.invoice_line_ids:
            # A plan change from the period's start took its lines away: it
            # bills nothing, and an empty invoice cannot be posted.
            invoice.button_cancel()
        if invoice.state == "draft" and invoice.amount_total < 0:
            # Cancellations of closed periods outweigh what the period bills:
            # the customer is owed the difference, on a credit note.
            invoice.action_switch_move_type()
        # Once per invoice (the outbox skips a replay): announced already
        # when created before its close.
        self._queue_invoice_event("invoice.created", invoice, customer_ref)
        if invoice.state == "draft" and self.service_id.auto_post_invoices:
            invoice.action_post()
        self._queue_invoice_event("invoice.finalized", invoice, customer_ref)

    def _settle_period(self, period, invoice):
        """What a closing period owes beyond its usage: the minimum
        commitment's true-up, then its credits. Returns the invoice, created
        (announced by the close) when the minimum is all the period bills; a
        posted one is final.
        Their texts are in the customer's language."""
        if invoice.state == "posted":
            return invoice
        self = self._in_customer_lang()  # noqa: PLW0642
        rounding = to_decimal(period.plan.currency_id.rounding)
        if minimum := self._prepare_minimum_line(period, invoice, rounding):
            (values,) = self._prepare_invoice_line_values(period, minimum)
            if line := invoice.invoice_line_ids.filtered("fusion_is_minimum"):
                invoice.write({"invoice_line_ids": [Command.update(line.id, values)]})
            elif invoice and minimum.amount:
                invoice.write({"invoice_line_ids": [Command.create(values)]})
            elif minimum.amount:
                invoice = self.env["account.move"].create(
                    self._prepare_invoice_values(period, [minimum])
                )
        if invoice:
            self._apply_credits(period, invoice, rounding)
        return invoice

    def _prepare_minimum_line(self, period, invoice, rounding):
        """The "Minimum commitment" line: what the usage lines and fixed fee
        of ``invoice`` lack to reach the plan's minimum. None without one."""
        plan = period.plan
        if not plan.minimum_amount:
            return None
        minimum, prorated = self._prorated(
            period, to_decimal(plan.minimum_amount), rounding
        )
        billed = sum(
            (
                to_decimal(line.price_subtotal)
                for line in invoice.invoice_line_ids.filtered(
                    lambda line: line.display_type == "product"
                )
                # Adjustments bill earlier periods.
                if (line.fusion_charge_id and not line.fusion_adjusted_period_start)
                or line.fusion_is_fixed_fee
            ),
            Decimal(0),
        )
        currency = plan.currency_id.name
        return RatedLine(
            key=MINIMUM,
            product=plan.product_id,
            title=self.env._("Minimum commitment"),
            quantity=Decimal(1),
            amount=pricing.minimum_true_up(minimum, billed),
            pricing=self.env._(
                "minimum %(minimum)s %(currency)s%(prorated)s, billed %(billed)s "
                "%(currency)s",
                minimum=minimum,
                prorated=f" ({prorated})" if prorated else "",
                billed=round_money(billed, rounding),
                currency=currency,
            ),
        )

    def _apply_credits(self, period, invoice, rounding):
        """Reduce the untaxed total of the period's draft ``invoice`` by the
        subscription's credits unexpired on the period's last day, never
        below zero: one negative "Prepaid credits" line per set of taxes, in
        proportion to its base, and what each credit gave recorded against
        the invoice. Running it again gives the same lines and records."""
        previous = invoice.invoice_line_ids.filtered("fusion_is_credit")
        consumptions = self.env["fusion.billing.credit.consumption"].sudo()
        consumptions.search([("move_id", "=", invoice.id)]).unlink()
        bases = defaultdict(Decimal)
        for line in invoice.invoice_line_ids - previous:
            if line.display_type == "product":
                bases[line.tax_ids] += to_decimal(line.price_subtotal)
        last_day = period.end - timedelta(days=1)
        grants = self.credit_ids.filtered("remaining_amount")
        used = pricing.consume_credits(
            [grant._engine_grant() for grant in grants],
            sum(bases.values(), Decimal(0)),
            last_day,
        )
        spent = sum((amount for _credit, amount in used), Decimal(0))
        commands = [Command.unlink(line.id) for line in previous]
        name = self.env._(
            "Prepaid credits, %(period)s\n%(used)s",
            period=self._period_text(period),
            used=", ".join(
                f"{self.credit_ids.browse(credit_id).name}: {amount}"
                for credit_id, amount in used
            ),
        )
        shares = pricing.split_by_taxes(spent, bases, rounding) if spent else {}
        commands += [
            Command.create(
                {
                    "name": name,
                    "quantity": 1,
                    "price_unit": -float(share),
                    "tax_ids": [Command.set(taxes.ids)],
                    "fusion_is_credit": True,
                }
            )
            for taxes, share in shares.items()
        ]
        if commands:
            invoice.write({"invoice_line_ids": commands})
        consumptions.create(
            [
                {"credit_id": credit_id, "move_id": invoice.id, "amount": float(amount)}
                for credit_id, amount in used
            ]
        )

    def _customer_refs(self):
        """{subscription id: external reference of its customer, None without
        one}, read in one query for all the subscriptions (the webhooks of a
        rating batch name them). The customer is the one of the subscription's
        service and partner; a partner that is several customers of the
        service is named by the first of them in their ``_order`` (by
        reference within a service, as the database sorts them)."""
        refs = {}
        for customer in self.env["fusion.billing.customer"].search_fetch(
            [
                ("service_id", "in", self.service_id.ids),
                ("partner_id", "in", self.partner_id.ids),
            ],
            ["service_id", "partner_id", "external_ref"],
            order="external_ref",
        ):
            refs.setdefault(
                (customer.service_id.id, customer.partner_id.id),
                customer.external_ref or None,
            )
        return {
            subscription.id: refs.get(
                (subscription.service_id.id, subscription.partner_id.id)
            )
            for subscription in self
        }

    def _queue_invoice_event(self, event_type, invoice, customer_ref):
        self.env["fusion.billing.webhook.event"]._queue(
            self.service_id,
            event_type,
            self._invoice_event_data(invoice, customer_ref),
            dedupe_key=f"{event_type}:{invoice.id}",
        )

    def _invoice_event_data(self, invoice, customer_ref):
        """Webhook payload of an invoice event: amounts as exact decimal
        strings; ``customer_ref`` as ``_customer_refs`` reads it."""
        self.ensure_one()
        currency = invoice.currency_id

        def money(value):
            return str(round_money(to_decimal(value), currency.rounding))

        return {
            "invoice": {
                "id": invoice.id,
                "type": "credit_note"
                if invoice.move_type == "out_refund"
                else "invoice",
                "number": invoice.name if invoice.state == "posted" else None,
                "state": invoice.state,
                "currency": currency.name,
                "amount_untaxed": money(invoice.amount_untaxed),
                "amount_tax": money(invoice.amount_tax),
                "amount_total": money(invoice.amount_total),
                "lines": [
                    {
                        "charge": line.fusion_charge_id.metric_id.code or None,
                        "filter": line.fusion_charge_filter_id.display_name or None,
                        "fixed_fee": line.fusion_is_fixed_fee,
                        "minimum_commitment": line.fusion_is_minimum,
                        "prepaid_credits": line.fusion_is_credit,
                        "usage_quantity": str(to_decimal(line.fusion_usage_quantity)),
                        "amount": money(sum(lines.mapped("price_subtotal"))),
                    }
                    for line, lines in self._invoice_event_lines(invoice)
                ],
            },
            "subscription": self.external_ref,
            "customer": customer_ref,
            "period_start": invoice.fusion_period_start.isoformat(),
            "period_end": invoice.fusion_period_end.isoformat(),
        }

    @api.model
    def _invoice_event_lines(self, invoice):
        """The lines an invoice event reports, [(first line, lines)]: one per
        rated line (a charge's lines together, as rating priced them) and per
        prepaid credits line, in invoice order."""
        grouped = {}
        for line in invoice.invoice_line_ids:
            if key := line._fusion_rated_key():
                grouped.setdefault(key, line.browse())
                grouped[key] |= line
            elif line.fusion_is_credit:
                grouped[line] = line
        return [(lines[0], lines) for lines in grouped.values()]

    def _usage_summary_html(self, rated_lines):
        currency = self.currency_id
        rows = Markup().join(
            Markup(
                "<tr><td>%s</td><td class='text-end'>%s</td><td>%s</td>"
                "<td class='text-end'>%s</td></tr>"
            )
            % (
                line.caption,
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
        for subscription in subscriptions.filtered(lambda s: s.state == "active"):
            subscription._check_customer()
        subscriptions._schedule_first_period()
        return subscriptions

    def write(self, vals):
        if not PLAN_CHANGE_FIELDS.isdisjoint(vals):
            self._check_plan_change(vals)
        if "state" in vals:
            self._check_state_change(vals)
        result = super().write(vals)
        if vals.get("state") == "active":
            self._schedule_first_period()
        return result

    def _check_state_change(self, vals):
        """The one guard of state changes, whichever way they are written
        (buttons, the rating cron, RPC, imports): draft -> active for a customer
        of the service, draft -> closed, and active -> closed only with the
        last period billed (the rating cron does it once the end date and its
        grace have passed; Close sets the end date)."""
        state = vals["state"]
        for subscription in self.filtered(lambda s: s.state != state):
            change = (subscription.state, state)
            if change == ("draft", "active"):
                subscription._check_customer(vals.get("partner_id"))
            elif change == ("active", "closed"):
                end_date = vals.get("end_date", subscription.end_date)
                billed_until = vals.get(
                    "last_invoice_date", subscription.last_invoice_date
                )
                if not end_date or fields.Date.to_date(billed_until) != (
                    fields.Date.to_date(end_date)
                ):
                    raise UserError(
                        self.env._(
                            "Subscription %(subscription)s still has a period to "
                            "bill: use Close, which sets its end date; it is closed "
                            "once its last period is invoiced.",
                            subscription=subscription.display_name,
                        )
                    )
            elif change != ("draft", "closed"):
                raise UserError(
                    self.env._(
                        "Subscription %(subscription)s cannot go from %(old)s to "
                        "%(new)s.",
                        subscription=subscription.display_name,
                        old=subscription.state,
                        new=state,
                    )
                )

    def _check_plan_change(self, vals):
        """The plan, customer and service of an active subscription change
        only through Change Plan, which cuts the open period so that every
        invoice is rated with one plan."""
        allowed = {"plan_id"} if self.env.context.get(CHANGING_PLAN) else set()
        for subscription in self.filtered(lambda s: s.state == "active"):
            changed = [
                name
                for name in PLAN_CHANGE_FIELDS - allowed
                if name in vals and subscription[name].id != vals[name]
            ]
            if changed:
                raise UserError(
                    self.env._(
                        "The plan, customer and service of active subscription "
                        "%(subscription)s cannot be written directly: use Change "
                        "Plan, which bills the usage before the change on the old "
                        "plan. (To move it to another customer or service, close it "
                        "and subscribe anew.)",
                        subscription=subscription.display_name,
                    )
                )

    def change_plan(self, plan, effective_date=None):
        """Move the subscription to ``plan`` from ``effective_date`` (default:
        today, UTC), a day of the open period.

        The open period is cut there: its part before the change stays on the
        old plan (a short period, closed after the grace), the part after it
        is a short period of the new plan up to the original next invoice date,
        and later periods keep the anchor. A plan billed at another interval
        starts its periods on the effective date instead.
        """
        self.ensure_one()
        if not self.env.su and not self.env.user.has_group(
            "fusion_billing.group_fusion_billing_manager"
        ):
            raise AccessError(self.env._("Only billing managers change plans."))
        plan = self.env["fusion.billing.plan"].browse(int(plan))
        try:
            effective_date = fields.Date.to_date(effective_date) or utc_now().date()
        except ValueError:
            raise UserError(
                self.env._("The effective date must be a date, e.g. 2027-01-31.")
            ) from None
        start, end = self._period_start(), self._period_end()
        if self.state != "active":
            raise UserError(self.env._("Only an active subscription changes plan."))
        if plan.service_id != self.service_id or plan == self.plan_id:
            raise UserError(
                self.env._(
                    "Choose another plan of %(service)s.",
                    service=self.service_id.display_name,
                )
            )
        if self.plan_change_date:
            raise UserError(
                self.env._(
                    "The plan already changed on %(date)s: change it again once the "
                    "period before that change has closed.",
                    date=self.plan_change_date,
                )
            )
        if not start <= effective_date < end:
            raise UserError(
                self.env._(
                    "The effective date must lie in the open period, from %(start)s "
                    "to %(last)s.",
                    start=start,
                    last=end - timedelta(days=1),
                )
            )
        old_plan = self.plan_id
        values = {"plan_id": plan.id}
        if effective_date > start:
            values.update(
                plan_change_date=effective_date,
                previous_plan_id=old_plan.id,
                previous_anchor_date=self._period_anchor(),
            )
        if (plan.interval_unit, plan.interval_count) != (
            old_plan.interval_unit,
            old_plan.interval_count,
        ):
            values.update(
                anchor_date=effective_date,
                next_invoice_date=periods.add_interval(
                    effective_date, plan.interval_unit, plan.interval_count
                ),
            )
        self.with_context(**{CHANGING_PLAN: True}).write(values)
        self.env["fusion.billing.plan.history"].sudo()._record(self, effective_date)
        self.message_post(
            body=self.env._(
                "Plan changed from %(old)s to %(new)s on %(date)s.",
                old=old_plan.display_name,
                new=plan.display_name,
                date=effective_date,
            )
        )
        return True

    def _check_customer(self, partner_id=None):
        """Only a partner (or its commercial partner) that is a customer of
        the service can be subscribed: usage names its customer."""
        self.ensure_one()
        partner = (
            self.env["res.partner"].browse(partner_id)
            if partner_id
            else self.partner_id
        )
        customers = (
            self.env["fusion.billing.customer"]
            .sudo()
            .search_count(
                [
                    ("service_id", "=", self.service_id.id),
                    ("partner_id", "in", (partner | partner.commercial_partner_id).ids),
                ],
                limit=1,
            )
        )
        if not customers:
            raise UserError(
                self.env._(
                    "%(partner)s is not a customer of %(service)s: link the "
                    "customer to the service before activating the subscription.",
                    partner=partner.display_name,
                    service=self.service_id.display_name,
                )
            )

    def _schedule_first_period(self):
        """An active subscription is rated up to its next invoice date: one made
        active without it (by the API, an import) gets its first period's end.
        Its plan history starts with the plan it is activated on."""
        for subscription in self.filtered(
            lambda s: s.state == "active" and not s.next_invoice_date
        ):
            subscription.next_invoice_date = subscription._first_period_end()
        for subscription in self.filtered(
            lambda s: s.state == "active" and not s.plan_history_ids
        ):
            self.env["fusion.billing.plan.history"].sudo()._record(
                subscription, subscription.start_date
            )

    def action_activate(self):
        if self.filtered(lambda s: s.state != "draft"):
            raise UserError(self.env._("Only draft subscriptions can be activated."))
        self.write({"state": "active"})
        return True

    def action_close(self):
        """End the subscriptions: a draft one at once; an active one bills
        its usage up to its end date (tomorrow, UTC, when none is set, so that
        today's usage is billed) and is closed when that last period is."""
        self.filtered(lambda s: s.state == "draft").write({"state": "closed"})
        tomorrow = utc_now().date() + timedelta(days=1)
        self.filtered(lambda s: s.state == "active" and not s.end_date).write(
            {"end_date": tomorrow}
        )
        return True

    def action_rate_now(self):
        """Rate the open period now, as the rating cron does (its draft invoice
        updated, a period that is over closed), instead of waiting for the
        next run."""
        self.check_access("write")
        rateable = self.filtered(lambda s: s.state == "active" and s.next_invoice_date)
        if not rateable:
            raise UserError(self.env._("Only active subscriptions are rated."))
        before = {s.id: s.rating_date for s in rateable}
        self.env["fusion.billing.rating"].sudo()._rate_subscriptions(
            subscription_ids=rateable.ids
        )
        rateable.invalidate_recordset()
        waiting = rateable.filtered(lambda s: s.rating_date == before[s.id])
        failed = rateable.filtered("rating_error") - waiting
        if waiting:
            message = self.env._(
                "The scheduled rating is rating %(subscriptions)s right now: "
                "its result shows in a moment.",
                subscriptions=", ".join(waiting.mapped("display_name")),
            )
            kind = "warning"
        elif failed:
            message = self.env._(
                "Rating failed: %(error)s", error=failed[0].rating_error
            )
            kind = "danger"
        else:
            message = self.env._("Rated: the draft invoice shows the usage so far.")
            kind = "success"
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "message": message,
                "type": kind,
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

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

    def _daily_usage(self, days):
        """Each charged metric's usage per UTC day of ``days``, aggregated as
        rating aggregates a period (its own query, each day a period):
        {(subscription id, day): {metric id: Decimal}}, in one query."""
        day_periods = [
            BillingPeriod(
                subscription, subscription.plan_id, day, day + timedelta(1), day
            )
            for subscription in self
            for day in days
        ]
        errors = {}
        quantities = self.env["fusion.billing.rating"]._aggregate(day_periods, errors)
        return {
            (period.subscription.id, period.start): quantities.get(index, {})
            for index, period in enumerate(day_periods)
        }

    def _portal_usage(self, chart_days=()):
        """What the customer portal shows of each subscription, by id: the
        open period (last day inclusive), per charge its usage and amount as
        the rating would bill them now, the estimate and, over ``chart_days``,
        a daily usage chart per charged metric."""
        ratings = self._open_period_rating()
        daily = self._daily_usage(chart_days) if chart_days else {}
        usage = {}
        for subscription in self:
            rating = ratings.get(subscription.id)
            lines = rating.lines if rating else ()
            usage[subscription.id] = {
                "period": (rating.period.start, rating.period.end - timedelta(1))
                if rating
                else None,
                "lines": [
                    {
                        "title": line.caption,
                        "metric": line.charge.metric_id if line.charge else None,
                        "quantity": f"{line.quantity.normalize():,f}",
                        "pricing": line.pricing,
                        "amount": float(line.amount),
                    }
                    for line in lines
                ],
                "total": float(rating.amount) if rating else 0.0,
                "error": rating.error if rating else None,
                "charts": [
                    (
                        metric,
                        charts.bar_chart(
                            chart_days,
                            {
                                day: daily[subscription.id, day].get(
                                    metric.id, Decimal(0)
                                )
                                for day in chart_days
                            },
                        ),
                    )
                    for metric in subscription.plan_id.charge_ids.metric_id
                ]
                if chart_days
                else [],
            }
        return usage

    @api.model
    def _usage_summary(self, service, external_ref):
        """The body of ``GET /usage/summary`` for ``service``'s subscription
        ``external_ref``, None when the service has none such: the open period
        as ``_open_period_rating`` prices it, what the rating bills now."""
        subscription = self.search_fetch(
            [("service_id", "=", service.id), ("external_ref", "=", external_ref)],
            None,
            limit=1,
            order="id",
        )
        if not subscription:
            return None
        # The line titles need the customer's language, not the partner's
        # sixty other columns.
        subscription.partner_id.fetch(["lang"])
        rating = subscription._open_period_rating().get(subscription.id)
        if rating and rating.error:
            raise UserError(rating.error)
        currency = subscription.currency_id
        base_price = round_money(Decimal(0), to_decimal(currency.rounding))
        lines = []
        for line in rating.lines if rating else ():
            if line.key == FIXED_FEE:
                base_price = line.amount
            elif line.charge and (not line.charge_filter or line.quantity):
                lines.append(
                    summary.SummaryLine(
                        metric=line.charge.metric_id.code,
                        charge_model=line.charge.charge_model,
                        quantity=line.quantity,
                        amount=line.amount,
                        filter={
                            "property": line.charge_filter.property_name,
                            "values": pricing.parse_values(line.charge_filter.values),
                        }
                        if line.charge_filter
                        else None,
                    )
                )
        return summary.build_summary(
            subscription=subscription.external_ref,
            customer=subscription._customer_refs()[subscription.id],
            plan=subscription.plan_id.code,
            currency=currency.name,
            period=(rating.period.start, rating.period.end) if rating else None,
            lines=lines,
            base_price=base_price,
            total=rating.amount if rating else base_price,
            as_of=fields.Datetime.now(),
        )
