# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
import re
from contextlib import contextmanager
from datetime import date, datetime, time, timezone
from unittest.mock import patch

from dateutil.relativedelta import relativedelta
from lxml import etree

from odoo import Command
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from ..models.fusion_billing_subscription import FusionBillingSubscription
from .common import FusionBillingCase

FEW, MANY = 2, 20


def post_invoices(env, subscription, count, product):
    """``count`` posted invoices of ``subscription``, one a month from 2024."""
    starts = [date(2024, 1, 1) + relativedelta(months=n) for n in range(count)]
    invoices = env["account.move"].create(
        [
            {
                "move_type": "out_invoice",
                "partner_id": subscription.partner_id.id,
                "invoice_date": start,
                "fusion_subscription_id": subscription.id,
                "fusion_period_start": start,
                "fusion_period_end": start + relativedelta(months=1),
                "invoice_line_ids": [
                    Command.create({"product_id": product.id, "price_unit": 49})
                ],
            }
            for start in starts
        ]
    )
    invoices.with_context(fusion_billing_post_open_period=True).action_post()
    return invoices


@tagged("post_install", "-at_install")
class TestQueryCounts(FusionBillingCase, HttpCase):
    """A billing admin's screens cost the same number of queries whether they
    show 2 rows or 20: measured as the web client reads them (the view's fields
    as a web_read specification), from a cold cache."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partners = cls.env["res.partner"].create(
            [{"name": f"Rows Partner {n}"} for n in range(MANY)]
        )
        cls.subscriptions = cls.subscription_a | cls.subscription_b
        for n, partner in enumerate(cls.partners[: MANY - 2]):
            cls.subscriptions |= cls._create_subscription(
                cls.service, partner, cls.plan, f"sub_rows_{n}", date(2026, 1, 1)
            )
        cls.events = cls.env["fusion.billing.usage.event"]
        for subscription in cls.subscriptions:
            cls.events |= cls._store_event(
                subscription, cls.metric_calls, 10, datetime(2026, 1, 5, 12)
            )
        cls.customers = cls.env["fusion.billing.customer"].search(
            [("service_id", "=", cls.service.id)]
        )
        cls.metrics = cls.env["fusion.billing.metric"].create(
            [
                {
                    "service_id": cls.service.id,
                    "code": f"rows_metric_{n}",
                    "name": f"Rows Metric {n}",
                }
                for n in range(MANY)
            ]
        )
        # A plan per metric (one charge each), and the fixture's plan charging
        # every metric: 21 charges.
        cls.plans = cls.plan
        for n, metric in enumerate(cls.metrics):
            plan = cls.env["fusion.billing.plan"].create(
                {
                    "service_id": cls.service.id,
                    "name": f"Rows Plan {n}",
                    "code": f"rows_plan_{n}",
                    "base_price": 10,
                    "product_id": cls.product_fee.id,
                }
            )
            cls._create_charge(plan, metric, "standard", unit_price=1)
            cls.plans |= plan
            cls._create_charge(cls.plan, metric, "standard", unit_price=0.5)
        cls.services = cls.service | cls.env["fusion.billing.service"].create(
            [
                {"name": f"Rows Service {n}", "code": f"rows_service_{n}"}
                for n in range(MANY - 1)
            ]
        )
        invoice = cls.init_invoice("out_invoice", amounts=[100], post=True)
        cls.webhooks = (
            cls.env["fusion.billing.webhook.event"]
            .sudo()
            .create(
                [
                    {
                        "service_id": cls.service.id,
                        "event_type": "invoice.created",
                        "body": json.dumps({"data": {"invoice": {"id": invoice.id}}}),
                    }
                    for _n in range(MANY)
                ]
            )
        )
        cls.rows = cls.env["fusion.billing.reconciliation"]
        for n, partner in enumerate(cls.partners):
            cls.rows |= cls._create_reconciliation_row(
                partner, f"2025-{n % 12 + 1:02d}", odoo=10, external=10 + n % 2
            )
        cls.alerts = cls.env["fusion.billing.alert"].create(
            [
                {
                    "name": f"Rows Alert {n}",
                    "subscription_id": subscription.id,
                    "threshold": 100,
                }
                for n, subscription in enumerate(cls.subscriptions)
            ]
        )
        cls.invoices = post_invoices(cls.env, cls.subscription_b, MANY, cls.product_fee)
        cls.credits = cls.env["fusion.billing.credit"].create(
            [
                {
                    "name": f"Rows Credit {n}",
                    "subscription_id": cls.subscription_a.id,
                    "amount": 5,
                }
                for n in range(MANY)
            ]
        )

    def _spec(self, model, view_type, arch=None, view=None):
        """The specification the web client sends for the view: the arch's
        fields, many2one with their display name, a form's x2many with the
        fields of their list (inline, or the co-model's default list), others
        as tags."""
        Model = self.env[model]
        if arch is None:
            view_id = view and self.env.ref(view).id
            views = Model.get_views([(view_id, view_type)])["views"]
            arch = etree.fromstring(views[view_type]["arch"])
        level = arch.xpath("count(ancestor::field)")
        spec = {}
        for node in arch.xpath(f".//field[count(ancestor::field) = {level}]"):
            name = node.get("name")
            field = Model._fields[name]
            if field.type == "many2one":
                spec[name] = {"fields": {"display_name": {}}}
            elif field.type in ("one2many", "many2many"):
                sublist = node.xpath("./list")
                if sublist:
                    fields = self._spec(field.comodel_name, "list", sublist[0])
                elif arch.tag == "form" and not node.get("widget"):
                    fields = self._spec(field.comodel_name, "list")
                else:
                    fields = {"display_name": {}}
                spec[name] = {"fields": fields, "limit": 40}
            else:
                spec.setdefault(name, {})
        return spec

    def _queries(self, call):
        self.env.flush_all()
        self.env.invalidate_all()
        before = self.cr.sql_log_count
        call()
        return self.cr.sql_log_count - before

    def _list(self, records, view_type="list", view=None):
        Model = records.with_user(self.billing_manager).browse()
        spec = self._spec(records._name, view_type, view=view)
        return self._queries(
            lambda: Model.web_search_read([("id", "in", records.ids)], spec, limit=80)
        )

    def _form(self, records):
        records = records.with_user(self.billing_manager)
        spec = self._spec(records._name, "form")
        return self._queries(lambda: records.web_read(spec))

    def assertConstantQueries(self, measure, few, many):
        """``measure`` costs as many queries on ``many`` as on ``few``."""
        measure(few)  # Odoo's own caches (languages, currencies) warm up
        self.assertEqual(measure(many), measure(few))

    def test_lists(self):
        summaries = self.env["fusion.billing.reconciliation.summary"].search(
            [("service_id", "=", self.service.id)]
        )
        for records in (
            self.subscriptions,
            self.customers,
            self.services,
            self.plans,
            self.metrics,
            self.events,
            self.webhooks,
            self.rows,
            summaries,
            self.alerts,
            self.credits,
        ):
            with self.subTest(model=records._name):
                self.assertGreaterEqual(len(records), 12)
                self.assertConstantQueries(self._list, records[:FEW], records)

    def test_invoice_lists(self):
        """Usage Invoices, and the reconciliation's invoices and lines."""
        lines = self.invoices.invoice_line_ids
        for records, view in (
            (self.invoices, None),
            (
                self.invoices,
                "fusion_billing.fusion_billing_reconciliation_invoice_view_list",
            ),
            (lines, "fusion_billing.fusion_billing_reconciliation_line_view_list"),
        ):
            with self.subTest(view=view):
                self.assertConstantQueries(
                    lambda rows, view=view: self._list(rows, view=view),
                    records[:FEW],
                    records,
                )

    def test_overview_kanban(self):
        # Every card with an active subscription estimated, half of them in
        # another currency, converted for the card.
        other_currency = self.setup_other_currency("EUR")
        for n, service in enumerate(self.services[1:]):
            if n % 2:
                service.currency_id = other_currency
            metric = self._create_metric(service, "calls", "sum")
            plan = self.env["fusion.billing.plan"].create(
                {"service_id": service.id, "name": "Card", "code": "card"}
            )
            self._create_charge(plan, metric, "standard", unit_price=1)
            subscription = self._create_subscription(
                service, self.partner_a, plan, "sub_card", date(2026, 1, 1)
            )
            self._store_event(subscription, metric, 7, datetime(2026, 1, 5))
        # The conversion rate is read once per currency: both sets have two.
        self.assertConstantQueries(
            lambda services: self._list(services, "kanban"),
            self.services[1:3],
            self.services,
        )

    def test_forms_read_together(self):
        """A form's fields computed for several records at once (a pager,
        an export, an RPC read) are computed in batch."""
        for records in (
            self.subscriptions,
            self.customers,
            self.events,
            self.webhooks,
            self.rows,
            self.alerts,
            self.credits,
            self.plans,
        ):
            with self.subTest(model=records._name):
                self.assertConstantQueries(self._form, records[:FEW], records)

    def test_customer_counts(self):
        contact = self.env["res.partner"].create(
            {"name": "Rows Contact", "parent_id": self.partner_a.id}
        )
        self._create_subscription(
            self.service, contact, self.plan, "sub_rows_contact", date(2026, 1, 1)
        )
        self.init_invoice("out_invoice", partner=contact, amounts=[10]).write(
            {"fusion_service_id": self.service.id}
        )
        self.assertConstantQueries(self._form, self.customers[:FEW], self.customers)
        # The counts the smart buttons show are the records they open.
        self.customers.invalidate_recordset(["subscription_count", "invoice_count"])
        for customer in self.customers:
            self.assertEqual(
                (customer.subscription_count, customer.invoice_count),
                (
                    self.env["fusion.billing.subscription"].search_count(
                        customer._subscription_domain()
                    ),
                    self.env["account.move"].search_count(customer._invoice_domain()),
                ),
            )
        # sub_a and the contact's; the contact's invoice.
        self.assertEqual(
            (self.customer_a.subscription_count, self.customer_a.invoice_count), (2, 1)
        )

    def test_forms_with_lines(self):
        # A service with 2 plans, metrics, customers and subscriptions, and the
        # fixture's with 21 of each.
        few = self._create_service("Rows Few", "rows_few")
        for n in range(FEW):
            metric = self._create_metric(few, f"few_{n}", "sum")
            plan = self.env["fusion.billing.plan"].create(
                {"service_id": few.id, "name": f"Few {n}", "code": f"few_{n}"}
            )
            self._create_charge(plan, metric, "standard", unit_price=1)
            self._create_subscription(
                few, self.partners[n], plan, f"sub_few_{n}", date(2026, 1, 1)
            )
        self.assertConstantQueries(self._form, few, self.service)
        # A plan with 2 charges and one with 21; their subscriptions' forms
        # list and price them.
        two_charges = self.plans[1]
        self._create_charge(two_charges, self.metric_calls, "standard", unit_price=2)
        self.assertConstantQueries(self._form, two_charges, self.plan)
        on_two_charges = self._create_subscription(
            self.service, self.partners[1], two_charges, "sub_two", date(2026, 1, 1)
        )
        self._store_event(on_two_charges, self.metric_calls, 5, datetime(2026, 1, 6))
        self.env["fusion.billing.credit"].create(
            [
                {"name": f"Two {n}", "subscription_id": on_two_charges.id, "amount": 5}
                for n in range(FEW)
            ]
        )
        self.env["fusion.billing.alert"].create(
            {"name": "Two", "subscription_id": on_two_charges.id, "threshold": 1}
        )
        self.assertConstantQueries(self._form, on_two_charges, self.subscription_a)
        # A charge with 2 tiers and one with 20.
        few_tiers, many_tiers = (
            self._create_charge(
                plan,
                self.metric_storage,
                "graduated",
                tiers=[
                    {"up_to": 10 * (n + 1) if n < count - 1 else 0, "unit_price": 1}
                    for n in range(count)
                ],
            )
            for plan, count in ((self.plans[1], FEW), (self.plans[2], MANY))
        )
        self.assertConstantQueries(self._form, few_tiers, many_tiers)

    def test_forms_used_by_and_triggered(self):
        """A credit's "Used by" invoices and an alert's "Triggered" periods,
        2 and 20 of them, as rating leaves them: a subscription behind by 2
        months and one behind by 20, usage in each month, a credit and a calls
        alert each, rated once."""
        plan = self.env["fusion.billing.plan"].create(
            {
                "service_id": self.service.id,
                "name": "Prepaid",
                "code": "rows_prepaid",
                "base_price": 10,
                "product_id": self.product_fee.id,
            }
        )
        self._create_charge(plan, self.metric_calls, "standard", unit_price=1)
        prepaid_credits = self.env["fusion.billing.credit"]
        alerts = self.env["fusion.billing.alert"]
        for partner, months in ((self.partners[0], FEW), (self.partners[1], MANY)):
            start = date(2025, 9, 1) - relativedelta(months=months)
            subscription = self._create_subscription(
                self.service, partner, plan, f"sub_prepaid_{months}", start
            )
            for month in range(months):
                self._store_event(
                    subscription,
                    self.metric_calls,
                    5,
                    datetime.combine(
                        start + relativedelta(months=month, day=10), time()
                    ),
                )
            prepaid_credits |= prepaid_credits.create(
                {"name": "Prepaid", "subscription_id": subscription.id, "amount": 1000}
            )
            alerts |= alerts.create(
                {
                    "name": "5 calls",
                    "subscription_id": subscription.id,
                    "metric_id": self.metric_calls.id,
                    "threshold": 5,
                }
            )
        # Each month closes with its invoice, which uses the credit; the open
        # September has no usage, which triggers nothing.
        self.env["fusion.billing.rating"]._rate_subscriptions(
            prepaid_credits.subscription_id.ids,
            now=datetime(2025, 9, 1, 1, tzinfo=timezone.utc),
        )
        self.assertEqual(
            [
                (len(c.consumption_ids), len(a.trigger_ids))
                for c, a in zip(prepaid_credits, alerts, strict=True)
            ],
            [(FEW, FEW), (MANY, MANY)],
        )
        for records in (prepaid_credits, alerts):
            with self.subTest(model=records._name):
                self.assertConstantQueries(self._form, records[0], records[1])

    def test_pivots(self):
        # Usage by metric (the pivot's rows) and reconciliation by partner.
        for metric in self.metrics:
            self.events |= self._store_event(
                self.subscription_a, metric, 1, datetime(2026, 1, 7)
            )
        Event = self.env["fusion.billing.usage.event"].with_user(self.billing_manager)

        def usage_pivot(metrics):
            return self._queries(
                lambda: Event.formatted_read_group(
                    [("id", "in", self.events.ids), ("metric_id", "in", metrics.ids)],
                    ["metric_id", "timestamp:month"],
                    ["quantity:sum"],
                )
            )

        self.assertConstantQueries(usage_pivot, self.metrics[:FEW], self.metrics)
        Row = self.env["fusion.billing.reconciliation"].with_user(self.billing_manager)

        def reconciliation_pivot(rows):
            return self._queries(
                lambda: Row.formatted_read_group(
                    [("id", "in", rows.ids)],
                    ["partner_id", "period"],
                    ["delta:sum"],
                )
            )

        self.assertConstantQueries(reconciliation_pivot, self.rows[:FEW], self.rows)


@tagged("post_install", "-at_install")
class TestPortalQueryCounts(FusionBillingCase, HttpCase):
    """A portal customer's usage pages cost the same number of queries with 2
    subscriptions (or invoices) as with 20."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.subscriptions = {}
        for size, count in (("few", FEW), ("many", MANY)):
            company = cls.env["res.partner"].create({"name": f"Portal {size}"})
            new_test_user(
                cls.env,
                login=f"fb_rows_{size}",
                groups="base.group_portal",
                partner_id=cls.env["res.partner"]
                .create({"name": f"Contact {size}", "parent_id": company.id})
                .id,
            )
            # Each subscription on a plan of its own, priced by region.
            subscriptions = cls.env["fusion.billing.subscription"]
            for n in range(count):
                plan = cls.env["fusion.billing.plan"].create(
                    {
                        "service_id": cls.service.id,
                        "name": f"Portal {size} {n}",
                        "code": f"portal_{size}_{n}",
                    }
                )
                charge = cls._create_charge(
                    plan, cls.metric_calls, "standard", unit_price=1
                )
                cls.env["fusion.billing.charge.filter"].create(
                    {
                        "charge_id": charge.id,
                        "property_name": "region",
                        "values": "eu",
                        "unit_price": 2,
                    }
                )
                subscriptions |= cls._create_subscription(
                    cls.service, company, plan, f"sub_{size}_{n}", date(2026, 1, 1)
                )
                for region in ("eu", "us"):
                    cls._store_event(
                        subscriptions[-1],
                        cls.metric_calls,
                        3,
                        datetime(2026, 1, 6),
                        properties={"region": region},
                    )
            # Posted invoices, listed on the first subscription's page.
            post_invoices(cls.env, subscriptions[0], count, cls.product_fee)
            cls.subscriptions[size] = subscriptions

    def _page_queries(self, size, path):
        self.authenticate(f"fb_rows_{size}", f"fb_rows_{size}")
        path = path.format(self.subscriptions[size][0].id)
        self.url_open(path)  # the user's own caches (groups, rules) warm up
        self.env.flush_all()
        self.env.invalidate_all()
        before = self.cr.sql_log_count
        response = self.url_open(path)
        self.assertEqual(response.status_code, 200)
        return self.cr.sql_log_count - before

    def _counter_queries(self, size):
        self.authenticate(f"fb_rows_{size}", f"fb_rows_{size}")

        def counters():
            return self.url_open(
                "/my/counters",
                data=json.dumps(
                    {"jsonrpc": "2.0", "params": {"counters": ["fusion_usage_count"]}}
                ),
                headers={"Content-Type": "application/json"},
            )

        counters()
        self.env.flush_all()
        self.env.invalidate_all()
        before = self.cr.sql_log_count
        response = counters()
        self.assertEqual(
            response.json()["result"],
            {"fusion_usage_count": len(self.subscriptions[size])},
        )
        return self.cr.sql_log_count - before

    def test_pages(self):
        for path in ("/my/usage", "/my/usage/{}", "/my"):
            with self.subTest(path=path):
                self.assertEqual(
                    self._page_queries("many", path), self._page_queries("few", path)
                )
        self.assertEqual(self._counter_queries("many"), self._counter_queries("few"))


@tagged("post_install", "-at_install")
class TestRatingQueryCounts(FusionBillingCase):
    """A rating batch reads what its subscriptions need once for the whole
    batch: rating 20 subscriptions reads such a table in as many queries as
    rating 2. (The batch as a whole costs more for 20: each subscription's
    invoices and webhooks are written by queries of their own.)"""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.service.late_usage_policy = "adjust"
        cls.groups = {}
        for size, count in (("warm", FEW), ("few", FEW), ("many", MANY)):
            partners = cls.env["res.partner"].create(
                [{"name": f"Rating {size} {n}"} for n in range(count)]
            )
            subscriptions = cls.env["fusion.billing.subscription"]
            for n, partner in enumerate(partners):
                subscriptions |= cls._create_subscription(
                    cls.service, partner, cls.plan, f"sub_{size}_{n}", date(2026, 1, 1)
                )
                cls._store_event(
                    subscriptions[-1], cls.metric_calls, 100, datetime(2026, 1, 5)
                )
            cls.groups[size] = subscriptions

    def _reads(self, table, call):
        """(queries reading ``table``, all queries) of ``call``, from a cold
        cache."""
        queries = []
        self.env.flush_all()
        self.env.invalidate_all()
        before = self.cr.sql_log_count
        with contextmanager(self._patchExecute)(queries):
            call()
        pattern = re.compile(rf'\b(FROM|JOIN) "?{table}\b(?!_)')
        return (
            sum(bool(pattern.search(query)) for query in queries),
            self.cr.sql_log_count - before,
        )

    def _rate(self, size, day):
        """Rate the group ``size`` as Rate Now does, on ``day``."""
        self.env["fusion.billing.rating"]._rate_subscriptions(
            subscription_ids=self.groups[size].ids,
            now=datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc),
        )

    def _assert_constant_reads(self, table, day):
        """Rating every group on ``day`` (the first warms Odoo's own caches)
        reads ``table`` as often for 20 subscriptions as for 2."""
        reads = {
            size: self._reads(table, lambda size=size: self._rate(size, day))
            for size in ("warm", "few", "many")
        }
        self.assertGreater(reads["few"][0], 0, f"the rating reads {table}")
        self.assertEqual(reads["many"][0], reads["few"][0], f"{table}: {reads}")

    def _invoice_events(self, subscriptions):
        invoices = self.env["account.move"].search(
            [("fusion_subscription_id", "in", subscriptions.ids)]
        )
        return (
            self.env["fusion.billing.webhook.event"]
            .sudo()
            .search(
                [
                    ("service_id", "=", self.service.id),
                    (
                        "dedupe_key",
                        "in",
                        [
                            f"{event_type}:{invoice.id}"
                            for invoice in invoices
                            for event_type in ("invoice.created", "invoice.finalized")
                        ],
                    ),
                ]
            )
        )

    def test_webhooks_read_their_customers_once_per_batch(self):
        """Periods closed (their invoice created, then announced created and
        finalized by the close), the next periods' invoices created and
        announced, a usage alert reached by every subscription: the customer
        of each webhook's subscription is read for the whole batch."""
        alert = self.env["fusion.billing.alert"].create(
            {
                "name": "Rating calls",
                "plan_id": self.plan.id,
                "metric_id": self.metric_calls.id,
                "threshold": 100,
            }
        )
        self._assert_constant_reads("fusion_billing_customer", date(2026, 2, 5))
        many = self.groups["many"]
        events = (
            self._invoice_events(many)
            | alert.trigger_ids.filtered(
                lambda trigger: trigger.subscription_id in many
            ).webhook_event_id
        )
        # January created and finalized, February created; the alert.
        self.assertEqual(len(events), 4 * MANY)
        customers = {
            subscription.external_ref: f"cus_{subscription.external_ref}"
            for subscription in many
        }
        for event in events:
            data = json.loads(event.body)["data"]
            self.assertEqual(data["customer"], customers[data["subscription"]])

    def test_invoices_created_one_by_one_read_their_customers_once_per_batch(self):
        """A batch whose shared invoice create fails creates them again one by
        one, and announces them naming customers read for the whole batch."""
        for size in self.groups:
            self._rate(size, date(2026, 2, 5))
        broken = {group[0] for group in self.groups.values()}
        original = FusionBillingSubscription._prepare_invoice_values

        def sabotaged(records, period, rated_lines):
            values = original(records, period, rated_lines)
            if records in broken:
                values["invoice_line_ids"][0][2]["product_id"] = 987654321
            return values

        with (
            patch.object(
                FusionBillingSubscription, "_prepare_invoice_values", sabotaged
            ),
            mute_logger("odoo.addons.fusion_billing.models.fusion_billing_rating"),
        ):
            self._assert_constant_reads("fusion_billing_customer", date(2026, 3, 5))
        many = self.groups["many"]
        self.assertTrue(many[0].rating_error)
        march = self.env["account.move"].search(
            [
                ("fusion_subscription_id", "in", many.ids),
                ("fusion_period_start", "=", date(2026, 3, 1)),
            ]
        )
        self.assertEqual(march.fusion_subscription_id, many[1:])
        for invoice in march:
            event = (
                self.env["fusion.billing.webhook.event"]
                .sudo()
                .search([("dedupe_key", "=", f"invoice.created:{invoice.id}")])
            )
            self.assertEqual(
                json.loads(event.body)["data"]["customer"],
                f"cus_{invoice.fusion_subscription_id.external_ref}",
            )

    def test_closed_periods_rerated_read_the_plan_history_once_per_batch(self):
        """Late usage has each subscription's closed periods re-rated, each
        by the plan in force then."""
        for size in self.groups:
            self._rate(size, date(2026, 2, 5))
            for subscription in self.groups[size]:
                self._store_event(
                    subscription, self.metric_calls, 40, datetime(2026, 1, 20)
                )
        self._assert_constant_reads("fusion_billing_plan_history", date(2026, 2, 6))
        january = self.env["account.move"].search(
            [
                ("fusion_subscription_id", "in", self.groups["many"].ids),
                ("fusion_period_start", "=", date(2026, 1, 1)),
            ]
        )
        self.assertEqual(len(january), MANY)
        for invoice in january:
            # Re-rated in place (a draft): 140 calls at 0.0125.
            self.assertEqual(
                invoice.invoice_line_ids.filtered("fusion_charge_id").price_subtotal,
                1.75,
            )

    def _rating_queries(self, size, day):
        """(queries of rating the group ``size`` on ``day`` outside its
        subscriptions' write steps, all its queries), from a cold cache. Each
        subscription writes its invoice in a savepoint of its own
        (``_rating_guard``): what runs in one is that subscription's write."""
        queries = []
        self.env.flush_all()
        self.env.invalidate_all()
        with contextmanager(self._patchExecute)(queries):
            self._rate(size, day)
        depth = outside = 0
        for query in queries:
            statement = query.lstrip()
            if statement.startswith("SAVEPOINT"):
                depth += 1
            elif statement.startswith("RELEASE SAVEPOINT"):
                depth -= 1
            elif not depth:
                outside += 1
        return outside, len(queries)

    def test_closed_periods_rerated_with_late_usage_read_once_per_batch(self):
        """An app down for a day replays its backlog after the period closed:
        every subscription gets late usage, and the next rating re-rates the
        closed period of each and adjusts it on the open period's invoice. The
        closed periods, their invoices and what was billed for them are read
        for the whole batch: 20 subscriptions cost as many queries as 2 but
        for their own writes."""
        self.service.auto_post_invoices = True
        for size in self.groups:
            self._rate(size, date(2026, 2, 5))  # January closed, posted
            for subscription in self.groups[size]:
                self._store_event(
                    subscription, self.metric_calls, 40, datetime(2026, 1, 20)
                )
        queries = {
            size: self._rating_queries(size, date(2026, 2, 6))
            for size in ("warm", "few", "many")
        }
        # Each subscription adds its adjustment to its own draft (an
        # account.move write, in its savepoint): only the reads are counted.
        self.assertEqual(queries["many"][0], queries["few"][0], queries)
        # Rated again with nothing new: each subscription's write step finds
        # its draft up to date and writes nothing, its savepoint (SAVEPOINT,
        # RELEASE) is all it costs.
        rerun = {
            size: self._rating_queries(size, date(2026, 2, 7))
            for size in ("warm", "few", "many")
        }
        self.assertEqual(rerun["many"][1], rerun["few"][1] + 2 * (MANY - FEW), rerun)
        february = self.env["account.move"].search(
            [
                ("fusion_subscription_id", "in", self.groups["many"].ids),
                ("fusion_period_start", "=", date(2026, 2, 1)),
            ]
        )
        self.assertEqual(len(february), MANY)
        for invoice in february:
            adjustment = invoice.invoice_line_ids.filtered(
                "fusion_adjusted_period_start"
            )
            # January re-rated: 140 calls at 0.0125 = 1.75, 1.25 billed.
            self.assertEqual(adjustment.price_subtotal, 0.5)
            self.assertEqual(adjustment.fusion_adjusted_period_start, date(2026, 1, 1))
