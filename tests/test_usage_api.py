# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from unittest.mock import patch
from urllib.parse import urlsplit

import requests
from werkzeug.test import EnvironBuilder

from odoo import api, fields
from odoo import http as odoo_http
from odoo.exceptions import AccessError, UserError
from odoo.service.model import retrying
from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from ..core import usage
from ..models import fusion_billing_service as service_model
from .common import CommittedServiceCase, FusionBillingCase

JSON = "application/json"


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def generate_key(env, service, user, expiration_date=None):
    """A key made the way a billing manager makes one: the service's wizard."""
    wizard = (
        env["fusion.billing.api.key.wizard"]
        .with_user(user)
        .create(
            {
                "service_id": service.id,
                "name": "tests",
                "expiration_date": expiration_date,
            }
        )
    )
    return wizard.action_generate()["context"]["default_key"]


class UsageApiCase(FusionBillingCase, HttpCase):
    """The fixtures of FusionBillingCase, an API key of the service, and a second
    service reusing its references; helpers to call the API as an app does."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.key = generate_key(cls.env, cls.service, cls.billing_manager)
        cls.now = datetime.now(timezone.utc).replace(microsecond=0)
        # A second service reusing the same references: isolation must hold.
        cls.service_b = cls._create_service("Other App", "fb_test_otherapp")
        cls.metric_b = cls._create_metric(cls.service_b, "api_calls", "sum")
        cls.plan_b = cls.env["fusion.billing.plan"].create(
            {"service_id": cls.service_b.id, "name": "B", "code": "b"}
        )
        cls._create_charge(cls.plan_b, cls.metric_b, "standard", unit_price=1)
        cls.partner_c = cls.env["res.partner"].create({"name": "Gemini Furniture"})
        cls._create_customer(cls.service_b, cls.partner_c, "cus_a")
        cls.subscription_b_a = cls._create_subscription(
            cls.service_b, cls.partner_c, cls.plan_b, "sub_a", date(2026, 1, 1)
        )
        cls._create_customer(cls.service_b, cls.partner_b, "cus_only_b")
        cls.key_b = generate_key(cls.env, cls.service_b, cls.billing_manager)

    # --- helpers ----------------------------------------------------------------------

    def event(self, key="evt-1", **values):
        event = {
            "idempotency_key": key,
            "subscription": "sub_a",
            "customer": "cus_a",
            "metric": "api_calls",
            "quantity": 10,
            "timestamp": iso(self.now - timedelta(hours=1)),
        }
        event.update(values)
        return {name: value for name, value in event.items() if value is not None}

    def post(
        self,
        body,
        key=None,
        content_type=JSON,
        method="POST",
        *,
        headers=None,
        path="/usage",
    ):
        self.env.flush_all()
        sent = {"Content-Type": content_type} if content_type else {}
        if key is not False:
            sent["Authorization"] = f"Bearer {key or self.key}"
        sent.update(headers or {})
        data = body if isinstance(body, (bytes, str, Iterator)) else json.dumps(body)
        response = self.url_open(path, data=data, headers=sent, method=method)
        self.env.invalidate_all()
        return response

    def stored(self, **domain):
        """Events of the test services (the demo data has its own)."""
        return (
            self.env["fusion.billing.usage.event"]
            .sudo()
            .search(
                [
                    ("service_id", "in", (self.service | self.service_b).ids),
                    *((name, "=", value) for name, value in domain.items()),
                ]
            )
        )

    def assertJsonAnswer(self, response, status):
        self.assertEqual(response.status_code, status, response.text)
        self.assertTrue(
            response.headers["Content-Type"].startswith(JSON),
            response.headers["Content-Type"],
        )
        return response.json()

    def assertError(self, response, status, code):
        body = self.assertJsonAnswer(response, status)
        self.assertEqual(body["status"], "error")
        self.assertEqual(body["error"]["code"], code, body)
        self.assertTrue(body["error"]["message"])
        return body

    def assertRejected(self, event, code):
        """A batch of one refused event: 400 all_rejected, nothing stored."""
        count = len(self.stored())
        body = self.assertError(self.post(event), 400, usage.ALL_REJECTED)
        self.assertEqual(body["rejected"], 1)
        self.assertEqual(body["results"][0]["status"], usage.REJECTED)
        self.assertEqual(body["results"][0]["error"]["code"], code, body)
        self.assertEqual(len(self.stored()), count)
        return body["results"][0]


@tagged("post_install", "-at_install")
class TestUsageApi(UsageApiCase):
    # --- accepted events --------------------------------------------------------------

    def test_a_key_records_when_it_was_last_used_at_most_once_an_hour(self):
        """The service's key list shows when each key was last used; the date
        is written at most once an hour, and a process remembers it has
        written it, so most requests do not even query for it."""
        noted = self.enterContext(patch.dict(service_model._key_use_noted, clear=True))
        key = (
            self.env["res.users.apikeys"]
            .sudo()
            .search([("user_id", "=", self.service.user_id.id)])
        )
        self.assertEqual(len(key), 1)
        self.assertFalse(key.fusion_last_used)
        self.assertJsonAnswer(self.post({"events": [self.event("evt-a")]}), 200)
        first = key.fusion_last_used
        self.assertAlmostEqual(first, fields.Datetime.now(), delta=timedelta(minutes=1))

        def last_used_set_to(moment):
            self.env.cr.execute(
                "UPDATE res_users_apikeys SET fusion_last_used = %s WHERE id = %s",
                (moment, key.id),
            )
            key.invalidate_recordset()

        # Within the hour, in another process: the row is left alone.
        half_an_hour_ago = first - timedelta(minutes=30)
        last_used_set_to(half_an_hour_ago)
        noted.clear()
        self.assertJsonAnswer(self.post({"events": [self.event("evt-b")]}), 200)
        self.assertEqual(key.fusion_last_used, half_an_hour_ago)
        # An hour old, but this process recorded the key within the hour.
        two_hours_ago = first - timedelta(hours=2)
        last_used_set_to(two_hours_ago)
        with self.assertQueryCount(0):
            self.env["fusion.billing.service"]._note_key_use(key.id)
        self.assertJsonAnswer(self.post({"events": [self.event("evt-c")]}), 200)
        self.assertEqual(key.fusion_last_used, two_hours_ago)
        # An hour later in this process: recorded again.
        noted.clear()
        self.assertJsonAnswer(self.post({"events": [self.event("evt-d")]}), 200)
        self.assertGreater(key.fusion_last_used, two_hours_ago)

    def test_single_event_is_stored_exactly(self):
        body = self.assertJsonAnswer(
            self.post(
                self.event(
                    quantity=12.5,
                    timestamp="2026-03-01T10:30:00.123456+02:00",
                    properties={"region": "eu", "user_id": "u1"},
                )
            ),
            200,
        )
        self.assertEqual(
            body,
            {
                "status": "ok",
                "accepted": 1,
                "duplicates": 0,
                "conflicts": 0,
                "rejected": 0,
                "results": [{"idempotency_key": "evt-1", "status": "accepted"}],
            },
        )
        event = self.stored(idempotency_key="evt-1")
        self.assertEqual(event.subscription_id, self.subscription_a)
        self.assertEqual(event.metric_id, self.metric_calls)
        self.assertEqual(event.service_id, self.service)
        self.assertEqual(event.company_id, self.service.company_id)
        self.assertEqual(event.create_uid, self.service.user_id)
        self.assertEqual(event.properties, {"region": "eu", "user_id": "u1"})
        self.env.cr.execute(
            "SELECT quantity, timestamp FROM fusion_billing_usage_event WHERE id = %s",
            [event.id],
        )
        quantity, timestamp = self.env.cr.fetchone()
        self.assertEqual(quantity, Decimal("12.5"))
        self.assertEqual(timestamp, datetime(2026, 3, 1, 8, 30, 0, 123456))

    def test_quantity_defaults_to_one(self):
        self.assertJsonAnswer(self.post(self.event(quantity=None)), 200)
        self.assertEqual(self.stored(idempotency_key="evt-1").quantity, 1)

    def test_batch_answers_each_event_in_request_order(self):
        events = [
            self.event("a-1"),
            self.event("a-2", metric="nope"),
            self.event("a-3", quantity=-1),
            self.event("a-4", subscription="sub_b", customer="cus_b"),
        ]
        body = self.assertJsonAnswer(self.post({"events": events}), 200)
        self.assertEqual(
            [(r["idempotency_key"], r["status"]) for r in body["results"]],
            [
                ("a-1", "accepted"),
                ("a-2", "rejected"),
                ("a-3", "rejected"),
                ("a-4", "accepted"),
            ],
        )
        self.assertEqual(
            [r.get("error", {}).get("code") for r in body["results"]],
            [None, usage.UNKNOWN_METRIC, usage.INVALID_EVENT, None],
        )
        self.assertEqual((body["accepted"], body["rejected"]), (2, 2))
        self.assertEqual(len(self.stored(service_id=self.service.id)), 2)

    def test_batch_of_1000_events(self):
        events = [self.event(f"bulk-{n}", quantity=n) for n in range(usage.MAX_EVENTS)]
        body = self.assertJsonAnswer(self.post({"events": events}), 200)
        self.assertEqual(body["accepted"], usage.MAX_EVENTS)
        self.assertEqual(len(self.stored()), usage.MAX_EVENTS)
        self.env.cr.execute(
            "SELECT SUM(quantity) FROM fusion_billing_usage_event"
            " WHERE service_id = %s",
            [self.service.id],
        )
        self.assertEqual(self.env.cr.fetchone()[0], sum(range(usage.MAX_EVENTS)))

    def test_unicode_key_is_accepted_and_echoed(self):
        key = "ключ-✓-🙂\u200d"
        body = self.assertJsonAnswer(self.post(self.event(key)), 200)
        self.assertEqual(body["results"][0]["idempotency_key"], key)
        self.assertTrue(self.stored(idempotency_key=key))

    def test_chunked_body_is_read(self):
        payload = json.dumps(self.event()).encode()
        response = self.post(iter([payload[:20], payload[20:]]))  # chunked
        self.assertJsonAnswer(response, 200)
        self.assertTrue(self.stored(idempotency_key="evt-1"))

    def test_odoo_request_still_wraps_the_werkzeug_request(self):
        """read_chunked takes a chunked body's stream from the werkzeug request
        that Odoo's HTTPRequest wraps in a private attribute (Odoo 19 exposes no
        stream): if Odoo changes that, this test names the one place to fix."""
        environ = EnvironBuilder(method="POST", data=b'{"n": 1}').get_environ()
        httprequest = odoo_http.HTTPRequest(environ)
        self.assertTrue(
            hasattr(httprequest, "_HTTPRequest__wrapped"),
            "odoo.http.HTTPRequest no longer wraps a werkzeug request under "
            "__wrapped: update controllers/usage.py read_chunked",
        )
        self.assertEqual(httprequest._HTTPRequest__wrapped.stream.read(), b'{"n": 1}')

    def test_ingestion_costs_a_constant_number_of_queries(self):
        events = self.env["fusion.billing.usage.event"].with_user(self.service.user_id)

        def queries(count, prefix):
            items = [self.event(f"{prefix}-{n}") for n in range(count)]
            items[-1]["metric"] = "nope"  # rejections cost nothing either
            before = self.env.cr.sql_log_count
            events.sudo()._ingest(self.service, items)
            return self.env.cr.sql_log_count - before

        self.assertEqual(queries(2, "small"), queries(300, "large"))
        replay = [self.event(f"large-{n}") for n in range(299)]
        before = self.env.cr.sql_log_count
        results = events.sudo()._ingest(self.service, replay)
        self.assertLessEqual(self.env.cr.sql_log_count - before, 6)
        self.assertEqual({r["status"] for r in results}, {usage.DUPLICATE})

    # --- idempotency ------------------------------------------------------------------

    def test_replay_is_duplicate_and_stores_nothing(self):
        self.assertJsonAnswer(self.post(self.event()), 200)
        body = self.assertJsonAnswer(self.post(self.event()), 200)
        self.assertEqual(body["duplicates"], 1)
        self.assertEqual(body["results"][0]["status"], usage.DUPLICATE)
        self.assertEqual(len(self.stored(idempotency_key="evt-1")), 1)

    def test_replay_with_equal_values_written_differently_is_duplicate(self):
        self.assertJsonAnswer(
            self.post(self.event(quantity=2, timestamp="2026-03-01T10:00:00Z")), 200
        )
        body = self.assertJsonAnswer(
            self.post(self.event(quantity=2.0, timestamp="2026-03-01T11:00:00+01:00")),
            200,
        )
        self.assertEqual(body["results"][0]["status"], usage.DUPLICATE)

    def test_same_key_other_quantity_or_timestamp_is_conflict(self):
        self.assertJsonAnswer(self.post(self.event(quantity=5)), 200)
        for changed in (
            {"quantity": 6},
            {"timestamp": iso(self.now - timedelta(minutes=59))},
        ):
            body = self.assertError(
                self.post(self.event(**changed)), 400, usage.ALL_REJECTED
            )
            self.assertEqual(body["conflicts"], 1)
            result = body["results"][0]
            self.assertEqual(result["status"], usage.CONFLICT)
            self.assertEqual(result["error"]["code"], usage.CONFLICT)
        self.assertEqual(self.stored(idempotency_key="evt-1").quantity, 5)

    def test_idempotency_scope_is_subscription_and_metric(self):
        self._create_charge(self.plan, self.metric_storage, "standard", unit_price=1)
        events = [
            self.event("same"),
            self.event("same", metric="storage_gb"),
            self.event("same", subscription="sub_b", customer="cus_b"),
        ]
        body = self.assertJsonAnswer(self.post({"events": events}), 200)
        self.assertEqual(body["accepted"], 3)

    def test_key_repeated_inside_one_batch(self):
        events = [
            self.event("twice", quantity=1),
            self.event("twice", quantity=1),
            self.event("twice", quantity=2),
        ]
        body = self.assertJsonAnswer(self.post({"events": events}), 200)
        self.assertEqual(
            [r["status"] for r in body["results"]],
            [usage.ACCEPTED, usage.DUPLICATE, usage.CONFLICT],
        )
        self.assertEqual(len(self.stored(idempotency_key="twice")), 1)

    def test_concurrent_requests_store_each_event_once(self):
        """Two clients send the same batch at the same moment. (The test server
        runs requests one at a time on the test transaction; the race inside
        PostgreSQL is covered by TestConcurrentIngestion.)"""
        events = [self.event(f"race-{n}") for n in range(50)]
        payload = json.dumps({"events": events})
        self.env.flush_all()
        answers = []
        barrier = threading.Barrier(2)

        def send():
            barrier.wait()
            answers.append(
                requests.post(
                    f"{self.base_url()}/usage",
                    data=payload,
                    headers={
                        "Authorization": f"Bearer {self.key}",
                        "Content-Type": JSON,
                    },
                    timeout=30,
                )
            )

        threads = [threading.Thread(target=send) for _ in range(2)]
        with self.allow_requests(all_requests=True):
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        self.env.invalidate_all()
        bodies = [self.assertJsonAnswer(answer, 200) for answer in answers]
        self.assertEqual(
            sorted((b["accepted"], b["duplicates"]) for b in bodies), [(0, 50), (50, 0)]
        )
        self.assertEqual(len(self.stored(service_id=self.service.id)), 50)

    # --- per-event authorization ------------------------------------------------------

    def test_unknown_subscription(self):
        self.assertRejected(
            self.event(subscription="sub_zz"), usage.UNKNOWN_SUBSCRIPTION
        )

    def test_subscription_not_active(self):
        draft = self.env["fusion.billing.subscription"].create(
            {
                "service_id": self.service.id,
                "partner_id": self.partner_a.id,
                "plan_id": self.plan.id,
                "external_ref": "sub_draft",
                "start_date": date(2026, 1, 1),
            }
        )
        self.assertRejected(
            self.event(subscription="sub_draft"), usage.SUBSCRIPTION_NOT_ACTIVE
        )
        draft.action_close()  # never activated: closed at once
        self.assertEqual(draft.state, "closed")
        self.assertRejected(
            self.event(subscription="sub_draft"), usage.SUBSCRIPTION_NOT_ACTIVE
        )

    def test_unknown_customer(self):
        self.assertRejected(self.event(customer="cus_zz"), usage.UNKNOWN_CUSTOMER)

    def test_customer_mismatch(self):
        self.assertRejected(self.event(customer="cus_b"), usage.CUSTOMER_MISMATCH)

    def test_unknown_metric(self):
        self.assertRejected(self.event(metric="bandwidth"), usage.UNKNOWN_METRIC)

    def test_metric_not_on_plan(self):
        self.assertRejected(self.event(metric="storage_gb"), usage.METRIC_NOT_ON_PLAN)

    def test_timestamp_window_starts_at_open_period(self):
        self.subscription_a.write(
            {
                "last_invoice_date": date(2026, 2, 1),
                "next_invoice_date": date(2026, 3, 1),
            }
        )
        for timestamp in (
            "2026-01-31T23:59:59Z",
            "2026-02-01T00:30:00+01:00",  # 23:30 UTC the day before
            "2025-06-01T00:00:00Z",
        ):
            self.assertRejected(
                self.event(timestamp=timestamp), usage.TIMESTAMP_OUT_OF_WINDOW
            )
        for number, timestamp in enumerate(
            (
                "2026-02-01T00:00:00Z",  # the period start itself
                "2026-01-31T23:30:00-01:00",  # 00:30 UTC
                "2026-04-15T00:00:00Z",  # after next_invoice_date: kept
            )
        ):
            self.assertJsonAnswer(
                self.post(self.event(f"in-{number}", timestamp=timestamp)), 200
            )

    def test_timestamp_at_most_five_minutes_ahead(self):
        self.assertRejected(
            self.event(timestamp=iso(self.now + timedelta(minutes=10))),
            usage.TIMESTAMP_OUT_OF_WINDOW,
        )
        self.assertJsonAnswer(
            self.post(self.event(timestamp=iso(self.now + timedelta(minutes=3)))), 200
        )

    # --- isolation between services ---------------------------------------------------

    def test_key_only_reaches_its_own_service(self):
        # Service B has its own sub_a / cus_a / api_calls: B's key lands there.
        body = self.assertJsonAnswer(self.post(self.event(), key=self.key_b), 200)
        self.assertEqual(body["accepted"], 1)
        event = self.stored(idempotency_key="evt-1")
        self.assertEqual(event.subscription_id, self.subscription_b_a)
        self.assertEqual(event.service_id, self.service_b)
        self.assertFalse(self.stored(subscription_id=self.subscription_a.id))
        # A's subscription, customer and metric do not exist for B's key.
        for event, code in (
            (
                self.event("evt-2", subscription="sub_b", customer="cus_b"),
                "unknown_subscription",
            ),
            (self.event("evt-2", customer="cus_b"), "unknown_customer"),
            (self.event("evt-2", metric="storage_gb"), "unknown_metric"),
            (self.event("evt-2", customer="cus_only_b"), "customer_mismatch"),
        ):
            body = self.assertError(
                self.post(event, key=self.key_b), 400, usage.ALL_REJECTED
            )
            self.assertEqual(body["results"][0]["error"]["code"], code)
        self.assertEqual(len(self.stored(service_id=self.service.id)), 0)

    # --- authentication ---------------------------------------------------------------

    def test_unauthenticated_requests(self):
        user_key = (
            self.env["res.users.apikeys"]
            .with_user(self.billing_manager)
            .sudo()
            ._generate("rpc", "rpc key", None)
        )
        altered_key = self.key[:-1] + ("1" if self.key.endswith("0") else "0")
        for headers in (
            {},
            {"Authorization": "Bearer"},
            {"Authorization": f"Basic {self.key}"},
            {"Authorization": f"Bearer {self.key}x"},
            {"Authorization": f"Bearer {altered_key}"},  # same index, other hash
            {"Authorization": "Bearer " + "a" * 5000},
            {"Authorization": f"Bearer {user_key}"},  # a user's RPC key
        ):
            with self.subTest(headers=headers):
                response = self.post(self.event(), key=False, headers=headers)
                self.assertError(response, 401, usage.UNAUTHENTICATED)
                self.assertEqual(
                    response.headers["WWW-Authenticate"],
                    'Bearer realm="fusion_billing"',
                )
        self.assertFalse(self.stored())

    def test_revoked_key_is_refused_at_once(self):
        self.assertJsonAnswer(self.post(self.event("before")), 200)  # now cached
        keys = self.service.with_user(self.billing_manager).api_key_ids
        keys.with_user(self.billing_manager).action_fusion_billing_revoke()
        self.assertError(self.post(self.event("after")), 401, usage.UNAUTHENTICATED)

    def test_expired_key_is_refused(self):
        tomorrow = fields.Datetime.now() + timedelta(days=1)
        key = generate_key(self.env, self.service, self.billing_manager, tomorrow)
        self.assertJsonAnswer(self.post(self.event("before"), key=key), 200)
        self.env.cr.execute(
            "UPDATE res_users_apikeys SET expiration_date = %s WHERE user_id = %s"
            " AND expiration_date IS NOT NULL",
            [datetime(2020, 1, 1), self.service.user_id.id],
        )
        self.assertError(
            self.post(self.event("after"), key=key), 401, usage.UNAUTHENTICATED
        )
        self.assertJsonAnswer(self.post(self.event("other key")), 200)

    def test_archived_service_is_refused(self):
        self.service.action_archive()
        self.assertError(self.post(self.event()), 401, usage.UNAUTHENTICATED)

    def test_manager_manages_keys_user_cannot(self):
        service = self.service.with_user(self.billing_manager)
        self.assertEqual(service.api_key_ids.mapped("name"), ["tests"])
        self.assertEqual(service.api_key_count, 1)
        with self.assertRaises(AccessError):
            self.service.with_user(self.billing_user).api_key_ids  # noqa: B018
        with self.assertRaises(AccessError):
            service.api_key_ids.with_user(
                self.billing_user
            ).action_fusion_billing_revoke()
        with self.assertRaises(UserError):
            generate_key(
                self.env,
                self.service,
                self.billing_manager,
                fields.Datetime.now() - timedelta(days=1),
            )
        service.api_key_ids.action_fusion_billing_revoke()
        self.assertFalse(service.api_key_ids)
        self.env.invalidate_all()
        self.assertFalse(
            self.env["res.users.apikeys"]
            .sudo()
            .search([("user_id", "=", self.service.user_id.id)])
        )

    # --- envelope errors --------------------------------------------------------------

    def test_other_methods_answer_405_json(self):
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            with self.subTest(method=method):
                response = self.post(b"", method=method)
                self.assertError(response, 405, usage.METHOD_NOT_ALLOWED)
                self.assertEqual(response.headers["Allow"], "POST")

    def test_not_json_answers_415(self):
        for content_type in (
            None,
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=latin-1",
        ):
            with self.subTest(content_type=content_type):
                self.assertError(
                    self.post(json.dumps(self.event()), content_type=content_type),
                    415,
                    usage.UNSUPPORTED_MEDIA_TYPE,
                )
        self.assertError(
            self.post(self.event(), headers={"Content-Encoding": "gzip"}),
            415,
            usage.UNSUPPORTED_MEDIA_TYPE,
        )
        self.assertFalse(self.stored())

    def test_body_over_limit_answers_413_before_reading(self):
        address = urlsplit(self.base_url())
        self.env.flush_all()
        connection = http.client.HTTPConnection(address.hostname, address.port, 10)
        self.enterContext(self.allow_requests(all_requests=True))
        # Declares more than the limit, sends two bytes: the answer comes at once.
        connection.putrequest("POST", "/usage")
        connection.putheader("Authorization", f"Bearer {self.key}")
        connection.putheader("Content-Type", JSON)
        connection.putheader("Content-Length", str(usage.MAX_BODY_BYTES + 1))
        connection.endheaders(b"{}")
        response = connection.getresponse()
        self.assertEqual(response.status, 413)
        body = json.loads(response.read())
        self.assertEqual(body["error"]["code"], usage.PAYLOAD_TOO_LARGE)
        connection.close()

    def test_chunked_body_over_limit_answers_413(self):
        chunk = b" " * (1024 * 1024)
        response = self.post(chunk for _ in range(6))
        self.assertError(response, 413, usage.PAYLOAD_TOO_LARGE)

    def test_unexpected_failure_answers_json_500(self):
        model = type(self.env["fusion.billing.usage.event"])
        with (
            patch.object(model, "_ingest", side_effect=RuntimeError("boom")),
            mute_logger("odoo.http"),
        ):
            body = self.assertError(self.post(self.event()), 500, "internal_error")
        self.assertNotIn("boom", json.dumps(body))

    def test_malformed_bodies_answer_4xx_json_and_store_nothing(self):
        event = self.event()

        def with_event(**values):
            return json.dumps({**event, **values})

        def raw_event(quantity_text):
            return json.dumps(event).replace(
                '"quantity": 10', f'"quantity": {quantity_text}'
            )

        deep = "[" * 100000 + "]" * 100000
        cases = [
            ("not JSON", b"quantity=10", usage.INVALID_JSON),
            ("empty body", b"", usage.INVALID_JSON),
            ("truncated JSON", json.dumps(event)[:-5], usage.INVALID_JSON),
            ("invalid UTF-8", b'{"idempotency_key": "\xff\xfe"}', usage.INVALID_JSON),
            ("UTF-16", json.dumps(event).encode("utf-16"), usage.INVALID_JSON),
            ("NaN", raw_event("NaN"), usage.INVALID_JSON),
            ("Infinity", raw_event("Infinity"), usage.INVALID_JSON),
            ("-Infinity", raw_event("-Infinity"), usage.INVALID_JSON),
            ("5000-digit number", raw_event("9" * 5000), usage.INVALID_JSON),
            ("duplicate member", raw_event('1, "quantity": 2'), usage.INVALID_JSON),
            ("nesting too deep", deep, usage.INVALID_JSON),
            ("JSON array", json.dumps([event]), usage.INVALID_PAYLOAD),
            ("JSON string", json.dumps("event"), usage.INVALID_PAYLOAD),
            ("JSON number", b"42", usage.INVALID_PAYLOAD),
            ("JSON null", b"null", usage.INVALID_PAYLOAD),
            ("empty events", json.dumps({"events": []}), usage.INVALID_PAYLOAD),
            ("events object", json.dumps({"events": event}), usage.INVALID_PAYLOAD),
            (
                "member next to events",
                json.dumps({"events": [event], "dry_run": True}),
                usage.INVALID_PAYLOAD,
            ),
            (
                "1001 events",
                json.dumps({"events": [event] * (usage.MAX_EVENTS + 1)}),
                usage.TOO_MANY_EVENTS,
            ),
            ("huge number", raw_event("1e400"), usage.INVALID_EVENT),
            ("quantity over 1e15", with_event(quantity=10**16), usage.INVALID_EVENT),
            ("negative quantity", with_event(quantity=-1), usage.INVALID_EVENT),
            ("tiny negative", with_event(quantity=-1e-300), usage.INVALID_EVENT),
            ("quantity string", with_event(quantity="10"), usage.INVALID_EVENT),
            ("quantity null", with_event(quantity=None), usage.INVALID_EVENT),
            ("quantity boolean", with_event(quantity=True), usage.INVALID_EVENT),
            (
                "missing timestamp",
                json.dumps({k: v for k, v in event.items() if k != "timestamp"}),
                usage.INVALID_EVENT,
            ),
            (
                "timestamp without offset",
                with_event(timestamp="2026-03-01T10:00:00"),
                usage.INVALID_EVENT,
            ),
            (
                "timestamp as date",
                with_event(timestamp="2026-03-01"),
                usage.INVALID_EVENT,
            ),
            (
                "timestamp Feb 30",
                with_event(timestamp="2026-02-30T10:00:00Z"),
                usage.INVALID_EVENT,
            ),
            ("epoch timestamp", with_event(timestamp=1772359200), usage.INVALID_EVENT),
            ("empty key", with_event(idempotency_key=""), usage.INVALID_EVENT),
            (
                "256-character key",
                with_event(idempotency_key="k" * 256),
                usage.INVALID_EVENT,
            ),
            (
                "key with newline",
                with_event(idempotency_key="a\nb"),
                usage.INVALID_EVENT,
            ),
            (
                "key with NUL",
                with_event(idempotency_key="a\u0000b"),
                usage.INVALID_EVENT,
            ),
            (
                "key lone surrogate",
                with_event(idempotency_key="\ud800"),
                usage.INVALID_EVENT,
            ),
            ("key as number", with_event(idempotency_key=7), usage.INVALID_EVENT),
            (
                "over-long subscription",
                with_event(subscription="s" * 300),
                usage.INVALID_EVENT,
            ),
            (
                "missing subscription",
                json.dumps({k: v for k, v in event.items() if k != "subscription"}),
                usage.INVALID_EVENT,
            ),
            ("misspelt member", with_event(quantiy=5), usage.INVALID_EVENT),
            ("properties array", with_event(properties=[1, 2]), usage.INVALID_EVENT),
            (
                "properties with NUL",
                with_event(properties={"a": "\u0000"}),
                usage.INVALID_EVENT,
            ),
            (
                "nested garbage",
                json.dumps({"events": [[[{}]], None, "x"]}),
                usage.INVALID_EVENT,
            ),
        ]
        self.assertGreaterEqual(len(cases), 30)
        for name, body, code in cases:
            with self.subTest(name):
                response = self.post(body)
                self.assertLess(response.status_code, 500, response.text)
                self.assertGreaterEqual(response.status_code, 400, response.text)
                answer = self.assertJsonAnswer(response, response.status_code)
                self.assertEqual(answer["status"], "error")
                if code == usage.INVALID_EVENT:
                    self.assertEqual(answer["error"]["code"], usage.ALL_REJECTED)
                    self.assertEqual(
                        {r["error"]["code"] for r in answer["results"]}, {code}
                    )
                else:
                    self.assertEqual(answer["error"]["code"], code)
        self.assertFalse(self.stored())

    # --- OpenAPI ----------------------------------------------------------------------

    def test_openapi_document_is_served(self):
        response = self.url_open("/usage/openapi.json")
        document = self.assertJsonAnswer(response, 200)
        self.assertTrue(document["openapi"].startswith("3."))
        self.assertIn("post", document["paths"]["/usage"])
        self.assertIn("post", document["paths"]["/reconciliation"])
        self.assertEqual(
            document["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer"
        )
        self.assertEqual(document["servers"], [{"url": "/"}])
        self.assertEqual(
            document["components"]["schemas"]["UsageEvent"], usage.EVENT_SCHEMA
        )
        response = self.url_open("/usage/openapi.json", data=b"{}", method="POST")
        self.assertError(response, 405, usage.METHOD_NOT_ALLOWED)

    def test_openapi_document_ignores_a_forged_host(self):
        """The document is cached publicly: a Host header must not get into it."""
        plain = self.url_open("/usage/openapi.json")
        forged = self.url_open(
            "/usage/openapi.json", headers={"Host": "attacker.example"}
        )
        self.assertEqual(forged.status_code, 200)
        self.assertEqual(forged.content, plain.content)
        self.assertNotIn(b"attacker.example", forged.content)
        self.assertEqual(forged.json()["servers"], [{"url": "/"}])


@tagged("post_install", "-at_install")
class TestConcurrentIngestion(CommittedServiceCase):
    """Two real PostgreSQL transactions store the same events at the same time."""

    def test_concurrent_replay_ends_as_duplicate_or_conflict(self):
        timestamp = datetime.now(timezone.utc) - timedelta(hours=1)

        def event(key, quantity):
            return self._api_event(key, quantity, timestamp)

        outcome = {}
        with (
            closing(self.database.cursor()) as first,
            closing(self.database.cursor()) as second,
        ):
            # The first request has stored its events but not committed yet.
            first_results = self._ingest(first, [event("k1", 1), event("k2", 2)])

            def replay():
                env = api.Environment(second, self.user_id, {}, su=True)
                try:
                    outcome["results"] = retrying(
                        lambda: self._ingest(
                            second, [event("k1", 1), event("k2", 3), event("k3", 1)]
                        ),
                        env,
                    )
                except Exception as error:  # reported by the assertion below
                    outcome["error"] = error

            thread = threading.Thread(target=replay)
            # The replay's first try fails on purpose (logged by odoo.sql_db).
            self.enterContext(mute_logger("odoo.sql_db"))
            thread.start()
            thread.join(1)
            self.assertTrue(thread.is_alive(), "the replay waits for the first")
            first.commit()
            thread.join(30)
            self.assertFalse(thread.is_alive())
        self.assertNotIn("error", outcome)
        self.assertEqual([r["status"] for r in first_results], ["accepted"] * 2)
        self.assertEqual(
            [r["status"] for r in outcome["results"]],
            [usage.DUPLICATE, usage.CONFLICT, usage.ACCEPTED],
        )
        with closing(self.database.cursor()) as cr:
            cr.execute(
                "SELECT idempotency_key, quantity FROM fusion_billing_usage_event"
                " WHERE service_id = %s ORDER BY idempotency_key",
                [self.service_id],
            )
            self.assertEqual(cr.fetchall(), [("k1", 1), ("k2", 2), ("k3", 1)])

    def _cancel(self, cr, keys):
        env = api.Environment(cr, self.user_id, {}, su=True)
        service = env["fusion.billing.service"].browse(self.service_id)
        return env["fusion.billing.usage.event"]._cancel(
            service,
            [
                {"idempotency_key": key, "subscription": "s", "metric": "api_calls"}
                for key in keys
            ],
        )

    def _store_committed(self, *keys):
        timestamp = iso(datetime.now(timezone.utc) - timedelta(hours=1))
        with closing(self.database.cursor()) as cr:
            results = self._ingest(
                cr,
                [
                    {
                        "idempotency_key": key,
                        "subscription": "s",
                        "customer": "c",
                        "metric": "api_calls",
                        "timestamp": timestamp,
                    }
                    for key in keys
                ],
            )
            cr.commit()  # pylint: disable=invalid-commit
        self.assertEqual({r["status"] for r in results}, {usage.ACCEPTED})

    def _claim_subscription(self, cr):
        """Lock the subscription as the rating cron claims it."""
        cr.execute(
            "SELECT id FROM fusion_billing_subscription WHERE service_id = %s"
            " FOR UPDATE SKIP LOCKED",
            [self.service_id],
        )
        return cr.fetchall()

    def test_the_rating_claim_skips_a_subscription_being_cancelled(self):
        self._store_committed("k1")
        with (
            closing(self.database.cursor()) as first,
            closing(self.database.cursor()) as second,
        ):
            results = self._cancel(first, ["k1"])
            self.assertEqual(results[0]["status"], usage.CANCELLED)
            self.assertEqual(self._claim_subscription(second), [], "skipped")
            first.commit()
            self.assertEqual(len(self._claim_subscription(second)), 1)
        with closing(self.database.cursor()) as cr:
            cr.execute(
                "SELECT cancelled FROM fusion_billing_usage_event"
                " WHERE service_id = %s",
                [self.service_id],
            )
            self.assertEqual(cr.fetchall(), [(True,)])

    def test_a_cancellation_racing_a_close_is_retried_on_the_closed_period(self):
        """The close locked the subscription after the cancellation's snapshot:
        the cancellation waits, fails to serialize, and its retry finds the
        period closed. Cancelling from the stale snapshot would cancel an event
        the close has just billed."""
        self._store_committed("k1")
        outcome = {}
        with (
            closing(self.database.cursor()) as first,
            closing(self.database.cursor()) as second,
        ):
            first.execute("SELECT 1")  # the request's snapshot
            self.assertTrue(self._claim_subscription(second))
            tomorrow = datetime.now(timezone.utc).date() + timedelta(days=1)
            second.execute(
                "UPDATE fusion_billing_subscription SET last_invoice_date = %s,"
                " next_invoice_date = %s WHERE service_id = %s",
                [tomorrow, tomorrow + timedelta(days=30), self.service_id],
            )

            def cancel():
                env = api.Environment(first, self.user_id, {}, su=True)
                try:
                    outcome["results"] = retrying(
                        lambda: self._cancel(first, ["k1"]), env
                    )
                    first.commit()
                except Exception as error:  # reported by the assertion below
                    outcome["error"] = error

            thread = threading.Thread(target=cancel)
            self.enterContext(mute_logger("odoo.sql_db"))
            thread.start()
            thread.join(1)
            self.assertTrue(thread.is_alive(), "the cancellation waits for the close")
            second.commit()
            thread.join(30)
            self.assertFalse(thread.is_alive())
        self.assertNotIn("error", outcome)
        self.assertEqual(outcome["results"][0]["error"]["code"], usage.PERIOD_CLOSED)
        with closing(self.database.cursor()) as cr:
            cr.execute(
                "SELECT cancelled FROM fusion_billing_usage_event"
                " WHERE service_id = %s",
                [self.service_id],
            )
            self.assertEqual(cr.fetchall(), [(False,)])
