# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
from datetime import datetime, time, timedelta, timezone

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import mute_logger

from .common import FusionBillingCase


@tagged("post_install", "-at_install")
class TestPortal(FusionBillingCase, HttpCase):
    """Customers follow their usage in the portal, and only theirs (SPEC §12)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.today = fields.Date.today()
        # An open period that contains the last days, so the chart has bars.
        cls.subscription_recent = cls._create_subscription(
            cls.service,
            cls.partner_a,
            cls.plan,
            "sub_a_recent",
            cls.today - timedelta(days=5),
        )
        yesterday = datetime.combine(cls.today - timedelta(days=1), time(10))
        cls._store_event(cls.subscription_recent, cls.metric_calls, 400, yesterday)
        cls._store_event(
            cls.subscription_recent,
            cls.metric_calls,
            600,
            yesterday + timedelta(hours=2),
        )
        cls._store_event(
            cls.subscription_recent,
            cls.metric_calls,
            100,
            datetime.combine(cls.today, time(0)),
        )
        cls.draft_a = cls.env["fusion.billing.subscription"].create(
            {
                "service_id": cls.service.id,
                "partner_id": cls.partner_a.id,
                "plan_id": cls.plan.id,
                "external_ref": "sub_a_draft",
            }
        )
        cls.contact_a = cls.env["res.partner"].create(
            {"name": "Ann Azure", "parent_id": cls.partner_a.id}
        )
        cls.portal_a = new_test_user(
            cls.env,
            login="fb_portal_a",
            groups="base.group_portal",
            partner_id=cls.contact_a.id,
        )
        cls.employee_b = new_test_user(
            cls.env,
            login="fb_employee_b",
            groups="base.group_user",
            partner_id=cls.env["res.partner"]
            .create({"name": "Bob Deco", "parent_id": cls.partner_b.id})
            .id,
        )

    def _get(self, path):
        return self.url_open(path, allow_redirects=False)

    def _call_kw(self, model, method, args, kwargs=None):
        response = self.url_open(
            "/web/dataset/call_kw",
            data=json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "call",
                    "params": {
                        "model": model,
                        "method": method,
                        "args": args,
                        "kwargs": kwargs or {},
                    },
                }
            ),
            headers={"Content-Type": "application/json"},
        )
        return response.json()

    def test_list_shows_own_active_and_closed_subscriptions_with_estimate(self):
        self.subscription_a.action_close()
        self.authenticate("fb_portal_a", "fb_portal_a")
        response = self._get("/my/usage")
        self.assertEqual(response.status_code, 200)
        page = response.text
        self.assertIn(f'href="/my/usage/{self.subscription_recent.id}"', page)
        self.assertIn(f'href="/my/usage/{self.subscription_a.id}"', page)
        self.assertNotIn(f'href="/my/usage/{self.subscription_b.id}"', page)
        self.assertNotIn("sub_a_draft", page)
        # 1100 calls at 0.0125 plus the 49.00 fee.
        self.assertIn("62.75", page)

    def test_detail_shows_period_lines_chart_and_invoices(self):
        self.service.auto_post_invoices = True
        self.env["fusion.billing.rating"]._cron_rate_usage(
            now=datetime(2026, 2, 2, tzinfo=timezone.utc)
        )
        # January is closed and posted; February's draft is not in the portal.
        invoice, draft = self.subscription_a.invoice_ids.sorted("fusion_period_start")
        self.assertEqual((invoice.state, draft.state), ("posted", "draft"))

        self.authenticate("fb_portal_a", "fb_portal_a")
        response = self._get(f"/my/usage/{self.subscription_recent.id}")
        self.assertEqual(response.status_code, 200)
        page = response.text
        self.assertIn("62.75", page)
        self.assertIn("1,100", page)
        self.assertIn("o_fusion_usage_chart", page)
        # One bar per day of the last 30 days, with its day and usage.
        self.assertEqual(page.count("<rect "), 30)
        self.assertIn(f"<title>{self.today - timedelta(days=1)}: 1,000</title>", page)
        self.assertIn(f"<title>{self.today}: 100</title>", page)

        response = self._get(f"/my/usage/{self.subscription_a.id}")
        self.assertEqual(response.status_code, 200)
        self.assertIn(f'href="{invoice.access_url}"', response.text)
        self.assertNotIn(f"/my/invoices/{draft.id}", response.text)
        self.assertEqual(self._get(invoice.access_url).status_code, 200)

    @mute_logger("odoo.http")
    def test_other_customers_and_drafts_are_not_found(self):
        self.authenticate("fb_portal_a", "fb_portal_a")
        for subscription in (self.subscription_b, self.draft_a):
            with self.subTest(subscription=subscription.external_ref):
                response = self._get(f"/my/usage/{subscription.id}")
                self.assertEqual(response.status_code, 404)
        self.assertEqual(self._get("/my/usage/99999999").status_code, 404)

    def test_record_rules_hide_other_customers_through_rpc(self):
        Subscription = self.env["fusion.billing.subscription"].with_user(self.portal_a)
        own = self.subscription_a | self.subscription_recent | self.draft_a
        self.assertEqual(
            Subscription.search([("service_id", "=", self.service.id)]), own
        )
        with self.assertRaises(AccessError):
            self.subscription_b.with_user(self.portal_a).read(["external_ref"])
        Event = self.env["fusion.billing.usage.event"].with_user(self.portal_a)
        self.assertEqual(
            Event.search([("service_id", "=", self.service.id)]).subscription_id,
            self.subscription_recent,
        )

        self.authenticate("fb_portal_a", "fb_portal_a")
        answer = self._call_kw(
            "fusion.billing.subscription",
            "search_read",
            [[("service_id", "=", self.service.id)]],
            {"fields": ["external_ref"]},
        )
        self.assertEqual(
            {row["external_ref"] for row in answer["result"]},
            {"sub_a", "sub_a_recent", "sub_a_draft"},
        )
        with mute_logger("odoo.http"):
            answer = self._call_kw(
                "fusion.billing.subscription",
                "read",
                [[self.subscription_b.id], ["external_ref"]],
            )
        self.assertEqual(answer["error"]["data"]["name"], "odoo.exceptions.AccessError")

    def test_anonymous_visitor_is_sent_to_login(self):
        for path in ("/my/usage", f"/my/usage/{self.subscription_a.id}"):
            with self.subTest(path=path):
                response = self._get(path)
                self.assertEqual(response.status_code, 303)
                self.assertIn("/web/login", response.headers["Location"])

    def test_home_has_a_usage_entry_with_its_count(self):
        self.authenticate("fb_portal_a", "fb_portal_a")
        home = self._get("/my")
        self.assertEqual(home.status_code, 200)
        self.assertIn('href="/my/usage"', home.text)
        self.assertIn('data-placeholder_count="fusion_usage_count"', home.text)
        response = self.url_open(
            "/my/counters",
            data=json.dumps(
                {"jsonrpc": "2.0", "params": {"counters": ["fusion_usage_count"]}}
            ),
            headers={"Content-Type": "application/json"},
        )
        # sub_a and sub_a_recent; the draft is not shown.
        self.assertEqual(response.json()["result"], {"fusion_usage_count": 2})

    def test_internal_users_see_their_own_company_only(self):
        self.authenticate("fb_employee_b", "fb_employee_b")
        page = self._get("/my/usage").text
        self.assertIn(f'href="/my/usage/{self.subscription_b.id}"', page)
        self.assertNotIn(f'href="/my/usage/{self.subscription_a.id}"', page)
        with mute_logger("odoo.http"):
            response = self._get(f"/my/usage/{self.subscription_a.id}")
        self.assertEqual(response.status_code, 404)
        # Billing users read every subscription in the back office, yet their
        # portal lists their own company's subscriptions only.
        self.authenticate("fb_manager", "fb_manager")
        page = self._get("/my/usage").text
        self.assertNotIn(f'href="/my/usage/{self.subscription_a.id}"', page)
        self.assertEqual(
            self._get(f"/my/usage/{self.subscription_a.id}").status_code, 200
        )

    def test_portal_user_finds_the_chart_in_the_browser(self):
        self.start_tour("/my", "fusion_billing_portal_usage_tour", login="fb_portal_a")
