# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Webhook outbox and delivery cron against a real HTTPS receiver on 127.0.0.1.

The receiver's certificate comes from a test CA (``trustme``) for a made-up host
name. Two seams of the webhook model make that host resolve to 127.0.0.1 and make
TLS trust the test CA; the host is opened by the allow-list system parameter, as an
admin would for a private deployment. Everything else is the production code path.
"""

import base64
import collections
import hashlib
import hmac
import http.server
import json
import ssl
import threading
import time
from datetime import timedelta
from unittest import SkipTest
from unittest.mock import patch

from psycopg2.errors import SerializationFailure

from odoo import SUPERUSER_ID, Command, api, fields
from odoo.exceptions import AccessError, ValidationError
from odoo.modules.registry import DummyRLock, Registry
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import mute_logger

from ..core import signing
from ..models import fusion_billing_webhook_event as webhook_event_module
from ..models.fusion_billing_service import ALLOWED_HOSTS_PARAM
from .common import FusionBillingCase

try:
    import trustme
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError
except ImportError:
    trustme = None

HOST = "hooks.fusion.test"


class WorkerKilled(BaseException):
    """Stands for a cron worker process that dies in the middle of its work
    (nothing of the worker runs after it)."""


PUBLIC_ADDRESS = "93.184.215.14"


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Records each delivery, then answers with the server's current status,
    after the server's current delay."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server = self.server
        server.received.append((dict(self.headers), body))
        if server.delay:
            server.release.wait(server.delay)
        if server.trickle:
            # One byte of the answer at a time, each well within a read timeout.
            answer = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
            for byte in answer:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                if server.release.wait(server.trickle):
                    return
            return
        self.send_response(server.status)
        if server.answer:
            # As many web frameworks answer: a body, and the connection closed.
            self.send_header("Content-Length", str(len(server.answer)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(server.answer)
            return
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class ReceiverMixin:
    """Starts the HTTPS receiver and points the delivery seams at it."""

    @classmethod
    def setUpClass(cls):
        if trustme is None:
            raise SkipTest(
                "webhook delivery tests need the trustme and standardwebhooks "
                "packages (pip install trustme standardwebhooks)"
            )
        super().setUpClass()
        ca = trustme.CA()
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(HOST).configure_cert(server_context)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        httpd.daemon_threads = True
        # Handshake in the handler thread, so a client that gives up cannot stall
        # accept(); errors of such clients are expected, not worth a traceback.
        httpd.socket = server_context.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        httpd.handle_error = lambda request, client_address: None
        httpd.received = []
        httpd.status = 204
        httpd.delay = 0
        httpd.trickle = 0
        httpd.answer = b""
        httpd.release = threading.Event()
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        cls.addClassCleanup(httpd.server_close)
        cls.addClassCleanup(httpd.shutdown)
        cls.addClassCleanup(httpd.release.set)
        cls.httpd = httpd
        cls.url = f"https://{HOST}:{httpd.server_address[1]}/hook"

        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        cls.dns = {HOST: ["127.0.0.1"]}
        event_model = cls.registry["fusion.billing.webhook.event"]
        cls.startClassPatcher(
            patch.object(
                event_model,
                "_webhook_resolver",
                lambda self: lambda host, port: cls.dns.get(host, []),
            )
        )
        cls.startClassPatcher(
            patch.object(
                event_model, "_webhook_ssl_context", lambda self: client_context
            )
        )

    def setUp(self):
        super().setUp()
        self.httpd.received.clear()
        self.httpd.status = 204
        self.httpd.delay = 0
        self.httpd.trickle = 0
        self.httpd.answer = b""
        self.httpd.release.clear()
        # Unblocks a receiver still holding back an answer when the test ends.
        self.addCleanup(self.httpd.release.set)

    def _received(self, event_id):
        """(headers, body) of each request the receiver got for ``event_id``."""
        return [
            (headers, body)
            for headers, body in self.httpd.received
            if headers.get("X-Fusion-Event-Id") == event_id
        ]


@tagged("post_install", "-at_install")
class TestWebhookDelivery(ReceiverMixin, FusionBillingCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].set_param(ALLOWED_HOSTS_PARAM, HOST)
        cls.service.webhook_url = cls.url
        cls.Event = cls.env["fusion.billing.webhook.event"]
        cls.cron = cls.env.ref("fusion_billing.ir_cron_deliver_webhooks")

    def _queue(self, data=None, event_type="invoice.created"):
        return self.Event._queue(self.service, event_type, data or {"invoice": 1})

    def _deliver(self):
        """One run of the delivery cron, in the test's transaction."""
        self.Event._cron_deliver_webhooks()

    def _make_due(self, event):
        """Stand-in for waiting until the next attempt is due."""
        event.next_attempt_at = fields.Datetime.now()

    def _assert_due_in(self, event, delay, before, after):
        self.assertGreaterEqual(event.next_attempt_at, before + delay)
        self.assertLessEqual(event.next_attempt_at, after + delay)

    def test_2xx_marks_delivered(self):
        event = self._queue()
        self.httpd.status = 200
        self._deliver()
        self.assertRecordValues(
            event,
            [
                {
                    "state": "delivered",
                    "attempts": 1,
                    "last_status_code": 200,
                    "last_error": False,
                    "next_attempt_at": False,
                }
            ],
        )
        self.assertTrue(event.delivered_at)
        self.assertEqual(len(self._received(event.event_id)), 1)
        self._deliver()
        self.assertEqual(len(self._received(event.event_id)), 1, "sent only once")

    def test_2xx_that_closes_the_connection_marks_delivered(self):
        event = self._queue()
        self.httpd.status = 200
        self.httpd.answer = b'{"received": true}'
        self._deliver()
        self.assertRecordValues(
            event,
            [{"state": "delivered", "last_status_code": 200, "last_error": False}],
        )

    def test_events_wait_for_a_webhook_url(self):
        """Billing events of a service without URL are kept, not burnt through
        their attempts, and go out once the URL is set."""
        self.service.webhook_url = False
        event = self._queue()
        self._deliver()
        self.assertRecordValues(event, [{"state": "pending", "attempts": 0}])
        self.service.webhook_url = self.url
        self._deliver()
        self.assertRecordValues(event, [{"state": "delivered", "attempts": 1}])
        self.assertEqual(len(self._received(event.event_id)), 1)

    def test_real_cron_job_delivers(self):
        """The scheduled action itself, run as the scheduler would (its own cursor,
        progress reports and commits, all inside the test transaction)."""
        event = self._queue()
        with self.enter_registry_test_mode():
            self.cron.method_direct_trigger()
        self.assertEqual(event.state, "delivered")
        self.assertEqual(len(self._received(event.event_id)), 1)
        progress = self.env["ir.cron.progress"].search(
            [("cron_id", "=", self.cron.id)], order="id desc", limit=1
        )
        self.assertGreaterEqual(progress.done, 1)
        self.assertEqual(progress.remaining, 0, "the cron reports it is done")

    def test_receiver_gets_stored_bytes_and_valid_signatures(self):
        event = self._queue(
            {"customer": "Zoë Müller", "amount": "12.50", "lines": [2, 1]}
        )
        self._deliver()
        [(headers, body)] = self._received(event.event_id)
        self.assertEqual(body, event.body.encode("utf-8"))
        self.assertEqual(
            body, signing.canonical_json(json.loads(body)), "canonical JSON"
        )
        self.assertEqual(headers["X-Fusion-Event-Type"], "invoice.created")
        self.assertEqual(headers["webhook-id"], event.event_id)
        self.assertEqual(headers["webhook-timestamp"], headers["X-Fusion-Timestamp"])
        self.assertLess(abs(time.time() - int(headers["X-Fusion-Timestamp"])), 60)

        secret = self.service.sudo().webhook_secret
        payload = Webhook(secret).verify(body, headers)
        self.assertEqual(payload["data"]["customer"], "Zoë Müller")
        self.assertEqual(payload["id"], event.event_id)

        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = f"{headers['X-Fusion-Timestamp']}.".encode() + body
        expected = "v1=" + hmac.new(key, signed, hashlib.sha256).hexdigest()
        self.assertEqual(headers["X-Fusion-Signature"], expected)

    def test_5xx_retried_with_exponential_backoff(self):
        event = self._queue()
        self.httpd.status = 500
        before = fields.Datetime.now()
        self._deliver()
        after = fields.Datetime.now()
        self.assertRecordValues(
            event, [{"state": "pending", "attempts": 1, "last_status_code": 500}]
        )
        self.assertIn("HTTP 500", event.last_error)
        self._assert_due_in(event, timedelta(seconds=120), before, after)

        self._deliver()
        self.assertEqual(len(self._received(event.event_id)), 1, "not due yet")

        self._make_due(event)
        before = fields.Datetime.now()
        self._deliver()
        after = fields.Datetime.now()
        self.assertEqual(event.attempts, 2)
        self._assert_due_in(event, timedelta(seconds=240), before, after)
        [first, second] = self._received(event.event_id)
        self.assertEqual(first[1], second[1], "same body bytes on every attempt")

    def test_timeout_retried(self):
        event = self._queue()
        self.httpd.delay = 5
        before = fields.Datetime.now()
        with patch.object(webhook_event_module, "DELIVERY_DEADLINE", 0.5):
            self._deliver()
        after = fields.Datetime.now()
        self.assertRecordValues(
            event,
            [
                {
                    "state": "pending",
                    "attempts": 1,
                    "last_status_code": 0,
                    "last_error": "timeout",
                }
            ],
        )
        self._assert_due_in(event, timedelta(seconds=120), before, after)

    def test_trickling_receiver_is_cut_at_the_deadline(self):
        """A receiver that sends its answer a byte every 0.2 s, each byte well
        within any read timeout, is cut at the attempt's deadline."""
        event = self._queue()
        self.httpd.trickle = 0.2
        started = time.monotonic()
        with patch.object(webhook_event_module, "DELIVERY_DEADLINE", 1):
            self._deliver()
        elapsed = time.monotonic() - started
        self.assertRecordValues(
            event, [{"state": "pending", "attempts": 1, "last_error": "timeout"}]
        )
        self.assertLess(elapsed, 2, "the answer alone would take 9 s")
        self.assertEqual(len(self._received(event.event_id)), 1)

    def test_an_error_in_one_delivery_spares_the_others(self):
        broken, sound = self._queue({"n": 1}), self._queue({"n": 2})
        event_model = self.registry["fusion.billing.webhook.event"]
        send = event_model._send

        def send_unless_broken(event):
            if event == broken:
                raise RuntimeError("a bug in one delivery")
            return send(event)

        with (
            patch.object(event_model, "_send", send_unless_broken),
            mute_logger(webhook_event_module.__name__),
        ):
            self._deliver()
        self.assertRecordValues(
            broken + sound,
            [
                {"state": "pending", "attempts": 1},
                {"state": "delivered", "attempts": 1},
            ],
        )
        self.assertIn("internal error", broken.last_error)
        self.assertFalse(self._received(broken.event_id))

    def test_failed_after_max_attempts_then_manual_retry(self):
        self.service.webhook_max_attempts = 3
        event = self._queue()
        self.httpd.status = 503
        for attempt in (1, 2, 3):
            self._make_due(event)
            self._deliver()
            self.assertEqual(event.attempts, attempt)
        self.assertRecordValues(
            event,
            [{"state": "failed", "next_attempt_at": False, "last_status_code": 503}],
        )
        self._deliver()
        received = self._received(event.event_id)
        self.assertEqual(len(received), 3, "a failed delivery is not sent again")
        self.assertEqual(
            {headers["X-Fusion-Event-Id"] for headers, _body in received},
            {event.event_id},
            "the event id is stable across retries",
        )

        self.httpd.status = 204
        event.with_user(self.billing_manager).action_retry()
        self.assertEqual(event.state, "pending")
        self._deliver()
        self.assertRecordValues(event, [{"state": "delivered", "attempts": 4}])

    def test_retry_leaves_delivered_events_alone(self):
        event = self._queue()
        self._deliver()
        event.action_retry()
        self._deliver()
        self.assertEqual(event.state, "delivered")
        self.assertEqual(len(self._received(event.event_id)), 1)

    def test_expired_lease_is_taken_back_as_a_failed_attempt(self):
        event = self._queue()
        # A worker claims the event, commits "sending", and is killed before the
        # receiver answers.
        before = fields.Datetime.now()
        self.assertEqual(self.Event._claim_due(), event)
        after = fields.Datetime.now()
        self.assertRecordValues(event, [{"state": "sending", "attempts": 1}])
        self._assert_due_in(event, webhook_event_module.LEASE, before, after)

        self._deliver()
        self.assertEqual(event.state, "sending", "the lease still runs")
        self.assertFalse(self._received(event.event_id))

        event.next_attempt_at = fields.Datetime.now() - timedelta(seconds=1)
        before = fields.Datetime.now()
        self._deliver()
        after = fields.Datetime.now()
        self.assertRecordValues(event, [{"state": "pending", "attempts": 1}])
        self.assertIn("interrupted", event.last_error)
        self._assert_due_in(event, timedelta(seconds=120), before, after)

        self._make_due(event)
        self._deliver()
        self.assertRecordValues(event, [{"state": "delivered", "attempts": 2}])

    def test_expired_lease_on_last_attempt_fails(self):
        self.service.webhook_max_attempts = 1
        event = self._queue()
        self.Event._claim_due()
        event.next_attempt_at = fields.Datetime.now() - timedelta(seconds=1)
        self._deliver()
        self.assertRecordValues(event, [{"state": "failed", "attempts": 1}])
        self.assertFalse(self._received(event.event_id))

    def test_rotation_signs_with_both_secrets_during_grace(self):
        service = self.service.sudo()
        old_secret = service.webhook_secret
        self.service.action_rotate_webhook_secret()
        new_secret = service.webhook_secret
        self.assertNotEqual(new_secret, old_secret)

        event = self._queue()
        self._deliver()
        [(headers, body)] = self._received(event.event_id)
        self.assertEqual(len(headers["webhook-signature"].split(" ")), 2)
        fusion_signatures = headers["X-Fusion-Signature"].split(",")
        self.assertEqual(len(fusion_signatures), 2)
        signed = f"{headers['X-Fusion-Timestamp']}.".encode() + body
        for secret in (old_secret, new_secret):
            Webhook(secret).verify(body, headers)
            key = base64.b64decode(secret.removeprefix("whsec_"))
            digest = hmac.new(key, signed, hashlib.sha256).hexdigest()
            self.assertIn(f"v1={digest}", fusion_signatures)

        service.webhook_previous_secret_expiry = fields.Datetime.now() - timedelta(
            seconds=1
        )
        later = self._queue()
        self._deliver()
        [(headers, body)] = self._received(later.event_id)
        Webhook(new_secret).verify(body, headers)
        with self.assertRaises(WebhookVerificationError):
            Webhook(old_secret).verify(body, headers)

    def test_unsafe_url_refused_on_save(self):
        cases = {
            "https://10.1.2.3/hook": "private address 10.1.2.3",
            "https://[::ffff:127.0.0.1]/hook": "loopback",
            "https://0x7f.1/hook": "loopback",
            f"http://{HOST}/hook": "must use https",
            f"https://user:pw@{HOST}/hook": "user name or password",
            "https://nowhere.fusion.test/hook": "does not resolve",
        }
        for url, reason in cases.items():
            with self.subTest(url=url), self.assertRaises(ValidationError) as caught:
                self.service.webhook_url = url
            self.assertIn("Webhook URL refused", str(caught.exception))
            self.assertIn(reason, str(caught.exception))

    def test_allow_list_lifts_only_the_address_rule(self):
        self.env["ir.config_parameter"].set_param(ALLOWED_HOSTS_PARAM, "")
        with self.assertRaisesRegex(ValidationError, "loopback address 127.0.0.1"):
            self.service.webhook_url = f"https://{HOST}/other"
        self.env["ir.config_parameter"].set_param(
            ALLOWED_HOSTS_PARAM, f"other.test, {HOST.upper()}"
        )
        self.service.webhook_url = f"https://{HOST}/other"
        with self.assertRaisesRegex(ValidationError, "must use https"):
            self.service.webhook_url = f"http://{HOST}/other"

    def test_url_checked_again_at_send(self):
        """A host that resolved to a public address on save and to loopback at send
        (DNS rebinding) is not connected to."""
        self.env["ir.config_parameter"].set_param(ALLOWED_HOSTS_PARAM, "")
        self.patch(type(self), "dns", {HOST: [PUBLIC_ADDRESS]})
        self.service.webhook_url = self.url
        event = self._queue()
        self.dns[HOST] = ["127.0.0.1"]
        self._deliver()
        self.assertRecordValues(event, [{"state": "pending", "attempts": 1}])
        self.assertIn("Webhook URL refused", event.last_error)
        self.assertIn("loopback address 127.0.0.1", event.last_error)
        self.assertFalse(self._received(event.event_id))

    def test_send_test_event_action(self):
        action = self.service.with_user(self.billing_manager).action_send_test_event()
        event = self.Event.browse(action["res_id"])
        self.assertRecordValues(
            event, [{"event_type": "service.test", "state": "pending"}]
        )
        self.assertTrue(
            self.env["ir.cron.trigger"].search([("cron_id", "=", self.cron.id)]),
            "the delivery cron is woken up",
        )
        self._deliver()
        self.assertEqual(event.state, "delivered")
        [(_headers, body)] = self._received(event.event_id)
        payload = json.loads(body)
        self.assertEqual(payload["type"], "service.test")
        self.assertEqual(payload["service"], self.service.code)

    def test_only_managers_of_the_service_send_test_events(self):
        other_company = self.env["res.company"].create({"name": "FB Other Co"})
        foreign_manager = new_test_user(
            self.env,
            login="fb_foreign_manager",
            groups="base.group_user,fusion_billing.group_fusion_billing_manager",
            company_id=other_company.id,
            company_ids=[Command.set(other_company.ids)],
        )
        for user in (self.billing_user, foreign_manager):
            with self.subTest(user=user.login), self.assertRaises(AccessError):
                self.service.with_user(user).action_send_test_event()
        self.assertFalse(
            self.Event.search(
                [
                    ("service_id", "=", self.service.id),
                    ("event_type", "=", "service.test"),
                ]
            )
        )

    def test_send_test_event_refused_url(self):
        self.env["ir.config_parameter"].set_param(ALLOWED_HOSTS_PARAM, "")
        with self.assertRaisesRegex(ValidationError, "Webhook URL refused"):
            self.service.action_send_test_event()


