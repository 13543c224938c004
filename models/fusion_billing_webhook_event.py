# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
import logging
import ssl
import time
import uuid
from datetime import timedelta

from psycopg2.errors import SerializationFailure

from odoo import api, fields, models, modules
from odoo.tools import SQL
from odoo.tools.misc import format_datetime

from ..core import delivery, retry, signing, urlguard

_logger = logging.getLogger(__name__)

# One absolute deadline per attempt (seconds) for connecting, TLS, sending and
# reading the answer together, whatever the receiver does.
DELIVERY_DEADLINE = 30
# A claimed row stays "sending" until its lease ends. A worker claims one row at a
# time and its attempt (name resolution included) ends long before the lease, so
# only a worker that died leaves a lease to expire.
LEASE = timedelta(minutes=10)

STATES = [
    ("pending", "Pending"),
    ("sending", "Sending"),
    ("delivered", "Delivered"),
    ("failed", "Failed"),
]


class FusionBillingWebhookEvent(models.Model):
    _name = "fusion.billing.webhook.event"
    _description = "Webhook Delivery"
    _order = "id desc"
    _rec_name = "event_id"
    _check_company_auto = True

    service_id = fields.Many2one(
        "fusion.billing.service", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one(related="service_id.company_id", store=True)
    event_id = fields.Char(
        string="Event ID",
        required=True,
        readonly=True,
        copy=False,
        default=lambda self: str(uuid.uuid4()),
    )
    event_type = fields.Char(required=True, readonly=True, index=True)
    dedupe_key = fields.Char(
        readonly=True,
        copy=False,
        help="Identifies the billing fact behind the event, so queuing it again "
        "never creates a second delivery.",
    )
    body = fields.Text(readonly=True, help="Canonical JSON, sent verbatim.")
    state = fields.Selection(
        STATES, required=True, default="pending", index=True, copy=False
    )
    attempts = fields.Integer(readonly=True, copy=False)
    next_attempt_at = fields.Datetime(
        default=fields.Datetime.now,
        index=True,
        copy=False,
        help="When the next attempt is due. While sending: when the worker's lease "
        "ends, after which an unfinished attempt counts as failed.",
    )
    last_attempt_at = fields.Datetime(readonly=True, copy=False)
    delivered_at = fields.Datetime(readonly=True, copy=False)
    last_status_code = fields.Integer(readonly=True, copy=False)
    last_error = fields.Text(readonly=True, copy=False)
    status_text = fields.Char(
        string="Status", compute="_compute_status_text", help="Where the delivery is."
    )
    body_pretty = fields.Text(string="Formatted Body", compute="_compute_body_pretty")
    invoice_id = fields.Many2one(
        "account.move",
        compute="_compute_links",
        help="The invoice the event is about.",
    )
    subscription_id = fields.Many2one(
        "fusion.billing.subscription",
        compute="_compute_links",
    )

    _event_id_unique = models.Constraint(
        "UNIQUE(event_id)", "Webhook event ids are unique."
    )
    _due_index = models.Index("(next_attempt_at) WHERE state IN ('pending', 'sending')")
    _dedupe_key_unique = models.UniqueIndex(
        "(service_id, dedupe_key) WHERE dedupe_key IS NOT NULL",
        "This billing event was already queued.",
    )

    @api.depends(
        "state",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_status_code",
        "service_id.webhook_url",
    )
    def _compute_status_text(self):
        now = fields.Datetime.now()
        for event in self:
            when = event.next_attempt_at and format_datetime(
                self.env, event.next_attempt_at
            )
            if event.state == "delivered":
                text = self.env._(
                    "Delivered on %(date)s, attempt %(attempt)s (HTTP %(status)s).",
                    date=format_datetime(self.env, event.delivered_at),
                    attempt=event.attempts,
                    status=event.last_status_code,
                )
            elif event.state == "failed":
                text = self.env._(
                    "Gave up after %(attempts)s attempts: retry once the receiver "
                    "is fixed.",
                    attempts=event.attempts,
                )
            elif event.state == "sending":
                text = self.env._("Being sent (attempt %(n)s).", n=event.attempts)
            elif not event.service_id.webhook_url:
                text = self.env._(
                    "Waiting for a webhook URL on the service: none is set."
                )
            elif event.attempts and event.next_attempt_at > now:
                text = self.env._(
                    "Attempt %(n)s failed; waiting to try again on %(date)s.",
                    n=event.attempts,
                    date=when,
                )
            elif event.next_attempt_at and event.next_attempt_at > now:
                text = self.env._("Scheduled for %(date)s.", date=when)
            else:
                text = self.env._("Due: sent at the next delivery run.")
            event.status_text = text

    @api.depends("body")
    def _compute_body_pretty(self):
        for event in self:
            try:
                event.body_pretty = json.dumps(
                    json.loads(event.body or "null"), indent=2, ensure_ascii=False
                )
            except ValueError:
                event.body_pretty = event.body

    @api.depends("body")
    def _compute_links(self):
        # The body is the record of what was sent: the invoice is read from it.
        invoice_ids = {event: event._body_invoice_id() for event in self}
        invoices = {
            invoice.id: invoice
            for invoice in self.env["account.move"]
            .browse(set(filter(None, invoice_ids.values())))
            .exists()
        }
        no_invoice = self.env["account.move"]
        for event in self:
            invoice = invoices.get(invoice_ids[event], no_invoice)
            event.invoice_id = invoice
            event.subscription_id = invoice.fusion_subscription_id

    def _body_invoice_id(self):
        try:
            invoice = json.loads(self.body or "{}").get("data", {}).get("invoice")
        except (ValueError, AttributeError):
            return None
        invoice_id = invoice.get("id") if isinstance(invoice, dict) else None
        return invoice_id if isinstance(invoice_id, int) else None

    @api.depends("event_type", "body", "service_id.name")
    def _compute_display_name(self):
        for event in self:
            about = (
                event.invoice_id.name
                if event.invoice_id.name and event.invoice_id.name != "/"
                else event.invoice_id.display_name or event.service_id.name
            )
            event.display_name = " · ".join(filter(None, (event.event_type, about)))

    @api.model
    def _queue(self, service, event_type, data, dedupe_key=None):
        """Queue one delivery of ``event_type`` with ``data``; at most once per
        ``dedupe_key`` (the insert is skipped by the database on a replay)."""
        event_id = str(uuid.uuid4())
        body = signing.canonical_json(
            {
                "id": event_id,
                "type": event_type,
                "created_at": fields.Datetime.now().isoformat() + "Z",
                "service": service.code,
                "data": data,
            }
        ).decode()
        self.env.cr.execute(
            """
            INSERT INTO fusion_billing_webhook_event
                (service_id, company_id, event_id, event_type, dedupe_key, body,
                 state, attempts, next_attempt_at,
                 create_uid, write_uid, create_date, write_date)
            VALUES (%s, %s, %s, %s, %s, %s, 'pending', 0, %s,
                    %s, %s, now() at time zone 'utc', now() at time zone 'utc')
            ON CONFLICT (service_id, dedupe_key) WHERE dedupe_key IS NOT NULL
            DO NOTHING
            RETURNING id
            """,
            (
                service.id,
                service.company_id.id,
                event_id,
                event_type,
                dedupe_key,
                body,
                # The clock of every other due-time comparison (the database's
                # now() is the start of the transaction).
                fields.Datetime.now(),
                self.env.uid,
                self.env.uid,
            ),
        )
        row = self.env.cr.fetchone()
        return self.browse(row[0] if row else ())

    def action_retry(self):
        """Send failed (or waiting) deliveries again at the next cron run."""
        self.filtered(lambda event: event.state in ("failed", "pending")).write(
            {"state": "pending", "next_attempt_at": fields.Datetime.now()}
        )
        self.env.ref("fusion_billing.ir_cron_deliver_webhooks")._trigger()
        return True

    @api.model
    def _cron_deliver_webhooks(self):
        """Deliver the due events, each at most once at a time, committing per
        delivery (SPEC §6)."""
        self._take_back_expired_leases()
        time_left = self._commit_webhook_progress()
        while time_left > 0:
            try:
                event = self._claim_due()
            except SerializationFailure:
                # Another worker claimed matching rows after this transaction's
                # snapshot was taken (REPEATABLE READ): a new one sees them taken.
                time_left = self._commit_webhook_progress()
                continue
            if not event:
                break
            # Pessimistic, like mail.mail: once "sending" is committed no other
            # worker picks the row, even if this one dies during the call. One row
            # at a time, so a worker that dies costs an attempt to that row only.
            self._commit_webhook_progress()
            event._attempt()
            time_left = self._commit_webhook_progress(1)
        self._commit_webhook_progress(remaining=self._count_due())

    @api.model
    def _commit_webhook_progress(self, processed=0, remaining=None):
        """Commit and report progress to the running cron; return its time left.

        The test framework's own transaction is never committed (it is rolled back
        after each test); cursors a test opens itself commit for real."""
        test = modules.module.current_test
        if test and self.env.cr is getattr(test, "cr", None):
            return float("inf")
        return self.env["ir.cron"]._commit_progress(processed, remaining=remaining)

    @api.model
    def _webhook_resolver(self):
        """Name resolution used by the URL guard (a seam for tests)."""
        return urlguard.default_resolver

    @api.model
    def _webhook_ssl_context(self):
        """TLS settings of deliveries: the system's CAs (a seam for tests)."""
        return ssl.create_default_context()

    @api.model
    def _addressed_services(self):
        """The ids of the services with a webhook URL, as a subquery: only
        their events are delivered, the others wait for one."""
        services = self.env["fusion.billing.service"].sudo()
        return (
            services.with_context(active_test=False)
            ._search([("webhook_url", "!=", False)])
            .subselect()
        )

    @api.model
    def _count_due(self):
        return self.search_count(
            [
                ("state", "=", "pending"),
                ("next_attempt_at", "<=", fields.Datetime.now()),
                ("service_id", "in", self._addressed_services()),
            ]
        )

    @api.model
    def _claim_due(self):
        """Mark the next due event as "sending" under a lease, skipping rows another
        worker has locked; the attempt is counted now, before the call."""
        now = fields.Datetime.now()
        self.flush_model()
        self.env["fusion.billing.service.secret"].flush_model(["webhook_url"])
        # A savepoint, so that a serialization failure leaves the transaction
        # usable for the caller to commit and start afresh.
        with self.env.cr.savepoint(flush=False):
            self.env.cr.execute(
                SQL(
                    """
                    -- Materialized: run once. As an "IN (subquery)" the planner
                    -- may run it again per row, each run skipping the rows this
                    -- very statement already updated, and so claim them all.
                    WITH claimed AS MATERIALIZED (
                           SELECT e.id
                             FROM fusion_billing_webhook_event e
                            WHERE e.state = 'pending' AND e.next_attempt_at <= %(now)s
                              AND e.service_id IN %(addressed)s
                            ORDER BY e.next_attempt_at, e.id
                            LIMIT 1
                              FOR UPDATE OF e SKIP LOCKED)
                    UPDATE fusion_billing_webhook_event event
                       SET state = 'sending',
                           attempts = event.attempts + 1,
                           last_attempt_at = %(now)s,
                           next_attempt_at = %(lease_end)s,
                           write_uid = %(uid)s,
                           write_date = %(now)s
                      FROM claimed
                     WHERE event.id = claimed.id
                 RETURNING event.id
                    """,
                    now=now,
                    addressed=self._addressed_services(),
                    lease_end=now + LEASE,
                    uid=self.env.uid,
                ),
                log_exceptions=False,
            )
            ids = [row[0] for row in self.env.cr.fetchall()]
        self.invalidate_model(
            [
                "state",
                "attempts",
                "last_attempt_at",
                "next_attempt_at",
                "write_uid",
                "write_date",
            ]
        )
        return self.browse(ids)

    @api.model
    def _take_back_expired_leases(self):
        """A row still "sending" after its lease belongs to a worker that died: its
        attempt counts as failed and it is retried on the normal schedule."""
        self.flush_model()
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    SQL(
                        """
                        SELECT id
                          FROM fusion_billing_webhook_event
                         WHERE state = 'sending' AND next_attempt_at <= %s
                           FOR UPDATE SKIP LOCKED
                        """,
                        fields.Datetime.now(),
                    ),
                    log_exceptions=False,
                )
                ids = [row[0] for row in self.env.cr.fetchall()]
        except SerializationFailure:
            return  # another worker is taking them back
        for event in self.browse(ids):
            event._record_failure(
                None,
                self.env._(
                    "The delivery was interrupted before an answer was recorded "
                    "(the worker stopped). The receiver may have got it: it "
                    "deduplicates on the event id."
                ),
            )

    def _attempt(self):
        """Send a claimed event; an unexpected error fails this attempt only, so
        that the other due events still go out."""
        self.ensure_one()
        try:
            with self.env.cr.savepoint():
                self._send()
        except Exception:
            _logger.exception("Webhook %s: the attempt failed", self.event_id)
            self._record_failure(
                None,
                self.env._(
                    "The attempt failed with an internal error (see the server log)."
                ),
            )

    def _send(self):
        """Make one attempt of a claimed event: sign the stored body afresh and
        POST it to the address the URL guard checked."""
        self.ensure_one()
        body = self.body.encode()
        service = self.service_id
        try:
            target = service._webhook_target()
            headers = signing.signature_headers(
                self.event_id,
                self.event_type,
                body,
                service._webhook_signing_secrets(),
                int(time.time()),
            )
        except urlguard.UnsafeURL as error:
            self._record_failure(
                None, self.env._("Webhook URL refused: %(reason)s", reason=error)
            )
            return
        except ValueError as error:
            self._record_failure(
                None, self.env._("Cannot sign: %(reason)s", reason=error)
            )
            return
        result = delivery.post(
            target,
            body,
            headers,
            timeout=DELIVERY_DEADLINE,
            ssl_context=self._webhook_ssl_context(),
        )
        _logger.info(
            "Webhook %s (%s) attempt %s: %s in %s ms",
            self.event_id,
            self.event_type,
            self.attempts,
            result.status_code or result.error,
            result.duration_ms,
        )
        if delivery.is_success(result.status_code):
            self._record(
                {
                    "state": "delivered",
                    "delivered_at": fields.Datetime.now(),
                    "next_attempt_at": False,
                    "last_status_code": result.status_code,
                    "last_error": False,
                }
            )
        elif result.status_code:
            error = self.env._(
                "The receiver answered HTTP %(status)s.", status=result.status_code
            )
            if 300 <= result.status_code < 400:
                error += " " + self.env._("Redirects are not followed.")
            self._record_failure(result.status_code, error)
        else:
            self._record_failure(None, result.error)

    def _record_failure(self, status_code, error):
        """Schedule the next attempt with exponential backoff, or give up."""
        self.ensure_one()
        if retry.is_exhausted(self.attempts, self.service_id.webhook_max_attempts):
            state, next_attempt_at = "failed", False
        else:
            state = "pending"
            next_attempt_at = fields.Datetime.now() + retry.next_delay(self.attempts)
        self._record(
            {
                "state": state,
                "next_attempt_at": next_attempt_at,
                "last_status_code": status_code or False,
                "last_error": error,
            }
        )

    def _record(self, values):
        """Store the outcome of the attempt counted in ``attempts``, only while the
        row is still in the claim that made it: once its lease has run out, the row
        was taken back (or sent again) and that outcome is the one that stands."""
        self.ensure_one()
        self.flush_recordset()
        assignments = SQL(", ").join(
            SQL(
                "%s = %s",
                SQL.identifier(name),
                self._fields[name].convert_to_column(value, self),
            )
            for name, value in {
                **values,
                "write_uid": self.env.uid,
                "write_date": fields.Datetime.now(),
            }.items()
        )
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    SQL(
                        """
                        UPDATE fusion_billing_webhook_event
                           SET %s
                         WHERE id = %s AND state = 'sending' AND attempts = %s
                     RETURNING id
                        """,
                        assignments,
                        self.id,
                        self.attempts,
                    ),
                    log_exceptions=False,
                )
                recorded = bool(self.env.cr.fetchone())
        except SerializationFailure:
            recorded = False  # another worker changed the row meanwhile
        self.invalidate_recordset([*values, "write_uid", "write_date"])
        if not recorded:
            _logger.warning(
                "Webhook %s attempt %s: outcome not recorded, the row left this "
                "claim (lease expired)",
                self.event_id,
                self.attempts,
            )
