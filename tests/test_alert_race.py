# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
import threading
import time
from contextlib import closing
from datetime import datetime

from odoo import SUPERUSER_ID, api
from odoo.tests import tagged

from .common import CommittedServiceCase

THRESHOLD_EVENT = "usage.threshold_reached"


@tagged("post_install", "-at_install")
class TestAlertRace(CommittedServiceCase):
    """Two ratings of one open period, each on its own connection, queue one
    ``usage.threshold_reached`` webhook: the trigger's unique index decides.
    (The claim's SKIP LOCKED keeps two rating runs off the same subscription;
    these call the alert check of a rating directly, as a rating without that
    lock would, at the rating's READ COMMITTED.)"""

    def setUp(self):
        super().setUp()
        with closing(self.database.cursor()) as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            subscription = env["fusion.billing.subscription"].browse(
                self.subscription_id
            )
            self.alert_id = (
                env["fusion.billing.alert"]
                .create(
                    {
                        "name": "Budget 5",
                        "subscription_id": subscription.id,
                        "threshold": 5,
                    }
                )
                .id
            )
            # 7 calls at 1.00: the period's estimate is 7.00.
            env["fusion.billing.usage.event"].create(
                {
                    "subscription_id": subscription.id,
                    "metric_id": subscription.plan_id.charge_ids.metric_id.id,
                    "quantity": 7,
                    "timestamp": datetime(2026, 1, 10, 12),
                    "idempotency_key": "alert-race",
                }
            )
            cr.commit()  # pylint: disable=invalid-commit

    def _rating_cursor(self):
        cr = self.database.cursor()
        # The isolation of a rating batch (FusionBillingRating._rating_begin_batch).
        cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return cr

    def _check_alerts(self, cr):
        """The rating's alert check of the open period, on ``cr``: the new
        triggers' alert ids."""
        env = api.Environment(cr, SUPERUSER_ID, {})
        subscription = env["fusion.billing.subscription"].browse(self.subscription_id)
        ratings = list(subscription._open_period_rating().values())
        return env["fusion.billing.alert"]._check_ratings(ratings).alert_id.ids

    def _waits_for_a_lock(self, pid):
        """Whether backend ``pid`` comes to wait on a lock within 10 s."""
        deadline = time.monotonic() + 10
        with closing(self.database.cursor()) as cr:
            while time.monotonic() < deadline:
                cr.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                    [pid],
                )
                if cr.fetchone()[0] == "Lock":
                    return True
                cr.rollback()
                time.sleep(0.05)
        return False

    def test_two_ratings_of_a_period_queue_one_webhook(self):
        second = {}

        def rate_second(cr):
            try:
                second["alerts"] = self._check_alerts(cr)
                cr.commit()  # pylint: disable=invalid-commit
            except Exception as error:  # reported by the assertion below
                second["error"] = error

        with (
            closing(self._rating_cursor()) as first_cr,
            closing(self._rating_cursor()) as second_cr,
        ):
            second_cr.execute("SELECT pg_backend_pid()")
            second_pid = second_cr.fetchone()[0]
            self.assertEqual(self._check_alerts(first_cr), [self.alert_id])
            thread = threading.Thread(target=rate_second, args=(second_cr,))
            thread.start()
            # Neither has committed: the second's snapshot holds no trigger, and
            # its insert waits on the first's uncommitted row.
            waited = self._waits_for_a_lock(second_pid)
            first_cr.commit()  # pylint: disable=invalid-commit
            thread.join(30)
        self.assertTrue(waited, "the second rating never waited for the first")
        self.assertEqual(second, {"alerts": []})
        with closing(self.database.cursor()) as cr:
            cr.execute(
                "SELECT body FROM fusion_billing_webhook_event"
                " WHERE service_id = %s AND event_type = %s",
                [self.service_id, THRESHOLD_EVENT],
            )
            bodies = [json.loads(body)["data"] for (body,) in cr.fetchall()]
            cr.execute(
                "SELECT COUNT(*) FROM fusion_billing_alert_trigger WHERE alert_id = %s",
                [self.alert_id],
            )
            triggers = cr.fetchone()[0]
        self.assertEqual(triggers, 1)
        self.assertEqual(
            [(body["alert"]["id"], body["value"], body["period"]) for body in bodies],
            [(self.alert_id, "7", {"start": "2026-01-01", "end": "2026-02-01"})],
        )
