# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import threading
from contextlib import closing
from datetime import datetime, time, timedelta, timezone
from unittest.mock import patch

from odoo import SUPERUSER_ID, api
from odoo.service.model import retrying
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..models.fusion_billing_rating import UNFINISHED_CYCLE_PARAM, FusionBillingRating
from .common import CommittedServiceCase


@tagged("post_install", "-at_install")
class TestRatingRace(CommittedServiceCase):
    """The close of a period and the API, each on its own connection and with
    real commits: an event the API accepted for a period is billed by that
    period's close, or refused; never accepted and lost. The rating only ever
    touches the fixture's subscription."""

    def _fixture_start_date(self):
        # A monthly period that ended days ago: due for its close.
        self.start = datetime.now(timezone.utc).date() - timedelta(days=40)
        return self.start

    def _fixture_service_values(self):
        return {"grace_period_hours": 0}

    def setUp(self):
        super().setUp()
        self.enterContext(
            patch.object(FusionBillingRating, "_rating_in_test", return_value=False)
        )

    def _event(self, key, quantity):
        return self._api_event(
            key, quantity, datetime.combine(self.start, time(12), tzinfo=timezone.utc)
        )

    def _statuses(self, cr, events):
        return [result["status"] for result in self._ingest(cr, events)]

    def _rate(self, cr):
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["fusion.billing.rating"]._rate_subscriptions([self.subscription_id])
        cr.commit()  # pylint: disable=invalid-commit

    def _billed(self):
        """(start of the open period, {period start: billed calls}), as committed."""
        with closing(self.database.cursor()) as cr:
            cr.execute(
                "SELECT COALESCE(last_invoice_date, start_date)"
                " FROM fusion_billing_subscription WHERE id = %s",
                [self.subscription_id],
            )
            open_start = cr.fetchone()[0]
            cr.execute(
                """SELECT m.fusion_period_start, l.fusion_usage_quantity
                     FROM account_move m
                     JOIN account_move_line l ON l.move_id = m.id
                    WHERE m.fusion_subscription_id = %s
                      AND l.fusion_charge_id IS NOT NULL""",
                [self.subscription_id],
            )
            return open_start, dict(cr.fetchall())

    def test_an_event_committed_while_the_close_starts_is_billed_by_it(self):
        """The close's transaction has already read when the event commits,
        just before the close locks the subscription: the close bills it."""
        original = FusionBillingRating._claim_rating_batch

        statuses = []

        def claim_after_a_commit(rating, *args):
            if not statuses:
                rating.env.cr.execute("SELECT 1")  # the close's transaction has read
                with closing(self.database.cursor()) as api_cr:
                    statuses.extend(self._statuses(api_cr, [self._event("k1", 7)]))
                    api_cr.commit()  # pylint: disable=invalid-commit
            return original(rating, *args)

        with (
            closing(self.database.cursor()) as cron_cr,
            patch.object(
                FusionBillingRating, "_claim_rating_batch", claim_after_a_commit
            ),
        ):
            self._rate(cron_cr)
        self.assertEqual(statuses, ["accepted"])
        self.assertEqual(self._billed(), (self.period_end, {self.start: 7}))

    def test_an_event_being_inserted_delays_the_close_until_it_commits(self):
        """The insert holds its lock on the subscription: the close skips it
        this run and bills the event at the next."""
        with (
            closing(self.database.cursor()) as api_cr,
            closing(self.database.cursor()) as cron_cr,
        ):
            self.assertEqual(
                self._statuses(api_cr, [self._event("k1", 5)]), ["accepted"]
            )
            self._rate(cron_cr)
            self.assertEqual(self._billed(), (self.start, {}), "not closed yet")
            api_cr.commit()  # pylint: disable=invalid-commit
            self._rate(cron_cr)
        self.assertEqual(self._billed(), (self.period_end, {self.start: 5}))

    def test_an_event_arriving_during_the_close_is_refused_not_lost(self):
        """The close holds the subscription: an insert waits for it, fails to
        serialize once the close commits, and its retry finds the period
        closed. The event is refused (the reject policy), not accepted and
        left unbilled."""
        outcome = {}
        original = FusionBillingRating._rate_batch

        def ingest():
            with closing(self.database.cursor()) as api_cr:
                env = api.Environment(api_cr, self.user_id, {}, su=True)
                try:
                    outcome["statuses"] = retrying(
                        lambda: self._statuses(api_cr, [self._event("k2", 3)]), env
                    )
                    api_cr.commit()  # pylint: disable=invalid-commit
                except Exception as error:  # reported by the assertion below
                    outcome["error"] = error

        thread = threading.Thread(target=ingest)

        def rate_while_an_insert_waits(rating, *args, **kwargs):
            thread.start()
            thread.join(1)
            self.assertTrue(thread.is_alive(), "the insert waits for the close")
            return original(rating, *args, **kwargs)

        # The insert's first try fails on purpose (logged by odoo.sql_db).
        self.enterContext(mute_logger("odoo.sql_db"))
        with (
            closing(self.database.cursor()) as cron_cr,
            patch.object(
                FusionBillingRating, "_rate_batch", rate_while_an_insert_waits
            ),
        ):
            self._rate(cron_cr)
        thread.join(30)
        self.assertFalse(thread.is_alive())
        self.assertNotIn("error", outcome)
        self.assertEqual(outcome["statuses"], ["rejected"])
        self.assertEqual(self._billed(), (self.period_end, {}))
        with closing(self.database.cursor()) as cr:
            cr.execute(
                "SELECT COUNT(*) FROM fusion_billing_usage_event WHERE service_id = %s",
                [self.service_id],
            )
            self.assertEqual(cr.fetchone()[0], 0)

    def _cycle(self, cr):
        return api.Environment(cr, SUPERUSER_ID, {})[
            "fusion.billing.rating"
        ]._rating_cycle()

    def _forget_cycle(self):
        with closing(self.database.cursor()) as cr:
            api.Environment(cr, SUPERUSER_ID, {})["ir.config_parameter"].set_param(
                UNFINISHED_CYCLE_PARAM, False
            )
            cr.commit()  # pylint: disable=invalid-commit

    def test_workers_starting_together_join_one_rating_cycle(self):
        """Two whole-book runs starting at once (a manual run beside the
        scheduled one): the later joins the cycle the first started, whether
        its transaction began before the first committed or it asked while the
        first was deciding."""
        self._forget_cycle()
        self.addCleanup(self._forget_cycle)
        with (
            closing(self.database.cursor()) as first_cr,
            closing(self.database.cursor()) as early_cr,
            closing(self.database.cursor()) as waiting_cr,
        ):
            early_cr.execute("SELECT 1")  # its snapshot predates the first's cycle
            cycle = self._cycle(first_cr)
            joined = {}
            waiting = threading.Thread(
                target=lambda: joined.update(cycle=self._cycle(waiting_cr))
            )
            waiting.start()
            waiting.join(1)
            self.assertTrue(waiting.is_alive(), "waits while the first decides")
            first_cr.commit()  # pylint: disable=invalid-commit
            waiting.join(10)
            self.assertEqual(joined, {"cycle": cycle})
            waiting_cr.rollback()
            self.assertEqual(self._cycle(early_cr), cycle)
