# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import hashlib
import re
import time
from collections import OrderedDict

from odoo import Command, api, fields, models, modules
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.fields import Domain
from odoo.tools import SQL

from odoo.addons.base.models.res_users import INDEX_SIZE, KEY_CRYPT_CONTEXT

from ..core import signing, urlguard
from .account_move import PERIOD_MOVE_TYPES

API_KEY_SCOPE = "fusion_billing"
# Odoo keys are 40 hex digits; anything much longer is not worth hashing.
API_KEY_MAX_LENGTH = 128
# Verifying a key hash (pbkdf2) costs milliseconds, more than ingesting an event.
# Keys verified once are remembered per process under their SHA-256 (never in
# clear), and every request still re-reads the key row, so a revoked or expired
# key, a deactivated user or an archived service is refused at once, in every
# worker. Bounded so that many keys cannot grow the memory without limit.
_VERIFIED_KEYS_MAX = 1024
_verified_keys = OrderedDict()
# A key's last use is recorded at most once per this many seconds: each
# process remembers when it last recorded each key (bounded like the verified
# keys), so most requests do not even query.
KEY_USE_INTERVAL = 3600
_key_use_noted = OrderedDict()
CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
ALLOWED_HOSTS_PARAM = "fusion_billing.webhook_allowed_hosts"
# The service's fields kept in its fusion.billing.service.secret row.
WEBHOOK_SETTINGS = ("webhook_url", "webhook_secret", "webhook_previous_secret")
# Usage events deleted per transaction by the retention cron.
PURGE_BATCH_SIZE = 5000


