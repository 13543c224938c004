#!/usr/bin/env python3
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Cost of the rating cron: does it grow with subscriptions, not with events?

Prints figures; asserts nothing. Runs inside Odoo (imports odoo), on a throwaway
database with fusion_billing installed, e.g.:

    createdb fb_rating_bench
    /opt/odoo19/venv/bin/python -m odoo -d fb_rating_bench \\
        --addons-path /tmp/fbaddons -i fusion_billing --stop-after-init
    /opt/odoo19/venv/bin/python bench/bench_rating.py -d fb_rating_bench \\
        --addons-path /tmp/fbaddons

(``/tmp/fbaddons`` holds a ``fusion_billing`` link to this repository.)

The fixtures (service "bench_rating": 3 metrics -- sum, unique_count and
latest, the last two being the sorting aggregates -- and one monthly plan
charging them standard, volume and graduated; --subscriptions active
subscriptions of distinct customers) are created once and reused. For each
event count (--events, then twice as many) the script inserts the events in
SQL (generate_series; interleaved across subscriptions, metrics and the month,
as they arrive), deletes the invoices of earlier runs, then measures:

- the hand-written reference: ONE GROUP BY over the window's rows computing the
  same aggregates, and a plain SUM/COUNT GROUP BY (best of 3);
- the cron's aggregation over the whole book, batch by batch, without the
  invoices (best of 3);
- a full cron run (``fusion.billing.rating._cron_rate_usage``: claims,
  aggregation, engine, draft invoices, webhook outbox, commit per batch): wall
  time, subscriptions/s, SQL queries per subscription, peak RSS, and the
  aggregation's share;
- Odoo itself creating the very same invoices and lines with batched
  ``account.move.create`` (committing per batch, like the cron), side by side:
  the cron's speed as a multiple of Odoo's (SPEC: at least 0.7x);
- a rerun with nothing new (idempotent: same invoice and line counts).

