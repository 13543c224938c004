# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import importlib.util
import uuid
from contextlib import closing
from datetime import date

from odoo import SUPERUSER_ID, Command, api
from odoo.sql_db import db_connect
from odoo.tests import TransactionCase, new_test_user
from odoo.tools.misc import file_path

from odoo.addons.account.tests.common import AccountTestInvoicingCommon


class FusionBillingCase(AccountTestInvoicingCommon):
    """One service with a metric per aggregation, a plan charging each model, two
    linked customers with active monthly subscriptions, and users of both groups.
    The test environment's user (account's "accountman") is a billing manager."""

    @classmethod
    def get_default_groups(cls):
        return super().get_default_groups() | cls.env.ref(
            "fusion_billing.group_fusion_billing_manager"
        )

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.currency = cls.env.company.currency_id
        cls.billing_user = new_test_user(
            cls.env,
            login="fb_user",
            groups="base.group_user,fusion_billing.group_fusion_billing_user",
        )
        cls.billing_manager = new_test_user(
            cls.env,
            login="fb_manager",
            groups="base.group_user,fusion_billing.group_fusion_billing_manager",
        )
        cls.service = cls._create_service("Test Cloud", "fb_test_cloud")
        cls.metric_calls = cls._create_metric(cls.service, "api_calls", "sum")
        cls.metric_storage = cls._create_metric(cls.service, "storage_gb", "max")
        cls.metric_requests = cls._create_metric(cls.service, "requests", "count")
        cls.metric_seats = cls._create_metric(
            cls.service, "active_users", "unique_count", property_name="user_id"
        )
        cls.metric_plan_tier = cls._create_metric(cls.service, "plan_tier", "latest")
        cls.product_usage = cls._create_product(name="Usage", lst_price=0.0)
        cls.product_fee = cls._create_product(name="Pro fee", lst_price=49.0)
        cls.plan = cls.env["fusion.billing.plan"].create(
            {
                "service_id": cls.service.id,
                "name": "Pro",
                "code": "pro",
                "interval_unit": "month",
                "interval_count": 1,
                "base_price": 49.0,
                "product_id": cls.product_fee.id,
            }
        )
        cls.charge_calls = cls._create_charge(
            cls.plan, cls.metric_calls, "standard", unit_price=0.0125
        )
        cls.partner_a = cls.env["res.partner"].create({"name": "Azure Interior"})
        cls.partner_b = cls.env["res.partner"].create({"name": "Deco Addict"})
        cls.customer_a = cls._create_customer(cls.service, cls.partner_a, "cus_a")
        cls.customer_b = cls._create_customer(cls.service, cls.partner_b, "cus_b")
        cls.subscription_a = cls._create_subscription(
            cls.service, cls.partner_a, cls.plan, "sub_a", date(2026, 1, 1)
        )
        cls.subscription_b = cls._create_subscription(
            cls.service, cls.partner_b, cls.plan, "sub_b", date(2026, 1, 1)
        )

    def _run_migration(self, version, installed):
        """Run the upgrade script of ``version`` as an upgrade from the
        ``installed`` version does; returns its module."""
        path = file_path(f"fusion_billing/migrations/{version}/post-migration.py")
        spec = importlib.util.spec_from_file_location("fusion_billing_migration", path)
        migration = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(migration)
        migration.migrate(self.env.cr, installed)
        return migration

    @classmethod
    def _store_event(cls, subscription, metric, quantity, timestamp, **values):
        """A usage event stored as the API stores it: events come in through
        the API only (sudo there), no group creates them."""
        cls.stored_events = getattr(cls, "stored_events", 0) + 1
        return (
            cls.env["fusion.billing.usage.event"]
            .sudo()
            .create(
                {
                    "service_id": subscription.service_id.id,
                    "subscription_id": subscription.id,
                    "metric_id": metric.id,
                    "quantity": quantity,
                    "timestamp": timestamp.replace(tzinfo=None),
                    "idempotency_key": f"evt-{cls.stored_events}",
                    **values,
                }
            )
        )

    @classmethod
    def _create_service(cls, name, code, **values):
        return cls.env["fusion.billing.service"].create(
            {"name": name, "code": code, **values}
        )

    @classmethod
    def _create_metric(cls, service, code, aggregation, **values):
        return cls.env["fusion.billing.metric"].create(
            {
                "service_id": service.id,
                "code": code,
                "name": code.replace("_", " ").title(),
                "aggregation": aggregation,
                **values,
            }
        )

    @classmethod
    def _create_charge(cls, plan, metric, charge_model, tiers=(), **values):
        return cls.env["fusion.billing.charge"].create(
            {
                "plan_id": plan.id,
                "metric_id": metric.id,
                "product_id": values.pop("product_id", cls.product_usage.id),
                "charge_model": charge_model,
                "tier_ids": [Command.create(dict(tier)) for tier in tiers],
                **values,
            }
        )

    @classmethod
    def _create_reconciliation_row(cls, partner, period, odoo=0.0, external=0.0):
        """A row of ``cls.service`` with both amounts, as invoices and the app
        would give them (amounts are never written by hand)."""
        return (
            cls.env["fusion.billing.reconciliation"]
            .sudo()
            .create(
                {
                    "service_id": cls.service.id,
                    "partner_id": partner.id,
                    "period": period,
                    "currency_id": cls.currency.id,
                    "odoo_amount": odoo,
                    "external_amount": external,
                }
            )
            .sudo(False)
        )

    @classmethod
    def _create_customer(cls, service, partner, external_ref):
        return cls.env["fusion.billing.customer"].create(
            {
                "service_id": service.id,
                "partner_id": partner.id,
                "external_ref": external_ref,
            }
        )

    @classmethod
    def _create_subscription(cls, service, partner, plan, external_ref, start_date):
        """An active subscription; its partner made a customer of the service
        first if it is not one (only customers are subscribed)."""
        customers = cls.env["fusion.billing.customer"].search(
            [("service_id", "=", service.id), ("partner_id", "=", partner.id)]
        )
        if not customers:
            cls._create_customer(service, partner, f"cus_{external_ref}")
        subscription = cls.env["fusion.billing.subscription"].create(
            {
                "service_id": service.id,
                "partner_id": partner.id,
                "plan_id": plan.id,
                "external_ref": external_ref,
                "start_date": start_date,
            }
        )
        subscription.action_activate()
        return subscription


