# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import logging
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from decimal import Decimal

from odoo import api, models, modules
from odoo.tools import SQL

from ..core import money, periods

_logger = logging.getLogger(__name__)

# Subscriptions claimed, rated and committed together by the rating cron.
RATING_BATCH_SIZE = 200
FIXED_FEE = "fixed_fee"
MINIMUM = "minimum"
# The rating cycle a run stopped by the cron's time limit left unfinished.
UNFINISHED_CYCLE_PARAM = "fusion_billing.rating_cycle_unfinished"
RATEABLE = SQL("state = 'active' AND next_invoice_date IS NOT NULL")


@dataclass(frozen=True)
class BillingPeriod:
    """The half-open window [start, end) of a subscription, rated with one
    plan, whose interval series starts on ``anchor``."""

    subscription: models.BaseModel
    plan: models.BaseModel
    start: date
    end: date
    anchor: date


@dataclass(frozen=True)
class RatedLine:
    """One invoice line as rating computed it: a charge's usage (or one of its
    filters' buckets), the fixed fee, or the minimum commitment's true-up."""

    # the charge id, (charge id, filter id) for a filter, FIXED_FEE, MINIMUM,
    # or (charge id, adjusted period start) for an adjustment
    key: object
    product: models.BaseModel
    title: str
    quantity: Decimal
    amount: Decimal
    pricing: str = ""
    # the charge in force (the plan's or the subscription's own) of usage lines
    charge: models.BaseModel | None = None
    charge_filter: models.BaseModel | None = None
    adjusted_period: "BillingPeriod | None" = None
    # the unit of the charge's metric
    unit: str = ""

    @property
    def caption(self):
        """The title with the unit the quantity is in."""
        return f"{self.title} ({self.unit})" if self.unit else self.title


@dataclass(frozen=True)
class PeriodRating:
    """What rating bills for one period right now, or why it cannot say."""

    period: BillingPeriod
    lines: tuple[RatedLine, ...] = ()
    error: str | None = None
    # A closed period whose draft invoice is re-rated in place.
    in_place: bool = False

    @property
    def amount(self):
        return sum((line.amount for line in self.lines), Decimal(0))


def utc_now():
    return datetime.now(timezone.utc)