class FusionBillingService(models.Model):
    _name = "fusion.billing.service"
    _description = "Billed Service (external app)"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "name, id"
    _check_company_auto = True

    name = fields.Char(required=True, tracking=True)
    code = fields.Char(
        required=True,
        tracking=True,
        help="Stable technical code of the app, e.g. 'nexacloud'. Lowercase letters, "
        "digits, '.', '_' and '-'.",
    )
    active = fields.Boolean(default=True, tracking=True)
    company_id = fields.Many2one(
        "res.company",
        required=True,
        default=lambda self: self.env.company,
        tracking=True,
    )
    currency_id = fields.Many2one(
        "res.currency",
        required=True,
        default=lambda self: self.env.company.currency_id,
        tracking=True,
    )
    user_id = fields.Many2one(
        "res.users",
        string="Technical User",
        readonly=True,
        copy=False,
        ondelete="restrict",
        help="Inactive-login user that owns the service's API keys. Requests signed "
        "with its keys only ever reach this service's data. Created with the service, "
        "never changed.",
    )
    api_key_ids = fields.One2many(
        "res.users.apikeys",
        compute="_compute_api_key_ids",
        string="API Keys",
        groups="fusion_billing.group_fusion_billing_manager",
    )
    api_key_count = fields.Integer(compute="_compute_api_key_ids")
    journal_id = fields.Many2one(
        "account.journal",
        string="Invoice Journal",
        check_company=True,
        domain="[('type', '=', 'sale')]",
        help="Sales journal of the draft invoices; empty means the company's default "
        "sales journal.",
    )
    salesperson_id = fields.Many2one(
        "res.users",
        default=lambda self: self._default_salesperson(),
        domain="[('share', '=', False)]",
        tracking=True,
        help="Responsible for the service's customers: the salesperson of its "
        "invoices. Empty: its invoices have none.",
    )
    auto_post_invoices = fields.Boolean(
        tracking=True,
        help="Post the invoice when its billing period closes. Otherwise it stays a "
        "draft for a billing admin to review.",
    )
    # Not tracked and for managers only: its query string may carry a token.
    webhook_url = fields.Char(
        string="Webhook URL",
        compute="_compute_webhook_settings",
        inverse="_inverse_webhook_url",
        search="_search_webhook_url",
        groups="fusion_billing.group_fusion_billing_manager",
        help="HTTPS endpoint of the app receiving signed billing events.",
    )
    webhook_endpoint = fields.Char(
        compute="_compute_webhook_endpoint",
        help="The webhook URL without its query string, which may carry a token.",
    )
    webhook_secret = fields.Char(
        compute="_compute_webhook_settings",
        inverse="_inverse_webhook_secret",
        groups="fusion_billing.group_fusion_billing_manager",
        help="Standard Webhooks secret ('whsec_' + base64). Share it with the app so "
        "it can verify signatures.",
    )
    webhook_previous_secret = fields.Char(
        compute="_compute_webhook_settings",
        inverse="_inverse_webhook_previous_secret",
        groups="fusion_billing.group_fusion_billing_manager",
    )
    webhook_previous_secret_expiry = fields.Datetime(
        copy=False,
        groups="fusion_billing.group_fusion_billing_manager",
        help="Until then, deliveries are signed with both the new and the previous "
        "secret so the app can roll its key without rejecting events.",
    )
    webhook_max_attempts = fields.Integer(
        default=14,
        help="Deliveries still failing after this many attempts are marked failed "
        "(14 attempts with exponential backoff is about 3.5 days).",
    )
    reconciliation_tolerance = fields.Monetary(
        string="Tolerance (amount)",
        currency_field="currency_id",
        tracking=True,
        help="A delta whose absolute value is at most this amount is a match.",
    )
    reconciliation_tolerance_percent = fields.Float(
        string="Tolerance (%)",
        tracking=True,
        help="A delta of at most this percentage of the app's amount is a match.",
    )
    cutover_required_periods = fields.Integer(
        string="Periods Matched to Cut Over",
        default=3,
        tracking=True,
        help="The service is ready to cut over once this many consecutive periods, "
        "up to the latest one, have every customer matched or resolved.",
    )
    grace_period_hours = fields.Integer(
        default=1,
        tracking=True,
        help="A period whose end has passed stays open this many hours: late events "
        "dated in it are still accepted and rated into its invoice. Then it is rated "
        "a last time and closed.",
    )
    late_usage_policy = fields.Selection(
        [("reject", "Reject"), ("adjust", "Adjust on the next invoice")],
        required=True,
        default="reject",
        tracking=True,
        help="Events dated in a period already closed. Reject: refused. Adjust: "
        "accepted (up to the late usage days) and billed on the next invoice as an "
        "adjustment of the closed period; cancellations of such events are credited "
        "the same way.",
    )
    late_usage_days = fields.Integer(
        default=35,
        tracking=True,
        help="With the Adjust policy, how old (counted from now back to the event's "
        "timestamp) a late event or a cancellation may be.",
    )
    customer_ids = fields.One2many("fusion.billing.customer", "service_id")
    metric_ids = fields.One2many("fusion.billing.metric", "service_id")
    plan_ids = fields.One2many("fusion.billing.plan", "service_id")
    subscription_ids = fields.One2many("fusion.billing.subscription", "service_id")
    subscription_count = fields.Integer(compute="_compute_subscription_count")
    usage_retention_days = fields.Integer(
        string="Keep Usage Events (days)",
        default=0,
        tracking=True,
        help="0 keeps usage events forever. Otherwise events older than this many "
        "days are refused by the API, and a daily job deletes the events of billing "
        "periods that ended before then and whose invoice is posted (the invoice "
        "keeps the billed quantities).",
    )
    last_rating_date = fields.Datetime(
        string="Last Rating Run",
        compute="_compute_operations",
        help="When the rating job last rated a subscription of this service.",
    )
    rating_error_count = fields.Integer(
        string="Rating Errors", compute="_compute_operations"
    )
    webhook_pending_count = fields.Integer(
        string="Deliveries Pending", compute="_compute_operations"
    )
    webhook_failed_count = fields.Integer(
        string="Deliveries Failed", compute="_compute_operations"
    )

    _code_unique = models.Constraint(
        "UNIQUE(code)", "Another service already uses this code."
    )
    # A key is looked up by its user: a shared user would reach either service.
    _user_unique = models.UniqueIndex(
        "(user_id) WHERE user_id IS NOT NULL",
        "Each service has its own technical user.",
    )
    _tolerances_positive = models.Constraint(
        "CHECK(reconciliation_tolerance >= 0 "
        "AND reconciliation_tolerance_percent >= 0)",
        "Reconciliation tolerances cannot be negative.",
    )
    _webhook_max_attempts_positive = models.Constraint(
        "CHECK(webhook_max_attempts > 0)", "Maximum attempts must be at least 1."
    )
    _grace_period_hours_positive = models.Constraint(
        "CHECK(grace_period_hours >= 0)", "The grace period cannot be negative."
    )
    _late_usage_days_positive = models.Constraint(
        "CHECK(late_usage_days >= 0)", "Late usage days cannot be negative."
    )
    _usage_retention_days_positive = models.Constraint(
        "CHECK(usage_retention_days >= 0)",
        "The usage retention cannot be negative (0 keeps events forever).",
    )

    @api.model
    def _default_salesperson(self):
        """Who creates the service, unless that is Odoo itself (data files,
        the superuser) or a service's technical user."""
        user = self.env.user
        if user._is_superuser() or user.share or user.fusion_billing_technical:
            return False
        return user

    @api.depends("user_id")
    def _compute_api_key_ids(self):
        keys = (
            self.env["res.users.apikeys"]
            .sudo()
            .search(
                [("user_id", "in", self.user_id.ids), ("scope", "=", API_KEY_SCOPE)]
            )
        )
        for service in self:
            service_keys = keys.filtered(
                lambda key, s=service: key.user_id == s.user_id
            )
            service.api_key_ids = service_keys
            service.api_key_count = len(service_keys)

    @api.depends("webhook_url")
    def _compute_webhook_endpoint(self):
        for service in self:
            url = service.sudo().webhook_url
            service.webhook_endpoint = url and urlguard.without_query(url)

    def _compute_subscription_count(self):
        counts = dict(
            self.env["fusion.billing.subscription"]._read_group(
                [("service_id", "in", self.ids)], ["service_id"], ["__count"]
            )
        )
        for service in self:
            service.subscription_count = counts.get(service, 0)

    def _compute_operations(self):
        """What needs an operator: the last rating, failed ratings, deliveries
        waiting or given up."""
        Subscription = self.env["fusion.billing.subscription"]
        last_rating = dict(
            Subscription._read_group(
                [("service_id", "in", self.ids)], ["service_id"], ["rating_date:max"]
            )
        )
        rating_errors = dict(
            Subscription._read_group(
                [("service_id", "in", self.ids), ("rating_error", "!=", False)],
                ["service_id"],
                ["__count"],
            )
        )
        deliveries = {
            (service, state): count
            for service, state, count in self.env[
                "fusion.billing.webhook.event"
            ]._read_group(
                [
                    ("service_id", "in", self.ids),
                    ("state", "in", ("pending", "failed")),
                ],
                ["service_id", "state"],
                ["__count"],
            )
        }
        for service in self:
            service.last_rating_date = last_rating.get(service)
            service.rating_error_count = rating_errors.get(service, 0)
            service.webhook_pending_count = deliveries.get((service, "pending"), 0)
            service.webhook_failed_count = deliveries.get((service, "failed"), 0)

    @api.constrains("code")
    def _check_code(self):
        for service in self:
            if not CODE_PATTERN.match(service.code or ""):
                raise ValidationError(
                    self.env._(
                        "Service code %(code)r must be lowercase letters, digits, '.', "
                        "'_' or '-' (at most 64 characters).",
                        code=service.code,
                    )
                )

    @api.constrains("webhook_url")
    def _check_webhook_url(self):
        for service in self.filtered("webhook_url"):
            service._check_webhook_target()

    def _check_webhook_target(self):
        """Like ``_webhook_target``, with the refusal as a clear ValidationError."""
        try:
            return self._webhook_target()
        except urlguard.UnsafeURL as error:
            raise ValidationError(
                self.env._("Webhook URL refused: %(reason)s", reason=error)
            ) from error

    def _secret_rows(self):
        secrets = self.env["fusion.billing.service.secret"].sudo()
        rows = secrets.search([("service_id", "in", self.ids)])
        return {row.service_id.id: row for row in rows}

    def _compute_webhook_settings(self):
        rows = self._secret_rows()
        for service in self:
            row = rows.get(service.id)
            for name in WEBHOOK_SETTINGS:
                service[name] = row[name] if row else False

    def _search_webhook_url(self, operator, value):
        # Odoo checks the field's groups for stored fields only: a search would
        # let a billing user guess the URL's token letter by letter.
        self._check_field_access(self._fields["webhook_url"], "read")
        if operator in Domain.NEGATIVE_OPERATORS:
            return NotImplemented  # Odoo negates the positive condition
        secrets = self.env["fusion.billing.service.secret"].sudo()
        found = Domain(
            "id",
            "in",
            secrets._search([("webhook_url", operator, value)]).subselect("service_id"),
        )
        if operator == "in" and False in value:
            # A service without its row has no URL either.
            found |= Domain("id", "not in", secrets._search([]).subselect("service_id"))
        return found

    # One inverse per field: Odoo calls those of the written fields only, while
    # the fields sharing their inverse read as empty.
    def _inverse_webhook_url(self):
        self._store_webhook_setting("webhook_url")

    def _inverse_webhook_secret(self):
        self._store_webhook_setting("webhook_secret")

    def _inverse_webhook_previous_secret(self):
        self._store_webhook_setting("webhook_previous_secret")

    def _store_webhook_setting(self, name):
        rows = self._secret_rows()
        secrets = self.env["fusion.billing.service.secret"].sudo()
        for service in self:
            if service.id in rows:
                rows[service.id][name] = service[name]
            else:
                secrets.create({"service_id": service.id, name: service[name]})

    @api.constrains("webhook_secret", "webhook_previous_secret")
    def _check_webhook_secret(self):
        for service in self.sudo():
            for secret in (service.webhook_secret, service.webhook_previous_secret):
                if not secret:
                    continue
                try:
                    signing.decode_secret(secret)
                except ValueError as error:
                    raise ValidationError(
                        self.env._("Invalid webhook secret: %(reason)s", reason=error)
                    ) from error

    @api.model_create_multi
    def create(self, vals_list):
        if any(vals.get("user_id") for vals in vals_list):
            raise AccessError(
                self.env._("The technical user of a service is created with it.")
            )
        services = super().create(vals_list)
        for service in services:
            service._ensure_technical_user()
            if not service.sudo().webhook_secret:
                service.sudo().webhook_secret = signing.generate_secret()
        return services

    def write(self, vals):
        # Only the addon sets the technical user (sudo, once): pointing a service
        # at an existing user would let its keys and archiving reach that user.
        if "user_id" in vals and (not self.env.su or self.user_id):
            raise AccessError(
                self.env._("The technical user of a service cannot be changed.")
            )
        if "webhook_secret" in vals:
            self._keep_previous_secret()
        result = super().write(vals)
        if "active" in vals:
            self.sudo().user_id.filtered("fusion_billing_technical").write(
                {"active": vals["active"]}
            )
        return result

    def _ensure_technical_user(self):
        self.ensure_one()
        if self.user_id:
            return
        self.sudo().user_id = (
            self.env["res.users"]
            .sudo()
            .with_context(no_reset_password=True)
            .create(
                {
                    "name": self.env._("%(service)s (API)", service=self.name),
                    "login": f"fusion_billing.{self.code}.{self.id}",
                    "company_id": self.company_id.id,
                    "company_ids": [Command.set(self.company_id.ids)],
                    "group_ids": [Command.set(self.env.ref("base.group_portal").ids)],
                    "fusion_billing_technical": True,
                }
            )
        )

    def generate_api_key(self, name, expiration_date=False):
        """Issue an API key of this service and return it. Only its hash is
        stored, so the caller sees it once. For billing managers, from the form
        or over RPC (e.g. to provision an app).

        :param str name: where the key is used
        :param datetime expiration_date: when the key stops working; none: never
        :return: the key
        """
        self.ensure_one()
        self.check_access("write")
        try:
            expiration_date = fields.Datetime.to_datetime(expiration_date)
        except ValueError:
            raise UserError(
                self.env._(
                    "The expiration date must be a date and time,"
                    " e.g. 2027-01-31 00:00:00."
                )
            ) from None
        if expiration_date and expiration_date <= fields.Datetime.now():
            raise UserError(self.env._("The expiration date must be in the future."))
        self._ensure_technical_user()
        # _generate issues the key to the current user: run it as the service's.
        key = (
            self.env["res.users.apikeys"]
            .with_user(self.user_id)
            .sudo()
            ._generate(API_KEY_SCOPE, name, expiration_date)
        )
        # The chatter says who and when; the key itself is never written down.
        self.message_post(
            body=self.env._(
                "API key “%(name)s” generated (expires: %(expiry)s).",
                name=name,
                expiry=expiration_date or self.env._("never"),
            ),
            subtype_xmlid="mail.mt_note",
        )
        return key

    @api.model
    def _authenticate_bearer(self, key):
        """Return the active service owning the API key ``key``, or an empty recordset.

        Same rules as Odoo's own API key check (active user, not expired, hash
        verified), but only keys of scope ``fusion_billing`` of a service's
        technical user count: a key reaches its own service and nothing else.
        The service comes in an environment of its technical user.
        """
        service = self.browse()
        if not key or len(key) > API_KEY_MAX_LENGTH or not key.isascii():
            return service
        cr = self.env.cr
        cache_key = (cr.dbname, hashlib.sha256(key.encode()).digest())
        verified = _verified_keys.get(cache_key)
        if verified:
            key_id, key_hash = verified
            cr.execute(
                SQL(
                    "%s AND k.id = %s AND k.key = %s",
                    self._service_key_query(),
                    key_id,
                    key_hash,
                )
            )
            row = cr.fetchone()
            if row:
                self._note_key_use(key_id)
                return self.browse(row[0]).with_user(row[1])
            _verified_keys.pop(cache_key, None)
            return service
        cr.execute(
            SQL(
                "%s AND k.index = %s",
                self._service_key_query(),
                key[:INDEX_SIZE],
            )
        )
        for service_id, user_id, key_id, key_hash in cr.fetchall():
            if KEY_CRYPT_CONTEXT.verify(key, key_hash):
                _verified_keys[cache_key] = (key_id, key_hash)
                if len(_verified_keys) > _VERIFIED_KEYS_MAX:
                    _verified_keys.popitem(last=False)
                self._note_key_use(key_id)
                return self.browse(service_id).with_user(user_id)
        return service

    @api.model
    def _note_key_use(self, key_id):
        """Record that the API key ``key_id`` was used now, at most once an
        hour: this process asks the database only when it has not recorded
        the key for an hour, and the row is written only when its date is an
        hour old. In a transaction of its own that skips a key another
        request is recording: a request never waits on it, nor fails to
        serialize over it, nor loses it to a rollback of its own. A read-only
        request (the usage summary) records nothing: it writes nothing."""
        if self.env.cr.readonly:
            return
        noted = (self.env.cr.dbname, key_id)
        now = time.monotonic()
        if now - _key_use_noted.get(noted, float("-inf")) < KEY_USE_INTERVAL:
            return
        _key_use_noted[noted] = now
        _key_use_noted.move_to_end(noted)
        if len(_key_use_noted) > _VERIFIED_KEYS_MAX:
            _key_use_noted.popitem(last=False)
        with self.env.registry.cursor() as cr:
            cr.execute(
                SQL(
                    """UPDATE res_users_apikeys
                          SET fusion_last_used = now() AT TIME ZONE 'utc'
                        WHERE id IN (
                           SELECT id FROM res_users_apikeys
                            WHERE id = %s
                              AND (fusion_last_used IS NULL OR fusion_last_used
                                   < now() AT TIME ZONE 'utc' - %s * interval '1s')
                              FOR UPDATE SKIP LOCKED)""",
                    key_id,
                    KEY_USE_INTERVAL,
                )
            )

    def _service_key_query(self):
        """Usable service keys: scope, expiry, active user and active service."""
        return SQL(
            """SELECT s.id, u.id, k.id, k.key
                 FROM res_users_apikeys k
                 JOIN res_users u ON u.id = k.user_id AND u.active
                 JOIN fusion_billing_service s ON s.user_id = u.id AND s.active
                WHERE k.scope = %s
                  AND (k.expiration_date IS NULL
                       OR k.expiration_date >= now() AT TIME ZONE 'utc')""",
            API_KEY_SCOPE,
        )

    def _keep_previous_secret(self):
        """Let the old secret co-sign for a day so receivers can roll their key."""
        grace = fields.Datetime.add(fields.Datetime.now(), days=1)
        for service in self.sudo().filtered("webhook_secret"):
            service.write(
                {
                    "webhook_previous_secret": service.webhook_secret,
                    "webhook_previous_secret_expiry": grace,
                }
            )

    def _webhook_allowed_hosts(self):
        param = self.env["ir.config_parameter"].sudo().get_param(ALLOWED_HOSTS_PARAM)
        return urlguard.parse_allowed_hosts(param)

    def _webhook_target(self):
        """Check the webhook URL against the SSRF rules and resolve it once."""
        self.ensure_one()
        return urlguard.check_url(
            self.webhook_url,
            resolver=self.env["fusion.billing.webhook.event"]._webhook_resolver(),
            allowed_hosts=self._webhook_allowed_hosts(),
        )

    def _webhook_signing_secrets(self):
        """Secrets signing a delivery now: the current one, plus the previous one
        during its rotation grace period."""
        self.ensure_one()
        service = self.sudo()
        secrets = [service.webhook_secret] if service.webhook_secret else []
        if (
            service.webhook_previous_secret
            and service.webhook_previous_secret_expiry
            and service.webhook_previous_secret_expiry > fields.Datetime.now()
        ):
            secrets.append(service.webhook_previous_secret)
        return secrets

    def action_rotate_webhook_secret(self):
        for service in self:
            service.webhook_secret = signing.generate_secret()
        return True

    def action_reveal_webhook_secret(self):
        """Show the webhook secret to a billing manager, to copy it into the
        app; the chatter keeps who looked."""
        self.ensure_one()
        self.check_access("write")
        if not self.env.user.has_group("fusion_billing.group_fusion_billing_manager"):
            raise AccessError(self.env._("Only billing managers see webhook secrets."))
        self.message_post(
            body=self.env._("Webhook secret revealed."), subtype_xmlid="mail.mt_note"
        )
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Webhook Secret"),
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "views": [
                (
                    self.env.ref(
                        "fusion_billing.fusion_billing_service_view_form_secret"
                    ).id,
                    "form",
                )
            ],
            "target": "new",
        }

    def action_send_test_event(self):
        """Queue a ``service.test`` delivery so an admin can check the receiving end."""
        self.ensure_one()
        # The event is queued in SQL: only who may configure the service sends one.
        self.check_access("write")
        self._check_webhook_target()
        event = self.env["fusion.billing.webhook.event"]._queue(
            self, "service.test", {"message": "Test event from Odoo"}
        )
        self.env.ref("fusion_billing.ir_cron_deliver_webhooks")._trigger()
        return {
            "type": "ir.actions.act_window",
            "res_model": "fusion.billing.webhook.event",
            "res_id": event.id,
            "view_mode": "form",
        }

    def action_generate_api_key(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Generate API Key"),
            "res_model": "fusion.billing.api.key.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_service_id": self.id},
        }

    def action_view_subscriptions(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Subscriptions"),
            "res_model": "fusion.billing.subscription",
            "view_mode": "list,form",
            "domain": [("service_id", "=", self.id)],
            "context": {"default_service_id": self.id},
        }

    def action_view_rating_errors(self):
        action = self.action_view_subscriptions()
        action["name"] = self.env._("Subscriptions with a Rating Error")
        action["domain"] += [("rating_error", "!=", False)]
        return action

    def action_view_pending_deliveries(self):
        return self._deliveries_action(self.env._("Pending Deliveries"), "pending")

    def action_view_failed_deliveries(self):
        return self._deliveries_action(self.env._("Failed Deliveries"), "failed")

    def _deliveries_action(self, name, state):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": name,
            "res_model": "fusion.billing.webhook.event",
            "view_mode": "list,form",
            "domain": [("service_id", "=", self.id), ("state", "=", state)],
            "context": {"create": False},
        }

    # ------------------------------------------------------------------
    # Usage retention cron (SPEC §14)
    # ------------------------------------------------------------------

    @api.model
    def _cron_purge_usage(self, batch_size=PURGE_BATCH_SIZE):
        """Delete the usage events the services no longer keep, batch by batch.

        Events go by whole billing periods: a period that ended before its
        service's retention cutoff, is closed, and whose invoice (or credit
        note, when the period closed negative) is posted (and no other invoice
        of it still a draft). Since the API refuses events
        older than the retention, such a period never gets usage again. Under
        the adjust policy, late usage of a closed period is billed by re-rating
        it on a later invoice: its events stay until every period that late
        usage could still reach is closed and its invoice posted. Invoices are
        not touched:
        their lines keep the billed quantities. Periods are walked in invoice
        order, so a run reads each old invoice once however many batches it
        takes; each batch commits.
        """
        after = 0
        while True:
            deleted, after, done = self._purge_usage_batch(after, batch_size)
            time_left = self._purge_commit_progress(deleted, 0 if done else 1)
            if done or time_left <= 0:
                return

    @api.model
    def _purge_usage_batch(self, after, batch_size):
        """Delete up to ``batch_size`` purgeable events of the periods whose
        invoice id is above ``after``. Returns (events deleted, the invoice id
        to continue after, whether every period has been walked)."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                WITH periods AS (
                    SELECT m.id, m.fusion_subscription_id AS subscription_id,
                           m.fusion_period_start AS date_from,
                           m.fusion_period_end AS date_to
                      FROM account_move m
                      JOIN fusion_billing_subscription sub
                        ON sub.id = m.fusion_subscription_id
                      JOIN fusion_billing_service s
                        ON s.id = sub.service_id AND s.usage_retention_days > 0
                     WHERE m.id > %(after)s
                       AND m.move_type = ANY(%(period_move_types)s)
                       AND m.state = 'posted'
                       AND m.fusion_period_end
                           <= COALESCE(sub.last_invoice_date, sub.start_date)
                       AND m.fusion_period_end <= (now() AT TIME ZONE 'utc')
                           - make_interval(days => s.usage_retention_days)
                       AND NOT EXISTS (
                           SELECT 1 FROM account_move other
                            WHERE other.fusion_subscription_id
                                  = m.fusion_subscription_id
                              AND other.fusion_period_start = m.fusion_period_start
                              AND other.state = 'draft')
                       AND (s.late_usage_policy != 'adjust' OR (
                           COALESCE(sub.last_invoice_date, sub.start_date)
                               >= m.fusion_period_end + LEAST(
                                   s.late_usage_days, s.usage_retention_days)
                           AND NOT EXISTS (
                               SELECT 1 FROM account_move later
                                WHERE later.fusion_subscription_id
                                      = m.fusion_subscription_id
                                  AND later.state = 'draft'
                                  AND later.fusion_period_start
                                      < m.fusion_period_end + LEAST(
                                          s.late_usage_days,
                                          s.usage_retention_days))))
                  ORDER BY m.id
                     LIMIT %(batch_size)s
                ),
                doomed AS (
                    SELECT e.id, p.id AS move_id
                      FROM periods p
                      JOIN fusion_billing_usage_event e
                        ON e.subscription_id = p.subscription_id
                       AND e.timestamp >= p.date_from
                       AND e.timestamp < p.date_to
                  ORDER BY p.id
                     LIMIT %(batch_size)s
                       FOR UPDATE OF e SKIP LOCKED
                ),
                deleted AS (
                    DELETE FROM fusion_billing_usage_event e
                     USING doomed
                     WHERE e.id = doomed.id
                 RETURNING doomed.move_id
                )
                SELECT (SELECT COUNT(*) FROM deleted),
                       (SELECT MAX(move_id) FROM deleted),
                       (SELECT MAX(id) FROM periods),
                       (SELECT COUNT(*) FROM periods)
                """,
                after=after,
                period_move_types=list(PERIOD_MOVE_TYPES),
                batch_size=batch_size,
            )
        )
        deleted, last_move, last_period, period_count = self.env.cr.fetchone()
        self.env["fusion.billing.usage.event"].invalidate_model()
        if deleted < batch_size:
            # Every event of these periods is gone (or locked: next run).
            return deleted, last_period or after, period_count < batch_size
        # The last period touched may have more events: start again at it.
        return deleted, last_move - 1, False

    @api.model
    def _purge_commit_progress(self, processed, remaining):
        """Commit the batch and report progress to the cron; under tests
        nothing is committed (the test cursor cannot). Returns the cron's time
        left."""
        if modules.module.current_test:
            return float("inf")
        return self.env["ir.cron"]._commit_progress(processed, remaining=remaining)
