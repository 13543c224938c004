# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import datetime

from odoo.tests import Form, tagged

from .common import FusionBillingCase


@tagged("post_install", "-at_install")
class TestServiceOperations(FusionBillingCase):
    """The service form tells an operator what needs them, with smart buttons
    to exactly those records."""

    def _deliveries(self, *states):
        Delivery = self.env["fusion.billing.webhook.event"].sudo()
        deliveries = Delivery.browse()
        for state in states:
            delivery = Delivery._queue(
                self.service, "service.test", {"n": len(deliveries)}
            )
            delivery.state = state
            deliveries |= delivery
        return deliveries

    def _opened(self, action):
        return self.env[action["res_model"]].search(action["domain"])

    def test_rating_errors_and_deliveries_are_counted_and_opened(self):
        other = self._create_service("Other", "fb_test_ops_other")
        self.env["fusion.billing.webhook.event"].sudo()._queue(
            other, "service.test", {}
        )
        deliveries = self._deliveries("pending", "pending", "failed", "delivered")
        self.subscription_b.sudo().write(
            {"rating_error": "no tier", "rating_date": datetime(2026, 3, 2, 8)}
        )
        self.subscription_a.sudo().rating_date = datetime(2026, 3, 2, 9)

        service = self.service.with_user(self.billing_user)
        self.assertEqual(service.rating_error_count, 1)
        self.assertEqual(service.webhook_pending_count, 2)
        self.assertEqual(service.webhook_failed_count, 1)
        self.assertEqual(service.last_rating_date, datetime(2026, 3, 2, 9))
        self.assertEqual(
            self._opened(service.action_view_rating_errors()), self.subscription_b
        )
        self.assertEqual(
            self._opened(service.action_view_pending_deliveries()),
            deliveries.filtered(lambda d: d.state == "pending"),
        )
        self.assertEqual(
            self._opened(service.action_view_failed_deliveries()),
            deliveries.filtered(lambda d: d.state == "failed"),
        )
        self.assertEqual(other.webhook_pending_count, 1)
        self.assertFalse(other.rating_error_count or other.last_rating_date)

    def test_form_shows_the_figures_and_the_retention(self):
        self._deliveries("failed")
        with Form(self.service) as form:
            self.assertEqual(form.webhook_failed_count, 1)
            form.usage_retention_days = 400
        self.assertEqual(self.service.usage_retention_days, 400)
