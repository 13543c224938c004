# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from unittest.mock import patch

from psycopg2 import IntegrityError

from odoo import Command
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from ..core import charges
from .common import FusionBillingCase


@tagged("post_install", "-at_install")
class TestDataModel(FusionBillingCase):
    def test_service_gets_technical_user_and_webhook_secret(self):
        self.assertTrue(self.service.user_id.active)
        self.assertTrue(
            self.service.user_id.share, "the API user has no back-office access"
        )
        self.assertTrue(self.service.sudo().webhook_secret.startswith("whsec_"))

    def test_service_code_is_unique(self):
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self._create_service("Copy", "fb_test_cloud")

    def test_service_code_format(self):
        with self.assertRaises(ValidationError):
            self._create_service("Bad", "Nexa Cloud")

    def test_service_period_lifecycle_defaults_and_bounds(self):
        self.assertEqual(self.service.grace_period_hours, 1)
        self.assertEqual(self.service.late_usage_policy, "reject")
        self.assertEqual(self.service.late_usage_days, 35)
        for field in ("grace_period_hours", "late_usage_days"):
            with (
                self.subTest(field=field),
                mute_logger("odoo.sql_db"),
                self.assertRaises(IntegrityError),
                self.cr.savepoint(),
            ):
                self.service.write({field: -1})
                self.service.flush_recordset()

    def test_subscription_end_date_after_start(self):
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self.subscription_a.end_date = self.subscription_a.start_date
            self.subscription_a.flush_recordset()

    def test_metric_code_unique_per_service_only(self):
        other = self._create_service("Other", "fb_test_other")
        self._create_metric(other, "api_calls", "sum")
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self._create_metric(self.service, "api_calls", "sum")

    def test_unique_count_needs_property(self):
        with self.assertRaises(ValidationError):
            self._create_metric(self.service, "users", "unique_count")

    def test_customer_external_ref_unique_per_service(self):
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self._create_customer(self.service, self.partner_b, "cus_a")

    def test_charge_prices_cannot_be_negative(self):
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self._create_charge(
                self.plan, self.metric_storage, "standard", unit_price=-1
            )

    def test_charge_unit_batch_must_be_positive(self):
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self._create_charge(self.plan, self.metric_storage, "package", unit_batch=0)

    def test_plan_interval_must_be_positive_once_invoiced(self):
        """The plan's constraint answers, not a computation of its invoices."""
        self.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": self.partner_a.id,
                "fusion_subscription_id": self.subscription_a.id,
                "fusion_period_start": self.subscription_a.start_date,
                "fusion_period_end": self.subscription_a.next_invoice_date,
            }
        )
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self.plan.interval_count = 0
            self.env.flush_all()

    def test_charge_currency_is_the_plan_currency(self):
        self.assertEqual(self.charge_calls.currency_id, self.plan.currency_id)
        self.assertTrue(self.charge_calls._fields["currency_id"].required)

    def test_charge_metric_must_belong_to_plan_service(self):
        other = self._create_service("Other", "fb_test_other")
        foreign_metric = self._create_metric(other, "api_calls", "sum")
        with self.assertRaises(ValidationError):
            self._create_charge(self.plan, foreign_metric, "standard", unit_price=1)

    def test_tiers_are_validated(self):
        with self.assertRaises(ValidationError):
            self._create_charge(
                self.plan,
                self.metric_storage,
                "graduated",
                tiers=[{"up_to": 10, "unit_price": 1}, {"up_to": 5, "unit_price": 1}],
            )
        charge = self._create_charge(
            self.plan,
            self.metric_storage,
            "volume",
            tiers=[{"up_to": 10, "unit_price": 2}, {"up_to": 0, "unit_price": 1}],
        )
        engine_charge = charge._engine_charge()
        self.assertEqual([tier.up_to for tier in engine_charge.tiers], [10, None])

    def test_tiers_can_be_added_after_the_charge(self):
        charge = self._create_charge(self.plan, self.metric_storage, "graduated")
        Tier = self.env["fusion.billing.charge.tier"]
        Tier.create({"charge_id": charge.id, "up_to": 10, "unit_price": 2})
        Tier.create({"charge_id": charge.id, "up_to": 0, "unit_price": 1})
        # 10 units at 2 + 5 units at 1
        self.assertEqual(charges.price(charge._engine_charge(), 15), 25)

    def test_form_estimate_explains_a_charge_without_tiers(self):
        self._create_charge(self.plan, self.metric_storage, "volume")
        self.subscription_a.invalidate_recordset(["usage_summary"])
        self.assertIn("cannot be priced", self.subscription_a.usage_summary)
        self.assertEqual(self.subscription_a.estimated_amount, 0)

    def test_subscription_activation_sets_first_period(self):
        self.assertEqual(self.subscription_a.state, "active")
        self.assertEqual(str(self.subscription_a.next_invoice_date), "2026-02-01")

    def test_subscription_created_active_gets_its_first_period(self):
        subscription = self.env["fusion.billing.subscription"].create(
            {
                "service_id": self.service.id,
                "partner_id": self.partner_b.id,
                "plan_id": self.plan.id,
                "external_ref": "sub_direct",
                "start_date": "2026-01-31",
                "state": "active",
            }
        )
        self.assertEqual(str(subscription.next_invoice_date), "2026-02-28")

    def test_subscription_ref_unique_per_service(self):
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self._create_subscription(
                self.service,
                self.partner_b,
                self.plan,
                "sub_a",
                self.subscription_a.start_date,
            )

    def test_subscription_plan_must_belong_to_service(self):
        other = self._create_service("Other", "fb_test_other")
        with self.assertRaises(ValidationError):
            self._create_subscription(
                other,
                self.partner_a,
                self.plan,
                "sub_x",
                self.subscription_a.start_date,
            )

    def test_usage_event_idempotency_scope_is_unique(self):
        values = {
            "service_id": self.service.id,
            "subscription_id": self.subscription_a.id,
            "metric_id": self.metric_calls.id,
            "quantity": 3,
            "timestamp": "2026-01-05 10:00:00",
            "idempotency_key": "evt-1",
        }
        Event = self.env[
            "fusion.billing.usage.event"
        ].sudo()  # only the API creates events
        Event.create(values)
        Event.create(dict(values, metric_id=self.metric_storage.id))
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            Event.create(values)

    def test_reconciliation_requires_currency_and_unique_period(self):
        Reconciliation = self.env["fusion.billing.reconciliation"]
        values = {
            "service_id": self.service.id,
            "partner_id": self.partner_a.id,
            "period": "2026-01",
            "currency_id": self.currency.id,
        }
        Reconciliation.create(values)
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            Reconciliation.create(values)
        self.assertTrue(Reconciliation._fields["currency_id"].required)