@tagged("post_install", "-at_install")
class TestWebhookConcurrency(ReceiverMixin, TransactionCase):
    """Two cron workers, each with its own database connection and transactions,
    run at the same time: every event is sent exactly once.

    The workers only see committed data, so this test commits a service, its events
    and the allow-list through a separate cursor, and deletes them afterwards. The
    workers commit for real (claim, then each delivery), as in production.
    """

    EVENTS = 20

    def _commit_service_with_events(self, count):
        """Commit a service with ``count`` queued events; deleted after the test."""
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["ir.config_parameter"].set_param(ALLOWED_HOSTS_PARAM, HOST)
            service = env["fusion.billing.service"].create(
                {"name": "Race", "code": "webhook-race", "webhook_url": self.url}
            )
            event_ids = [
                env["fusion.billing.webhook.event"]
                ._queue(service, "invoice.created", {"n": n})
                .event_id
                for n in range(count)
            ]
            service_id = service.id
        self.addCleanup(self._delete_committed, service_id)
        return service_id, event_ids

    def test_claim_lost_to_a_concurrent_worker_can_be_retried(self):
        """Odoo's transactions are REPEATABLE READ: a worker whose snapshot predates
        another worker's committed claim gets a serialization failure instead of
        claiming the same row; its transaction stays usable, and after a commit
        it claims the next row."""
        self._commit_service_with_events(2)
        with self.registry.cursor() as cr_late, self.registry.cursor() as cr_first:
            late = api.Environment(cr_late, SUPERUSER_ID, {})
            first = api.Environment(cr_first, SUPERUSER_ID, {})
            cr_late.execute("SELECT 1")  # the late worker's snapshot starts here
            first_claim = first["fusion.billing.webhook.event"]._claim_due()
            cr_first.commit()
            with self.assertRaises(SerializationFailure):
                late["fusion.billing.webhook.event"]._claim_due()
            cr_late.execute("SELECT 1")  # not an aborted transaction
            cr_late.commit()
            second_claim = late["fusion.billing.webhook.event"]._claim_due()
            self.assertEqual(len(first_claim), 1)
            self.assertEqual(len(second_claim), 1)
            self.assertNotEqual(first_claim.id, second_claim.id)
            cr_late.commit()

    def _committed_rows(self, service_id):
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT event_id, state, attempts FROM fusion_billing_webhook_event"
                " WHERE service_id = %s ORDER BY id",
                (service_id,),
            )
            return cr.fetchall()

    def _run_worker(self):
        with self.registry.cursor() as cr:
            api.Environment(cr, SUPERUSER_ID, {})[
                "fusion.billing.webhook.event"
            ]._cron_deliver_webhooks()

    def test_worker_killed_mid_run_costs_an_attempt_to_its_row_only(self):
        service_id, (first, second, third) = self._commit_service_with_events(3)
        event_model = self.registry["fusion.billing.webhook.event"]
        send = event_model._send
        calls = []

        def send_then_die(event):
            calls.append(event.event_id)
            if len(calls) == 2:
                raise WorkerKilled
            return send(event)

        with (
            patch.object(event_model, "_send", send_then_die),
            self.assertRaises(WorkerKilled),
        ):
            self._run_worker()
        # The first delivery and the claim of the second were committed before
        # the worker died; the third was never claimed.
        self.assertEqual(
            self._committed_rows(service_id),
            [(first, "delivered", 1), (second, "sending", 1), (third, "pending", 0)],
        )
        self._run_worker()
        self.assertEqual(
            self._committed_rows(service_id),
            [(first, "delivered", 1), (second, "sending", 1), (third, "delivered", 1)],
            "the dead worker's row is not sent again while its lease runs",
        )

        with self.registry.cursor() as cr:
            cr.execute(
                "UPDATE fusion_billing_webhook_event"
                " SET next_attempt_at = next_attempt_at - %s"
                " WHERE service_id = %s AND state = 'sending'",
                (webhook_event_module.LEASE, service_id),
            )
        self._run_worker()
        self.assertEqual(
            self._committed_rows(service_id)[1],
            (second, "pending", 1),
            "taken back as a failed attempt, retried on the backoff schedule",
        )
        self._make_all_due(service_id)
        self._run_worker()
        self.assertEqual(
            self._committed_rows(service_id),
            [
                (first, "delivered", 1),
                (second, "delivered", 2),
                (third, "delivered", 1),
            ],
        )
        received = collections.Counter(
            headers["X-Fusion-Event-Id"] for headers, _body in self.httpd.received
        )
        self.assertEqual(received, {first: 1, second: 1, third: 1})

    def test_outcome_of_a_lost_claim_is_not_recorded(self):
        """A worker whose lease ran out while the receiver held its answer does not
        overwrite what happened to the row meanwhile (taken back as failed)."""
        service_id, [event_id] = self._commit_service_with_events(1)
        self.httpd.delay = 30  # until released
        errors = []

        def slow_worker():
            try:
                self._run_worker()
            except Exception as error:  # reported by the assertion below
                errors.append(error)

        worker = threading.Thread(target=slow_worker)
        with (
            patch.object(Registry, "_lock", DummyRLock()),
            mute_logger(webhook_event_module.__name__),  # "outcome not recorded"
        ):
            worker.start()
            deadline = time.monotonic() + 10
            while not self._received(event_id) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(len(self._received(event_id)), 1)
            # The lease runs out while the receiver still holds its answer;
            # another worker takes the row back.
            with self.registry.cursor() as cr:
                cr.execute(
                    "UPDATE fusion_billing_webhook_event"
                    " SET next_attempt_at = now() at time zone 'utc'"
                    " - interval '1 second' WHERE service_id = %s",
                    (service_id,),
                )
            with self.registry.cursor() as cr:
                api.Environment(cr, SUPERUSER_ID, {})[
                    "fusion.billing.webhook.event"
                ]._take_back_expired_leases()
            self.httpd.release.set()  # the receiver answers 204, too late
            worker.join(timeout=30)
        self.assertFalse(worker.is_alive())
        self.assertFalse(errors)
        self.assertEqual(self._committed_rows(service_id), [(event_id, "pending", 1)])
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT last_error FROM fusion_billing_webhook_event"
                " WHERE service_id = %s",
                (service_id,),
            )
            self.assertIn("interrupted", cr.fetchone()[0])

    def _make_all_due(self, service_id):
        with self.registry.cursor() as cr:
            cr.execute(
                "UPDATE fusion_billing_webhook_event"
                " SET next_attempt_at = now() at time zone 'utc' - interval '1 second'"
                " WHERE service_id = %s AND state = 'pending'",
                (service_id,),
            )

    def test_two_workers_send_each_event_once(self):
        service_id, event_ids = self._commit_service_with_events(self.EVENTS)

        event_model = self.registry["fusion.billing.webhook.event"]
        send = event_model._send
        sent_by = collections.defaultdict(list)

        def recording_send(event):
            sent_by[threading.current_thread().name].append(event.event_id)
            return send(event)

        errors = []
        start = threading.Barrier(2)

        def worker():
            try:
                with self.registry.cursor() as cr:
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    start.wait(timeout=10)
                    env["fusion.billing.webhook.event"]._cron_deliver_webhooks()
            except Exception as error:  # reported by the assertion below
                errors.append(error)

        # A slow receiver makes the workers overlap for sure.
        self.httpd.delay = 0.05
        workers = [threading.Thread(target=worker, name=f"w{n}") for n in (1, 2)]
        with (
            patch.object(event_model, "_send", recording_send),
            # Tests run while the loading thread holds the registry lock; the
            # workers only look the loaded registry up (HttpCase does the same).
            patch.object(Registry, "_lock", DummyRLock()),
        ):
            for thread in workers:
                thread.start()
            for thread in workers:
                thread.join(timeout=60)
        self.assertFalse(errors)
        self.assertFalse(any(thread.is_alive() for thread in workers))

        received = collections.Counter(
            headers["X-Fusion-Event-Id"] for headers, _body in self.httpd.received
        )
        self.assertEqual(received, dict.fromkeys(event_ids, 1))
        self.assertEqual(set(sent_by), {"w1", "w2"}, "both workers delivered")
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT state, attempts, count(*) FROM fusion_billing_webhook_event"
                " WHERE service_id = %s GROUP BY state, attempts",
                (service_id,),
            )
            self.assertEqual(cr.fetchall(), [("delivered", 1, self.EVENTS)])

    def _delete_committed(self, service_id):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            service = env["fusion.billing.service"].browse(service_id)
            user = service.user_id
            partner = user.partner_id
            service.unlink()
            user.unlink()
            partner.unlink()
            env["ir.config_parameter"].set_param(ALLOWED_HOSTS_PARAM, False)
