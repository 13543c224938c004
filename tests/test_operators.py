# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
from datetime import timedelta
from unittest.mock import patch

from psycopg2 import IntegrityError

from odoo import Command, fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged
from odoo.tools import sql

from ..core import signing
from .common import FusionBillingCase


@tagged("post_install", "-at_install")
class TestOperators(FusionBillingCase):
    def _notes(self, record):
        bodies = record.message_ids.mapped("body")
        return [body for body in bodies if "API key" in body or "secret" in body]

    def test_api_keys_are_logged_without_the_key(self):
        service = self.service.with_user(self.billing_manager)
        key = service.generate_api_key("Production")
        (generated,) = self._notes(self.service)
        self.assertIn("Production", generated)
        self.assertNotIn(key, generated)
        self.assertEqual(
            self.service.message_ids[0].author_id, self.billing_manager.partner_id
        )
        service.api_key_ids.action_fusion_billing_revoke()
        # Over RPC, dates come as text.
        with self.assertRaisesRegex(UserError, "must be a date and time"):
            service.generate_api_key("Staging", "next month")
        revoked = self._notes(self.service)[0]
        self.assertIn("Production", revoked)
        self.assertIn("revoked", revoked)

    def test_webhook_secret_revealed_to_managers_only(self):
        action = self.service.with_user(
            self.billing_manager
        ).action_reveal_webhook_secret()
        self.assertEqual((action["res_id"], action["target"]), (self.service.id, "new"))
        self.assertIn("revealed", self._notes(self.service)[0])
        with self.assertRaises(AccessError):
            self.service.with_user(self.billing_user).action_reveal_webhook_secret()
        with self.assertRaises(AccessError):
            self.service.with_user(self.billing_user).read(["webhook_secret"])

    def test_deliveries_say_why_they_wait(self):
        Event = self.env["fusion.billing.webhook.event"]
        self.assertFalse(self.service.webhook_url)
        event = Event._queue(self.service, "invoice.created", {"invoice": {"id": 0}})
        self.assertIn("no", event.status_text.lower())
        self.assertIn("webhook URL", event.status_text)
        with patch.object(
            self.registry["fusion.billing.webhook.event"],
            "_webhook_resolver",
            lambda self: lambda host, port: ["93.184.215.14"],
        ):
            self.service.webhook_url = "https://billing.example.com/hooks"
        event.invalidate_recordset(["status_text"])
        self.assertIn("next delivery run", event.status_text)
        event.write(
            {
                "attempts": 2,
                "next_attempt_at": fields.Datetime.now() + timedelta(minutes=5),
                "last_error": "The receiver answered HTTP 503.",
                "last_status_code": 503,
            }
        )
        self.assertIn("Attempt 2 failed", event.status_text)
        event.state = "failed"
        self.assertIn("Gave up after 2 attempts", event.status_text)
        # The body reads indented, and is the same JSON.
        self.assertIn('\n  "data": {', event.body_pretty)
        self.assertEqual(json.loads(event.body_pretty), json.loads(event.body))

    def test_customer_and_partner_smart_buttons(self):
        customer = self.customer_a
        self.assertEqual(customer.display_name, "Azure Interior (cus_a)")
        self.assertEqual(customer.subscription_count, 1)
        action = customer.action_view_subscriptions()
        self.assertEqual(
            self.env["fusion.billing.subscription"].search(action["domain"]),
            self.subscription_a,
        )
        invoice = self.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": self.partner_a.id,
                "fusion_service_id": self.service.id,
                "invoice_line_ids": [
                    Command.create(
                        {"product_id": self.product_usage.id, "price_unit": 3}
                    )
                ],
            }
        )
        customer.invalidate_recordset(["invoice_count"])
        self.assertEqual(customer.invoice_count, 1)
        action = customer.action_view_invoices()
        self.assertEqual(self.env["account.move"].search(action["domain"]), invoice)
        self.assertTrue(customer.action_view_usage()["domain"])
        contact = self.env["res.partner"].create(
            {"name": "Azure accounting", "parent_id": self.partner_a.id}
        )
        self.assertEqual(contact.fusion_billing_subscription_count, 1)
        action = contact.action_view_fusion_billing_subscriptions()
        self.assertEqual(
            self.env["fusion.billing.subscription"].search(action["domain"]),
            self.subscription_a,
        )

    def test_billing_user_opens_every_form(self):
        """A billing user, with no accounting group of their own, reads every
        field of the app's landing page and of the forms: the invoice counts
        and billed amounts included."""
        overview = self.env.ref(
            "fusion_billing.fusion_billing_service_view_kanban_overview"
        )
        screens = (
            (self.service, overview.id, "kanban"),
            (self.service, False, "form"),
            (self.customer_a, False, "form"),
            (self.subscription_a, False, "form"),
            (self.plan, False, "form"),
            (self.charge_calls, False, "form"),
            (self.metric_calls, False, "form"),
        )
        for record, view_id, view_type in screens:
            as_user = record.with_user(self.billing_user)
            views = as_user.get_views([(view_id, view_type)])
            shown = list(views["models"][record._name]["fields"])
            with self.subTest(model=record._name, view=view_type):
                self.assertTrue(as_user.read(shown))

    def test_each_webhook_setting_is_written_alone(self):
        """Setting the URL, or only the previous secret, keeps the others
        (none of them read before, as in a request of its own)."""
        service = self.service.sudo()
        secret = service.webhook_secret
        previous = signing.generate_secret()
        self.env.invalidate_all()
        with patch.object(
            self.registry["fusion.billing.webhook.event"],
            "_webhook_resolver",
            lambda self: lambda host, port: ["93.184.215.14"],
        ):
            service.webhook_url = "https://billing.example.com/hooks"
        self.env.invalidate_all()
        service.webhook_previous_secret = previous
        self.env.invalidate_all()
        self.assertRecordValues(
            service,
            [
                {
                    "webhook_url": "https://billing.example.com/hooks",
                    "webhook_secret": secret,
                    "webhook_previous_secret": previous,
                }
            ],
        )

    def test_services_found_by_webhook_url(self):
        Service = self.env["fusion.billing.service"]
        without_url = Service.create({"name": "No URL", "code": "fb-no-url"})
        rowless = Service.create({"name": "Rowless", "code": "fb-rowless"})
        self.env["fusion.billing.service.secret"].sudo().search(
            [("service_id", "=", rowless.id)]
        ).unlink()
        with patch.object(
            self.registry["fusion.billing.webhook.event"],
            "_webhook_resolver",
            lambda self: lambda host, port: ["93.184.215.14"],
        ):
            self.service.webhook_url = "https://billing.example.com/hooks"
        services = self.service | without_url | rowless

        def found(*condition):
            return Service.search([("id", "in", services.ids), condition])

        self.assertEqual(found("webhook_url", "!=", False), self.service)
        self.assertEqual(found("webhook_url", "=", False), without_url | rowless)
        self.assertEqual(found("webhook_url", "ilike", "example.com"), self.service)
        self.assertEqual(
            found("webhook_url", "not ilike", "example.com"), without_url | rowless
        )
        with self.assertRaises(AccessError):
            Service.with_user(self.billing_user).search(
                [("webhook_url", "ilike", "token")]
            )

    def test_a_refused_service_write_logs_no_secret(self):
        """PostgreSQL quotes the row of a broken constraint in the error that
        Odoo and PostgreSQL log: the service's row holds no secret, nor the
        webhook URL's token."""
        service = self.service.sudo()
        with patch.object(
            self.registry["fusion.billing.webhook.event"],
            "_webhook_resolver",
            lambda self: lambda host, port: ["93.184.215.14"],
        ):
            service.webhook_url = "https://billing.example.com/hooks?token=t0k3n"
        service.action_rotate_webhook_secret()
        secrets = (service.webhook_secret, service.webhook_previous_secret, "t0k3n")
        with (
            self.assertLogs("odoo.sql_db", "ERROR") as logs,
            self.assertRaises(IntegrityError),
            self.env.cr.savepoint(),
        ):
            service.grace_period_hours = -1
            self.env.flush_all()
        self.assertIn("grace_period_hours", logs.output[0])
        for secret in secrets:
            self.assertNotIn(secret, "\n".join(logs.output))
        Secrets = self.env["fusion.billing.service.secret"]
        with self.assertRaises(AccessError):
            Secrets.with_user(self.billing_manager).search([])

    def test_upgrade_to_1_3_0_moves_the_secrets_off_the_service_row(self):
        service = self.service.sudo()
        old = (service.webhook_secret, "whsec_" + "B" * 32)
        self.env["fusion.billing.service.secret"].sudo().search(
            [("service_id", "=", service.id)]
        ).unlink()
        self.env.cr.execute(
            "ALTER TABLE fusion_billing_service"
            " ADD COLUMN webhook_secret varchar,"
            " ADD COLUMN webhook_previous_secret varchar"
        )
        self.env.cr.execute(
            "UPDATE fusion_billing_service"
            " SET webhook_secret = %s, webhook_previous_secret = %s WHERE id = %s",
            (*old, service.id),
        )
        self._run_migration("19.0.1.3.0", "19.0.1.2.0")
        self.env.invalidate_all()
        self.assertEqual((service.webhook_secret, service.webhook_previous_secret), old)
        self.assertFalse(
            sql.column_exists(self.env.cr, "fusion_billing_service", "webhook_secret")
        )

    def test_upgrade_to_1_4_0_moves_the_webhook_url_off_the_service_row(self):
        """Into the service's existing secrets row, or a new one."""
        Service = self.env["fusion.billing.service"].sudo()
        with_secrets = self.service.sudo()
        secret = with_secrets.webhook_secret
        without_secrets = Service.create({"name": "No secrets", "code": "no-secrets"})
        Secrets = self.env["fusion.billing.service.secret"].sudo()
        Secrets.search([("service_id", "=", without_secrets.id)]).unlink()
        self.env.cr.execute(
            "ALTER TABLE fusion_billing_service ADD COLUMN webhook_url varchar"
        )
        urls = {
            with_secrets: "https://billing.example.com/hooks?token=a",
            without_secrets: "https://billing.example.com/other",
        }
        for service, url in urls.items():
            self.env.cr.execute(
                "UPDATE fusion_billing_service SET webhook_url = %s WHERE id = %s",
                (url, service.id),
            )
        self._run_migration("19.0.1.4.0", "19.0.1.3.0")
        self.env.invalidate_all()
        for service, url in urls.items():
            self.assertEqual(service.webhook_url, url)
        self.assertEqual(with_secrets.webhook_secret, secret)
        self.assertFalse(without_secrets.webhook_secret)
        self.assertFalse(
            sql.column_exists(self.env.cr, "fusion_billing_service", "webhook_url")
        )