@tagged("post_install", "-at_install")
class TestAccessRights(FusionBillingCase):
    def test_user_reads_but_cannot_configure(self):
        service = self.service.with_user(self.billing_user)
        self.assertEqual(service.name, "Test Cloud")
        with self.assertRaises(AccessError):
            service.write({"reconciliation_tolerance": 100})
        with self.assertRaises(AccessError):
            self.plan.with_user(self.billing_user).write({"base_price": 1})

    def test_manager_generates_api_key_that_authenticates_its_service(self):
        key = self.service.with_user(self.billing_manager).generate_api_key("ci")
        Service = self.env["fusion.billing.service"]
        self.assertEqual(Service._authenticate_bearer(key), self.service)
        other = self._create_service("Other", "fb_test_other")
        self.assertNotEqual(Service._authenticate_bearer(key), other)
        tampered = key[:-1] + ("1" if key.endswith("0") else "0")
        self.assertFalse(Service._authenticate_bearer(tampered))

    def test_user_cannot_generate_api_keys(self):
        with self.assertRaises(AccessError):
            self.service.with_user(self.billing_user).generate_api_key("nope")

    def test_api_key_expiry_must_be_in_the_future(self):
        with self.assertRaises(UserError):
            self.service.generate_api_key("old", "2020-01-01 00:00:00")

    def test_user_cannot_read_secrets(self):
        service = self.service.with_user(self.billing_user)
        with self.assertRaises(AccessError):
            service.read(["webhook_secret"])
        self.assertNotIn("webhook_secret", service.fields_get())

    def test_manager_configures_and_reads_secret(self):
        service = self.service.with_user(self.billing_manager)
        service.write({"reconciliation_tolerance": 2})
        self.assertTrue(service.webhook_secret.startswith("whsec_"))

    def test_employee_without_billing_group_sees_nothing(self):
        employee = self.env["res.users"].create(
            {"name": "Employee", "login": "fb_employee"}
        )
        with self.assertRaises(AccessError):
            self.service.with_user(employee).read(["name"])

    def test_webhook_url_token_is_for_managers_only_and_never_tracked(self):
        self.env["ir.config_parameter"].set_param(
            "fusion_billing.webhook_allowed_hosts", "hooks.fusion.test"
        )
        service = self.service.with_context(tracking_disable=False, mail_notrack=False)
        with patch.object(
            type(self.env["fusion.billing.webhook.event"]),
            "_webhook_resolver",
            lambda self: lambda host, port: ["127.0.0.1"],
        ):
            service.webhook_url = "https://hooks.fusion.test/in?token=s3cret"
        self.env.cr.flush()
        as_user = self.service.with_user(self.billing_user)
        with self.assertRaises(AccessError):
            as_user.read(["webhook_url"])
        self.assertEqual(as_user.webhook_endpoint, "https://hooks.fusion.test/in")
        self.assertNotIn("webhook_url", as_user.fields_get())
        tracked = self.service.message_ids.tracking_value_ids
        self.assertFalse(
            tracked.filtered(lambda value: value.field_id.name == "webhook_url")
        )
        self.assertNotIn(
            "s3cret",
            str(
                self.service.message_ids.mapped("body")
                + tracked.mapped("new_value_char")
            ),
        )

    def test_charge_tiers_follow_their_company(self):
        tier = self.env["fusion.billing.charge.tier"].create(
            {"charge_id": self.charge_calls.id, "up_to": 0, "unit_price": 1}
        )
        self.assertEqual(tier.company_id, self.service.company_id)
        other_company = self.env["res.company"].create({"name": "FB Tier Co"})
        foreign_manager = new_test_user(
            self.env,
            login="fb_tier_manager",
            groups="base.group_user,fusion_billing.group_fusion_billing_manager",
            company_id=other_company.id,
            company_ids=[Command.set(other_company.ids)],
        )
        Tier = self.env["fusion.billing.charge.tier"].with_user(foreign_manager)
        self.assertFalse(Tier.search([("id", "=", tier.id)]))
        with self.assertRaises(AccessError):
            tier.with_user(foreign_manager).write({"unit_price": 0})
        self.assertEqual(tier.unit_price, 1)

    def test_multi_company_rule_hides_other_company_services(self):
        other_company = self.env["res.company"].create({"name": "Other Co"})
        self.billing_user.write({"company_ids": [(4, other_company.id)]})
        foreign = self._create_service(
            "Foreign", "foreign", company_id=other_company.id
        )
        Service = self.env["fusion.billing.service"].with_user(self.billing_user)
        visible = Service.with_context(
            allowed_company_ids=[self.env.company.id]
        ).search([])
        self.assertIn(self.service, visible)
        self.assertNotIn(foreign, visible)


