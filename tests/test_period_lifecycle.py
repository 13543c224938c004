# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import tagged

from .common import FusionBillingCase

JAN = date(2026, 1, 1)
FEB = date(2026, 2, 1)
MAR = date(2026, 3, 1)
# The webhooks about an invoice.
KINDS = ("invoice.created", "invoice.finalized")


def at(day, hour=0, minute=0):
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.utc)


@tagged("post_install", "-at_install")
class TestPeriodLifecycle(FusionBillingCase):
    """Grace, end date, short periods and state changes (SPEC section 11)."""

    def _event(self, subscription, quantity, timestamp, **values):
        return self._store_event(
            subscription, self.metric_calls, quantity, timestamp, **values
        )

    def _rate(self, now):
        self.env["fusion.billing.rating"]._cron_rate_usage(now=now)

    def _invoices(self, subscription):
        return self.env["account.move"].search(
            [("fusion_subscription_id", "=", subscription.id)],
            order="fusion_period_start",
        )

    def _amounts(self, invoice):
        """{charge or 'fee': subtotal} of the invoice's rated lines."""
        return {
            (line.fusion_charge_id or "fee"): line.price_subtotal
            for line in invoice.invoice_line_ids
        }

    def _finalized(self, invoice):
        return self.env["fusion.billing.webhook.event"].search_count(
            [("dedupe_key", "=", f"invoice.finalized:{invoice.id}")]
        )

    # -- grace ---------------------------------------------------------------

    def test_a_period_closes_once_its_grace_is_over(self):
        self.service.grace_period_hours = 3
        sub = self.subscription_a
        self._event(sub, 800, at(JAN, 9))
        self._rate(at(FEB, 2, 59))
        self.assertEqual(sub.next_invoice_date, FEB, "still in its grace")
        invoice = self._invoices(sub)
        self.assertFalse(self._finalized(invoice))

        # Late but within the grace: billed on the period's own invoice.
        self._event(sub, 400, at(date(2026, 1, 31), 23))
        self._rate(at(FEB, 3))
        self.assertEqual((sub.last_invoice_date, sub.next_invoice_date), (FEB, MAR))
        self.assertEqual(self._amounts(invoice)[self.charge_calls], 15.0)
        self.assertEqual(self._finalized(invoice), 1)
        self._rate(at(FEB, 4))
        self.assertEqual(self._finalized(invoice), 1, "closed once")
        self.assertEqual(self._invoices(sub)[0], invoice)

    def test_no_grace_closes_at_midnight(self):
        self.service.grace_period_hours = 0
        self._rate(at(FEB))
        self.assertEqual(self.subscription_a.next_invoice_date, MAR)

    def test_cancelled_events_are_never_rated(self):
        sub = self.subscription_a
        self._event(sub, 800, at(JAN, 9))
        self._event(sub, 10**6, at(JAN, 10), cancelled=True)
        self.assertEqual(sub.estimated_amount, 49.0 + 10.0)
        self._rate(at(JAN, 20))
        self.assertEqual(self._amounts(self._invoices(sub))[self.charge_calls], 10.0)

    # -- end of a subscription ----------------------------------------------------

    def test_close_ends_tomorrow_and_the_last_period_is_billed_then_closed(self):
        sub = self.subscription_a
        sub.action_close()
        tomorrow = datetime.now(timezone.utc).date() + timedelta(days=1)
        self.assertEqual(sub.end_date, tomorrow)
        self.assertEqual(sub.state, "active", "its usage until then is billed")

        sub.end_date = date(2026, 1, 20)
        self._event(sub, 800, at(date(2026, 1, 19), 23, 59))
        self._event(sub, 999, at(date(2026, 1, 20)))  # at the end: not billed
        self._rate(at(date(2026, 1, 20), 0, 59))
        self.assertEqual(sub.state, "active", "in its grace")
        self._rate(at(date(2026, 1, 20), 1))
        self.assertEqual(sub.state, "closed")
        self.assertEqual(sub.last_invoice_date, date(2026, 1, 20))
        self.assertFalse(sub.next_invoice_date)
        invoice = self._invoices(sub)
        self.assertEqual(
            (invoice.fusion_period_start, invoice.fusion_period_end),
            (JAN, date(2026, 1, 20)),
        )
        # 19 of January's 31 days of the 49.00 fee = 30.032... -> 30.03
        self.assertEqual(
            self._amounts(invoice), {self.charge_calls: 10.0, "fee": 30.03}
        )
        self.assertIn("19 of 31 days", invoice.invoice_line_ids[-1].name)
        self.assertEqual(self._finalized(invoice), 1)
        self._rate(at(MAR))
        self.assertEqual(self._invoices(sub), invoice, "nothing after the end")

    def test_an_end_date_later_in_the_book_bills_full_periods_until_it(self):
        sub = self.subscription_a
        sub.end_date = date(2026, 2, 2)
        self._rate(at(date(2026, 2, 3)))
        january, february = self._invoices(sub)
        self.assertEqual(self._amounts(january), {"fee": 49.0})
        # One day of February's 28: 49 / 28 = 1.75
        self.assertEqual(self._amounts(february), {"fee": 1.75})
        self.assertEqual(sub.state, "closed")

    def test_the_fixed_fee_is_whole_when_the_plan_does_not_prorate(self):
        self.plan.prorate_base_price = False
        sub = self.subscription_a
        sub.end_date = date(2026, 1, 2)
        self._rate(at(date(2026, 1, 2), 1))
        self.assertEqual(self._amounts(self._invoices(sub)), {"fee": 49.0})
        self.assertEqual(sub.state, "closed")

    def test_the_end_date_cannot_cut_into_billed_periods(self):
        sub = self.subscription_a
        self._rate(at(FEB, 1))
        with self.assertRaises(ValidationError):
            sub.end_date = date(2026, 1, 15)

    # -- state changes ---------------------------------------------------------

    def test_state_changes_go_through_one_guard(self):
        sub = self.subscription_a
        with self.assertRaisesRegex(UserError, "use Close"):
            sub.write({"state": "closed"})
        with self.assertRaisesRegex(UserError, "cannot go from active to draft"):
            sub.write({"state": "draft"})
        draft = self.env["fusion.billing.subscription"].create(
            {
                "service_id": self.service.id,
                "partner_id": self.partner_a.id,
                "plan_id": self.plan.id,
                "external_ref": "sub_lifecycle_draft",
                "start_date": JAN,
            }
        )
        draft.action_close()
        self.assertEqual(draft.state, "closed", "nothing to bill: closed at once")
        with self.assertRaisesRegex(UserError, "cannot go from closed to active"):
            draft.write({"state": "active"})

    def test_only_a_customer_of_the_service_can_be_activated(self):
        stranger = self.env["res.partner"].create({"name": "Not a customer"})
        values = {
            "service_id": self.service.id,
            "plan_id": self.plan.id,
            "start_date": JAN,
        }
        Subscription = self.env["fusion.billing.subscription"]
        draft = Subscription.create(
            {**values, "partner_id": stranger.id, "external_ref": "sub_stranger"}
        )
        with self.assertRaisesRegex(UserError, "not a customer of"):
            draft.action_activate()
        with self.assertRaisesRegex(UserError, "not a customer of"):
            Subscription.create(
                {
                    **values,
                    "partner_id": stranger.id,
                    "external_ref": "sub_stranger_active",
                    "state": "active",
                }
            )
        # A contact of a customer company subscribes for it.
        contact = self.env["res.partner"].create(
            {"name": "Buyer", "parent_id": self.partner_a.id}
        )
        subscription = Subscription.create(
            {**values, "partner_id": contact.id, "external_ref": "sub_contact"}
        )
        subscription.action_activate()
        self.assertEqual(subscription.state, "active")

    # -- plan change -----------------------------------------------------------------

    def _plan(self, code, base_price, unit_price, **values):
        plan = self.env["fusion.billing.plan"].create(
            {
                "service_id": self.service.id,
                "name": code.title(),
                "code": code,
                "base_price": base_price,
                "product_id": self.product_fee.id,
                **values,
            }
        )
        charge = self._create_charge(
            plan, self.metric_calls, "standard", unit_price=unit_price
        )
        return plan, charge

    def test_a_plan_change_cuts_the_period_in_two_invoices_of_one_plan_each(self):
        plus, plus_calls = self._plan("plus", 99.0, 0.01)
        sub = self.subscription_a
        self._event(sub, 800, at(date(2026, 1, 5)))
        self._rate(at(date(2026, 1, 6)))
        sub.change_plan(plus, date(2026, 1, 11))
        self.assertEqual(sub.plan_id, plus)
        self._event(sub, 1000, at(date(2026, 1, 15)))
        self._event(sub, 200, at(date(2026, 1, 10), 23))  # late, before the cut

        self._rate(at(date(2026, 1, 20)))
        old, new = self._invoices(sub)
        self.assertEqual(
            [(i.fusion_period_start, i.fusion_period_end) for i in (old, new)],
            [(JAN, date(2026, 1, 11)), (date(2026, 1, 11), FEB)],
        )
        # 10 of 31 days of 49.00 = 15.81; (800 + 200) x 0.0125
        self.assertEqual(self._amounts(old), {self.charge_calls: 12.5, "fee": 15.81})
        # 21 of 31 days of 99.00 = 67.06; 1000 x 0.01
        self.assertEqual(self._amounts(new), {plus_calls: 10.0, "fee": 67.06})
        self.assertEqual(self._finalized(old), 1, "the cut period closed")
        self.assertEqual(
            (sub.last_invoice_date, sub.next_invoice_date), (date(2026, 1, 11), FEB)
        )
        self._rate(at(FEB, 1))
        self.assertEqual(self._finalized(new), 1)
        self.assertEqual(sub.next_invoice_date, MAR, "the anchor is kept")
        self.assertEqual(self._amounts(self._invoices(sub)[-1]), {"fee": 99.0})

    def test_a_plan_with_another_interval_starts_its_periods_at_the_change(self):
        yearly, _calls = self._plan(
            "yearly", 900.0, 0.01, interval_unit="year", interval_count=1
        )
        sub = self.subscription_a
        sub.change_plan(yearly, date(2026, 1, 11))
        self.assertEqual(sub.next_invoice_date, date(2027, 1, 11))
        self._rate(at(date(2026, 1, 12)))
        old, new = self._invoices(sub)
        self.assertEqual(self._amounts(old), {"fee": 15.81})
        self.assertEqual(self._amounts(new), {"fee": 900.0}, "a full year")
        self.assertEqual(new.fusion_period_end, date(2027, 1, 11))

    def test_a_plan_change_from_the_period_start_replaces_the_draft_lines(self):
        plus, plus_calls = self._plan("plus", 99.0, 0.01)
        sub = self.subscription_a
        self._event(sub, 800, at(date(2026, 1, 5)))
        self._rate(at(date(2026, 1, 6)))
        invoice = self._invoices(sub)
        sub.change_plan(plus, JAN)
        self._rate(at(date(2026, 1, 7)))
        self.assertEqual(self._invoices(sub), invoice)
        self.assertEqual(self._amounts(invoice), {plus_calls: 8.0, "fee": 99.0})

    def test_a_draft_a_plan_change_leaves_empty_is_cancelled_at_close(self):
        self.service.auto_post_invoices = True
        free = self.env["fusion.billing.plan"].create(
            {"service_id": self.service.id, "name": "Free", "code": "free"}
        )
        self._create_charge(free, self.metric_storage, "standard", unit_price=1)
        sub = self.subscription_a
        self._rate(at(date(2026, 1, 6)))
        invoice = self._invoices(sub)
        self.assertEqual(self._amounts(invoice), {"fee": 49.0})
        sub.change_plan(free, JAN)
        self._rate(at(FEB, 1))
        self.assertFalse(sub.rating_error)
        self.assertEqual(sub.last_invoice_date, FEB, "closed")
        self.assertFalse(invoice.invoice_line_ids)
        self.assertEqual(invoice.state, "cancel", "nothing to bill, nothing posted")
        self.assertEqual(self._finalized(invoice), 1)

    def test_plan_customer_and_service_change_only_through_change_plan(self):
        plus, _calls = self._plan("plus", 99.0, 0.01)
        sub = self.subscription_a
        for values in (
            {"plan_id": plus.id},
            {"partner_id": self.partner_b.id},
            {"service_id": self._create_service("Else", "fb_else").id},
        ):
            with self.assertRaisesRegex(UserError, "use Change Plan"):
                sub.write(values)
        self.assertEqual(sub.plan_id, self.plan)
        with self.assertRaisesRegex(UserError, "must lie in the open period"):
            sub.change_plan(plus, FEB)
        # Over RPC, dates come as text.
        with self.assertRaisesRegex(UserError, "must be a date"):
            sub.change_plan(plus.id, "31/01/2026")
        with self.assertRaises(AccessError):
            sub.with_user(self.billing_user).change_plan(plus, JAN)

    def test_the_change_plan_wizard_counts_the_usage_the_new_plan_drops(self):
        storage_only = self.env["fusion.billing.plan"].create(
            {"service_id": self.service.id, "name": "Storage", "code": "storage"}
        )
        self._create_charge(storage_only, self.metric_storage, "standard", unit_price=1)
        sub = self.subscription_a
        self._event(sub, 5, at(date(2026, 1, 5)))
        self._event(sub, 7, at(date(2026, 1, 12)))
        self._event(sub, 9, at(date(2026, 1, 13)), cancelled=True)
        wizard = (
            self.env["fusion.billing.change.plan"]
            .with_context(default_subscription_id=sub.id)
            .create({"plan_id": storage_only.id, "effective_date": date(2026, 1, 10)})
        )
        self.assertEqual(wizard.unbilled_event_count, 1)
        wizard.action_apply()
        self.assertEqual(sub.plan_id, storage_only)
        self.assertEqual(sub.plan_change_date, date(2026, 1, 10))

    # -- period lock -----------------------------------------------------------------

    def test_the_invoice_of_an_open_period_cannot_be_posted_by_hand(self):
        sub = self.subscription_a
        self._event(sub, 800, at(date(2026, 1, 5)))
        self._rate(at(date(2026, 1, 6)))
        invoice = self._invoices(sub)
        with self.assertRaisesRegex(UserError, "closes at 2026-02-01 01:00 UTC"):
            invoice.action_post()
        self._rate(at(FEB, 1))
        self.assertEqual(invoice.state, "draft", "the service does not auto-post")
        invoice.action_post()
        self.assertEqual(invoice.state, "posted")

    # -- late usage ------------------------------------------------------------------

    def _adjustments(self, invoice):
        return invoice.invoice_line_ids.filtered("fusion_adjusted_period_start")

    def test_late_usage_is_billed_as_an_adjustment_on_the_next_invoice(self):
        self.service.write({"late_usage_policy": "adjust", "auto_post_invoices": True})
        sub = self.subscription_a
        self._event(sub, 800, at(date(2026, 1, 5)))
        self._rate(at(FEB, 1))
        january = self._invoices(sub)[0]
        self.assertEqual(january.state, "posted")
        self.assertEqual(self._amounts(january)[self.charge_calls], 10.0)

        self._event(sub, 400, at(date(2026, 1, 20)))  # accepted after the close
        self._rate(at(date(2026, 2, 3)))
        self._rate(at(date(2026, 2, 4)))
        self.assertEqual(self._amounts(january)[self.charge_calls], 10.0, "final")
        february = self._invoices(sub)[1]
        adjustment = self._adjustments(february)
        self.assertEqual(len(adjustment), 1, "produced once")
        # January re-rated whole: 1,200 x 0.0125 = 15.00, minus 10.00 billed
        self.assertEqual(adjustment.price_subtotal, 5.0)
        self.assertEqual(adjustment.fusion_charge_id, self.charge_calls)
        self.assertEqual(adjustment.fusion_adjusted_period_start, JAN)
        self.assertEqual(
            adjustment.name,
            "Adjustment of Api Calls, 01/01/2026 to 01/31/2026\n"
            "1,200 units in the period bill $\N{NO-BREAK SPACE}15.00; "
            "$\N{NO-BREAK SPACE}10.00 were billed",
        )
        self.assertEqual((adjustment.quantity, adjustment.price_unit), (1, 5.0))

        # Cancelled late: the adjustment follows, still one line.
        self.env["fusion.billing.usage.event"].sudo().search(
            [("subscription_id", "=", sub.id), ("quantity", "=", 400)]
        ).cancelled = True
        self._rate(at(date(2026, 2, 5)))
        self.assertEqual(self._adjustments(february).price_subtotal, 0.0)

        self._event(sub, 400, at(date(2026, 1, 21)))
        self._rate(at(MAR, 1))
        self.assertEqual(february.state, "posted")
        self.assertEqual(self._adjustments(february).price_subtotal, 5.0)
        self._rate(at(date(2026, 3, 2)))
        march = self._invoices(sub)[2]
        self.assertFalse(self._adjustments(march), "billed once, never again")

    def test_a_negative_period_is_issued_as_a_credit_note_at_close(self):
        self.service.write({"late_usage_policy": "adjust", "auto_post_invoices": True})
        sub = self.subscription_a
        calls = self._event(sub, 8000, at(date(2026, 1, 5)))
        self._rate(at(FEB, 1))
        january = self._invoices(sub)[0]
        self.assertEqual(january.amount_untaxed, 149.0)
        calls.cancelled = True  # cancelled after January closed
        self._rate(at(date(2026, 2, 3)))
        february = self._invoices(sub)[1]
        self.assertEqual(february.move_type, "out_invoice", "a draft until it closes")
        self.assertEqual(february.amount_untaxed, 49.0 - 100.0)

        self._rate(at(MAR, 1))
        self.assertEqual(february.move_type, "out_refund")
        self.assertEqual(february.state, "posted")
        self.assertEqual(february.amount_untaxed, 51.0, "owed to the customer")
        self.assertEqual(february.fusion_subscription_id, sub)
        self.assertEqual(february.fusion_service_id, self.service)
        self.assertEqual(self._adjustments(february).fusion_adjusted_period_start, JAN)
        webhook = self.env["fusion.billing.webhook.event"].search(
            [("dedupe_key", "=", f"invoice.finalized:{february.id}")]
        )
        self.assertEqual(len(webhook), 1)
        data = json.loads(webhook.body)["data"]
        self.assertEqual(data["invoice"]["type"], "credit_note")
        self.assertEqual(data["invoice"]["amount_untaxed"], "51.00")
        self.assertEqual(data["period_start"], "2026-02-01")
        finalized_january = self.env["fusion.billing.webhook.event"].search(
            [("dedupe_key", "=", f"invoice.finalized:{january.id}")]
        )
        self.assertEqual(
            json.loads(finalized_january.body)["data"]["invoice"]["type"], "invoice"
        )
        # The dual-run reconciliation subtracts it from February.
        self.env["fusion.billing.reconciliation"]._sync_periods(
            {(self.service.id, "2026-02")}
        )
        row = self.env["fusion.billing.reconciliation"].search(
            [
                ("service_id", "=", self.service.id),
                ("partner_id", "=", sub.partner_id.id),
                ("period", "=", "2026-02"),
            ]
        )
        self.assertEqual(row.odoo_amount, -51.0)

        # Reruns neither issue it again nor adjust January a second time.
        self._rate(at(MAR, 2))
        self._rate(at(date(2026, 4, 1), 1))
        march = self._invoices(sub).filtered(lambda m: m.fusion_period_start == MAR)
        self.assertEqual(march.amount_untaxed, 49.0)
        self.assertFalse(self._adjustments(march))
        self.assertEqual(
            len(self._invoices(sub).filtered(lambda m: m.move_type == "out_refund")), 1
        )
        self.assertEqual(self._finalized(february), 1)

    def test_a_period_credited_at_close_loses_its_old_events_like_any_other(self):
        self.service.write({"late_usage_policy": "adjust", "auto_post_invoices": True})
        sub = self.subscription_a
        calls = self._event(sub, 8000, at(date(2026, 1, 5)))
        february_calls = self._event(sub, 100, at(date(2026, 2, 5)))
        self._rate(at(FEB, 1))
        calls.cancelled = True
        self._rate(at(date(2026, 2, 3)))
        self._rate(at(MAR, 1))
        self._rate(at(date(2026, 4, 2)))
        february = self._invoices(sub).filtered(lambda m: m.fusion_period_start == FEB)
        self.assertEqual((february.move_type, february.state), ("out_refund", "posted"))
        self.service.usage_retention_days = 30
        self.env["fusion.billing.service"]._cron_purge_usage()
        self.assertFalse(february_calls.exists())

    def test_a_last_invoice_posted_early_gets_its_adjustments_billed_apart(self):
        """Usage and cancellations after the last invoice was posted have no
        next invoice to go on: the close bills them on an invoice (a credit
        note when negative) of their own, dated at the end, once."""
        end = date(2026, 1, 20)
        more, fewer = self.subscription_a, self.subscription_b
        (more | fewer).end_date = end
        self._event(more, 800, at(date(2026, 1, 5)))
        cancelled = self._event(fewer, 800, at(date(2026, 1, 5)))
        self._rate(at(date(2026, 1, 6)))
        for sub in (more, fewer):
            self._invoices(sub).with_context(
                fusion_billing_post_open_period=True
            ).action_post()
        self._event(more, 400, at(date(2026, 1, 10)))
        cancelled.cancelled = True
        self._rate(at(end, 1))

        for sub, amount, move_type in (
            (more, 5.0, "out_invoice"),
            (fewer, 10.0, "out_refund"),
        ):
            self.assertEqual(sub.state, "closed")
            last, apart = self._invoices(sub)
            self.assertEqual(last.state, "posted")
            self.assertEqual(self._amounts(last)[self.charge_calls], 10.0, "final")
            self.assertEqual(
                (apart.fusion_period_start, apart.fusion_period_end), (end, end)
            )
            self.assertEqual(apart.move_type, move_type)
            self.assertEqual(apart.amount_untaxed, amount)
            adjustment = self._adjustments(apart)
            self.assertEqual(adjustment.fusion_adjusted_period_start, JAN)
            self.assertEqual(adjustment.fusion_charge_id, self.charge_calls)
            self.assertIn("01/01/2026 to 01/19/2026", adjustment.name)
            self.assertEqual(self._finalized(apart), 1)
            self.assertFalse(sub.rerate_from)
        self._rate(at(date(2026, 1, 21)))
        self._rate(at(FEB, 2))
        self.assertEqual(len(self._invoices(more)), 2, "billed once")
        self.assertEqual(len(self._invoices(fewer)), 2)

    def _invoice_webhooks(self, invoice):
        """{event type: invoice data} of the webhooks about ``invoice``."""
        events = self.env["fusion.billing.webhook.event"].search(
            [
                ("service_id", "=", self.service.id),
                ("dedupe_key", "in", [f"{kind}:{invoice.id}" for kind in KINDS]),
            ]
        )
        return {
            event.event_type: json.loads(event.body)["data"]["invoice"]
            for event in events
        }

    def _assert_told_as_credit_note(self, credit_note, amount):
        """Every webhook about ``credit_note`` says it is one, owing the
        customer ``amount`` untaxed (a positive decimal string) plus taxes."""
        webhooks = self._invoice_webhooks(credit_note)
        self.assertEqual(set(webhooks), set(KINDS))
        for kind, data in webhooks.items():
            self.assertEqual(data["id"], credit_note.id, kind)
            self.assertEqual(data["type"], "credit_note", kind)
            self.assertEqual(data["amount_untaxed"], amount, kind)
            self.assertGreater(Decimal(data["amount_total"]), Decimal(amount), kind)
            self.assertEqual([line["amount"] for line in data["lines"]], [amount])
        self.assertEqual(webhooks["invoice.created"]["state"], "draft")
        self.assertEqual(webhooks["invoice.finalized"]["state"], "posted")

    def _reconciled(self, subscription, period):
        self.env["fusion.billing.reconciliation"]._sync_periods(
            {(self.service.id, period)}
        )
        return self.env["fusion.billing.reconciliation"].search(
            [
                ("service_id", "=", self.service.id),
                ("partner_id", "=", subscription.partner_id.id),
                ("period", "=", period),
            ]
        )

    def test_negative_final_adjustments_are_a_credit_note_in_every_webhook(self):
        """The app is never told of a negative invoice: the document billing
        the cancellations after the last invoice was posted is a credit note
        in its first webhook already."""
        self.service.auto_post_invoices = True
        end = date(2026, 1, 20)
        sub = self.subscription_b
        sub.end_date = end
        cancelled = self._event(sub, 800, at(date(2026, 1, 5)))
        self._rate(at(date(2026, 1, 6)))
        last = self._invoices(sub)
        last.with_context(fusion_billing_post_open_period=True).action_post()
        cancelled.cancelled = True
        self._rate(at(end, 1))

        self.assertEqual(sub.state, "closed")
        credit_note = self._invoices(sub) - last
        self.assertEqual(len(credit_note), 1, "one document for the adjustments")
        self.assertEqual(
            (credit_note.move_type, credit_note.state), ("out_refund", "posted")
        )
        self.assertEqual(credit_note.amount_untaxed, 10.0)
        self.assertEqual(
            (credit_note.fusion_period_start, credit_note.fusion_period_end),
            (end, end),
        )
        self.assertEqual(credit_note.fusion_service_id, self.service)
        self._assert_told_as_credit_note(credit_note, "10.00")
        self.assertEqual(
            self._reconciled(sub, "2026-01").odoo_amount, last.amount_untaxed - 10.0
        )

    def test_a_negative_period_invoiced_at_its_close_is_a_credit_note_from_the_start(
        self,
    ):
        """A period whose document is created by the run that closes it (no
        fixed fee, no usage of its own, a cancellation of the period before)
        is announced as the credit note it is closed as."""
        self.service.write({"late_usage_policy": "adjust", "auto_post_invoices": True})
        sub = self.subscription_a
        sub.override_base_price = True  # at 0: no fixed fee
        # Late enough to be cancelled at March's run (35 days by default).
        calls = self._event(sub, 8000, at(date(2026, 1, 30)))
        self._rate(at(FEB, 1))
        january = self._invoices(sub)
        self.assertEqual(january.amount_untaxed, 100.0)
        calls.cancelled = True
        self._rate(at(MAR, 1))

        february = self._invoices(sub) - january
        self.assertEqual(len(february), 1)
        self.assertEqual((february.move_type, february.state), ("out_refund", "posted"))
        self.assertEqual(february.fusion_period_start, FEB)
        self._assert_told_as_credit_note(february, "100.00")
        self.assertEqual(self._reconciled(sub, "2026-02").odoo_amount, -100.0)

    def test_late_usage_goes_by_the_plan_of_its_period_two_changes_ago(self):
        self.service.write({"late_usage_policy": "adjust", "auto_post_invoices": True})
        storage_plans = []
        for code, unit_price in (("storage_b", 1), ("storage_c", 2)):
            plan = self.env["fusion.billing.plan"].create(
                {"service_id": self.service.id, "name": code, "code": code}
            )
            charge = self._create_charge(
                plan, self.metric_storage, "standard", unit_price=unit_price
            )
            storage_plans.append((plan, charge))
        (plan_b, storage_b), (plan_c, _storage_c) = storage_plans
        sub = self.subscription_a
        self._event(sub, 800, at(date(2026, 1, 5)))
        self._rate(at(FEB, 1))  # January closes on Pro
        sub.change_plan(plan_b, FEB)
        sub.change_plan(plan_c, date(2026, 2, 15))
        self._rate(at(date(2026, 2, 15), 1))  # 1-14 February closes on B
        self.assertEqual(sub.last_invoice_date, date(2026, 2, 15))
        self.assertEqual(
            [(h.date_from, h.plan_id) for h in sub.plan_history_ids],
            [(JAN, self.plan), (FEB, plan_b), (date(2026, 2, 15), plan_c)],
        )

        def event(key, metric, day):
            return {
                "idempotency_key": key,
                "subscription": "sub_a",
                "customer": "cus_a",
                "metric": metric,
                "quantity": 400 if metric == "api_calls" else 7,
                "timestamp": f"{day.isoformat()}T12:00:00Z",
            }

        results = (
            self.env["fusion.billing.usage.event"]
            .sudo()
            ._ingest(
                self.service,
                [
                    event("calls-jan", "api_calls", date(2026, 1, 20)),
                    event("storage-jan", "storage_gb", date(2026, 1, 20)),
                    event("storage-feb", "storage_gb", date(2026, 2, 10)),
                    event("calls-feb", "api_calls", date(2026, 2, 10)),
                ],
                now=at(date(2026, 2, 20)),
            )
        )
        self.assertEqual(
            [(r["status"], r.get("error", {}).get("code")) for r in results],
            [
                ("accepted", None),
                ("rejected", "metric_not_on_plan"),
                ("accepted", None),
                ("rejected", "metric_not_on_plan"),
            ],
            "each closed period takes the metrics its own plan charged",
        )
        self._rate(at(date(2026, 2, 21)))
        open_invoice = self._invoices(sub).filtered(
            lambda m: m.fusion_period_start == date(2026, 2, 15)
        )
        self.assertEqual(
            {
                (line.fusion_charge_id, line.fusion_adjusted_period_start): (
                    line.price_subtotal
                )
                for line in self._adjustments(open_invoice)
            },
            # 400 more calls at Pro's 0.0125; 7 GB at B's 1.00
            {(self.charge_calls, JAN): 5.0, (storage_b, FEB): 7.0},
        )

    def test_a_closed_period_whose_invoice_is_a_draft_is_rerated_in_place(self):
        self.service.late_usage_policy = "adjust"
        sub = self.subscription_a
        self._event(sub, 800, at(date(2026, 1, 5)))
        self._rate(at(FEB, 1))
        january = self._invoices(sub)[0]
        self.assertEqual(january.state, "draft")
        self._event(sub, 400, at(date(2026, 1, 20)))
        self._rate(at(date(2026, 2, 3)))
        self.assertEqual(self._amounts(january)[self.charge_calls], 15.0)
        self.assertFalse(self._adjustments(self._invoices(sub)[1]))

    def test_a_draft_rerated_in_place_trues_up_its_minimum_again(self):
        self.service.late_usage_policy = "adjust"
        self.plan.minimum_amount = 100
        sub = self.subscription_a
        self._event(sub, 800, at(date(2026, 1, 5)))
        self._rate(at(FEB, 1, 1))
        january = self._invoices(sub)[0]
        minimum = january.invoice_line_ids.filtered("fusion_is_minimum")
        # 10.00 usage + 49.00 fee: 41.00 short of the minimum
        self.assertEqual(minimum.price_subtotal, 41.0)
        late = self._event(sub, 400, at(date(2026, 1, 20)))
        self._rate(at(date(2026, 2, 3)))
        self.assertEqual(self._amounts(january)[self.charge_calls], 15.0)
        self.assertEqual(minimum.price_subtotal, 36.0)
        self.assertEqual(january.amount_untaxed, 100.0, "the minimum, not more")
        # Cancelled again: the minimum makes up the difference once more.
        late.cancelled = True
        self._rate(at(date(2026, 2, 4)))
        self.assertEqual(minimum.price_subtotal, 41.0)
        self.assertEqual(january.amount_untaxed, 100.0)
        self.assertEqual(len(january.invoice_line_ids.filtered("fusion_is_minimum")), 1)

    def test_usage_after_an_invoice_posted_early_is_adjusted(self):
        sub = self.subscription_a
        self._event(sub, 800, at(date(2026, 1, 5)))
        self._rate(at(date(2026, 1, 6)))
        january = self._invoices(sub)
        january.with_context(fusion_billing_post_open_period=True).action_post()
        self._event(sub, 400, at(date(2026, 1, 20)))
        self._rate(at(FEB, 1))
        self._rate(at(date(2026, 2, 2)))
        self.assertEqual(self._amounts(january)[self.charge_calls], 10.0)
        february = self._invoices(sub)[1]
        self.assertEqual(self._adjustments(february).price_subtotal, 5.0)
