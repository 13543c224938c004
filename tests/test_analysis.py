# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import ast
from datetime import date, datetime, time, timedelta, timezone

from lxml import etree

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import FusionBillingCase


@tagged("post_install", "-at_install")
class TestAnalysis(FusionBillingCase):
    """Usage Analysis and Invoiced Revenue (SPEC §12, back office): the
    actions open for a billing user, and their views' measures and group-bys
    give the figures of the fixtures."""

    def _views(self, xmlid):
        """(action, {view type: arch}) as the web client loads them for a
        billing user."""
        action = self.env["ir.actions.act_window"]._for_xml_id(xmlid)
        model = self.env[action["res_model"]].with_user(self.billing_user)
        view_types = [*action["view_mode"].split(","), "search"]
        views = model.get_views([(False, view_type) for view_type in view_types])
        return action, {
            view_type: etree.fromstring(view["arch"])
            for view_type, view in views["views"].items()
        }

    def _read(self, action, arch, domain):
        """The groups the pivot or graph ``arch`` of ``action`` opens with: its
        group-bys (rows, then columns) and measures (the action's when it
        names them), read as a billing user."""
        groupby = [
            f"{node.get('name')}:{node.get('interval')}"
            if node.get("interval")
            else node.get("name")
            for node in arch.iterfind("field")
            if node.get("type") != "measure"
        ]
        names = ast.literal_eval(action["context"]).get(f"{arch.tag}_measures") or [
            node.get("name") for node in arch.iterfind("field[@type='measure']")
        ]
        measures = [name if name == "__count" else f"{name}:sum" for name in names]
        groups = (
            self.env[action["res_model"]]
            .with_user(self.billing_user)
            .formatted_read_group(domain, groupby, measures)
        )
        return groupby, measures, groups


@tagged("post_install", "-at_install")
class TestUsageAnalysis(TestAnalysis):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.recent = datetime.combine(
            date.today() - timedelta(days=3), time(10)
        )  # within the last 30 days
        for subscription, metric, quantity, moment in (
            (cls.subscription_a, cls.metric_calls, 1.5, datetime(2026, 1, 5, 10)),
            (cls.subscription_a, cls.metric_calls, 2.25, datetime(2026, 1, 5, 23)),
            (cls.subscription_a, cls.metric_calls, 4, datetime(2026, 1, 12, 8)),
            (cls.subscription_b, cls.metric_calls, 10, datetime(2026, 1, 5, 9)),
            (cls.subscription_a, cls.metric_storage, 7, datetime(2026, 1, 6, 9)),
        ):
            cls._store_event(subscription, metric, quantity, moment)
        cls._store_event(
            cls.subscription_a,
            cls.metric_calls,
            100,
            datetime(2026, 1, 5, 11),
            cancelled=True,
        )
        cls.domain = [("service_id", "=", cls.service.id)]

    def test_action_opens_on_the_graph_of_the_last_30_days(self):
        action, archs = self._views(
            "fusion_billing.fusion_billing_usage_analysis_action"
        )
        self.assertEqual(action["view_mode"].split(",")[:2], ["graph", "pivot"])
        filters = {node.get("name") for node in archs["search"].iter("filter")}
        defaults = {
            name.removeprefix("search_default_")
            for name in ast.literal_eval(action["context"])
            if name.startswith("search_default_")
        }
        self.assertLessEqual(
            defaults, filters, "every default filter is in the search view"
        )
        self.assertIn("last_30_days", defaults)
        for name in ("group_day", "group_week", "group_metric", "group_service"):
            self.assertIn(name, filters)

    def test_pivot_sums_quantities_and_counts_events_per_metric_and_month(self):
        action, archs = self._views(
            "fusion_billing.fusion_billing_usage_analysis_action"
        )
        groupby, measures, groups = self._read(
            action,
            archs["pivot"],
            [*self.domain, ("cancelled", "=", False)],
        )
        self.assertEqual(measures, ["quantity:sum", "__count"])
        self.assertEqual(
            {
                (group["metric_id"][1], group[groupby[1]][1]): (
                    group["quantity:sum"],
                    group["__count"],
                )
                for group in groups
            },
            {
                ("Api Calls", "January 2026"): (17.75, 4),
                ("Storage Gb", "January 2026"): (7.0, 1),
            },
        )

    def test_graph_gives_daily_usage_per_metric(self):
        action, archs = self._views(
            "fusion_billing.fusion_billing_usage_analysis_action"
        )
        groupby, __, groups = self._read(
            action,
            archs["graph"],
            [*self.domain, ("cancelled", "=", False)],
        )
        self.assertEqual(groupby, ["timestamp:day", "metric_id"])
        self.assertEqual(
            {
                (group["timestamp:day"][1], group["metric_id"][1]): group[
                    "quantity:sum"
                ]
                for group in groups
            },
            {
                ("05 Jan 2026", "Api Calls"): 13.75,
                ("06 Jan 2026", "Storage Gb"): 7.0,
                ("12 Jan 2026", "Api Calls"): 4.0,
            },
        )

    def test_group_by_week_subscription_and_service(self):
        Event = self.env["fusion.billing.usage.event"].with_user(self.billing_user)
        domain = [*self.domain, ("metric_id", "=", self.metric_calls.id)]
        groups = Event.formatted_read_group(
            [*domain, ("cancelled", "=", False)],
            ["subscription_id", "timestamp:week"],
            ["quantity:sum"],
        )
        self.assertEqual(
            sorted(
                (g["subscription_id"][1], g["timestamp:week"][1], g["quantity:sum"])
                for g in groups
            ),
            sorted(
                [
                    (self.subscription_a.display_name, "W2 2026", 3.75),
                    (self.subscription_a.display_name, "W3 2026", 4.0),
                    (self.subscription_b.display_name, "W2 2026", 10.0),
                ]
            ),
        )
        by_service = Event.formatted_read_group(
            domain, ["service_id"], ["quantity:sum"]
        )
        self.assertEqual(
            [(g["service_id"][0], g["quantity:sum"]) for g in by_service],
            [(self.service.id, 117.75)],
            "the cancelled event counts without the Not Cancelled filter",
        )

    def test_open_period_filter_follows_each_subscription(self):
        # sub_b's January is billed: its open period is February.
        self.subscription_b.write(
            {
                "last_invoice_date": date(2026, 2, 1),
                "next_invoice_date": date(2026, 3, 1),
            }
        )
        self._store_event(
            self.subscription_b, self.metric_calls, 3, datetime(2026, 2, 2, 8)
        )
        Event = self.env["fusion.billing.usage.event"].with_user(self.billing_user)
        in_period = Event.search([*self.domain, ("in_open_period", "=", True)])
        out_of_period = Event.search([*self.domain, ("in_open_period", "=", False)])
        self.assertEqual(
            sorted(
                in_period.mapped(lambda e: (e.subscription_id.external_ref, e.quantity))
            ),
            [
                ("sub_a", 1.5),
                ("sub_a", 2.25),
                ("sub_a", 4.0),
                ("sub_a", 7.0),
                ("sub_a", 100.0),
                ("sub_b", 3.0),
            ],
        )
        self.assertEqual(
            out_of_period.mapped(
                lambda e: (e.subscription_id.external_ref, e.quantity)
            ),
            [("sub_b", 10.0)],
        )
        self.assertTrue(all(in_period.mapped("in_open_period")))
        self.assertFalse(any(out_of_period.mapped("in_open_period")))