@tagged("post_install", "-at_install")
class TestTechnicalUser(FusionBillingCase):
    """A billing manager configures services, never Odoo users."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.victim = new_test_user(cls.env, login="fb_victim", groups="base.group_user")
        cls.Service = cls.env["fusion.billing.service"].with_user(cls.billing_manager)

    def test_manager_cannot_create_a_service_on_an_existing_user(self):
        with self.assertRaises(AccessError):
            self.Service.create(
                {"name": "Hijack", "code": "fb_hijack", "user_id": self.victim.id}
            )
        self.assertFalse(self.victim.fusion_billing_service_ids)

    def test_manager_cannot_repoint_a_service(self):
        service = self.service.with_user(self.billing_manager)
        technical = service.user_id
        for target in (self.victim, self.env["fusion.billing.service"].browse()):
            with self.assertRaises(AccessError):
                service.write({"user_id": target.id})
        with self.assertRaises(AccessError):
            # not even with elevated rights once the service has its user
            self.service.sudo().write({"user_id": self.victim.id})
        self.assertEqual(self.service.user_id, technical)

    def test_archiving_reaches_only_the_addon_technical_user(self):
        service = self.Service.create({"name": "Own", "code": "fb_own"})
        self.assertTrue(service.user_id.fusion_billing_technical)
        service.action_archive()
        self.assertFalse(service.user_id.active)
        service.action_unarchive()
        self.assertTrue(service.user_id.active)
        # A service pointed at a person before user_id was locked must not
        # archive or re-activate that person.
        self.env.cr.execute(
            "UPDATE fusion_billing_service SET user_id = %s WHERE id = %s",
            [self.victim.id, service.id],
        )
        service.invalidate_recordset(["user_id"])
        service.action_archive()
        self.assertTrue(self.victim.active)
        self.victim.sudo().active = False
        service.action_unarchive()
        self.assertFalse(self.victim.with_context(active_test=False).active)

    def test_two_services_cannot_share_a_technical_user(self):
        other = self._create_service("Other", "fb_test_other")
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self.env.cr.execute(
                "UPDATE fusion_billing_service SET user_id = %s WHERE id = %s",
                [self.service.user_id.id, other.id],
            )


@tagged("post_install", "-at_install")
class TestCompanySeparation(FusionBillingCase):
    """A billing manager of another company neither sees nor touches this
    company's services, keys or data."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other_company = cls.env["res.company"].create({"name": "FB Other Co"})
        cls.foreign_manager = new_test_user(
            cls.env,
            login="fb_foreign_manager",
            groups="base.group_user,fusion_billing.group_fusion_billing_manager",
            company_id=cls.other_company.id,
            company_ids=[Command.set(cls.other_company.ids)],
        )
        cls.key = cls.service.generate_api_key("production")
        cls.Keys = cls.env["res.users.apikeys"]

    def _service_keys(self):
        return self.Keys.sudo().search([("user_id", "=", self.service.user_id.id)])

    def test_foreign_manager_neither_sees_nor_revokes_keys(self):
        keys = self._service_keys()
        foreign = self.Keys.with_user(self.foreign_manager)
        self.assertFalse(foreign.search([("id", "in", keys.ids)]))
        with self.assertRaises(AccessError):
            keys.with_user(self.foreign_manager).read(["name"])
        with self.assertRaises(AccessError):
            keys.with_user(self.foreign_manager).action_fusion_billing_revoke()
        self.assertEqual(self._service_keys(), keys)
        Service = self.env["fusion.billing.service"]
        self.assertEqual(Service._authenticate_bearer(self.key), self.service)

    def test_foreign_manager_cannot_issue_keys_or_configure(self):
        service = self.service.with_user(self.foreign_manager)
        with self.assertRaises(AccessError):
            service.generate_api_key("stolen")
        with self.assertRaises(AccessError):
            service.write({"webhook_url": False})
        self.assertEqual(len(self._service_keys()), 1)

    def test_own_manager_sees_and_revokes(self):
        keys = self._service_keys()
        mine = self.Keys.with_user(self.billing_manager)
        self.assertEqual(mine.search([("id", "in", keys.ids)]), keys)
        keys.with_user(self.billing_manager).action_fusion_billing_revoke()
        self.assertFalse(self._service_keys())
        Service = self.env["fusion.billing.service"]
        self.assertFalse(Service._authenticate_bearer(self.key))

    def test_upgrade_from_1_0_0_separates_keys_by_company(self):
        rule = self.env.ref("fusion_billing.fusion_billing_service_api_keys_rule")
        installed_domain = rule.domain_force
        rule.domain_force = (
            "[('scope', '=', 'fusion_billing'), "
            "('user_id.fusion_billing_service_ids', '!=', False)]"
        )
        keys = self._service_keys()
        foreign = self.Keys.with_user(self.foreign_manager)
        self.assertEqual(foreign.search([("id", "in", keys.ids)]), keys)
        migration = self._run_migration("19.0.1.1.0", "19.0.1.0.0")
        self.assertEqual(rule.domain_force, installed_domain)
        self.assertEqual(migration.DOMAIN, installed_domain)
        self.assertFalse(foreign.search([("id", "in", keys.ids)]))

    def test_upgrade_keeps_a_key_rule_the_administrator_changed(self):
        rule = self.env.ref("fusion_billing.fusion_billing_service_api_keys_rule")
        rule.domain_force = "[('scope', '=', 'fusion_billing')]"
        self._run_migration("19.0.1.1.0", "19.0.1.0.0")
        self.assertEqual(rule.domain_force, "[('scope', '=', 'fusion_billing')]")

    def test_manager_of_both_companies_sees_keys_of_the_active_ones(self):
        self.foreign_manager.company_ids = [Command.link(self.env.company.id)]
        keys = self._service_keys()
        foreign = self.Keys.with_user(self.foreign_manager)
        only_other = foreign.with_context(allowed_company_ids=self.other_company.ids)
        self.assertFalse(only_other.search([("id", "in", keys.ids)]))
        both = foreign.with_context(
            allowed_company_ids=[self.other_company.id, self.env.company.id]
        )
        self.assertEqual(both.search([("id", "in", keys.ids)]), keys)
