# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import base64
import json
from datetime import date

from psycopg2 import IntegrityError

from odoo import Command, fields
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import HttpCase, tagged
from odoo.tests.common import JsonRpcException
from odoo.tools import mute_logger

from .common import FusionBillingCase

JAN = (date(2026, 1, 1), date(2026, 2, 1))
FEB = (date(2026, 2, 1), date(2026, 3, 1))
MAR = (date(2026, 3, 1), date(2026, 4, 1))


class ReconciliationCase(FusionBillingCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Reconciliation = cls.env["fusion.billing.reconciliation"]
        cls.product_one_off = cls._create_product(name="Setup fee", lst_price=0.0)

    def _invoice(
        self,
        partner,
        amount,
        *,
        subscription=None,
        period=None,
        service=None,
        invoice_date=date(2026, 2, 1),
        move_type="out_invoice",
        reversed_entry=None,
        currency=None,
        post=True,
    ):
        values = {
            "move_type": move_type,
            "partner_id": partner.id,
            "invoice_date": invoice_date,
            "currency_id": (currency or self.currency).id,
            "invoice_line_ids": [
                Command.create(
                    {
                        "product_id": (
                            self.product_fee if subscription else self.product_one_off
                        ).id,
                        "quantity": 1,
                        "price_unit": amount,
                        "tax_ids": [Command.clear()],
                    }
                )
            ],
        }
        if subscription:
            values.update(
                fusion_subscription_id=subscription.id,
                fusion_period_start=period[0],
                fusion_period_end=period[1],
            )
        if service:
            values["fusion_service_id"] = service.id
        if reversed_entry:
            values["reversed_entry_id"] = reversed_entry.id
        move = self.env["account.move"].create(values)
        if post:
            # Reconciliation counts invoices whatever their period's state.
            move.with_context(fusion_billing_post_open_period=True).action_post()
        return move

    def _sync(self, *periods, service=None):
        service = service or self.service
        return self.Reconciliation._sync_periods(
            {(service.id, period) for period in periods}
        )

    def _row(self, partner, period, service=None):
        return self.Reconciliation.search(
            [
                ("service_id", "=", (service or self.service).id),
                ("partner_id", "=", partner.id),
                ("period", "=", period),
            ]
        )

    def _new_row(self, odoo, external, partner=None, period="2026-01"):
        """A row with both amounts, as invoices and the app would give them."""
        return self._create_reconciliation_row(
            partner or self.partner_a, period, odoo, external
        )

    def _import_csv(self, text, user=None, service=None):
        wizard = (
            self.env["fusion.billing.reconciliation.import"]
            .with_user(user or self.env.user)
            .create(
                {
                    "service_id": (service or self.service).id,
                    "csv_file": base64.b64encode(text.encode()),
                    "csv_filename": "amounts.csv",
                }
            )
        )
        wizard.action_preview()
        return wizard


@tagged("post_install", "-at_install")
class TestOdooAmounts(ReconciliationCase):
    def test_subscription_invoices_count_by_period_start_with_drafts(self):
        # Billed in February for January: counted in January.
        self._invoice(self.partner_a, 100, subscription=self.subscription_a, period=JAN)
        self._invoice(
            self.partner_a,
            40,
            subscription=self.subscription_a,
            period=FEB,
            invoice_date=date(2026, 3, 1),
            post=False,
        )
        self._sync("2026-01", "2026-02")
        self.assertEqual(self._row(self.partner_a, "2026-01").odoo_amount, 100)
        feb = self._row(self.partner_a, "2026-02")
        self.assertEqual(feb.odoo_amount, 40, "draft invoices count")
        self.assertEqual(feb.odoo_amount_subscription, 40)
        self.assertEqual(feb.odoo_invoice_count, 1)
        # Odoo bills it but the app has not reported it: that is a delta.
        self.assertFalse(feb.external_source)
        self.assertEqual(feb.status, "delta")

    def test_untaxed_amount_is_compared(self):
        tax = self.company_data["default_tax_sale"]
        self.assertTrue(tax.amount)
        invoice = self._invoice(
            self.partner_a,
            100,
            subscription=self.subscription_a,
            period=JAN,
            post=False,
        )
        invoice.invoice_line_ids.tax_ids = tax
        invoice.with_context(fusion_billing_post_open_period=True).action_post()
        self.assertGreater(invoice.amount_total, 100)
        self._sync("2026-01")
        self.assertEqual(self._row(self.partner_a, "2026-01").odoo_amount, 100)

    def test_credit_note_subtracts_in_the_period_it_corrects(self):
        invoice = self._invoice(
            self.partner_a, 100, subscription=self.subscription_a, period=JAN
        )
        credit_note = self._invoice(
            self.partner_a,
            30,
            move_type="out_refund",
            reversed_entry=invoice,
            invoice_date=date(2026, 3, 10),
        )
        self.assertEqual(credit_note.fusion_service_id, self.service)
        self.assertEqual(credit_note.fusion_reconciliation_period, "2026-01")
        self.assertFalse(credit_note.fusion_is_one_off)
        self._sync("2026-01", "2026-03")
        row = self._row(self.partner_a, "2026-01")
        self.assertEqual(row.odoo_amount, 70)
        self.assertEqual(row.odoo_invoice_count, 2)
        self.assertFalse(self._row(self.partner_a, "2026-03"))

    def test_cancelled_invoices_do_not_count(self):
        self._invoice(self.partner_a, 100, subscription=self.subscription_a, period=JAN)
        cancelled = self._invoice(
            self.partner_b, 80, subscription=self.subscription_b, period=JAN
        )
        cancelled.button_cancel()
        self._sync("2026-01")
        self.assertEqual(self._row(self.partner_a, "2026-01").odoo_amount, 100)
        self.assertFalse(self._row(self.partner_b, "2026-01"))

    def test_one_off_invoice_counts_by_invoice_date_and_is_shown_apart(self):
        self._invoice(self.partner_a, 100, subscription=self.subscription_a, period=JAN)
        one_off = self._invoice(
            self.partner_a, 25, service=self.service, invoice_date=date(2026, 1, 20)
        )
        self.assertTrue(one_off.fusion_is_one_off)
        self.assertEqual(one_off.fusion_reconciliation_period, "2026-01")
        self._sync("2026-01")
        row = self._row(self.partner_a, "2026-01")
        self.assertEqual(row.odoo_amount, 125)
        self.assertEqual(row.odoo_amount_subscription, 100)
        self.assertEqual(row.odoo_amount_one_off, 25)

    def test_invoice_of_no_service_is_shown_but_not_counted(self):
        self._invoice(self.partner_a, 100, subscription=self.subscription_a, period=JAN)
        self._invoice(self.partner_a, 60, invoice_date=date(2026, 1, 5))
        self._sync("2026-01")
        row = self._row(self.partner_a, "2026-01")
        self.assertEqual(row.odoo_amount, 100)
        self.assertEqual(row.unlinked_amount, 60)
        action = row.action_view_unlinked_invoices()
        self.assertEqual(
            self.env["account.move"].search(action["domain"]).mapped("amount_untaxed"),
            [60],
        )

    def test_partial_billing_period_is_shown(self):
        self._invoice(
            self.partner_a,
            30,
            subscription=self.subscription_a,
            period=(date(2026, 1, 1), date(2026, 1, 11)),
        )
        self._invoice(self.partner_b, 49, subscription=self.subscription_b, period=JAN)
        self._sync("2026-01")
        self.assertEqual(
            self._row(self.partner_a, "2026-01").odoo_amount_partial_period, 30
        )
        self.assertEqual(
            self._row(self.partner_b, "2026-01").odoo_amount_partial_period, 0
        )

    def test_invoices_of_a_contact_count_for_the_company(self):
        contact = self.env["res.partner"].create(
            {"name": "Billing dept", "parent_id": self.partner_a.id}
        )
        self._invoice(contact, 20, service=self.service, invoice_date=date(2026, 1, 3))
        self._sync("2026-01")
        self.assertEqual(self._row(self.partner_a, "2026-01").odoo_amount, 20)
        self.assertFalse(self._row(contact, "2026-01"))

    def test_foreign_currency_invoice_is_converted_at_the_booked_rate(self):
        other = self.setup_other_currency("EUR", rates=[("2016-01-01", 2.0)])
        invoice = self._invoice(
            self.partner_a,
            100,
            service=self.service,
            invoice_date=date(2026, 1, 3),
            currency=other,
        )
        self._sync("2026-01")
        row = self._row(self.partner_a, "2026-01")
        self.assertEqual(row.currency_id, other, "the row takes the invoices' currency")
        self.assertEqual(row.odoo_amount, 100)
        # As the app's first amount in the company currency would.
        row.sudo().currency_id = self.currency
        self._sync("2026-01")
        self.assertEqual(row.odoo_amount, invoice.amount_untaxed_signed)
        self.assertEqual(row.odoo_amount, 50)

    def test_drill_down_lists_exactly_the_counted_invoices_and_lines(self):
        invoice = self._invoice(
            self.partner_a, 100, subscription=self.subscription_a, period=JAN
        )
        one_off = self._invoice(
            self.partner_a, 25, service=self.service, invoice_date=date(2026, 1, 20)
        )
        credit_note = self._invoice(
            self.partner_a, 10, move_type="out_refund", reversed_entry=invoice
        )
        self._invoice(self.partner_a, 60, invoice_date=date(2026, 1, 5))  # no service
        self._invoice(self.partner_b, 49, subscription=self.subscription_b, period=JAN)
        row = self._sync("2026-01").filtered(lambda r: r.partner_id == self.partner_a)
        invoices = self.env["account.move"].search(row.action_view_invoices()["domain"])
        self.assertEqual(invoices, invoice | one_off | credit_note)
        self.assertEqual(
            sum(invoices.mapped("amount_untaxed_in_currency_signed")), row.odoo_amount
        )
        lines = self.env["account.move.line"].search(
            row.action_view_invoice_lines()["domain"]
        )
        self.assertEqual(lines.move_id, invoices)
        self.assertEqual(len(lines), 3)


@tagged("post_install", "-at_install")
class TestRefreshTriggers(ReconciliationCase):
    def test_posting_changing_and_cancelling_invoices_update_rows(self):
        wizard = self._import_csv(
            f"customer,period,amount,currency\ncus_a,2026-01,100,{self.currency.name}\n"
        )
        wizard.action_import()
        row = self._row(self.partner_a, "2026-01")
        self.assertEqual((row.odoo_amount, row.status), (0, "delta"))

        invoice = self._invoice(
            self.partner_a, 90, subscription=self.subscription_a, period=JAN, post=False
        )
        self.env.cr.flush()  # the refresh runs just before the commit
        self.assertEqual(row.odoo_amount, 90)

        invoice.invoice_line_ids.price_unit = 100
        self.env.cr.flush()
        self.assertEqual((row.odoo_amount, row.status), (100, "match"))

        invoice.with_context(fusion_billing_post_open_period=True).action_post()
        invoice.button_cancel()
        self.env.cr.flush()
        self.assertEqual((row.odoo_amount, row.status), (0, "delta"))

    def test_moving_an_invoice_updates_both_periods(self):
        wizard = self._import_csv(
            "customer,period,amount,currency\n"
            f"cus_a,2026-01,25,{self.currency.name}\n"
            f"cus_a,2026-02,0,{self.currency.name}\n"
        )
        wizard.action_import()
        one_off = self._invoice(
            self.partner_a,
            25,
            service=self.service,
            invoice_date=date(2026, 1, 20),
            post=False,
        )
        self.env.cr.flush()
        jan = self._row(self.partner_a, "2026-01")
        feb = self._row(self.partner_a, "2026-02")
        self.assertEqual((jan.odoo_amount, feb.odoo_amount), (25, 0))
        one_off.invoice_date = date(2026, 2, 2)
        self.env.cr.flush()
        self.assertEqual((jan.odoo_amount, feb.odoo_amount), (0, 25))

    def test_invoices_alone_do_not_start_a_period(self):
        self._invoice(self.partner_a, 100, subscription=self.subscription_a, period=MAR)
        self.env.cr.flush()
        self.assertFalse(self.Reconciliation.search([("period", "=", "2026-03")]))


@tagged("post_install", "-at_install")
class TestStatus(ReconciliationCase):
    def test_exactly_at_the_absolute_tolerance_is_a_match(self):
        self.service.reconciliation_tolerance = 5
        self.assertEqual(self._new_row(105, 100).status, "match")
        self.assertEqual(self._new_row(94.99, 100, self.partner_b).status, "delta")

    def test_exactly_at_the_percent_tolerance_is_a_match(self):
        self.service.reconciliation_tolerance_percent = 2
        self.assertEqual(self._new_row(204, 200).status, "match")
        self.assertEqual(self._new_row(204.01, 200, self.partner_b).status, "delta")

    def test_larger_of_the_two_tolerances_applies(self):
        self.service.write(
            {"reconciliation_tolerance": 1, "reconciliation_tolerance_percent": 5}
        )
        self.assertEqual(self._new_row(210, 200).status, "match")  # 10 = 5 % of 200
        self.assertEqual(self._new_row(12, 10, self.partner_b).status, "delta")

    def test_tolerance_change_recomputes_open_rows(self):
        row = self._new_row(103, 100)
        self.assertEqual(row.status, "delta")
        self.service.reconciliation_tolerance = 3
        self.assertEqual(row.status, "match")

    def test_resolution_needs_a_note_and_is_tracked(self):
        # The test environment disables tracking: enable it for this row.
        row = self._new_row(120, 100).with_context(
            tracking_disable=False, mail_notrack=False
        )
        # The button asks for the note; resolving without one is refused.
        self.assertEqual(row.action_resolve()["target"], "new")
        self.assertEqual(row.status, "delta")
        with self.assertRaises(ValidationError):
            row.write({"status": "resolved"})
        row.note = "App double-billed the setup fee; refunded there."
        row.action_resolve()
        self.assertEqual(row.status, "resolved")
        self.env.cr.flush()
        tracked = row.message_ids.tracking_value_ids.filtered(
            lambda value: value.field_id.name == "status"
        )
        self.assertEqual(tracked.mapped("new_value_char"), ["Resolved"])

    def test_amount_change_reopens_a_resolved_row_tolerance_change_does_not(self):
        row = self._new_row(120, 100)
        row.write({"note": "Known", "status": "resolved"})
        self.service.reconciliation_tolerance = 1
        self.assertEqual(row.status, "resolved")
        row.sudo().external_amount = 119.5
        self.assertEqual(row.status, "match")
        row.sudo().external_amount = 90
        self.assertEqual(row.status, "delta")

    def test_reopen_and_no_hand_made_match(self):
        row = self._new_row(120, 100)
        with self.assertRaises(UserError):
            row.status = "match"
        row.write({"note": "Known", "status": "resolved"})
        row.action_reopen()
        self.assertEqual(row.status, "delta")


@tagged("post_install", "-at_install")
class TestCsvImport(ReconciliationCase):
    def test_good_file_is_previewed_then_imported(self):
        self._invoice(self.partner_a, 100, subscription=self.subscription_a, period=JAN)
        code = self.currency.name
        wizard = self._import_csv(
            "customer;period;amount;currency\n"
            f"cus_a;2026-01;100.00;{code}\n"
            f"cus_b;2026-01;-12.5;{code}\n"
        )
        self.assertEqual((wizard.valid_count, wizard.error_count), (2, 0))
        self.assertFalse(self.Reconciliation.search([]), "a preview imports nothing")
        wizard.action_import()
        self.assertEqual(wizard.imported_count, 2)
        row_a = self._row(self.partner_a, "2026-01")
        row_b = self._row(self.partner_b, "2026-01")
        self.assertEqual(
            (row_a.external_amount, row_a.odoo_amount, row_a.status),
            (100, 100, "match"),
        )
        self.assertEqual((row_b.external_amount, row_b.status), (-12.5, "delta"))
        self.assertEqual(row_a.external_source, "import")

    def test_partner_column_matches_reference_or_name(self):
        self.partner_b.ref = "DECO-7"
        code = self.currency.name
        wizard = self._import_csv(
            "partner,period,amount,currency\n"
            f"azure interior,2026-01,10,{code}\n"
            f"DECO-7,2026-01,20,{code}\n"
            f"Nobody Ltd,2026-01,30,{code}\n"
        )
        self.assertEqual(
            wizard.line_ids.mapped("partner_id"), self.partner_a | self.partner_b
        )
        self.assertIn("Nobody Ltd", wizard.line_ids[2].message)

    def test_bad_rows_are_reported_and_valid_rows_imported(self):
        code = self.currency.name
        wizard = self._import_csv(
            "customer,period,amount,currency\n"
            f"cus_a,2026-13,10,{code}\n"
            f"cus_zz,2026-01,10,{code}\n"
            f"cus_a,2026-01,1.234,56,{code}\n"
            "cus_a,2026-01,10,XXX\n"
            f"cus_b,2026-01,7,{code}\n"
            f"cus_b,2026-01,8,{code}\n"
            f'cus_a,2026-02,"1,200.00",{code}\n'
        )
        errors = wizard.line_ids.filtered(lambda line: line.state == "error")
        self.assertEqual(errors.mapped("line_number"), [2, 3, 4, 5, 7])
        self.assertIn("period", errors[0].message)
        # The line stays readable, as written, to correct it in the file.
        self.assertEqual(
            (
                errors[0].customer,
                errors[0].period,
                errors[0].amount_text,
                errors[0].currency_code,
            ),
            ("cus_a", "2026-13", "10", code),
        )
        self.assertIn("cus_zz", errors[1].message)
        self.assertIn("XXX", errors[3].message)
        self.assertIn("line 6", errors[4].message)
        wizard.action_import()
        self.assertEqual(wizard.imported_count, 2)
        self.assertEqual(self._row(self.partner_b, "2026-01").external_amount, 7)
        self.assertEqual(self._row(self.partner_a, "2026-02").external_amount, 1200)
        self.assertFalse(self._row(self.partner_a, "2026-01"))

    def test_unusable_periods_are_line_errors_usable_ones_import(self):
        code = self.currency.name
        wizard = self._import_csv(
            "customer,period,amount,currency\n"
            f"cus_a,0000-01,1,{code}\n"
            f"cus_a,9999-12,1,{code}\n"
            f"cus_a,0001-01,2,{code}\n"
            f"cus_b,9998-12,3,{code}\n"
        )
        self.assertEqual((wizard.valid_count, wizard.error_count), (2, 2))
        errors = wizard.line_ids.filtered(lambda line: line.state == "error")
        self.assertEqual(errors.mapped("line_number"), [2, 3])
        self.assertIn("from 0001-01 to 9998-12", errors[0].message)
        wizard.action_import()
        self.assertEqual(wizard.imported_count, 2)
        self.assertEqual(self._row(self.partner_a, "0001-01").external_amount, 2)
        self.assertEqual(self._row(self.partner_b, "9998-12").external_amount, 3)

    def test_period_outside_the_usable_months_cannot_be_stored(self):
        for period in ("0000-01", "9999-12"):
            with (
                self.subTest(period=period),
                mute_logger("odoo.sql_db"),
                self.assertRaises(IntegrityError),
                self.env.cr.savepoint(),
            ):
                self.Reconciliation.create(
                    {
                        "service_id": self.service.id,
                        "partner_id": self.partner_a.id,
                        "period": period,
                        "currency_id": self.currency.id,
                    }
                )

    def test_file_level_error(self):
        wizard = self._import_csv("client,month,total\nx,2026-01,1\n")
        self.assertIn("missing column", wizard.file_error)
        self.assertFalse(wizard.line_ids)

    def test_reimport_updates_instead_of_duplicating(self):
        code = self.currency.name
        self._import_csv(
            f"customer,period,amount,currency\ncus_a,2026-01,90,{code}\n"
        ).action_import()
        row = self._row(self.partner_a, "2026-01")
        row.write({"note": "checked", "status": "resolved"})
        self._import_csv(
            f"customer,period,amount,currency\ncus_a,2026-01,0,{code}\n"
        ).action_import()
        self.assertEqual(len(self.Reconciliation.search([])), 1)
        self.assertEqual(row.external_amount, 0)
        self.assertEqual(row.status, "match", "a changed amount reopens the row")

    def test_reimport_in_another_currency_is_refused(self):
        other = self.setup_other_currency("EUR")
        self._import_csv(
            f"customer,period,amount,currency\ncus_a,2026-01,90,{self.currency.name}\n"
        ).action_import()
        wizard = self._import_csv(
            f"customer,period,amount,currency\ncus_a,2026-01,80,{other.name}\n"
        )
        wizard.action_import()
        self.assertEqual(wizard.line_ids.state, "error")
        self.assertIn(self.currency.name, wizard.line_ids.message)
        self.assertEqual(self._row(self.partner_a, "2026-01").external_amount, 90)


@tagged("post_install", "-at_install")
class TestReadiness(ReconciliationCase):
    def _period(self, period, *pairs):
        for partner, (odoo, external) in zip(
            (self.partner_a, self.partner_b), pairs, strict=False
        ):
            self._new_row(odoo, external, partner, period)

    def _summaries(self):
        self.env.flush_all()
        self.env.invalidate_all()  # an SQL view: read it again
        return self.env["fusion.billing.reconciliation.summary"].search(
            [("service_id", "=", self.service.id)]
        )

    def test_summary_counts_and_deltas(self):
        self._period("2026-01", (100, 100), (130, 100))
        self._new_row(90, 100, self.env["res.partner"].create({"name": "C"}), "2026-01")
        summary = self._summaries()
        self.assertEqual(len(summary), 1)
        self.assertEqual(
            (summary.row_count, summary.match_count, summary.delta_count),
            (3, 1, 2),
        )
        self.assertEqual((summary.total_delta, summary.largest_delta), (20, 30))
        self.assertEqual(summary.total_abs_delta, 40)

    def test_ready_after_the_required_clean_periods(self):
        self.service.cutover_required_periods = 2
        self._period("2026-01", (100, 100), (130, 100))
        self._period("2026-02", (100, 100), (100, 100))
        self._period("2026-03", (100, 100))
        ready = {s.period: s.cutover_ready for s in self._summaries()}
        self.assertEqual(ready, {"2026-01": False, "2026-02": False, "2026-03": True})
        self.service.cutover_required_periods = 3
        self.assertFalse(self._summaries().filtered("is_latest_period").cutover_ready)

    def test_resolved_counts_and_a_delta_breaks_the_streak(self):
        self.service.cutover_required_periods = 2
        self._period("2026-01", (100, 100), (130, 100))
        self._period("2026-03", (100, 100))
        latest = self._summaries().filtered("is_latest_period")
        self.assertEqual(latest.period, "2026-03")
        self.assertFalse(latest.cutover_ready, "January, before it, has a delta")
        self.assertEqual(latest.cutover_progress, "1 of 2 periods")
        self._period("2026-02", (100, 100))
        self.assertTrue(self._summaries().filtered("is_latest_period").cutover_ready)
        self.service.cutover_required_periods = 3
        self.assertFalse(self._summaries().filtered("is_latest_period").cutover_ready)
        self._row(self.partner_b, "2026-01").write(
            {"note": "known", "status": "resolved"}
        )
        self._summaries()
        ready = self.env["fusion.billing.reconciliation.summary"].search(
            [("service_id", "=", self.service.id), ("cutover_ready", "=", True)]
        )
        self.assertEqual(ready.mapped("period"), ["2026-03"])

    def test_months_without_billing_and_the_open_month_are_no_evidence(self):
        self.service.cutover_required_periods = 3
        # Both sides 0 before any subscription: matched, but proves nothing.
        self._period("2026-01", (0, 0), (0, 0))
        self._period("2026-02", (100, 100))
        self._period("2026-03", (0, 0))
        self._period("2026-04", (50, 50))
        this_month = fields.Date.context_today(self.service).strftime("%Y-%m")
        self._period(this_month, (10, 10))
        summaries = self._summaries()
        latest = summaries.filtered("is_latest_period")
        self.assertEqual(latest.period, this_month)
        self.assertFalse(latest.cutover_ready)
        self.assertEqual(latest.cutover_progress, "2 of 3 periods")
        self.assertEqual(self.service.cutover_progress, "2 of 3 periods")
        self.assertFalse(summaries.filtered("cutover_ready"))
        self._period("2026-05", (20, 21))
        self._row(self.partner_a, "2026-05").write(
            {"note": "rounding in the app", "status": "resolved"}
        )
        self.service.invalidate_recordset(["cutover_progress", "cutover_ready"])
        self.assertTrue(self.service.cutover_ready)
        ready = self._summaries().filtered("cutover_ready")
        self.assertEqual(set(ready.mapped("period")), {"2026-05", this_month})


@tagged("post_install", "-at_install")
class TestReconciliationAccess(ReconciliationCase):
    def test_user_imports_and_resolves_but_cannot_change_tolerances(self):
        user = self.billing_user
        wizard = self._import_csv(
            f"customer,period,amount,currency\ncus_a,2026-01,90,{self.currency.name}\n",
            user=user,
        )
        wizard.action_import()
        row = self._row(self.partner_a, "2026-01").with_user(user)
        self.assertEqual(row.status, "delta")
        row.write({"note": "App charged a setup fee Odoo bills next month."})
        row.action_resolve()
        self.assertEqual(row.status, "resolved")
        with self.assertRaises(AccessError):
            self.service.with_user(user).write({"reconciliation_tolerance": 1000})
        with self.assertRaises(AccessError):
            self.service.with_user(user).write({"reconciliation_tolerance_percent": 50})
        with self.assertRaises(AccessError):
            row.unlink()
        summary = self.env["fusion.billing.reconciliation.summary"].with_user(user)
        self.assertEqual(summary.search([]).row_count, 1)

    def test_nobody_edits_amounts_by_hand(self):
        row = self._new_row(100, 100)
        self.assertEqual(row.status, "match")
        for user in (self.billing_user, self.billing_manager):
            for values in (
                {"odoo_amount": 90},
                {"external_amount": 90},
                {"external_source": "import"},
                {"external_source": False},
                {"resolved_amounts": "90.0|100.0"},
                {"partner_id": self.partner_b.id},
                {"period": "2026-02"},
            ):
                with (
                    self.subTest(user=user.login, values=values),
                    self.assertRaises(AccessError),
                ):
                    row.with_user(user).write(values)
            with self.assertRaises(AccessError):
                self.Reconciliation.with_user(user).create(
                    {
                        "service_id": self.service.id,
                        "partner_id": self.partner_b.id,
                        "period": "2026-01",
                        "currency_id": self.currency.id,
                        "odoo_amount": 5,
                        "external_amount": 5,
                    }
                )
        self.assertRecordValues(
            row,
            [
                {
                    "odoo_amount": 100,
                    "external_amount": 100,
                    "external_source": False,
                    "status": "match",
                    "partner_id": self.partner_a.id,
                }
            ],
        )
        self.assertFalse(self._row(self.partner_b, "2026-01"))

    def test_user_import_is_recorded_on_the_row(self):
        self._invoice(self.partner_a, 100, subscription=self.subscription_a, period=JAN)
        wizard = self._import_csv(
            f"customer,period,amount,currency\ncus_a,2026-01,90,{self.currency.name}\n",
            user=self.billing_user,
        ).with_context(tracking_disable=False, mail_notrack=False)
        wizard.action_import()
        row = self._row(self.partner_a, "2026-01")
        self.assertRecordValues(
            row,
            [{"external_amount": 90, "external_source": "import", "status": "delta"}],
        )
        self.env.cr.flush()
        tracked = row.message_ids.filtered("tracking_value_ids")
        self.assertEqual(tracked.author_id, self.billing_user.partner_id)
        self.assertIn(
            "external_amount",
            tracked.tracking_value_ids.field_id.mapped("name"),
        )


@tagged("post_install", "-at_install")
class TestReconciliationApi(ReconciliationCase, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api_key = cls._api_key(cls.service)
        cls.other_service = cls._create_service("Other", "fb_test_other")
        cls._create_customer(cls.other_service, cls.partner_b, "cus_other")
        cls.other_key = cls._api_key(cls.other_service)

    @classmethod
    def _api_key(cls, service):
        return (
            cls.env["res.users.apikeys"]
            .with_user(service.user_id)
            .sudo()
            ._generate("fusion_billing", "test", None)
        )

    def _post(self, body, key=None, content_type="application/json"):
        headers = {"Content-Type": content_type, "X-Odoo-Database": self.env.cr.dbname}
        if key is not False:
            headers["Authorization"] = f"Bearer {key or self.api_key}"
        raw = body if isinstance(body, str) else json.dumps(body)
        response = self.url_open("/reconciliation", data=raw, headers=headers)
        return response.status_code, response.json()

    def test_amounts_are_stored_and_results_given_per_item(self):
        self._invoice(self.partner_a, 100, subscription=self.subscription_a, period=JAN)
        code = self.currency.name
        status, body = self._post(
            {
                "period": "2026-01",
                "amounts": [
                    {"customer": "cus_a", "amount": 100, "currency": code},
                    {"customer": "cus_nope", "amount": 1, "currency": code},
                    {"customer": "cus_b", "amount": "7", "currency": code},
                ],
            }
        )
        self.assertEqual(status, 200)
        self.assertEqual((body["accepted"], body["rejected"]), (1, 2))
        self.assertEqual(
            [(r["customer"], r["status"]) for r in body["results"]],
            [("cus_a", "accepted"), ("cus_nope", "rejected"), ("cus_b", "rejected")],
        )
        self.assertEqual(body["results"][1]["error"]["code"], "unknown_customer")
        self.assertEqual(body["results"][2]["error"]["code"], "invalid_item")
        row = self._row(self.partner_a, "2026-01")
        self.assertEqual(
            (row.external_amount, row.odoo_amount, row.status, row.external_source),
            (100, 100, "match", "api"),
        )

    def test_resending_updates_the_row(self):
        code = self.currency.name
        for amount in (10, 12):
            status, _body = self._post(
                {
                    "period": "2026-02",
                    "amounts": [
                        {"customer": "cus_a", "amount": amount, "currency": code}
                    ],
                }
            )
            self.assertEqual(status, 200)
        rows = self.Reconciliation.search([("period", "=", "2026-02")])
        self.assertEqual(rows.mapped("external_amount"), [12])

    def test_json_errors(self):
        status, body = self._post({"period": "2026-01", "amounts": []}, key=False)
        self.assertEqual((status, body["error"]["code"]), (401, "unauthenticated"))
        status, body = self._post({"period": "2026-01"}, key="not-a-key")
        self.assertEqual(status, 401)
        status, body = self._post("{not json")
        self.assertEqual((status, body["error"]["code"]), (400, "invalid_json"))
        status, body = self._post({"period": "Jan", "amounts": []})
        self.assertEqual((status, body["error"]["code"]), (400, "invalid_period"))
        status, body = self._post(
            {
                "period": "2026-01",
                "amounts": [{"customer": "cus_x", "amount": 1, "currency": "USD"}],
            }
        )
        self.assertEqual((status, body["error"]["code"]), (400, "all_rejected"))
        self.assertFalse(self.Reconciliation.search([]))

    def test_unusable_periods_answer_invalid_period_usable_ones_work(self):
        code = self.currency.name
        amounts = [{"customer": "cus_a", "amount": 5, "currency": code}]
        for period in ("0000-01", "0000-12", "9999-01", "9999-12"):
            with self.subTest(period=period):
                status, body = self._post({"period": period, "amounts": amounts})
                self.assertEqual(
                    (status, body["error"]["code"]), (400, "invalid_period")
                )
                self.assertIn("0001-01 to 9998-12", body["error"]["message"])
        self.assertFalse(self.Reconciliation.search([]))
        for period in ("0001-01", "9998-12"):
            with self.subTest(period=period):
                status, body = self._post({"period": period, "amounts": amounts})
                self.assertEqual((status, body["accepted"]), (200, 1))
                self.assertEqual(self._row(self.partner_a, period).external_amount, 5)

    def test_user_cannot_write_amounts_over_json_rpc(self):
        row = self._new_row(100, 90)
        self.authenticate("fb_user", "fb_user")
        with self.assertRaises(JsonRpcException), mute_logger("odoo.http"):
            self.make_jsonrpc_request(
                "/web/dataset/call_kw/fusion.billing.reconciliation/write",
                {
                    "model": "fusion.billing.reconciliation",
                    "method": "write",
                    "args": [row.ids, {"external_amount": 100}],
                    "kwargs": {},
                },
            )
        self.assertRecordValues(row, [{"external_amount": 90, "status": "delta"}])

    def test_a_key_only_reaches_its_own_service(self):
        code = self.currency.name
        status, body = self._post(
            {
                "period": "2026-01",
                "amounts": [
                    {"customer": "cus_a", "amount": 5, "currency": code},
                    {"customer": "cus_other", "amount": 6, "currency": code},
                ],
            },
            key=self.other_key,
        )
        self.assertEqual(status, 200)
        self.assertEqual(body["results"][0]["error"]["code"], "unknown_customer")
        self.assertFalse(self._row(self.partner_a, "2026-01"))
        self.assertEqual(
            self._row(self.partner_b, "2026-01", self.other_service).external_amount, 6
        )
        self.assertFalse(self._row(self.partner_b, "2026-01"))