@tagged("post_install", "-at_install")
class TestRevenueAnalysis(TestAnalysis):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._store_event(
            cls.subscription_a, cls.metric_calls, 1000, datetime(2026, 1, 5, 10)
        )
        # January: 1000 calls x 0.0125 + the 49.00 fee, for each subscription
        # rated (sub_b's fee alone); sub_a's invoice posted, sub_b's left draft.
        cls.env["fusion.billing.rating"]._cron_rate_usage(
            now=datetime(2026, 1, 20, tzinfo=timezone.utc)
        )
        cls.invoice = cls.subscription_a.invoice_ids
        cls.invoice.with_context(fusion_billing_post_open_period=True).action_post()
        cls.credit_note = cls._move(
            "out_refund", 10, date(2026, 3, 10), reversed_entry_id=cls.invoice.id
        )
        cls.one_off = cls._move(
            "out_invoice", 25, date(2026, 2, 15), fusion_service_id=cls.service.id
        )
        cls._move("out_invoice", 60, date(2026, 1, 5))  # not a service's
        cls.domain = [("service_id", "=", cls.service.id)]

    @classmethod
    def _move(cls, move_type, amount, day, **values):
        move = cls.env["account.move"].create(
            {
                "move_type": move_type,
                "partner_id": cls.partner_a.id,
                "invoice_date": day,
                "invoice_line_ids": [
                    Command.create(
                        {
                            "product_id": cls.product_fee.id,
                            "quantity": 1,
                            "price_unit": amount,
                            "tax_ids": [Command.clear()],
                        }
                    )
                ],
                **values,
            }
        )
        move.action_post()
        return move

    def test_pivot_gives_posted_revenue_per_service_and_billing_period(self):
        action, archs = self._views(
            "fusion_billing.fusion_billing_revenue_report_action"
        )
        self.assertIn("search_default_posted", action["context"])
        groupby, measures, groups = self._read(
            action,
            archs["pivot"],
            [*self.domain, ("state", "=", "posted")],
        )
        self.assertEqual(groupby, ["service_id", "period_start:month"])
        self.assertEqual(measures, ["amount_untaxed:sum"])
        # The credit note corrects January, the month of the invoice it reverses.
        self.assertEqual(
            {
                group["period_start:month"][1]: group["amount_untaxed:sum"]
                for group in groups
            },
            {"January 2026": 61.5 - 10, "February 2026": 25.0},
        )

    def test_lines_by_kind_and_drafts_apart(self):
        Report = self.env["fusion.billing.revenue.report"].with_user(self.billing_user)
        by_kind = Report.formatted_read_group(
            [*self.domain, ("move_id", "in", (self.invoice | self.credit_note).ids)],
            ["line_kind"],
            ["amount_untaxed:sum"],
        )
        self.assertEqual(
            {group["line_kind"]: group["amount_untaxed:sum"] for group in by_kind},
            {"usage": 12.5, "fixed_fee": 49.0, "other": -10.0},
        )
        drafts = Report.search([*self.domain, ("state", "=", "draft")])
        self.assertEqual(drafts.subscription_id, self.subscription_b)
        self.assertEqual(sum(drafts.mapped("amount_untaxed")), 49.0)
        # Each invoice's rows add up to its signed untaxed amount.
        for move in self.invoice | self.credit_note | self.one_off:
            rows = Report.search([("move_id", "=", move.id)])
            self.assertAlmostEqual(
                sum(rows.mapped("amount_untaxed")), move.amount_untaxed_signed
            )

    def test_billing_groups_only(self):
        employee = new_test_user(
            self.env, login="fb_analysis_employee", groups="base.group_user"
        )
        with self.assertRaises(AccessError):
            self.env["fusion.billing.revenue.report"].with_user(employee).search([])
