# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import date

from odoo.tests import tagged
from odoo.tools import SQL

from .common import FusionBillingCase
from .test_period_lifecycle import FEB, JAN, MAR, at


@tagged("post_install", "-at_install")
class TestPlanHistoryUpgrade(FusionBillingCase):
    """The 1.2.0 upgrade fills the plan history of subscriptions billed by
    1.1.0, which had none: each subscription is taken through its life by the
    current code, its history rows are then deleted (the state a 1.1.0
    database is in once the table exists) and the script must record them
    again."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.service.write({"late_usage_policy": "adjust", "auto_post_invoices": True})
        cls.plan_b, cls.storage_b = cls._storage_plan("storage_b", 1.0)
        cls.plan_c, cls.storage_c = cls._storage_plan(
            "storage_c", 2.0, interval_unit="year"
        )

    @classmethod
    def _storage_plan(cls, code, unit_price, **values):
        """A plan charging storage only (the fixture's Pro charges calls only):
        which plan authorizes an event shows in whether it is accepted."""
        plan = cls.env["fusion.billing.plan"].create(
            {"service_id": cls.service.id, "name": code, "code": code, **values}
        )
        charge = cls._create_charge(
            plan, cls.metric_storage, "standard", unit_price=unit_price
        )
        return plan, charge

    def _rate(self, subscription, now):
        self.env["fusion.billing.rating"]._rate_subscriptions(
            subscription_ids=subscription.ids, now=now
        )

    def _history(self, subscription):
        return [
            (row.date_from, row.plan_id, row.anchor_date)
            for row in self.env["fusion.billing.plan.history"].search(
                [("subscription_id", "=", subscription.id)], order="date_from, id"
            )
        ]

    def _upgrade(self, subscriptions):
        """Delete the plan history of ``subscriptions`` as 1.1.0 had none,
        then run the upgrade script."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                "DELETE FROM fusion_billing_plan_history WHERE subscription_id IN %s",
                tuple(subscriptions.ids),
            )
        )
        self.env.invalidate_all()
        self.assertFalse(any(self._history(s) for s in subscriptions))
        self._run_migration("19.0.1.2.0", "19.0.1.1.0")
        self.env.invalidate_all()

    def _ingest(self, subscription, events, now):
        """Statuses and error codes of ingesting ``events`` [(key, metric
        code, quantity, day)] of ``subscription``, as the API does at
        ``now``."""
        results = (
            self.env["fusion.billing.usage.event"]
            .sudo()
            ._ingest(
                self.service,
                [
                    {
                        "idempotency_key": key,
                        "subscription": subscription.external_ref,
                        "customer": "cus_a",
                        "metric": metric,
                        "quantity": quantity,
                        "timestamp": f"{day.isoformat()}T12:00:00Z",
                    }
                    for key, metric, quantity, day in events
                ],
                now=now,
            )
        )
        return [(r["status"], r.get("error", {}).get("code")) for r in results]

    def _invoice(self, subscription, period_start):
        return self.env["account.move"].search(
            [
                ("fusion_subscription_id", "=", subscription.id),
                ("fusion_period_start", "=", period_start),
            ]
        )

    def _subscription(self, external_ref):
        return self._create_subscription(
            self.service, self.partner_a, self.plan, external_ref, JAN
        )

    def _changed_in_the_past(self, subscription):
        """Billed on Pro in January and until 11 February (a cut period),
        then on C, billed yearly from then, until 1 March (a cut period), then
        on B, monthly from 1 March: every period closed bills a charge of its
        plan (1.1.0 kept no other trace of it)."""
        self._store_event(subscription, self.metric_calls, 800, at(date(2026, 1, 5)))
        self._rate(subscription, at(FEB, 1))
        self._store_event(subscription, self.metric_calls, 100, at(date(2026, 2, 5)))
        subscription.change_plan(self.plan_c, date(2026, 2, 11))
        self._store_event(subscription, self.metric_storage, 3, at(date(2026, 2, 15)))
        self._rate(subscription, at(date(2026, 2, 16)))
        subscription.change_plan(self.plan_b, MAR)
        self._store_event(subscription, self.metric_storage, 5, at(date(2026, 3, 3)))
        self._rate(subscription, at(date(2026, 3, 4)))
        self.assertFalse(subscription.previous_plan_id, "no change still open")

    def _changed_in_the_open_period(self, subscription):
        """On Pro from 1 January, on B from 11 January: the cut period is open."""
        self._store_event(subscription, self.metric_calls, 800, at(date(2026, 1, 5)))
        self._rate(subscription, at(date(2026, 1, 6)))
        subscription.change_plan(self.plan_b, date(2026, 1, 11))
        self.assertEqual(subscription.previous_plan_id, self.plan)

    def test_the_upgrade_records_the_history_the_current_code_records(self):
        never_changed = self.subscription_b
        open_change = self._subscription("sub_open_change")
        past_changes = self.subscription_a
        closed = self._subscription("sub_closed")
        self._changed_in_the_open_period(open_change)
        self._changed_in_the_past(past_changes)
        # Closed after a change: its invoices name both plans.
        self._store_event(closed, self.metric_calls, 100, at(date(2026, 1, 5)))
        closed.change_plan(self.plan_b, date(2026, 1, 11))
        self._store_event(closed, self.metric_storage, 3, at(date(2026, 1, 15)))
        closed.end_date = FEB
        self._rate(closed, at(date(2026, 1, 12)))
        self._rate(closed, at(FEB, 1))
        self.assertEqual(closed.state, "closed")
        never_billed = self.env["fusion.billing.subscription"].create(
            {
                "service_id": self.service.id,
                "partner_id": self.partner_a.id,
                "plan_id": self.plan.id,
                "external_ref": "sub_never_billed",
            }
        )
        never_billed.write({"state": "closed"})
        draft = never_billed.copy({"external_ref": "sub_draft"})
        subscriptions = never_changed | open_change | past_changes | closed
        recorded = {s: self._history(s) for s in subscriptions}
        self.assertEqual(
            recorded[past_changes],
            [
                (JAN, self.plan, JAN),
                (date(2026, 2, 11), self.plan_c, date(2026, 2, 11)),
                (MAR, self.plan_b, MAR),
            ],
        )
        self.assertEqual(
            recorded[open_change],
            [(JAN, self.plan, JAN), (date(2026, 1, 11), self.plan_b, JAN)],
        )
        self.assertEqual(recorded[never_changed], [(JAN, self.plan, JAN)])
        self.assertEqual(
            recorded[closed],
            [(JAN, self.plan, JAN), (date(2026, 1, 11), self.plan_b, JAN)],
        )

        self._upgrade(subscriptions | never_billed | draft)
        for subscription in subscriptions:
            with self.subTest(subscription=subscription.external_ref):
                self.assertEqual(self._history(subscription), recorded[subscription])
        self.assertFalse(self._history(never_billed), "never billed, no plan")
        self.assertFalse(self._history(draft))

        self._run_migration("19.0.1.2.0", "19.0.1.1.0")
        for subscription in subscriptions:
            self.assertEqual(
                self._history(subscription), recorded[subscription], "upgraded once"
            )

    def test_the_upgrade_leaves_a_recorded_history_alone(self):
        sub = self.subscription_a
        self._changed_in_the_open_period(sub)
        rows = sub.plan_history_ids
        self.assertEqual(len(rows), 2)
        self._run_migration("19.0.1.2.0", "19.0.1.1.0")
        sub.invalidate_recordset()
        self.assertEqual(sub.plan_history_ids, rows)

    def test_after_the_upgrade_late_usage_goes_by_the_plan_of_its_closed_period(self):
        sub = self.subscription_a
        self._changed_in_the_past(sub)
        self._upgrade(sub)
        self.assertEqual(
            self._ingest(
                sub,
                [
                    ("calls-pro", "api_calls", 400, date(2026, 2, 5)),
                    ("storage-pro", "storage_gb", 7, date(2026, 2, 5)),
                    ("storage-c", "storage_gb", 9, date(2026, 2, 20)),
                    ("calls-c", "api_calls", 400, date(2026, 2, 20)),
                    ("storage-b", "storage_gb", 6, date(2026, 3, 9)),
                ],
                at(date(2026, 3, 10)),
            ),
            [
                ("accepted", None),
                ("rejected", "metric_not_on_plan"),
                ("accepted", None),
                ("rejected", "metric_not_on_plan"),
                ("accepted", None),
            ],
            "each closed period takes the metrics of the plan it was billed on",
        )
        self._rate(sub, at(date(2026, 3, 11)))
        open_invoice = self._invoice(sub, MAR)
        self.assertEqual(
            {
                (line.fusion_charge_id, line.fusion_adjusted_period_start): (
                    line.price_subtotal
                )
                for line in open_invoice.invoice_line_ids
            },
            {
                # 6 GB at B's 1.00
                (self.storage_b, False): 6.0,
                # 400 more calls at Pro's 0.0125, against Pro's charge billed
                (self.charge_calls, FEB): 5.0,
                # 9 GB instead of 3 at C's 2.00
                (self.storage_c, date(2026, 2, 11)): 12.0,
            },
        )

    def test_after_the_upgrade_usage_before_an_open_change_is_the_previous_plans(
        self,
    ):
        sub = self.subscription_a
        self._changed_in_the_open_period(sub)
        self._upgrade(sub)
        self.assertEqual(
            self._ingest(
                sub,
                [
                    ("calls-pro", "api_calls", 400, date(2026, 1, 8)),
                    ("storage-pro", "storage_gb", 7, date(2026, 1, 8)),
                    ("storage-b", "storage_gb", 9, date(2026, 1, 11)),
                ],
                at(date(2026, 1, 12)),
            ),
            [
                ("accepted", None),
                ("rejected", "metric_not_on_plan"),
                ("accepted", None),
            ],
        )
        self._rate(sub, at(date(2026, 1, 12)))
        self.assertEqual(sub.last_invoice_date, date(2026, 1, 11), "the cut closed")
        cut = self._invoice(sub, JAN)
        calls = cut.invoice_line_ids.filtered("fusion_charge_id")
        # 1,200 calls at Pro's 0.0125
        self.assertEqual(
            (calls.fusion_charge_id, calls.price_subtotal), (self.charge_calls, 15.0)
        )

    def test_after_the_upgrade_late_usage_is_adjusted_on_its_own_plans_charge(self):
        plus = self.env["fusion.billing.plan"].create(
            {"service_id": self.service.id, "name": "Plus", "code": "plus"}
        )
        self._create_charge(plus, self.metric_calls, "standard", unit_price=0.01)
        sub = self.subscription_a
        self._store_event(sub, self.metric_calls, 800, at(date(2026, 1, 5)))
        self._rate(sub, at(FEB, 1))
        sub.change_plan(plus, FEB)
        self._rate(sub, at(FEB, 2))
        self._upgrade(sub)
        self.assertEqual(
            self._ingest(
                sub,
                [("calls-jan", "api_calls", 400, date(2026, 1, 20))],
                at(date(2026, 2, 20)),
            ),
            [("accepted", None)],
        )
        self._rate(sub, at(date(2026, 2, 21)))
        february = self._invoice(sub, FEB)
        adjustment = february.invoice_line_ids.filtered("fusion_adjusted_period_start")
        # January re-rated on Pro: 1,200 x 0.0125 = 15.00, minus 10.00 billed;
        # not 1,200 x Plus's 0.01 against nothing billed on Plus's charge.
        self.assertEqual(
            (adjustment.fusion_charge_id, adjustment.price_subtotal),
            (self.charge_calls, 5.0),
        )