class FusionBillingRating(models.AbstractModel):
    """The rating run: claims subscriptions, aggregates their usage in SQL,
    prices it with the engine and writes their invoices through the
    subscriptions' ``_prepare_*`` hooks."""

    _name = "fusion.billing.rating"
    _description = "Usage Rating"

    # ------------------------------------------------------------------
    # Rating without writing: the cron, the form and the usage summary
    # ------------------------------------------------------------------

    @api.model
    def _rate_periods(self, billing_periods):
        """Rate each BillingPeriod as the cron would now, writing nothing.

        Returns one PeriodRating per period, in order. A period that cannot be
        rated (an unknown aggregation or charge model, a charge still being
        configured) carries its error instead of lines; the others are rated
        regardless.
        """
        closed = self._closed_periods_to_rerate(billing_periods)
        rated_periods = billing_periods + closed
        period_charges = self._period_charges(rated_periods)
        errors = {}
        quantities = self._aggregate(rated_periods, errors, period_charges)
        ratings = []
        for index, period in enumerate(rated_periods):
            if index in errors:
                ratings.append(PeriodRating(period, error=errors[index]))
                continue
            subscription = period.subscription
            try:
                lines = subscription._prepare_rated_lines(
                    period, period_charges[index], quantities.get(index, {})
                )
            except Exception as error:  # priced on its own: never breaks the rest
                _logger.info(
                    "Rating subscription %s failed: %s", subscription.id, error
                )
                ratings.append(PeriodRating(period, error=str(error) or repr(error)))
                continue
            ratings.append(PeriodRating(period, lines=tuple(lines)))
        return self._with_adjustments(
            ratings[: len(billing_periods)], ratings[len(billing_periods) :]
        )

    @api.model
    def _period_charges(self, billing_periods):
        """The charges rating each of ``billing_periods``, in a list aligned
        with them, read in one query: the period's plan's, each replaced by
        its subscription's own charge on the same metric when it has one (own
        charges of another plan, before a plan change, no longer apply)."""
        charges = self.env["fusion.billing.charge"].search_fetch(
            [
                ("plan_id", "in", list({period.plan.id for period in billing_periods})),
                "|",
                ("subscription_id", "=", False),
                (
                    "subscription_id",
                    "in",
                    list({period.subscription.id for period in billing_periods}),
                ),
            ],
            None,
        )
        plan_charges = defaultdict(list)
        own = {}
        for charge in charges:
            if charge.subscription_id:
                own[charge.subscription_id, charge.plan_id, charge.metric_id] = charge
            else:
                plan_charges[charge.plan_id].append(charge)
        # Each period's charges prefetch with all of them: their filters and
        # tiers are read once for every period, not once per plan.
        return [
            charges.browse(
                own.get((period.subscription, period.plan, charge.metric_id), charge).id
                for charge in plan_charges[period.plan]
            ).with_prefetch(charges._prefetch_ids)
            for period in billing_periods
        ]

    @api.model
    def _closed_periods_to_rerate(self, billing_periods):
        """The closed periods of the subscriptions whose open period is among
        ``billing_periods`` that may bill differently than invoiced (late
        usage, cancellations, an invoice posted before its period closed),
        found for all of them together."""
        rerated = [
            period
            for period in billing_periods
            if period.subscription.rerate_from
            and period == period.subscription._open_period()
        ]
        if not rerated:
            return []
        subscriptions = self.env["fusion.billing.subscription"].union(
            *(period.subscription for period in rerated)
        )
        closed = subscriptions._closed_periods_since(
            {
                subscription.id: subscription.rerate_from
                for subscription in subscriptions
            }
        )
        return [
            closed_period
            for period in rerated
            for closed_period in closed[period.subscription.id]
        ]

    @api.model
    def _with_adjustments(self, ratings, closed_ratings):
        """Add to each open period's rating the adjustments of the closed
        periods re-rated with it (``_adjust``); the closed periods re-rated in
        place follow the others."""
        if not closed_ratings:
            return ratings
        by_subscription = defaultdict(list)
        for rating in closed_ratings:
            by_subscription[rating.period.subscription].append(rating)
        adjusting = {}
        for index, rating in enumerate(ratings):
            subscription = rating.period.subscription
            closed = by_subscription.pop(subscription, None)
            if (
                closed
                and not rating.error
                and rating.period == subscription._open_period()
            ):
                adjusting[index] = (rating, closed)
        result = list(ratings)
        in_place = []
        for index, (adjusted, drafts) in zip(
            adjusting, self._adjust(list(adjusting.values())), strict=True
        ):
            result[index] = adjusted
            in_place += drafts
        return result + in_place

    @api.model
    def _adjust(self, adjusting):
        """For each (rating, the closed ratings of its subscription) of
        ``adjusting``: (``rating`` with the adjustments of the closed ratings
        added, the closed ratings to write in place), in order. The closed
        periods' invoices and what was billed are read once for all.

        Per charge, the whole closed period re-rated minus what was billed
        for it already (its line and earlier adjustments). A closed period
        whose invoice is still a draft is re-rated in place instead. The
        rating is an error when a closed period cannot be rated."""
        if not adjusting:
            return []
        invoices = self._period_invoices(
            [
                closed.period
                for _rating, closed_ratings in adjusting
                for closed in closed_ratings
            ]
        )
        subscriptions = self.env["fusion.billing.subscription"].union(
            *(rating.period.subscription for rating, _closed in adjusting)
        )
        billed_by_subscription = subscriptions._billed_by_charge_and_period(
            {
                rating.period.subscription.id: rating.period
                for rating, _closed in adjusting
            }
        )
        results = []
        for rating, closed_ratings in adjusting:
            subscription = rating.period.subscription
            billed = billed_by_subscription[subscription.id]
            adjustments, in_place, failures = [], [], []
            for closed_rating in closed_ratings:
                if closed_rating.error:
                    failures.append(closed_rating.error)
                    continue
                start = closed_rating.period.start
                invoice = invoices.get((subscription.id, start))
                if invoice and invoice.state == "draft":
                    in_place.append(replace(closed_rating, in_place=True))
                    continue
                by_charge = defaultdict(list)
                for line in closed_rating.lines:
                    if line.charge:
                        by_charge[line.charge].append(line)
                # Zero too: an adjustment already on the draft follows it.
                adjustments.extend(
                    subscription._prepare_adjustment_line(
                        closed_rating.period,
                        charge,
                        lines,
                        billed.get((charge.id, start), Decimal(0)),
                    )
                    for charge, lines in by_charge.items()
                )
            if failures:
                results.append(
                    (PeriodRating(rating.period, error="; ".join(failures)), [])
                )
            else:
                results.append(
                    (replace(rating, lines=rating.lines + tuple(adjustments)), in_place)
                )
        return results

    @api.model
    def _rate_final_adjustments(self, subscription):
        """What ``subscription``, closed with its last invoice posted before
        its period closed, still owes for its closed periods (usage and
        cancellations accepted after that posting, late usage): (the rating
        of a settlement period ``[end, end)`` carrying the adjustments, which
        have no next invoice to go on, the closed ratings to write in
        place)."""
        closed = subscription._closed_periods_since(
            {subscription.id: subscription.rerate_from}
        )[subscription.id]
        end = subscription.last_invoice_date
        settlement = BillingPeriod(
            subscription, subscription.plan_id, end, end, subscription._period_anchor()
        )
        return self._adjust([(PeriodRating(settlement), self._rate_periods(closed))])[0]

    @api.model
    def _aggregate(self, billing_periods, errors, period_charges=None):
        """Aggregate the usage of each period's charged metrics, in one query
        (``period_charges``: the ``_period_charges`` of the periods, when the
        caller has them).

        Returns {period index: {metric id: Decimal}}; a metric without events
        in the window is absent (its quantity is 0). Cancelled events are
        never rated. Periods charging a metric
        whose aggregation cannot be computed land in ``errors`` (by index).
        A charge with filters also gets each bucket's own aggregate, under
        (metric id, filter id) and (metric id, None) for the rest.

        Each metric contributes its own aggregate (``_aggregation_sql``); the
        metrics sharing one are aggregated by one branch of a UNION ALL, whose
        (period, metric, window) rows come in as arrays. The branch's WHERE
        clause (the batch's subscriptions, metrics and outer window) lets
        PostgreSQL collect the events with one bitmap scan of the index
        (subscription_id, metric_id, timestamp) and read each heap page once.
        A charge with filters has a branch of its own, whose grouping sets
        give the metric's total and each bucket's aggregate in the same pass.
        """
        if period_charges is None:
            period_charges = self._period_charges(billing_periods)
        expressions, broken = {}, {}
        for metric in (
            self.env["fusion.billing.charge"].union(*period_charges).metric_id
        ):
            try:
                expressions[metric] = metric._aggregation_sql()
            except Exception as error:  # an unknown aggregation bills nothing
                broken[metric] = str(error)
        branches = defaultdict(lambda: ([], [], [], [], []))
        buckets = {}
        for index, (period, charges) in enumerate(
            zip(billing_periods, period_charges, strict=True)
        ):
            metrics = charges.metric_id
            if failures := [broken[metric] for metric in metrics if metric in broken]:
                errors[index] = "; ".join(failures)
                continue
            start, end = (
                moment.replace(tzinfo=None)
                for moment in periods.billing_window(period.start, None, period.end)
            )
            for charge in charges:
                metric = charge.metric_id
                if charge.filter_ids and charge.id not in buckets:
                    buckets[charge.id] = charge._filter_bucket_sql()
                columns = branches[
                    expressions[metric], charge.id if charge.filter_ids else None
                ]
                for column, value in zip(
                    columns,
                    (index, period.subscription.id, metric.id, start, end),
                    strict=True,
                ):
                    column.append(value)
        if not branches:
            return {}
        self.env["fusion.billing.usage.event"].flush_model()
        self.env["fusion.billing.metric"].flush_model()
        branch_queries = []
        for (expression, filtered_charge), columns in branches.items():
            keys, subscription_ids, metric_ids, starts, ends = columns
            bucket_columns, bucket_join, group_by = self._bucket_sql(
                buckets.get(filtered_charge)
            )
            branch_queries.append(
                SQL(
                    """
                SELECT w.key, w.metric_id, (%s)::text, %s
                  FROM unnest(%s::int[], %s::int[], %s::int[],
                              %s::timestamp[], %s::timestamp[])
                       AS w(key, subscription_id, metric_id, date_from, date_to)
                  JOIN fusion_billing_usage_event e
                    ON e.subscription_id = w.subscription_id
                   AND e.metric_id = w.metric_id
                   AND e.timestamp >= w.date_from
                   AND e.timestamp < w.date_to
                   %s
                 WHERE e.subscription_id = ANY(%s::int[])
                   AND e.cancelled IS NOT TRUE
                   AND e.metric_id = ANY(%s::int[])
                   AND e.timestamp >= %s
                   AND e.timestamp < %s
              GROUP BY %s
                    """,
                    expression,
                    bucket_columns,
                    keys,
                    subscription_ids,
                    metric_ids,
                    starts,
                    ends,
                    bucket_join,
                    sorted(set(subscription_ids)),
                    sorted(set(metric_ids)),
                    min(starts),
                    max(ends),
                    group_by,
                )
            )
        query = SQL(" UNION ALL ").join(branch_queries)
        self.env.cr.execute(query)
        quantities = defaultdict(dict)
        for key, metric_id, quantity, filter_id, bucket in self.env.cr.fetchall():
            quantities[key][(metric_id, filter_id) if bucket else metric_id] = (
                money.bounded_quantity(quantity or 0)
            )
        return quantities

    @api.model
    def _bucket_sql(self, bucket):
        """The (selected bucket columns, join, GROUP BY) of a branch whose
        charge's ``bucket`` is the SQL of the filter an event ``e`` falls in
        (None: a charge without filters)."""
        if bucket is None:
            return SQL("NULL::int, FALSE"), SQL(), SQL("w.key, w.metric_id")
        return (
            SQL("b.filter_id, GROUPING(b.filter_id) = 0"),
            SQL("CROSS JOIN LATERAL (SELECT %s) AS b(filter_id)", bucket),
            SQL(
                "GROUPING SETS ((w.key, w.metric_id), "
                "(w.key, w.metric_id, b.filter_id))"
            ),
        )

    # ------------------------------------------------------------------
    # The cron
    # ------------------------------------------------------------------

    @api.model
    def _cron_rate_usage(self, now=None, batch_size=RATING_BATCH_SIZE):
        """Rate every active subscription once, batch by batch, each company's
        subscriptions in that company (the cron's user may belong to one)."""
        self.sudo()._rate_subscriptions(now=now, batch_size=batch_size)

    @api.model
    def _rate_subscriptions(
        self, subscription_ids=None, now=None, batch_size=RATING_BATCH_SIZE
    ):
        """Rate the open period of the given (default: every active)
        subscriptions and close the periods that are over at ``now`` (an aware
        UTC datetime).

        Batches are claimed with SKIP LOCKED, so several workers share the
        book, and committed one by one. A whole-book run works through a rating
        cycle: stopped by the cron time limit, the next run resumes with the
        subscriptions the cycle has not rated yet, and every subscription
        active at that time (new ones too) is rated before a new cycle starts.
        """
        now = now or utc_now()
        cycle = None if subscription_ids is not None else self._rating_cycle()
        todo = None if subscription_ids is None else set(subscription_ids)
        while True:
            self._rating_begin_batch()
            batch = self._claim_rating_batch(batch_size, cycle, todo)
            if not batch:
                if cycle:
                    self.env["ir.config_parameter"].set_param(
                        UNFINISHED_CYCLE_PARAM, False
                    )
                    self._rating_commit_progress(0, 0)
                return
            self._rate_batch(batch, now, cycle)
            if todo is not None:
                todo -= set(batch.ids)
            remaining = self._rating_due_count(cycle, todo)
            if self._rating_commit_progress(len(batch), remaining) <= 0:
                return

    @api.model
    def _rating_in_test(self):
        """Under tests the work happens in the test's transaction: nothing is
        committed, and its isolation level stays."""
        return bool(modules.module.current_test)

    @api.model
    def _rating_begin_batch(self):
        """Start the batch in a transaction of its own, at READ COMMITTED.

        Closing a period must bill every event the API accepted for it. The
        claim locks the batch's subscriptions (FOR UPDATE), skipping those
        whose events are being inserted (the insert's foreign key check holds a
        KEY SHARE lock on the subscription until it commits). At READ
        COMMITTED, the aggregation after the claim sees every event committed
        before the lock, where Odoo's REPEATABLE READ would still read the
        snapshot of the transaction's first query. An insert arriving after
        the lock waits for the batch to commit, then fails to serialize and
        its request is retried against the closed period.
        """
        if self._rating_in_test():
            self.env.flush_all()
            return
        self.env["ir.cron"]._commit_progress()
        self.env.cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")

    @api.model
    def _rating_commit_progress(self, processed, remaining):
        """Commit the finished batch and report progress to the cron.

        Returns the cron's remaining time.
        """
        if self._rating_in_test():
            self.env.flush_all()
            return float("inf")
        return self.env["ir.cron"]._commit_progress(processed, remaining=remaining)

    @api.model
    def _rating_cycle(self):
        """The rating cycle to work on: the unfinished one, else a new one.

        Workers starting together join one cycle: each decides under a lock,
        in a transaction of its own at READ COMMITTED (the next batch commits
        it), and so sees the cycle an earlier one started, which an older
        snapshot (or the parameters' cache) would hide, and then start another
        or break the parameter's unique key."""
        self._rating_begin_batch()
        self.env.cr.execute(
            SQL("SELECT pg_advisory_xact_lock(hashtext(%s))", UNFINISHED_CYCLE_PARAM)
        )
        parameters = self.env["ir.config_parameter"]
        unfinished = parameters.search([("key", "=", UNFINISHED_CYCLE_PARAM)]).value
        if unfinished:
            return int(unfinished)
        self.env["fusion.billing.subscription"].flush_model(["rating_cycle"])
        self.env.cr.execute(
            "SELECT COALESCE(MAX(rating_cycle), 0) + 1 FROM fusion_billing_subscription"
        )
        cycle = self.env.cr.fetchone()[0]
        parameters.set_param(UNFINISHED_CYCLE_PARAM, str(cycle))
        return cycle

    @api.model
    def _rating_scope(self, cycle, todo):
        conditions = [RATEABLE]
        if cycle:
            conditions.append(SQL("COALESCE(rating_cycle, 0) < %s", cycle))
        if todo is not None:
            conditions.append(SQL("id = ANY(%s)", sorted(todo)))
        return SQL(" AND ").join(conditions)

    @api.model
    def _rating_due_count(self, cycle, todo):
        self.env["fusion.billing.subscription"].flush_model()
        self.env.cr.execute(
            SQL(
                "SELECT COUNT(*) FROM fusion_billing_subscription WHERE %s",
                self._rating_scope(cycle, todo),
            )
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _claim_rating_batch(self, batch_size, cycle, todo):
        """Lock up to ``batch_size`` subscriptions still to rate, skipping
        those another worker (or an insert of their usage) holds."""
        if todo is not None and not todo:
            return self.env["fusion.billing.subscription"]
        self.env["fusion.billing.subscription"].flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT id FROM fusion_billing_subscription
                 WHERE %s
                 ORDER BY id
                 LIMIT %s
                   FOR UPDATE SKIP LOCKED
                """,
                self._rating_scope(cycle, todo),
                batch_size,
            )
        )
        return self.env["fusion.billing.subscription"].browse(
            row[0] for row in self.env.cr.fetchall()
        )

    @api.model
    def _rate_batch(self, subscriptions, now, cycle=None):
        """Rate and close the periods of ``subscriptions``, each company's in
        that company, then record when and how each rating went."""
        errors = {}
        for company in subscriptions.company_id:
            in_company = subscriptions.filtered(lambda s, c=company: s.company_id == c)
            self.with_company(company)._rate_company_batch(
                in_company.with_company(company), now, errors
            )
        # The transaction's start: what is stored after it is rated later.
        values = {"rating_date": self.env.cr.now()}
        if cycle:
            values["rating_cycle"] = cycle
        subscriptions.write(values)
        failed = subscriptions.browse(list(errors))
        (subscriptions - failed).filtered("rating_error").write(
            {"rating_error": False, "rating_error_date": False}
        )
        for subscription in failed:
            subscription.write(
                {
                    "rating_error": errors[subscription.id],
                    "rating_error_date": values["rating_date"],
                }
            )

    @api.model
    def _rate_company_batch(self, subscriptions, now, errors):
        """Rate the open period of each subscription, then close it if it is
        over, period after period for a subscription behind.

        Each subscription's writes run in their own savepoint: a failure rolls
        back that subscription only and is recorded in ``errors``. New invoices
        of the batch are created together (one ``create``: far cheaper per
        invoice).
        """
        self._mark_late_usage(subscriptions, now)
        # Named by the webhooks of the invoices created and closed.
        customer_refs = subscriptions._customer_refs()
        pending = subscriptions
        while pending:
            ratings = self._rate_periods(
                [period for s in pending for period in s._rated_periods()]
            )
            self.env["fusion.billing.alert"]._check_ratings(ratings)
            invoices = self._period_invoices([rating.period for rating in ratings])
            due = pending.filtered(lambda s: s._period_due(now))
            closing = {(s.id, s._rated_periods()[0].start) for s in due}
            new_invoice_values = {}
            for rating in ratings:
                subscription = rating.period.subscription
                if rating.error:
                    errors[subscription.id] = rating.error
                    continue
                key = (subscription.id, rating.period.start)
                invoice = invoices.get(key, self.env["account.move"])
                with self._rating_guard(subscription, errors):
                    values = subscription._write_period_rating(rating, invoice)
                    if values:
                        new_invoice_values[key] = (subscription, values)
            invoices.update(
                self._create_period_invoices(
                    new_invoice_values, errors, closing, customer_refs
                )
            )
            behind = pending.browse()
            for subscription in due.filtered(lambda s: s.id not in errors):
                first = subscription._rated_periods()[0]
                invoice = invoices.get(
                    (subscription.id, first.start), self.env["account.move"]
                )
                with self._rating_guard(subscription, errors):
                    subscription._close_period(invoice, customer_refs[subscription.id])
                    behind |= subscription
            # The next period of each, unless that was the last one.
            pending = behind.filtered(lambda s: s.state == "active")

    @api.model
    def _mark_late_usage(self, subscriptions, now):
        """Note on each subscription the earliest closed period that usage
        stored (or cancelled) since its last rating falls in, so that the
        periods from there on are re-rated and adjusted.

        At the claim's lock, every event committed after the previous rating
        has a later ``write_date`` than it: an insert in flight at that rating
        made it skip the subscription, and one that came after its lock had to
        be retried, in a later transaction. Late events are at most the
        service's late usage days old, which bounds the events read.
        """
        adjusting = subscriptions.filtered(
            lambda s: s.rating_date and s.service_id.late_usage_policy == "adjust"
        )
        if not adjusting:
            return
        self.env["fusion.billing.usage.event"].flush_model()
        adjusting.flush_recordset()
        self.env.cr.execute(
            SQL(
                """
                SELECT s.id, MIN(e.timestamp)
                  FROM fusion_billing_subscription s
                  JOIN fusion_billing_service v ON v.id = s.service_id
                  JOIN fusion_billing_usage_event e
                    ON e.subscription_id = s.id
                   AND e.timestamp < COALESCE(s.last_invoice_date, s.start_date)
                   AND e.timestamp >= %s - make_interval(days => v.late_usage_days)
                   AND e.write_date >= s.rating_date
                 WHERE s.id = ANY(%s)
              GROUP BY s.id
                """,
                now.replace(tzinfo=None),
                adjusting.ids,
            )
        )
        for subscription_id, earliest in self.env.cr.fetchall():
            subscription = subscriptions.browse(subscription_id)
            subscription._rerate_from(earliest.date())

    @contextmanager
    def _rating_guard(self, subscription, errors):
        """Savepoint around one subscription's rating step: an exception rolls
        the step back and lands in ``errors`` instead of stopping the batch."""
        try:
            with self.env.cr.savepoint():
                yield
        except Exception as error:  # one subscription's failure stays its own
            _logger.warning(
                "Rating subscription %s failed", subscription.id, exc_info=True
            )
            errors[subscription.id] = str(error) or type(error).__name__

    @api.model
    def _period_invoices(self, billing_periods):
        """Live (not cancelled) invoice of each period, by (subscription id,
        period start)."""
        wanted = {(period.subscription.id, period.start) for period in billing_periods}
        invoices = self.env["account.move"].search(
            [
                ("fusion_subscription_id", "in", [key[0] for key in wanted]),
                ("fusion_period_start", "in", [key[1] for key in wanted]),
                ("move_type", "=", "out_invoice"),
                ("state", "!=", "cancel"),
            ]
        )
        return {
            key: invoice
            for invoice in invoices
            if (key := (invoice.fusion_subscription_id.id, invoice.fusion_period_start))
            in wanted
        }

    @api.model
    def _create_period_invoices(
        self, new_invoice_values, errors, closing, customer_refs
    ):
        """Create the new invoices, {key: (subscription, values)}, with one
        ``create``; if that fails, again one by one so that only the failing
        subscriptions are left out. Returns {key: invoice}. Those of the
        periods ``closing`` (keys) are announced by their close, as what they
        are closed as (a credit note when negative); the others now, naming
        the customer of ``customer_refs`` ({subscription id: reference})."""
        if not new_invoice_values:
            return {}
        moves = self.env["account.move"]
        items = list(new_invoice_values.items())

        def created_invoice(key, subscription, invoice):
            if key not in closing:
                subscription._queue_invoice_event(
                    "invoice.created", invoice, customer_refs[subscription.id]
                )
            return invoice

        try:
            with self.env.cr.savepoint():
                invoices = moves.create([values for _key, (_sub, values) in items])
                created = {
                    key: created_invoice(key, subscription, invoice)
                    for (key, (subscription, _values)), invoice in zip(
                        items, invoices, strict=True
                    )
                }
        except Exception:  # retried one by one below, which records the culprit
            created = {}
            for key, (subscription, values) in items:
                with self._rating_guard(subscription, errors):
                    created[key] = created_invoice(
                        key, subscription, moves.create(values)
                    )
        return created