--concurrency N finally deletes the invoices and runs N cron workers at once
(threads with their own cursors), then checks there is exactly one invoice per
subscription and one line per charge.
"""

import argparse
import os
import resource
import threading
import time
from datetime import date, datetime, timezone

from odoo import SUPERUSER_ID, Command, api
from odoo.modules.registry import Registry
from odoo.tools import config

BENCH_CODE = "bench_rating"
PERIOD_START = date(2026, 1, 1)
PERIOD_END = date(2026, 2, 1)
NOW = datetime(2026, 1, 20, tzinfo=timezone.utc)  # mid-period: rate, do not close
SECONDS_IN_PERIOD = (PERIOD_END - PERIOD_START).days * 86400


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("--addons-path", required=True)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--skip-cron", action="store_true", help="measure the aggregation only"
    )
    return parser.parse_args()


def start_odoo(args):
    config.parse_config(
        [
            "-d",
            args.database,
            "--addons-path",
            args.addons_path,
            "--log-level",
            "warn",
        ]
    )
    return Registry(args.database)


def environment(cr, **context):
    return api.Environment(cr, SUPERUSER_ID, context)


def ensure_fixtures(registry, count):
    """Service, metrics, plan, customers and ``count`` active subscriptions."""
    with registry.cursor() as cr:
        env = environment(cr, tracking_disable=True)
        service = env["fusion.billing.service"].search([("code", "=", BENCH_CODE)])
        if not service:
            service = env["fusion.billing.service"].create(
                {"name": "Rating bench", "code": BENCH_CODE}
            )
            product = env["product.product"].create({"name": "Bench usage"})
            metrics = env["fusion.billing.metric"].create(
                [
                    {
                        "service_id": service.id,
                        "code": "calls",
                        "name": "API calls",
                        "aggregation": "sum",
                    },
                    {
                        "service_id": service.id,
                        "code": "seats",
                        "name": "Seats",
                        "aggregation": "unique_count",
                        "property_name": "user_id",
                    },
                    {
                        "service_id": service.id,
                        "code": "tier",
                        "name": "Tier",
                        "aggregation": "latest",
                    },
                ]
            )
            env["fusion.billing.plan"].create(
                {
                    "service_id": service.id,
                    "name": "Bench",
                    "code": "bench",
                    "charge_ids": [
                        Command.create(
                            {
                                "metric_id": metrics[0].id,
                                "product_id": product.id,
                                "charge_model": "standard",
                                "unit_price": 0.0125,
                            }
                        ),
                        Command.create(
                            {
                                "metric_id": metrics[1].id,
                                "product_id": product.id,
                                "charge_model": "volume",
                                "tier_ids": [
                                    Command.create({"up_to": 10, "unit_price": 4}),
                                    Command.create({"up_to": 0, "unit_price": 3}),
                                ],
                            }
                        ),
                        Command.create(
                            {
                                "metric_id": metrics[2].id,
                                "product_id": product.id,
                                "charge_model": "graduated",
                                "tier_ids": [
                                    Command.create(
                                        {"up_to": 50, "unit_price": 1, "flat_fee": 5}
                                    ),
                                    Command.create({"up_to": 0, "unit_price": 0.5}),
                                ],
                            }
                        ),
                    ],
                }
            )
        plan = env["fusion.billing.plan"].search([("service_id", "=", service.id)])
        existing = env["fusion.billing.subscription"].search_count(
            [("service_id", "=", service.id)]
        )
        for first in range(existing, count, 1000):
            size = min(1000, count - first)
            partners = env["res.partner"].create(
                [{"name": f"Bench customer {first + i}"} for i in range(size)]
            )
            env["fusion.billing.customer"].create(
                [
                    {
                        "service_id": service.id,
                        "partner_id": partner.id,
                        "external_ref": f"cus_{first + i}",
                    }
                    for i, partner in enumerate(partners)
                ]
            )
            env["fusion.billing.subscription"].create(
                [
                    {
                        "service_id": service.id,
                        "partner_id": partner.id,
                        "plan_id": plan.id,
                        "external_ref": f"sub_{first + i}",
                        "start_date": PERIOD_START,
                        "state": "active",
                        "next_invoice_date": PERIOD_END,
                    }
                    for i, partner in enumerate(partners)
                ]
            )
            cr.commit()
        subscription_ids = (
            env["fusion.billing.subscription"]
            .search([("service_id", "=", service.id)], order="id", limit=count)
            .ids
        )
        return (
            service.id,
            service.company_id.id,
            plan.charge_ids.metric_id.ids,
            (subscription_ids),
        )


def add_events(registry, fixtures, count, offset):
    """Insert ``count`` events: event g goes to subscription g mod S, metric
    (g div S) mod 3, at a pseudo-random second of the period."""
    service_id, company_id, metric_ids, subscription_ids = fixtures
    with registry.cursor() as cr:
        started = time.perf_counter()
        cr.execute(
            """
            INSERT INTO fusion_billing_usage_event
                (service_id, company_id, subscription_id, metric_id, quantity,
                 timestamp, idempotency_key, properties,
                 create_uid, write_uid, create_date, write_date)
            SELECT %(service)s, %(company)s,
                   (%(subs)s::int[])[1 + g %% %(nsubs)s],
                   (%(metrics)s::int[])[1 + (g / %(nsubs)s) %% 3],
                   1 + g %% 97,
                   %(start)s::timestamp
                       + make_interval(secs => (g::bigint * 7919) %% %(seconds)s),
                   'bench-' || g,
                   jsonb_build_object('user_id', 'u' || g %% 23),
                   1, 1, now(), now()
              FROM generate_series(%(first)s, %(last)s) AS g
            """,
            {
                "service": service_id,
                "company": company_id,
                "subs": subscription_ids,
                "nsubs": len(subscription_ids),
                "metrics": metric_ids,
                "start": datetime.combine(PERIOD_START, datetime.min.time()),
                "seconds": SECONDS_IN_PERIOD,
                "first": offset + 1,
                "last": offset + count,
            },
        )
        cr.commit()
        cr.execute("ANALYZE fusion_billing_usage_event")
        print(f"  inserted {count:,} events in {time.perf_counter() - started:.1f} s")


def reset_invoices(registry, service_id):
    """Forget earlier rating runs: their invoices and outbox rows."""
    with registry.cursor() as cr:
        cr.execute(
            """
            DELETE FROM account_move
             WHERE fusion_subscription_id IN (
                   SELECT id FROM fusion_billing_subscription WHERE service_id = %s)
            """,
            (service_id,),
        )
        cr.execute(
            "DELETE FROM fusion_billing_webhook_event WHERE service_id = %s",
            (service_id,),
        )
        cr.execute(
            "UPDATE fusion_billing_subscription SET rating_cycle = 0 "
            "WHERE service_id = %s",
            (service_id,),
        )
        cr.commit()


HAND_WRITTEN_SAME_AGGREGATES = """
    SELECT e.subscription_id, e.metric_id,
           (CASE m.aggregation
                WHEN 'sum' THEN SUM(e.quantity)
                WHEN 'count' THEN COUNT(e.id)
                WHEN 'max' THEN MAX(e.quantity)
                WHEN 'unique_count' THEN
                    COUNT(DISTINCT e.properties ->> m.property_name)
                    FILTER (WHERE m.aggregation = 'unique_count'
                            AND jsonb_typeof(e.properties) = 'object'
                            AND e.properties ->> m.property_name <> '')
                WHEN 'latest' THEN
                    (ARRAY_AGG(e.quantity ORDER BY e.timestamp DESC, e.id DESC)
                     FILTER (WHERE m.aggregation = 'latest'))[1]
            END)::text
      FROM fusion_billing_usage_event e
      JOIN fusion_billing_metric m ON m.id = e.metric_id
     WHERE e.service_id = %s AND e.timestamp >= %s AND e.timestamp < %s
  GROUP BY e.subscription_id, e.metric_id, m.aggregation
