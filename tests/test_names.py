# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import logging
from datetime import datetime

from odoo import Command
from odoo.tests import tagged

from .common import FusionBillingCase

_logger = logging.getLogger("odoo.sql_db")


@tagged("post_install", "-at_install")
class TestNames(FusionBillingCase):
    """Records are titled with what people know them by, read in batches."""

    def _queries(self, records):
        """Queries reading the display names of ``records`` from a cold cache."""
        self.env.invalidate_all()
        with self.assertLogs("odoo.sql_db", "DEBUG") as logs:
            records.mapped("display_name")
            _logger.debug("done")
        queries = [line for line in logs.output if "query:" in line]
        return len(queries), queries

    def test_subscription(self):
        self.assertEqual(
            self.subscription_a.display_name, "Azure Interior · Pro (sub_a)"
        )
        Subscription = self.env["fusion.billing.subscription"]
        found = Subscription.name_search("Deco Addict")
        self.assertEqual([sub_id for sub_id, _name in found], self.subscription_b.ids)
        more = self.subscription_a | self.subscription_b
        for index in range(4):
            partner = self.env["res.partner"].create({"name": f"Customer {index}"})
            more |= self._create_subscription(
                self.service,
                partner,
                self.plan,
                f"sub_n{index}",
                self.subscription_a.start_date,
            )
        self.assertEqual(
            self._queries(self.subscription_a | self.subscription_b)[0],
            self._queries(more)[0],
        )

    def test_reconciliation_row(self):
        row = self._create_reconciliation_row(self.partner_a, "2026-11")
        self.assertEqual(row.display_name, "Test Cloud · Azure Interior · 2026-11")

    def test_delivery_names_its_invoice_and_links_it(self):
        invoice = self.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": self.partner_a.id,
                "invoice_line_ids": [
                    Command.create(
                        {"product_id": self.product_usage.id, "price_unit": 5}
                    )
                ],
            }
        )
        invoice.fusion_subscription_id = self.subscription_a
        Event = self.env["fusion.billing.webhook.event"]
        draft = Event._queue(
            self.service, "invoice.created", {"invoice": {"id": invoice.id}}
        )
        self.assertEqual(
            draft.display_name, f"invoice.created · {invoice.display_name}"
        )
        invoice.action_post()
        final = Event._queue(
            self.service, "invoice.finalized", {"invoice": {"id": invoice.id}}
        )
        self.assertEqual(final.display_name, f"invoice.finalized · {invoice.name}")
        self.assertEqual(
            (final.invoice_id, final.subscription_id), (invoice, self.subscription_a)
        )
        test = Event._queue(self.service, "service.test", {"message": "hi"})
        self.assertEqual(test.display_name, "service.test · Test Cloud")
        self.assertFalse(test.invoice_id)
        # As many queries for many deliveries of many invoices as for two.
        invoices = invoice.copy() | invoice.copy() | invoice.copy()
        events = draft | final
        for other in invoices:
            events |= Event._queue(
                self.service, "invoice.created", {"invoice": {"id": other.id}}
            )
        few = self._queries(draft | final)  # access rules cached on first read
        few = self._queries(draft | final)
        many = self._queries(events)
        self.assertEqual(many[0], few[0], "\n".join(many[1]))

    def test_usage_event(self):
        event = (
            self.env["fusion.billing.usage.event"]
            .sudo()
            .create(
                {
                    "service_id": self.service.id,
                    "subscription_id": self.subscription_a.id,
                    "metric_id": self.metric_calls.id,
                    "quantity": 3,
                    "timestamp": datetime(2026, 1, 5, 14, 30),
                    "idempotency_key": "fb_names_evt",
                }
            )
        )
        self.assertTrue(event.display_name.startswith("Api Calls · "))
        self.assertIn("2026", event.display_name)
        self.assertNotIn("fb_names_evt", event.display_name)

    def test_field_labels_are_unique_per_model(self):
        # Odoo tells fields apart by their label in filters, exports and
        # imports; it warns at every install when two of a model's share one.
        for model in [
            name for name in self.env.registry if name.startswith("fusion.billing.")
        ]:
            labels = {}
            for field in self.env[model]._fields.values():
                with self.subTest(model=model, field=field.name):
                    self.assertNotIn(field.string, labels)
                labels.setdefault(field.string, field.name)
