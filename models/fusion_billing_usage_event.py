# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal

from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL
from odoo.tools.misc import format_datetime

from ..core import money, periods, usage
from .fusion_billing_rating import RATEABLE

# Caller-given values of these are never trusted: they follow the subscription.
DERIVED_FIELDS = ("service_id", "company_id")


def utc_midnight(day):
    return datetime.combine(day, time(), timezone.utc)


@dataclass(frozen=True)
class Lookup:
    """What one request's events refer to in the calling service."""

    late_usage_policy: str
    late_usage_days: int
    usage_retention_days: int
    subscriptions: dict  # external_ref: row (dates as date)
    customers: dict  # external_ref: partner id
    metrics: dict  # code: (metric id, ids of the plans charging it)
    stored: dict  # (subscription id, metric id, key): (quantity, naive UTC time)


class FusionBillingUsageEvent(models.Model):
    _name = "fusion.billing.usage.event"
    _description = "Usage Event"
    _order = "timestamp desc, id desc"
    _rec_name = "idempotency_key"
    _check_company_auto = True

    service_id = fields.Many2one(
        related="subscription_id.service_id", store=True, index=True
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    subscription_id = fields.Many2one(
        "fusion.billing.subscription", required=True, ondelete="restrict"
    )
    partner_id = fields.Many2one(related="subscription_id.partner_id")
    metric_id = fields.Many2one(
        "fusion.billing.metric", required=True, index=True, ondelete="restrict"
    )
    # NUMERIC without fixed scale: quantities are stored and summed exactly.
    quantity = fields.Float(digits=False, required=True, default=1)
    timestamp = fields.Datetime(
        required=True, help="When the usage happened (UTC), as sent by the app."
    )
    idempotency_key = fields.Char(required=True)
    properties = fields.Json()
    in_open_period = fields.Boolean(
        string="In the Open Period",
        compute="_compute_in_open_period",
        search="_search_in_open_period",
        help="Usage of its subscription's open billing period: what the next "
        "invoice bills.",
    )
    cancelled = fields.Boolean(
        default=False,
        help="Cancelled by the app (POST /usage/cancel): kept for audit, never "
        "rated, and its idempotency key stays used.",
    )

    _idempotency_unique = models.Constraint(
        "UNIQUE(subscription_id, metric_id, idempotency_key)",
        "This usage event was already recorded.",
    )
    # The API's bounds (SPEC §4), for events created any other way too: any
    # set of such quantities can be summed and priced exactly.
    _quantity_bounded = models.Constraint(
        f"CHECK(quantity >= 0 AND quantity <= {usage.MAX_QUANTITY}"
        f" AND quantity = round(quantity, {usage.QUANTITY_PLACES}))",
        f"A usage quantity must be between 0 and {usage.MAX_QUANTITY} with at"
        f" most {usage.QUANTITY_PLACES} decimal places.",
    )
    # Serves the rating aggregation: one subscription, one metric, a time window.
    _rating_idx = models.Index("(subscription_id, metric_id, timestamp)")
    # Few events are cancelled: the Cancelled filter and audits read this small
    # index instead of the table.
    _cancelled_idx = models.Index("(subscription_id, timestamp) WHERE cancelled")

    @api.model_create_multi
    def create(self, vals_list):
        return super().create([self._clean_vals(vals) for vals in vals_list])

    def write(self, vals):
        return super().write(self._clean_vals(vals))

    @api.model
    def _clean_vals(self, vals):
        """Values as the ORM may store them: the derived fields left out, and a
        quantity within the API's bounds (SPEC §4), never rounded."""
        vals = {
            name: value for name, value in vals.items() if name not in DERIVED_FIELDS
        }
        if vals.get("quantity"):
            vals["quantity"] = self._check_quantity(vals["quantity"])
        return vals

    @api.model
    def _check_quantity(self, value):
        """``value`` as the float the ORM stores, read as the API reads a
        quantity (a float from its shortest repr), or a ValidationError: a
        quantity finer than the bound is refused, not rounded (to 0 for the
        tiniest), and so is one a float cannot carry exactly."""
        try:
            quantity = usage.QUANTITY.check(
                money.to_decimal(value) if isinstance(value, str) else value
            )
        except ValueError as error:
            reason = str(error)
        else:
            if money.to_decimal(float(quantity)) == quantity:
                return float(quantity)
            reason = (
                "has more significant digits than a float carries: send it to "
                "POST /usage, which reads it as an exact decimal"
            )
        raise ValidationError(
            self.env._(
                "Usage quantity %(value)s %(reason)s.", value=value, reason=reason
            )
        )

    @api.constrains("subscription_id", "metric_id")
    def _check_metric_service(self):
        for event in self:
            if event.metric_id.service_id != event.subscription_id.service_id:
                raise ValidationError(
                    self.env._(
                        "Metric %(metric)s does not belong to the service of"
                        " subscription %(subscription)s.",
                        metric=event.metric_id.display_name,
                        subscription=event.subscription_id.display_name,
                    )
                )

    @api.depends(
        "timestamp",
        "subscription_id.state",
        "subscription_id.start_date",
        "subscription_id.last_invoice_date",
        "subscription_id.next_invoice_date",
        "subscription_id.end_date",
    )
    def _compute_in_open_period(self):
        for event in self:
            subscription = event.subscription_id
            event.in_open_period = bool(
                subscription._open_period()
                and subscription._period_start()
                <= event.timestamp.date()
                < subscription._period_end()
            )

    def _search_in_open_period(self, operator, value):
        if operator != "in":
            return NotImplemented
        self.env["fusion.billing.subscription"].flush_model()
        return [
            (
                "id",
                "in",
                SQL(
                    """SELECT e.id
                         FROM fusion_billing_usage_event e
                         JOIN fusion_billing_subscription s ON s.id = e.subscription_id
                        WHERE %s
                          AND e.timestamp >= COALESCE(s.last_invoice_date, s.start_date)
                          AND e.timestamp < LEAST(s.next_invoice_date, s.end_date)""",
                    RATEABLE,
                ),
            )
        ]

    @api.depends("metric_id.name", "timestamp")
    def _compute_display_name(self):
        for event in self:
            event.display_name = " · ".join(
                filter(
                    None,
                    (
                        event.metric_id.name,
                        event.timestamp and format_datetime(self.env, event.timestamp),
                    ),
                )
            )

    @api.model
    def _ingest(self, service, items, now=None):
        """Validate, authorize and store the raw event items of one request.

        Returns the per-event results in request order (``core.usage`` shapes).
        Whatever the batch size, it costs a constant number of queries: the
        references and stored keys of all events are resolved together, the
        accepted events go in with one ``INSERT ... ON CONFLICT DO NOTHING`` and
        the skipped ones are classified with one more read. The database decides
        idempotency: a concurrent request storing the same key first makes this
        transaction fail with a serialization error (REPEATABLE READ), which
        Odoo answers by replaying the request, which then finds the row:
        ``duplicate``.
        """
        service.ensure_one()
        now = now or datetime.now(timezone.utc)
        results = [usage.validate_event(item) for item in items]
        events = {
            index: event
            for index, event in enumerate(results)
            if type(event) is usage.UsageEvent
        }
        targets = self._authorize(service, events, results, now)
        self._store(service, targets, results)
        return results

    def _authorize(self, service, events, results, now):
        """Check each event against the calling service's data (SPEC §4, §11).

        In this order: the event is scoped to a subscription and a metric of
        the service; a key already stored there answers ``duplicate`` or
        ``conflict`` whatever the event's period became since; only a new event
        is checked for state, customer, plan and time window. Writes the
        outcome into ``results`` for events decided here and returns
        ``{index: (subscription_id, metric_id)}`` for the events to insert.
        """
        if not events:
            return {}
        lookup = self._lookup(service, events.values())
        targets = {}
        for index, event in events.items():
            subscription = lookup.subscriptions.get(event.subscription)
            metric = lookup.metrics.get(event.metric)
            if subscription is None:
                results[index] = usage.rejected(
                    event.idempotency_key,
                    usage.UNKNOWN_SUBSCRIPTION,
                    f"no subscription {usage.shown(event.subscription)}"
                    " in this service",
                )
                continue
            if metric is None:
                results[index] = usage.rejected(
                    event.idempotency_key,
                    usage.UNKNOWN_METRIC,
                    f"no metric {usage.shown(event.metric)} in this service",
                )
                continue
            identity = (subscription["id"], metric[0], event.idempotency_key)
            stored = lookup.stored.get(identity)
            if stored is not None:
                results[index] = self._replay_result(event, *stored)
                continue
            error = self._refusal(event, subscription, lookup, metric, now)
            if error:
                results[index] = usage.rejected(event.idempotency_key, *error)
            else:
                targets[index] = identity[:2]
        return targets

    def _lookup(self, service, events):
        """The service's subscriptions, customers and metrics the events name,
        and the events already stored under their keys.

        One round trip: it is most of the cost of a single-event request.
        """
        events = list(events)
        self.env.cr.execute(
            SQL(
                """SELECT
                   (SELECT JSON_BUILD_ARRAY(late_usage_policy, late_usage_days,
                                            usage_retention_days)
                      FROM fusion_billing_service WHERE id = %(service)s),
                   (SELECT JSON_AGG(JSON_BUILD_OBJECT(
                               'ref', external_ref, 'id', id,
                               'partner_id', partner_id, 'plan_id', plan_id,
                               'state', state, 'start_date', start_date,
                               'period_start',
                               COALESCE(last_invoice_date, start_date),
                               'end_date', end_date,
                               'plans', (SELECT JSON_AGG(JSON_BUILD_ARRAY(
                                                h.date_from, h.plan_id)
                                                ORDER BY h.date_from)
                                           FROM fusion_billing_plan_history h
                                          WHERE h.subscription_id = s.id)))
                      FROM fusion_billing_subscription s
                     WHERE service_id = %(service)s
                       AND external_ref = ANY(%(subscriptions)s)),
                   (SELECT JSON_AGG(JSON_BUILD_ARRAY(external_ref, partner_id))
                      FROM fusion_billing_customer
                     WHERE service_id = %(service)s
                       AND external_ref = ANY(%(customers)s)),
                   (SELECT JSON_AGG(JSON_BUILD_ARRAY(m.code, m.id, ARRAY(
                               SELECT c.plan_id FROM fusion_billing_charge c
                                WHERE c.metric_id = m.id)))
                      FROM fusion_billing_metric m
                     WHERE m.service_id = %(service)s
                       AND m.code = ANY(%(metrics)s)),
                   (SELECT JSON_AGG(JSON_BUILD_ARRAY(
                               e.subscription_id, e.metric_id, e.idempotency_key,
                               e.quantity::text,
                               to_char(e.timestamp, 'YYYY-MM-DD"T"HH24:MI:SS.US')))
                      FROM (SELECT DISTINCT * FROM unnest(
                                %(event_subscriptions)s::varchar[],
                                %(event_metrics)s::varchar[],
                                %(event_keys)s::varchar[])) AS k(s, m, k)
                      JOIN fusion_billing_subscription s
                        ON s.service_id = %(service)s AND s.external_ref = k.s
                      JOIN fusion_billing_metric m
                        ON m.service_id = %(service)s AND m.code = k.m
                      JOIN fusion_billing_usage_event e
                        ON e.subscription_id = s.id
                       AND e.metric_id = m.id
                       AND e.idempotency_key = k.k)""",
                service=service.id,
                subscriptions=list({event.subscription for event in events}),
                customers=list({event.customer for event in events}),
                metrics=list({event.metric for event in events}),
                event_subscriptions=[event.subscription for event in events],
                event_metrics=[event.metric for event in events],
                event_keys=[event.idempotency_key for event in events],
            )
        )
        policy, subscriptions, customers, metrics, stored = self.env.cr.fetchone()
        return Lookup(
            late_usage_policy=policy[0],
            late_usage_days=policy[1],
            usage_retention_days=policy[2],
            subscriptions={
                row["ref"]: {
                    **row,
                    **{
                        name: row[name] and date.fromisoformat(row[name])
                        for name in ("start_date", "period_start", "end_date")
                    },
                    "plans": [
                        (utc_midnight(date.fromisoformat(day)), plan_id)
                        for day, plan_id in row["plans"] or ()
                    ],
                }
                for row in subscriptions or ()
            },
            customers=dict(customers or ()),
            metrics={
                code: (metric_id, set(plans))
                for code, metric_id, plans in metrics or ()
            },
            stored={
                (subscription_id, metric_id, key): (
                    Decimal(quantity),
                    datetime.fromisoformat(timestamp),
                )
                for subscription_id, metric_id, key, quantity, timestamp in stored or ()
            },
        )

    def _refusal(self, event, subscription, lookup, metric, now):
        """Return ``(code, message)`` if the new event may not be stored, else None."""
        if subscription["state"] != "active":
            return (
                usage.SUBSCRIPTION_NOT_ACTIVE,
                f"subscription {usage.shown(event.subscription)} is"
                f" {subscription['state']}",
            )
        customer_partner = lookup.customers.get(event.customer)
        if customer_partner is None:
            return (
                usage.UNKNOWN_CUSTOMER,
                f"no customer {usage.shown(event.customer)} in this service",
            )
        if customer_partner != subscription["partner_id"]:
            return (
                usage.CUSTOMER_MISMATCH,
                f"subscription {usage.shown(event.subscription)} does not belong"
                f" to customer {usage.shown(event.customer)}",
            )
        if self._plan_in_force(subscription, event.timestamp) not in metric[1]:
            return (
                usage.METRIC_NOT_ON_PLAN,
                f"metric {usage.shown(event.metric)} is not charged on the"
                " subscription's plan in force at the event's timestamp",
            )
        message = usage.window_refusal(
            event.timestamp,
            period_start=utc_midnight(subscription["period_start"]),
            now=now,
            end=subscription["end_date"] and utc_midnight(subscription["end_date"]),
            late_start=self._late_start(lookup, subscription, now),
        )
        if message:
            return usage.TIMESTAMP_OUT_OF_WINDOW, message
        oldest = usage.retention_start(now, lookup.usage_retention_days)
        if oldest and event.timestamp < oldest:
            return (
                usage.TIMESTAMP_OUT_OF_WINDOW,
                f"timestamp is older than the service keeps usage"
                f" ({oldest.isoformat(timespec='seconds')})",
            )
        return None

    @api.model
    def _plan_in_force(self, subscription, timestamp):
        """The plan billing an event at ``timestamp``: the last of the
        subscription's plan history from before it (late usage of a closed
        period goes by the plan that period was billed on); its plan when it
        has no history."""
        plans = subscription["plans"]
        index = periods.in_force([first for first, _plan in plans], timestamp)
        return subscription["plan_id"] if index is None else plans[index][1]

    @api.model
    def _late_start(self, lookup, subscription, now):
        """Earliest timestamp of late usage billed as an adjustment, or None
        when the service refuses late usage."""
        if lookup.late_usage_policy != "adjust":
            return None
        return usage.late_usage_start(
            utc_midnight(subscription["start_date"]), now, lookup.late_usage_days
        )

    def _store(self, service, targets, results):
        """Insert the authorized events; turn each result into accepted,
        duplicate or conflict. The first occurrence of a key in the batch is the
        one inserted; later ones compare with what is stored, like replays."""
        if not targets:
            return
        first_index = {}
        rows = []
        for index, (subscription_id, metric_id) in targets.items():
            event = results[index]
            identity = (subscription_id, metric_id, event.idempotency_key)
            if identity in first_index:
                continue
            first_index[identity] = index
            # One-letter members: a smaller document to encode and to parse.
            rows.append(
                {
                    "s": subscription_id,
                    "m": metric_id,
                    "q": str(event.quantity),
                    "t": event.timestamp.isoformat(),
                    "k": event.idempotency_key,
                    "p": event.properties,
                }
            )
        cr = self.env.cr
        cr.execute(
            SQL(
                """INSERT INTO fusion_billing_usage_event
                          (service_id, company_id, subscription_id, metric_id,
                           quantity, "timestamp", idempotency_key, properties,
                           cancelled,
                           create_uid, create_date, write_uid, write_date)
                   SELECT s.id, s.company_id, r.s, r.m,
                          r.q, r.t AT TIME ZONE 'utc', r.k, r.p::jsonb,
                          false,
                          %(uid)s, now() AT TIME ZONE 'utc',
                          %(uid)s, now() AT TIME ZONE 'utc'
                     FROM fusion_billing_service s,
                          jsonb_to_recordset(%(rows)s::jsonb)
                          AS r(s int, m int, q numeric, t timestamptz, k varchar,
                               p text)
                    WHERE s.id = %(service)s
              ON CONFLICT (subscription_id, metric_id, idempotency_key) DO NOTHING
                RETURNING subscription_id, metric_id, idempotency_key""",
                service=service.id,
                uid=self.env.uid,
                rows=json.dumps(rows),
            )
        )
        inserted = set(cr.fetchall())
        skipped = {}
        for index, (subscription_id, metric_id) in targets.items():
            event = results[index]
            identity = (subscription_id, metric_id, event.idempotency_key)
            if identity in inserted and first_index[identity] == index:
                results[index] = usage.result(event.idempotency_key, usage.ACCEPTED)
            else:
                skipped[index] = identity
        if skipped:
            self._classify_replays(skipped, results)

    def _classify_replays(self, skipped, results):
        """Compare events whose key was stored by this batch or by a concurrent
        request with the stored event."""
        identities = set(skipped.values())
        cr = self.env.cr
        cr.execute(
            SQL(
                """SELECT subscription_id, metric_id, idempotency_key,
                          quantity::text, "timestamp"
                     FROM fusion_billing_usage_event
                    WHERE (subscription_id, metric_id, idempotency_key) IN (
                          SELECT * FROM unnest(%s::int[], %s::int[], %s::varchar[]))""",
                *(list(column) for column in zip(*identities, strict=True)),
            )
        )
        # As text: Odoo reads NUMERIC columns as floats.
        stored = {
            (subscription_id, metric_id, key): (Decimal(quantity), timestamp)
            for subscription_id, metric_id, key, quantity, timestamp in cr.fetchall()
        }
        for index, identity in skipped.items():
            results[index] = self._replay_result(results[index], *stored[identity])

    @api.model
    def _replay_result(self, event, quantity, timestamp):
        """``duplicate`` when the stored event under the key has the same
        quantity (as decimals: 0.1 and 0.10 are equal) and timestamp, else
        ``conflict``. ``timestamp`` is naive UTC, as stored."""
        if quantity == event.quantity and timestamp == event.timestamp.replace(
            tzinfo=None
        ):
            return usage.result(event.idempotency_key, usage.DUPLICATE)
        return usage.conflict(
            event.idempotency_key,
            "this idempotency key was already used for this subscription"
            f" and metric with quantity {quantity} at"
            f" {timestamp.isoformat()}Z",
        )

    @api.model
    def _cancel(self, service, items, now=None):
        """Cancel the stored events that the raw cancellation ``items`` of one
        request name (SPEC §11); return the per-event results in request order.

        An event of the open period is cancelled; one of a closed period only
        under the ``adjust`` policy and within the late usage days (the rating
        bills it back as an adjustment), else ``period_closed``. The event stays
        stored with ``cancelled`` set and its key stays used.

        The subscriptions are locked FOR SHARE, like the insert of an event
        locks its subscription: the rating cron skips them until this commits,
        and once the cron has locked one, this waits for the close and then
        fails to serialize, so the request is retried against the closed
        period. A cancellation never slips between a close's aggregation and
        its commit.
        """
        service.ensure_one()
        now = now or datetime.now(timezone.utc)
        results = [usage.validate_cancel(item) for item in items]
        requests = {
            index: request
            for index, request in enumerate(results)
            if type(request) is usage.CancelEvent
        }
        if not requests:
            return results
        self.flush_model()
        self.env.cr.execute(
            SQL(
                """SELECT k.i, e.id, e.cancelled, e.timestamp, s.state, s.start_date,
                          COALESCE(s.last_invoice_date, s.start_date),
                          v.late_usage_policy, v.late_usage_days
                     FROM unnest(%s::int[], %s::varchar[], %s::varchar[],
                                 %s::varchar[]) AS k(i, s, m, k)
                     JOIN fusion_billing_subscription s
                       ON s.service_id = %s AND s.external_ref = k.s
                     JOIN fusion_billing_service v ON v.id = s.service_id
                     JOIN fusion_billing_metric m
                       ON m.service_id = s.service_id AND m.code = k.m
                     JOIN fusion_billing_usage_event e
                       ON e.subscription_id = s.id
                      AND e.metric_id = m.id
                      AND e.idempotency_key = k.k
                      FOR SHARE OF s""",
                list(requests),
                [request.subscription for request in requests.values()],
                [request.metric for request in requests.values()],
                [request.idempotency_key for request in requests.values()],
                service.id,
            )
        )
        found = {row[0]: row[1:] for row in self.env.cr.fetchall()}
        to_cancel = set()
        for index, request in requests.items():
            key = request.idempotency_key
            if index not in found:
                results[index] = usage.rejected(
                    key,
                    usage.UNKNOWN_EVENT,
                    f"no event {usage.shown(key)} of metric"
                    f" {usage.shown(request.metric)} on subscription"
                    f" {usage.shown(request.subscription)} in this service",
                )
                continue
            event_id, cancelled, timestamp, *subscription = found[index]
            if cancelled or event_id in to_cancel:
                results[index] = usage.result(key, usage.DUPLICATE)
            elif self._cancellable(
                timestamp.replace(tzinfo=timezone.utc), now, *subscription
            ):
                to_cancel.add(event_id)
                results[index] = usage.result(key, usage.CANCELLED)
            else:
                results[index] = usage.rejected(
                    key,
                    usage.PERIOD_CLOSED,
                    f"event {usage.shown(key)} belongs to a closed billing period",
                )
        self.browse(sorted(to_cancel)).write({"cancelled": True})
        self.flush_model()
        return results

    @api.model
    def _cancellable(  # noqa: PLR0917
        self, timestamp, now, state, start_date, period_start, policy, late_days
    ):
        """Whether an event at ``timestamp`` may still be cancelled: it is in
        the open period of an active subscription, or it is late usage the
        service bills as an adjustment (SPEC §11)."""
        if state != "active":
            return False
        if timestamp >= utc_midnight(period_start):
            return True
        return policy == "adjust" and timestamp >= usage.late_usage_start(
            utc_midnight(start_date), now, late_days
        )