"""
HAND_WRITTEN_PLAIN = """
    SELECT subscription_id, metric_id, SUM(quantity)::text, COUNT(*)
      FROM fusion_billing_usage_event
     WHERE service_id = %s AND timestamp >= %s AND timestamp < %s
  GROUP BY subscription_id, metric_id
"""


def best_of(runs, measure):
    return min(measure() for _ in range(runs))


def time_hand_written(registry, service_id, query):
    window = (
        service_id,
        datetime.combine(PERIOD_START, datetime.min.time()),
        datetime.combine(PERIOD_END, datetime.min.time()),
    )

    def measure():
        with registry.cursor() as cr:
            started = time.perf_counter()
            cr.execute(query, window)
            rows = cr.fetchall()
            assert rows
            return time.perf_counter() - started

    return best_of(3, measure)


def time_book_aggregation(registry, subscription_ids, batch_size):
    def measure():
        with registry.cursor() as cr:
            env = environment(cr)
            subscriptions = env["fusion.billing.subscription"].browse(subscription_ids)
            subscriptions.mapped("plan_id.charge_ids.metric_id")  # prefetch, untimed
            started = time.perf_counter()
            rating = env["fusion.billing.rating"]
            for first in range(0, len(subscription_ids), batch_size):
                batch = subscriptions[first : first + batch_size]
                rating._aggregate([s._open_period() for s in batch], {})
            return time.perf_counter() - started

    return best_of(3, measure)


def rss_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss():
    """Reset VmHWM so the next reading is this phase's peak (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def run_cron(registry, rating_model_class, workers=1):
    """Run the rating cron in ``workers`` threads; return figures."""
    aggregation = {"seconds": 0.0}
    original = rating_model_class._aggregate

    def timed(records, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original(records, *args, **kwargs)
        finally:
            aggregation["seconds"] += time.perf_counter() - started

    rating_model_class._aggregate = timed
    queries = []

    def worker():
        thread = threading.current_thread()
        thread.query_count = 0
        with registry.cursor() as cr:
            environment(cr)["fusion.billing.rating"]._cron_rate_usage(now=NOW)
            cr.commit()
        queries.append(thread.query_count)

    baseline = rss_kib("VmRSS")
    peak_reset = reset_peak_rss()
    started = time.perf_counter()
    try:
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        rating_model_class._aggregate = original
    elapsed = time.perf_counter() - started
    peak = (
        rss_kib("VmHWM")
        if peak_reset
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    )
    return {
        "seconds": elapsed,
        "queries": sum(queries),
        "aggregation": aggregation["seconds"],
        "rss_baseline_mib": baseline / 1024,
        "rss_peak_mib": peak / 1024,
    }


def count_results(registry, service_id):
    with registry.cursor() as cr:
        cr.execute(
            """
            SELECT COUNT(DISTINCT m.id),
                   COUNT(l.id),
                   COUNT(DISTINCT (m.fusion_subscription_id, m.fusion_period_start)),
                   COUNT(DISTINCT (l.move_id, l.fusion_charge_id)),
                   COALESCE(SUM(l.price_subtotal), 0)
              FROM account_move m
              JOIN account_move_line l
                ON l.move_id = m.id AND l.fusion_charge_id IS NOT NULL
              JOIN fusion_billing_subscription s ON s.id = m.fusion_subscription_id
             WHERE s.service_id = %s
            """,
            (service_id,),
        )
        return cr.fetchone()


def read_invoices_as_values(registry, service_id):
    """The cron's invoices as the values Odoo's own ``account.move.create`` needs
    for the same invoices and lines (no fusion fields)."""
    with registry.cursor() as cr:
        env = environment(cr)
        invoices = env["account.move"].search(
            [("fusion_subscription_id.service_id", "=", service_id)]
        )
        return [
            {
                "move_type": invoice.move_type,
                "partner_id": invoice.partner_id.id,
                "currency_id": invoice.currency_id.id,
                "journal_id": invoice.journal_id.id,
                "invoice_line_ids": [
                    Command.create(
                        {
                            "product_id": line.product_id.id,
                            "name": line.name,
                            "quantity": line.quantity,
                            "price_unit": line.price_unit,
                            "tax_ids": [Command.set(line.tax_ids.ids)],
                        }
                    )
                    for line in invoice.invoice_line_ids
                ],
            }
            for invoice in invoices
        ]


def time_odoo_creating(registry, values_list, batch_size):
    """Seconds Odoo itself takes to create ``values_list`` with batched
    ``account.move.create``, committing per batch like the cron; then deletes them."""
    created = []
    started = time.perf_counter()
    for start in range(0, len(values_list), batch_size):
        with registry.cursor() as cr:
            moves = environment(cr)["account.move"].create(
                values_list[start : start + batch_size]
            )
            cr.commit()
            created.extend(moves.ids)
    seconds = time.perf_counter() - started
    with registry.cursor() as cr:
        cr.execute("DELETE FROM account_move WHERE id = ANY(%s)", (created,))
        cr.commit()
    return seconds


def report_run(label, figures, subscriptions):
    seconds = figures["seconds"]
    print(
        f"  {label}: {seconds:.1f} s, {subscriptions / seconds:,.0f} subscriptions/s, "
        f"{figures['queries'] / subscriptions:.1f} SQL queries/subscription, "
        f"aggregation {figures['aggregation']:.2f} s, "
        f"RSS {figures['rss_baseline_mib']:.0f} MiB -> peak "
        f"{figures['rss_peak_mib']:.0f} MiB"
    )


def main():
    args = parse_args()
    registry = start_odoo(args)
    # Importable once the addons path is configured.
    from odoo.addons.fusion_billing.models.fusion_billing_rating import (  # noqa: PLC0415
        RATING_BATCH_SIZE,
        FusionBillingRating,
    )

    print(
        f"machine: {os.cpu_count()} CPUs, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
        f"database {args.database}"
    )
    started = time.perf_counter()
    fixtures = ensure_fixtures(registry, args.subscriptions)
    service_id, subscription_ids = fixtures[0], fixtures[3]
    print(
        f"fixtures: {len(subscription_ids):,} subscriptions x 3 charges "
        f"({time.perf_counter() - started:.0f} s)"
    )
    with registry.cursor() as cr:
        cr.execute(
            "DELETE FROM fusion_billing_usage_event WHERE service_id = %s",
            (service_id,),
        )
        cr.commit()

    total_events = 0
    for scale in (1, 2):
        new_events = args.events * scale - total_events
        print(f"\n== {args.events * scale:,} events ==")
        add_events(registry, fixtures, new_events, total_events)
        total_events += new_events
        reset_invoices(registry, service_id)

        same = time_hand_written(registry, service_id, HAND_WRITTEN_SAME_AGGREGATES)
        plain = time_hand_written(registry, service_id, HAND_WRITTEN_PLAIN)
        book = time_book_aggregation(registry, subscription_ids, RATING_BATCH_SIZE)
        print(
            f"  hand-written GROUP BY, same aggregates: {same:.2f} s; "
            f"plain SUM/COUNT: {plain:.2f} s"
        )
        print(
            f"  cron aggregation of the whole book ({RATING_BATCH_SIZE} subscriptions "
            f"a query): {book:.2f} s = {book / same:.2f}x the same-aggregate GROUP BY"
        )
        if args.skip_cron:
            continue
        first = run_cron(registry, FusionBillingRating)
        report_run("cron run", first, len(subscription_ids))
        after_first = count_results(registry, service_id)
        if scale == 1:
            values_list = read_invoices_as_values(registry, service_id)
            odoo_seconds = time_odoo_creating(registry, values_list, RATING_BATCH_SIZE)
            print(
                f"  Odoo itself creating the same {len(values_list):,} invoices "
                f"(account.move.create, {RATING_BATCH_SIZE} a batch): "
                f"{odoo_seconds:.1f} s; cron speed = "
                f"{odoo_seconds / first['seconds']:.2f}x Odoo's"
            )
        rerun = run_cron(registry, FusionBillingRating)
        report_run("rerun, nothing new", rerun, len(subscription_ids))
        after_rerun = count_results(registry, service_id)
        print(
            f"  invoices {after_first[0]:,}, usage lines {after_first[1]:,}, "
            f"untaxed {after_first[4]:,.2f}; after rerun identical: "
            f"{after_first == after_rerun}"
        )

    if args.concurrency > 1 and not args.skip_cron:
        print(f"\n== {args.concurrency} cron workers at once ==")
        reset_invoices(registry, service_id)
        figures = run_cron(registry, FusionBillingRating, workers=args.concurrency)
        report_run(f"{args.concurrency} workers", figures, len(subscription_ids))
        invoices, lines, periods, charge_lines, untaxed = count_results(
            registry, service_id
        )
        print(
            f"  invoices {invoices:,} (distinct subscription periods {periods:,}), "
            f"usage lines {lines:,} (distinct invoice/charge {charge_lines:,}), "
            f"untaxed {untaxed:,.2f}"
        )


if __name__ == "__main__":
    main()