class CommittedServiceCase(TransactionCase):
    """Real transactions on connections of their own, for races: a service with
    a metric ``api_calls`` charged on one plan, a customer ``c`` and its active
    subscription ``s``, committed through a separate connection (the test
    transaction is invisible to others) and removed afterwards."""

    def _fixture_start_date(self):
        return date(2026, 1, 1)

    def _fixture_service_values(self):
        return {}

    def setUp(self):
        super().setUp()
        # Lets another thread reach the registry (as HttpCase does): the test
        # runner holds the registry lock.
        self.registry_enter_test_mode()
        self.database = db_connect(self.env.cr.dbname)
        with closing(self.database.cursor()) as cr:
            cr.execute("SET LOCAL lock_timeout = '10s'")
            env = api.Environment(cr, SUPERUSER_ID, {})
            service = env["fusion.billing.service"].create(
                {
                    "name": "Race",
                    "code": f"race-{uuid.uuid4().hex[:8]}",
                    **self._fixture_service_values(),
                }
            )
            metric = env["fusion.billing.metric"].create(
                {"service_id": service.id, "code": "api_calls", "name": "Calls"}
            )
            plan = env["fusion.billing.plan"].create(
                {"service_id": service.id, "name": "Race", "code": "race"}
            )
            env["fusion.billing.charge"].create(
                {
                    "plan_id": plan.id,
                    "metric_id": metric.id,
                    "unit_price": 1.0,
                    "product_id": env["product.product"]
                    .create({"name": "Race usage"})
                    .id,
                }
            )
            partner = env["res.partner"].create({"name": "Race customer"})
            env["fusion.billing.customer"].create(
                {
                    "service_id": service.id,
                    "partner_id": partner.id,
                    "external_ref": "c",
                }
            )
            subscription = env["fusion.billing.subscription"].create(
                {
                    "service_id": service.id,
                    "partner_id": partner.id,
                    "plan_id": plan.id,
                    "external_ref": "s",
                    "start_date": self._fixture_start_date(),
                }
            )
            subscription.action_activate()
            cr.commit()  # pylint: disable=invalid-commit
            self.service_id = service.id
            self.user_id = service.user_id.id
            self.subscription_id = subscription.id
            self.period_end = subscription.next_invoice_date
        self.addCleanup(self._remove_fixtures)

    def _remove_fixtures(self):
        with closing(self.database.cursor()) as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            service = env["fusion.billing.service"].browse(self.service_id)
            env["account.move"].search(
                [("fusion_subscription_id", "in", service.subscription_ids.ids)]
            ).unlink()
            for table in (
                "fusion_billing_usage_event",
                "fusion_billing_webhook_event",
                "fusion_billing_reconciliation",
            ):
                cr.execute(f"DELETE FROM {table} WHERE service_id = %s", [service.id])
            partners = service.customer_ids.partner_id
            products = service.plan_ids.charge_ids.product_id
            user = service.user_id
            service.subscription_ids.unlink()
            service.plan_ids.unlink()
            service.unlink()
            user.unlink()
            partners.unlink()
            products.product_tmpl_id.unlink()
            cr.commit()  # pylint: disable=invalid-commit

    def _api_event(self, key, quantity, timestamp):
        """An event of subscription ``s`` as the app sends it."""
        return {
            "idempotency_key": key,
            "subscription": "s",
            "customer": "c",
            "metric": "api_calls",
            "quantity": quantity,
            "timestamp": timestamp.isoformat(),
        }

    def _ingest(self, cr, events):
        """Results of ingesting ``events`` as the service, on ``cr``."""
        env = api.Environment(cr, self.user_id, {}, su=True)
        service = env["fusion.billing.service"].browse(self.service_id)
        return env["fusion.billing.usage.event"]._ingest(service, events)
