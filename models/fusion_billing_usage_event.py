# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
from datetime import date, datetime, time, timezone

from odoo import api, fields, models
from odoo.tools import SQL

from ..core import usage


class FusionBillingUsageEvent(models.Model):
    _name = "fusion.billing.usage.event"
    _description = "Usage Event"
    _order = "timestamp desc, id desc"
    _rec_name = "idempotency_key"
    _check_company_auto = True

    service_id = fields.Many2one(
        "fusion.billing.service", required=True, index=True, ondelete="restrict"
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    subscription_id = fields.Many2one(
        "fusion.billing.subscription", required=True, ondelete="restrict"
    )
    partner_id = fields.Many2one(related="subscription_id.partner_id")
    metric_id = fields.Many2one(
        "fusion.billing.metric", required=True, index=True, ondelete="restrict"
    )
    # NUMERIC without fixed scale: quantities are summed exactly in SQL.
    quantity = fields.Float(digits=False, required=True, default=1)
    timestamp = fields.Datetime(
        required=True, help="When the usage happened (UTC), as sent by the app."
    )
    idempotency_key = fields.Char(required=True)
    properties = fields.Json()
    cancelled = fields.Boolean(
        default=False,
        help="Cancelled by the app (POST /usage/cancel): kept for audit, never "
        "rated, and its idempotency key stays used.",
    )

    _idempotency_unique = models.Constraint(
        "UNIQUE(subscription_id, metric_id, idempotency_key)",
        "This usage event was already recorded.",
    )
    _quantity_positive = models.Constraint(
        "CHECK(quantity >= 0)", "A usage quantity cannot be negative."
    )
    # Serves the rating aggregation: one subscription, one metric, a time window.
    _rating_idx = models.Index("(subscription_id, metric_id, timestamp)")
    # Few events are cancelled: the Cancelled filter and audits read this small
    # index instead of the table.
    _cancelled_idx = models.Index("(subscription_id, timestamp) WHERE cancelled")

    @api.model
    def _ingest(self, service, items, now=None):
        """Validate, authorize and store the raw event items of one request.

        Returns the per-event results in request order (``core.usage`` shapes).
        Whatever the batch size, it costs a constant number of queries: the
        references of all events are resolved together, the accepted events go
        in with one ``INSERT ... ON CONFLICT DO NOTHING`` and the skipped ones
        are classified with one more read. The database decides idempotency: a
        concurrent request storing the same key first makes this transaction
        fail with a serialization error (REPEATABLE READ), which Odoo answers
        by replaying the request, which then finds the row: ``duplicate``.
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
        """Check each event against the calling service's data (SPEC §4).

        Writes a rejection into ``results`` for refused events and returns
        ``{index: (subscription_id, metric_id)}`` for the others.
        """
        if not events:
            return {}
        # One round trip for the three lookups: it is most of the cost of a
        # single-event request.
        self.env.cr.execute(
            SQL(
                """SELECT
                   (SELECT JSON_AGG(JSON_BUILD_ARRAY(
                               external_ref, id, partner_id, plan_id, state,
                               COALESCE(last_invoice_date, start_date)))
                      FROM fusion_billing_subscription
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
                       AND m.code = ANY(%(metrics)s))""",
                service=service.id,
                subscriptions=list({event.subscription for event in events.values()}),
                customers=list({event.customer for event in events.values()}),
                metrics=list({event.metric for event in events.values()}),
            )
        )
        found_subscriptions, found_customers, found_metrics = self.env.cr.fetchone()
        subscriptions = {
            ref: (sub_id, partner_id, plan_id, state, date.fromisoformat(start))
            for ref, sub_id, partner_id, plan_id, state, start in (
                found_subscriptions or ()
            )
        }
        customers = dict(found_customers or ())
        metrics = {
            code: (metric_id, set(plans))
            for code, metric_id, plans in found_metrics or ()
        }
        oldest = usage.retention_start(now, service.usage_retention_days)
        targets = {}
        for index, event in events.items():
            subscription = subscriptions.get(event.subscription)
            metric = metrics.get(event.metric)
            if subscription is None:
                error = (
                    usage.UNKNOWN_SUBSCRIPTION,
                    f"no subscription {usage.shown(event.subscription)}"
                    " in this service",
                )
            else:
                error = self._refusal(
                    event, subscription, customers, metric, now, oldest=oldest
                )
            if error:
                results[index] = usage.rejected(event.idempotency_key, *error)
            else:
                targets[index] = (subscription[0], metric[0])
        return targets

    def _refusal(self, event, subscription, customers, metric, now, *, oldest):
        """Return ``(code, message)`` if the event may not be stored, else None.
        ``oldest``: the service's retention start (None: no retention)."""
        __, partner_id, plan_id, state, period_date = subscription
        if state != "active":
            return (
                usage.SUBSCRIPTION_NOT_ACTIVE,
                f"subscription {usage.shown(event.subscription)} is {state}",
            )
        customer_partner = customers.get(event.customer)
        if customer_partner is None:
            return (
                usage.UNKNOWN_CUSTOMER,
                f"no customer {usage.shown(event.customer)} in this service",
            )
        if customer_partner != partner_id:
            return (
                usage.CUSTOMER_MISMATCH,
                f"subscription {usage.shown(event.subscription)} does not belong"
                f" to customer {usage.shown(event.customer)}",
            )
        if metric is None:
            return (
                usage.UNKNOWN_METRIC,
                f"no metric {usage.shown(event.metric)} in this service",
            )
        if plan_id not in metric[1]:
            return (
                usage.METRIC_NOT_ON_PLAN,
                f"metric {usage.shown(event.metric)} is not charged on the"
                " subscription's plan",
            )
        period_start = datetime.combine(period_date, time(), timezone.utc)
        if usage.check_timestamp(event.timestamp, period_start, now):
            return (
                usage.TIMESTAMP_OUT_OF_WINDOW,
                f"timestamp must be between the open period start"
                f" ({period_start.isoformat()}) and 5 minutes from now",
            )
        if oldest and event.timestamp < oldest:
            return (
                usage.TIMESTAMP_OUT_OF_WINDOW,
                f"timestamp is older than the service keeps usage"
                f" ({oldest.isoformat(timespec='seconds')})",
            )
        return None

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
                           create_uid, create_date, write_uid, write_date)
                   SELECT s.id, s.company_id, r.s, r.m,
                          r.q, r.t AT TIME ZONE 'utc', r.k, r.p,
                          %(uid)s, now() AT TIME ZONE 'utc',
                          %(uid)s, now() AT TIME ZONE 'utc'
                     FROM fusion_billing_service s,
                          jsonb_to_recordset(%(rows)s::jsonb)
                          AS r(s int, m int, q numeric, t timestamptz, k varchar,
                               p jsonb)
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
        """Compare events whose key is already stored with the stored event."""
        identities = set(skipped.values())
        cr = self.env.cr
        cr.execute(
            SQL(
                """SELECT subscription_id, metric_id, idempotency_key,
                          quantity, "timestamp"
                     FROM fusion_billing_usage_event
                    WHERE (subscription_id, metric_id, idempotency_key) IN (
                          SELECT * FROM unnest(%s::int[], %s::int[], %s::varchar[]))""",
                *(list(column) for column in zip(*identities, strict=True)),
            )
        )
        stored = {row[:3]: row[3:] for row in cr.fetchall()}
        for index, identity in skipped.items():
            event = results[index]
            quantity, timestamp = stored[identity]
            if quantity == event.quantity and timestamp == event.timestamp.replace(
                tzinfo=None
            ):
                results[index] = usage.result(event.idempotency_key, usage.DUPLICATE)
            else:
                results[index] = usage.conflict(
                    event.idempotency_key,
                    "this idempotency key was already used for this subscription"
                    f" and metric with quantity {quantity} at"
                    f" {timestamp.isoformat()}Z",
                )
