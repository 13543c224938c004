# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

from odoo.exceptions import ValidationError
from odoo.tests import tagged

from ..core import usage
from .test_usage_api import UsageApiCase, iso


def utc_midnight(day):
    return datetime.combine(day, time(), timezone.utc)


@tagged("post_install", "-at_install")
class TestUsageLifecycle(UsageApiCase):
    """Ingestion at the edges of a period and of a subscription (SPEC §4, §11)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        today = cls.now.date()
        # The open period started 10 days ago; the one before is closed.
        cls.open_start = utc_midnight(today - timedelta(days=10))
        cls.closed_start = utc_midnight(today - timedelta(days=40))
        cls.in_closed = cls.open_start - timedelta(days=5)
        cls.in_open = cls.now - timedelta(hours=1)

    def close_period(self, subscription=None):
        """Move the subscription's open period on as the rating close does."""
        (subscription or self.subscription_a).write(
            {
                "last_invoice_date": self.open_start.date(),
                "next_invoice_date": self.open_start.date() + timedelta(days=30),
            }
        )

    def cancel(self, *items, key=None):
        events = [
            {"idempotency_key": k, "subscription": "sub_a", "metric": "api_calls", **v}
            for k, v in items
        ]
        return self.post({"events": events}, key=key, path="/usage/cancel")

    def raw_quantity(self, key, text, **values):
        """An event whose JSON body writes its quantity as ``text``."""
        return json.dumps(self.event(key, quantity=0, **values)).replace(
            '"quantity": 0', f'"quantity": {text}'
        )

    def stored_quantity(self, key):
        # As text: Odoo reads NUMERIC columns as floats.
        self.env.cr.execute(
            "SELECT quantity::text FROM fusion_billing_usage_event"
            " WHERE service_id = %s AND idempotency_key = %s",
            [self.service.id, key],
        )
        return Decimal(self.env.cr.fetchone()[0])

    # --- idempotency comes before the time window ---------------------------------

    def test_replay_after_the_period_closed_is_duplicate_or_conflict(self):
        event = self.event("late-retry", timestamp=iso(self.in_closed), quantity=0.1)
        self.assertJsonAnswer(self.post(event), 200)
        self.close_period()
        # A client retrying a timed-out request: its event was stored and billed.
        body = self.assertJsonAnswer(self.post(event), 200)
        self.assertEqual(body["results"][0]["status"], usage.DUPLICATE)
        # Written differently, the same decimal: still the same event.
        body = self.assertJsonAnswer(
            self.post(
                self.raw_quantity("late-retry", "0.10", timestamp=iso(self.in_closed))
            ),
            200,
        )
        self.assertEqual(body["duplicates"], 1)
        body = self.assertError(
            self.post({**event, "quantity": 0.2}), 400, usage.ALL_REJECTED
        )
        self.assertEqual(body["results"][0]["status"], usage.CONFLICT)
        # A new event of the closed period is refused under the reject policy.
        self.assertRejected(
            self.event("late-new", timestamp=iso(self.in_closed)),
            usage.TIMESTAMP_OUT_OF_WINDOW,
        )
        self.assertEqual(len(self.stored(idempotency_key="late-retry")), 1)

    def test_replay_to_a_closed_subscription_is_duplicate(self):
        event = self.event("before-close")
        self.assertJsonAnswer(self.post(event), 200)
        # Closed as Close and the rating cron close it: once its end has passed.
        self.subscription_a.action_close()
        end = utc_midnight(self.subscription_a.end_date)
        self.env["fusion.billing.rating"]._rate_subscriptions(
            self.subscription_a.ids, now=end + timedelta(days=1)
        )
        self.assertEqual(self.subscription_a.state, "closed")
        body = self.assertJsonAnswer(self.post(event), 200)
        self.assertEqual(body["duplicates"], 1)
        self.assertRejected(self.event("after-close"), usage.SUBSCRIPTION_NOT_ACTIVE)

    # --- the time window ------------------------------------------------------------

    def test_period_past_its_end_stays_open_until_it_closes(self):
        # The period ended yesterday; the cron has not closed it yet.
        self.subscription_a.write(
            {
                "last_invoice_date": self.closed_start.date(),
                "next_invoice_date": self.open_start.date(),
            }
        )
        for number, timestamp in enumerate(
            (self.closed_start, self.open_start - timedelta(microseconds=1))
        ):
            self.assertJsonAnswer(
                self.post(self.event(f"grace-{number}", timestamp=iso(timestamp))), 200
            )
        # Periods move only when they close: then the same instant is refused.
        self.close_period()
        self.assertRejected(
            self.event("grace-2", timestamp=iso(self.in_closed)),
            usage.TIMESTAMP_OUT_OF_WINDOW,
        )

    def test_events_at_or_after_the_end_date_are_refused(self):
        end = self.open_start + timedelta(days=10)  # today, 00:00 UTC
        self.subscription_a.end_date = end.date()
        body = self.assertRejected(
            self.event("at-end", timestamp=iso(end)), usage.TIMESTAMP_OUT_OF_WINDOW
        )
        self.assertIn("end", body["error"]["message"])
        self.assertRejected(
            self.event("after-end", timestamp=iso(self.now)),
            usage.TIMESTAMP_OUT_OF_WINDOW,
        )
        before = end - timedelta(microseconds=1)
        self.assertJsonAnswer(
            self.post(self.event("before-end", timestamp=iso(before))), 200
        )
        # A future end date leaves today's usage open.
        self.subscription_a.end_date = end.date() + timedelta(days=1)
        self.assertJsonAnswer(self.post(self.event("after-end")), 200)

    def test_late_usage_is_refused_under_reject_and_accepted_under_adjust(self):
        self.close_period()
        late = self.event("late", timestamp=iso(self.in_closed), quantity=3)
        self.assertEqual(self.service.late_usage_policy, "reject")
        self.assertRejected(late, usage.TIMESTAMP_OUT_OF_WINDOW)
        self.service.late_usage_policy = "adjust"
        body = self.assertJsonAnswer(self.post(late), 200)
        self.assertEqual(body["accepted"], 1)
        event = self.stored(idempotency_key="late")
        self.assertEqual(event.timestamp, self.in_closed.replace(tzinfo=None))
        self.assertFalse(event.cancelled)
        # late_usage_days counts back from now (the request's, a bit later).
        oldest = self.now - timedelta(days=self.service.late_usage_days)
        self.assertJsonAnswer(
            self.post(self.event("oldest", timestamp=iso(oldest + timedelta(hours=1)))),
            200,
        )
        body = self.assertRejected(
            self.event("too-old", timestamp=iso(oldest - timedelta(minutes=5))),
            usage.TIMESTAMP_OUT_OF_WINDOW,
        )
        self.assertIn("late usage", body["error"]["message"])
        # Never before the subscription's start.
        self.service.late_usage_days = 3650
        before_start = utc_midnight(self.subscription_a.start_date) - timedelta(
            seconds=1
        )
        self.assertRejected(
            self.event("before-start", timestamp=iso(before_start)),
            usage.TIMESTAMP_OUT_OF_WINDOW,
        )

    def test_events_are_authorized_by_the_plan_in_force_at_their_timestamp(self):
        storage_plan = self.env["fusion.billing.plan"].create(
            {"service_id": self.service.id, "name": "Storage", "code": "storage"}
        )
        self._create_charge(storage_plan, self.metric_storage, "standard", unit_price=1)
        self.close_period()
        cut = self.open_start + timedelta(days=5)
        self.subscription_a.change_plan(storage_plan, cut.date())
        before, after = cut - timedelta(seconds=1), cut
        # The old plan's period (in its grace until it closes) takes usage
        # dated before the cut, the new plan's the usage after it.
        for key, metric, timestamp in (
            ("calls-before", "api_calls", before),
            ("storage-after", "storage_gb", after),
        ):
            body = self.assertJsonAnswer(
                self.post(self.event(key, metric=metric, timestamp=iso(timestamp))),
                200,
            )
            self.assertEqual(body["accepted"], 1)
        for key, metric, timestamp in (
            ("calls-after", "api_calls", after),
            ("storage-before", "storage_gb", before),
        ):
            self.assertRejected(
                self.event(key, metric=metric, timestamp=iso(timestamp)),
                usage.METRIC_NOT_ON_PLAN,
            )

    # --- exact, bounded quantities --------------------------------------------------

    def test_quantities_are_exact_decimals_with_at_most_12_places(self):
        for key, text in (
            ("tiny", "1e-12"),
            ("largest", "999999999999999.999999999999"),
            ("twelve", "0.123456789012"),
            ("trailing-zeros", "2.50000000000000000000"),
        ):
            with self.subTest(text=text):
                body = self.assertJsonAnswer(
                    self.post(self.raw_quantity(key, text)), 200
                )
                self.assertEqual(body["accepted"], 1)
                self.assertEqual(self.stored_quantity(key), Decimal(text))
        for key, text in (
            ("subnormal", "5e-324"),
            ("thirty", "0.123456789012345678901234567890"),
            ("thirteen", "0.0000000000001"),
        ):
            with self.subTest(text=text):
                result = self.assertRejected(
                    self.raw_quantity(key, text), usage.INVALID_EVENT
                )
                self.assertIn("12 decimal places", result["error"]["message"])
        # Replays compare decimals, in one batch too: 0.1 and 0.10 are equal.
        texts = ("0.1", "0.10", "0.1000000000001")
        items = ", ".join(self.raw_quantity("tenth", text) for text in texts)
        batch = f'{{"events": [{items}]}}'
        body = self.assertJsonAnswer(self.post(batch), 200)
        self.assertEqual(
            [r["status"] for r in body["results"]],
            [usage.ACCEPTED, usage.DUPLICATE, usage.REJECTED],
        )
        body = self.assertJsonAnswer(self.post(self.raw_quantity("tenth", "1e-1")), 200)
        self.assertEqual(body["duplicates"], 1)
        # The largest quantities still sum exactly.
        self.env.cr.execute(
            "SELECT SUM(quantity)::text FROM fusion_billing_usage_event"
            " WHERE service_id = %s",
            [self.service.id],
        )
        self.assertEqual(
            Decimal(self.env.cr.fetchone()[0]),
            Decimal("999999999999999.999999999999")
            + Decimal("0.123456789012")
            + Decimal("2.5")
            + Decimal("1e-12")
            + Decimal("0.1"),
        )

    # --- POST /usage/cancel -----------------------------------------------------------

    def test_cancel_an_event_of_the_open_period(self):
        self.assertJsonAnswer(self.post(self.event("to-cancel")), 200)
        body = self.assertJsonAnswer(self.cancel(("to-cancel", {})), 200)
        self.assertEqual(
            body,
            {
                "status": "ok",
                "cancelled": 1,
                "duplicates": 0,
                "rejected": 0,
                "results": [{"idempotency_key": "to-cancel", "status": "cancelled"}],
            },
        )
        event = self.stored(idempotency_key="to-cancel")
        self.assertTrue(event.cancelled, "kept for audit, marked cancelled")
        # Cancelling again is a duplicate; the key stays used.
        body = self.assertJsonAnswer(self.cancel(("to-cancel", {})), 200)
        self.assertEqual(body["duplicates"], 1)
        body = self.assertJsonAnswer(self.post(self.event("to-cancel")), 200)
        self.assertEqual(body["duplicates"], 1)
        self.assertEqual(len(self.stored(idempotency_key="to-cancel")), 1)
        self.assertTrue(self.stored(idempotency_key="to-cancel").cancelled)
        # Listed with the Cancelled filter of the back office.
        action_filter = self.env.ref(
            "fusion_billing.fusion_billing_usage_event_view_search"
        )
        self.assertIn('name="cancelled"', action_filter.arch)
        self.assertIn(
            event,
            self.env["fusion.billing.usage.event"].search([("cancelled", "=", True)]),
        )

    def test_cancel_in_a_closed_period_depends_on_the_policy(self):
        for key in ("closed-1", "closed-2", "too-old"):
            timestamp = self.in_closed if key != "too-old" else self.closed_start
            self.assertJsonAnswer(
                self.post(self.event(key, timestamp=iso(timestamp))), 200
            )
        self.close_period()
        body = self.assertError(self.cancel(("closed-1", {})), 400, usage.ALL_REJECTED)
        self.assertEqual(body["results"][0]["error"]["code"], usage.PERIOD_CLOSED)
        self.assertEqual(
            (body["cancelled"], body["duplicates"], body["rejected"]), (0, 0, 1)
        )
        self.assertFalse(self.stored(idempotency_key="closed-1").cancelled)
        # Under adjust, within the late usage days, the rating credits it.
        self.service.write({"late_usage_policy": "adjust", "late_usage_days": 35})
        body = self.assertJsonAnswer(
            self.cancel(("closed-1", {}), ("closed-2", {}), ("too-old", {})), 200
        )
        self.assertEqual(
            [r["status"] for r in body["results"]],
            [usage.CANCELLED, usage.CANCELLED, usage.REJECTED],
        )
        self.assertEqual(body["results"][2]["error"]["code"], usage.PERIOD_CLOSED)
        self.assertEqual(
            sorted(self.stored(cancelled=True).mapped("idempotency_key")),
            ["closed-1", "closed-2"],
        )

    def test_cancel_unknown_events(self):
        self.assertJsonAnswer(self.post(self.event("known")), 200)
        body = self.assertError(
            self.cancel(
                ("nope", {}),
                ("known", {"subscription": "sub_zz"}),
                ("known", {"metric": "bandwidth"}),
                ("known", {"metric": "storage_gb"}),  # a metric of the service
            ),
            400,
            usage.ALL_REJECTED,
        )
        self.assertEqual(
            [r["error"]["code"] for r in body["results"]], [usage.UNKNOWN_EVENT] * 4
        )
        self.assertFalse(self.stored(idempotency_key="known").cancelled)

    def test_cancel_never_reaches_another_service(self):
        # Service B has the same references: its key cannot cancel A's event.
        self.assertJsonAnswer(self.post(self.event("mine")), 200)
        body = self.assertError(
            self.cancel(("mine", {}), key=self.key_b), 400, usage.ALL_REJECTED
        )
        self.assertEqual(body["results"][0]["error"]["code"], usage.UNKNOWN_EVENT)
        self.assertFalse(self.stored(idempotency_key="mine").cancelled)

    def test_cancel_batch_in_request_order(self):
        self.assertJsonAnswer(
            self.post({"events": [self.event("a"), self.event("b")]}), 200
        )
        body = self.assertJsonAnswer(
            self.cancel(
                ("a", {}), ("a", {}), ("x", {}), ("b", {}), ("", {}), ("b", {})
            ),
            200,
        )
        self.assertEqual(
            [(r["idempotency_key"], r["status"]) for r in body["results"]],
            [
                ("a", usage.CANCELLED),
                ("a", usage.DUPLICATE),
                ("x", usage.REJECTED),
                ("b", usage.CANCELLED),
                ("", usage.REJECTED),
                ("b", usage.DUPLICATE),
            ],
        )
        self.assertEqual(body["results"][4]["error"]["code"], usage.INVALID_EVENT)
        self.assertEqual(
            (body["cancelled"], body["duplicates"], body["rejected"]), (2, 2, 2)
        )

    def test_cancel_envelope_is_the_usage_one(self):
        item = {"idempotency_key": "a", "subscription": "sub_a", "metric": "api_calls"}
        path = "/usage/cancel"
        self.assertError(
            self.post({"events": [item]}, key=False, path=path),
            401,
            usage.UNAUTHENTICATED,
        )
        self.assertError(
            self.post({"events": [item]}, content_type="text/plain", path=path),
            415,
            usage.UNSUPPORTED_MEDIA_TYPE,
        )
        self.assertError(self.post(item, path=path), 400, usage.INVALID_PAYLOAD)
        self.assertError(
            self.post({"events": [item] * 1001}, path=path),
            400,
            usage.TOO_MANY_EVENTS,
        )
        self.assertError(
            self.post(b"", method="GET", path=path), 405, usage.METHOD_NOT_ALLOWED
        )
        self.assertError(
            self.post(b"{" * (usage.MAX_BODY_BYTES + 1), path=path),
            413,
            usage.PAYLOAD_TOO_LARGE,
        )

    # --- properties limits (SPEC §15) -------------------------------------------------

    def test_properties_depth_and_size_limits(self):
        def nested(levels):
            node = {}
            for level in range(levels - 2):
                node = [node] if level % 2 else {"a": node}
            return {"a": node}

        base = len(json.dumps({"k": ""}, separators=(",", ":")))
        fits = {"k": "é" * ((usage.MAX_PROPERTIES_BYTES - base) // 2)}
        too_big = {"k": fits["k"] + "é"}
        body = self.assertJsonAnswer(
            self.post(
                {
                    "events": [
                        self.event("deep-32", properties=nested(32)),
                        self.event("deep-33", properties=nested(33)),
                        self.event("big-16k", properties=fits),
                        self.event("big-16k+", properties=too_big),
                    ]
                }
            ),
            200,
        )
        self.assertEqual(
            [r["status"] for r in body["results"]],
            [usage.ACCEPTED, usage.REJECTED, usage.ACCEPTED, usage.REJECTED],
        )
        for result in body["results"][1::2]:
            self.assertEqual(result["error"]["code"], usage.INVALID_EVENT)
        self.assertEqual(self.stored(idempotency_key="big-16k").properties, fits)
        # The back office still opens the deepest record a user can see.
        deep = self.stored(idempotency_key="deep-32")
        form = self.env["fusion.billing.usage.event"].with_user(self.billing_user)
        fields_spec = {
            name: {}
            for name in form.get_views([(False, "form")])["models"][
                "fusion.billing.usage.event"
            ]["fields"]
        }
        (record,) = form.browse(deep.id).web_read(fields_spec)
        self.assertEqual(record["properties"], nested(32))

    # --- ORM creation with the SPEC §10 names --------------------------------------

    def test_orm_create_with_the_spec_names_derives_the_service(self):
        other_service = self._create_service("Other", "fb_test_orm_other")
        events = self.env["fusion.billing.usage.event"].sudo()
        event = events.create(
            {
                "subscription_id": self.subscription_a.id,
                "metric_id": self.metric_calls.id,
                "quantity": 2.5,
                "timestamp": "2026-06-01 10:00:00",
                "idempotency_key": "orm-1",
                "properties": {"source": "import"},
                "cancelled": False,
            }
        )
        self.assertEqual(event.service_id, self.service)
        self.assertEqual(event.company_id, self.service.company_id)
        # A caller's service is never trusted: it follows the subscription.
        forged = events.create(
            {
                "service_id": other_service.id,
                "subscription_id": self.subscription_a.id,
                "metric_id": self.metric_calls.id,
                "timestamp": "2026-06-01 10:00:00",
                "idempotency_key": "orm-2",
            }
        )
        self.assertEqual(forged.service_id, self.service)
        forged.write({"service_id": other_service.id})
        self.assertEqual(forged.service_id, self.service)
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT service_id FROM fusion_billing_usage_event WHERE id = %s",
            [forged.id],
        )
        self.assertEqual(self.env.cr.fetchone()[0], self.service.id)
        # The metric must be the subscription's service's.
        foreign_metric = self._create_metric(other_service, "api_calls", "sum")
        with self.assertRaises(ValidationError):
            events.create(
                {
                    "subscription_id": self.subscription_a.id,
                    "metric_id": foreign_metric.id,
                    "timestamp": "2026-06-01 10:00:00",
                    "idempotency_key": "orm-3",
                }
            )
        # The API's bounds hold for every creator: a quantity within them is
        # stored exactly, one beyond them is refused, never rounded (the
        # tiniest float to 0).
        for number, (quantity, stored) in enumerate(
            (
                (1e-12, "0.000000000001"),
                (0.1, "0.1"),
                (Decimal("2.50"), "2.5"),
                ("7.25", "7.25"),
                (1e15, "1000000000000000"),
            )
        ):
            key = f"orm-bounded-{number}"
            events.create(
                {
                    "subscription_id": self.subscription_a.id,
                    "metric_id": self.metric_calls.id,
                    "quantity": quantity,
                    "timestamp": "2026-06-01 10:00:00",
                    "idempotency_key": key,
                }
            )
            self.env.flush_all()
            self.assertEqual(self.stored_quantity(key), Decimal(stored))
        for quantity, reason in (
            (5e-324, "5e-324 must have at most 12 decimal places"),
            (1 / 3, "must have at most 12 decimal places"),
            (1e-13, "must have at most 12 decimal places"),
            (-1, "must be at least 0"),
            (1e15 + 1, "must be at most 1000000000000000"),
            (Decimal("123456789.123456789012"), "more significant digits"),
        ):
            with (
                self.subTest(quantity=quantity),
                self.assertRaisesRegex(ValidationError, reason),
            ):
                events.create(
                    {
                        "subscription_id": self.subscription_a.id,
                        "metric_id": self.metric_calls.id,
                        "quantity": quantity,
                        "timestamp": "2026-06-01 10:00:00",
                        "idempotency_key": "orm-out-of-bounds",
                    }
                )
        with self.assertRaisesRegex(ValidationError, "12 decimal places"):
            event.write({"quantity": 5e-324})
        self.assertEqual(event.quantity, 2.5)
