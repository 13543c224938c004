#!/usr/bin/env python3
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Throughput and latency of ``POST /usage`` against the database floor.

Prints figures; asserts nothing. Needs a database with fusion_billing installed
and Odoo's Python (the script imports odoo to set up its fixtures):

    createdb -T <db with account> fb_bench   # or any empty database
    odoo-bin -d fb_bench -i fusion_billing --stop-after-init
    /opt/odoo19/venv/bin/python bench/bench_usage.py -d fb_bench \\
        --addons-path /path/to/addons-containing-fusion_billing

For each of --workers (default 0 and 2) it starts ``python -m odoo`` on a free
loopback port, then over one keep-alive connection:

- posts --batches bodies of 1000 events and reports events/s;
- posts --singles one-event bodies and reports p50/p99 latency (and, as
  their floor, the p50 of PostgreSQL inserting and committing one such row);

and, in the same run, measures the floor: PostgreSQL inserting the very same
rows into ``fusion_billing_usage_event`` (its foreign keys, indexes and
constraints) from one JSON document per 1000 rows with
``INSERT ... SELECT ... FROM jsonb_populate_recordset(...) ON CONFLICT DO
NOTHING``, one transaction per document like one request per batch.
The fixtures (service "bench", 20 subscriptions) are created once and reused;
the events of each measurement are deleted afterwards.
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone

import psycopg2

import odoo
from odoo import api
from odoo.modules.registry import Registry
from odoo.tools import config

BATCH = 1000
SUBSCRIPTIONS = 20


def default_odoo_command():
    """odoo-bin next to the odoo package this Python imports."""
    odoo_bin = os.path.join(os.path.dirname(next(iter(odoo.__path__))), "odoo-bin")
    return f"{sys.executable} {odoo_bin}"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("--addons-path", required=True)
    parser.add_argument(
        "--db-filter",
        help="pass --db-filter to the server (each request then lists the databases)",
    )
    parser.add_argument("--workers", default="0,2", help="comma-separated")
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--singles", type=int, default=1000)
    parser.add_argument(
        "--odoo",
        default=default_odoo_command(),
        help="command starting the Odoo server (default: odoo-bin run by this Python)",
    )
    return parser.parse_args()


def setup_fixtures(args):
    """Create (once) a service, metric, plan and subscriptions; return a new key
    and the ids the floor needs."""
    config.parse_config(["-d", args.database, "--addons-path", args.addons_path])
    with Registry(args.database).cursor() as cr:
        env = api.Environment(cr, odoo.SUPERUSER_ID, {})
        service = env["fusion.billing.service"].search([("code", "=", "bench")])
        if not service:
            service = _create_fixtures(env)
        keys = env["res.users.apikeys"].search([("user_id", "=", service.user_id.id)])
        keys._remove()
        key = (
            env["res.users.apikeys"]
            .with_user(service.user_id)
            .sudo()
            ._generate("fusion_billing", "bench", None)
        )
        subscriptions = service.subscription_ids.sorted("external_ref")
        return key, {
            "service_id": service.id,
            "company_id": service.company_id.id,
            "user_id": service.user_id.id,
            "metric_id": service.metric_ids.id,
            "subscriptions": [
                (s.external_ref, s.id, f"cus_{s.external_ref[4:]}")
                for s in subscriptions
            ],
        }


def _create_fixtures(env):
    service = env["fusion.billing.service"].create({"name": "Bench", "code": "bench"})
    metric = env["fusion.billing.metric"].create(
        {"service_id": service.id, "code": "api_calls", "name": "API calls"}
    )
    product = env["product.product"].create({"name": "Bench usage"})
    plan = env["fusion.billing.plan"].create(
        {"service_id": service.id, "name": "Bench", "code": "bench"}
    )
    env["fusion.billing.charge"].create(
        {
            "plan_id": plan.id,
            "metric_id": metric.id,
            "product_id": product.id,
            "unit_price": 0.01,
        }
    )
    start = date.today().replace(day=1)
    for number in range(SUBSCRIPTIONS):
        partner = env["res.partner"].create({"name": f"Bench customer {number}"})
        env["fusion.billing.customer"].create(
            {
                "service_id": service.id,
                "partner_id": partner.id,
                "external_ref": f"cus_{number:02d}",
            }
        )
        env["fusion.billing.subscription"].create(
            {
                "service_id": service.id,
                "partner_id": partner.id,
                "plan_id": plan.id,
                "external_ref": f"sub_{number:02d}",
                "start_date": start,
            }
        ).action_activate()
    return service


def make_events(count, fixtures, prefix):
    now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    subscriptions = fixtures["subscriptions"]
    events = []
    for number in range(count):
        sub_ref, __, cus_ref = subscriptions[number % len(subscriptions)]
        events.append(
            {
                "idempotency_key": f"{prefix}-{number:07d}",
                "subscription": sub_ref,
                "customer": cus_ref,
                "metric": "api_calls",
                "quantity": number % 97 + 0.5,
                "timestamp": (now - timedelta(seconds=number % 3600)).isoformat(),
                "properties": {"region": "eu-west-1"},
            }
        )
    return events


def floor_rows(events, fixtures):
    """The table rows the API stores for ``events``."""
    sub_ids = {ref: sub_id for ref, sub_id, __ in fixtures["subscriptions"]}
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return [
        {
            "service_id": fixtures["service_id"],
            "company_id": fixtures["company_id"],
            "subscription_id": sub_ids[event["subscription"]],
            "metric_id": fixtures["metric_id"],
            "quantity": event["quantity"],
            "timestamp": event["timestamp"][:19].replace("T", " "),
            "idempotency_key": event["idempotency_key"],
            "properties": event["properties"],
            "create_uid": fixtures["user_id"],
            "create_date": stamp,
            "write_uid": fixtures["user_id"],
            "write_date": stamp,
        }
        for event in events
    ]


FLOOR_SQL = """
INSERT INTO fusion_billing_usage_event
       (service_id, company_id, subscription_id, metric_id, quantity, "timestamp",
        idempotency_key, properties, create_uid, create_date, write_uid, write_date)
SELECT service_id, company_id, subscription_id, metric_id, quantity, "timestamp",
       idempotency_key, properties, create_uid, create_date, write_uid, write_date
  FROM jsonb_populate_recordset(NULL::fusion_billing_usage_event, %s::jsonb)
    ON CONFLICT (subscription_id, metric_id, idempotency_key) DO NOTHING
"""


def connect(args):
    return psycopg2.connect(dbname=args.database)


def insert_floor(conn, document):
    """Seconds PostgreSQL spends inserting one document, committed."""
    with conn.cursor() as cr:
        start = time.perf_counter()
        cr.execute(FLOOR_SQL, [document])
        conn.commit()
        return time.perf_counter() - start


def delete_events(conn, fixtures):
    with conn.cursor() as cr:
        cr.execute(
            "DELETE FROM fusion_billing_usage_event WHERE service_id = %s",
            [fixtures["service_id"]],
        )
    conn.commit()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args, workers, log_path):
    port = free_port()
    command = [
        *args.odoo.split(),
        "-d",
        args.database,
        *(["--db-filter", args.db_filter] if args.db_filter else []),
        "--addons-path",
        args.addons_path,
        "--http-interface",
        "127.0.0.1",
        "--http-port",
        str(port),
        "--workers",
        str(workers),
        "--max-cron-threads",
        "0",
        "--logfile",
        log_path,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/usage/openapi.json")
            if conn.getresponse().status == 200:
                conn.close()
                return process, port
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"Odoo did not start, see {log_path}")


class Client:
    """One keep-alive connection (reopened only if the server closes it)."""

    def __init__(self, port, key):
        self.port = port
        self.headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
        }
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.reconnects = 0

    def post(self, body):
        self.conn.request("POST", "/usage", body, self.headers)
        response = self.conn.getresponse()
        payload = response.read()
        if response.will_close:
            self.reconnects += 1
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status}: {payload[:300]!r}")
        return json.loads(payload)


def measure(args, workers, key, fixtures, conn):
    """Per batch: the floor, then the same events over HTTP (interleaved, so a
    busy machine slows both alike); then the single-event floor and latencies.

    werkzeug (Odoo's HTTP server) answers every request with Connection: close,
    so the client reconnects each time (counted): in production a reverse proxy
    keeps the client connections alive."""
    run = uuid.uuid4().hex[:8]
    batches = [
        make_events(BATCH, fixtures, f"{run}-b{number}")
        for number in range(args.batches)
    ]
    single_events = make_events(args.singles, fixtures, run)
    singles = [json.dumps(event) for event in single_events]
    with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as log:
        log_path = log.name
    process, port = start_server(args, workers, log_path)
    try:
        client = Client(port, key)
        # Warm-up: key verification, registry, caches (not measured).
        client.post(json.dumps(make_events(1, fixtures, f"warm-{run}")[0]))
        floor_times, http_times = [], []
        for events in batches:
            document = json.dumps(floor_rows(events, fixtures))
            body = json.dumps({"events": events})
            floor_times.append(insert_floor(conn, document))
            delete_events(conn, fixtures)
            start = time.perf_counter()
            answer = client.post(body)
            http_times.append(time.perf_counter() - start)
            if answer["accepted"] != BATCH:
                raise SystemExit(f"batch not fully accepted: {answer['accepted']}")
            delete_events(conn, fixtures)
        floor_singles = [
            insert_floor(conn, json.dumps(floor_rows([event], fixtures)))
            for event in single_events
        ]
        delete_events(conn, fixtures)
        latencies = []
        for body in singles:
            start = time.perf_counter()
            client.post(body)
            latencies.append(time.perf_counter() - start)
        delete_events(conn, fixtures)
        return floor_times, http_times, latencies, floor_singles, client.reconnects
    finally:
        process.terminate()
        process.wait(30)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main():
    args = parse_args()
    key, fixtures = setup_fixtures(args)
    conn = connect(args)
    delete_events(conn, fixtures)
    cpu = os.cpu_count()
    print(
        f"PostgreSQL {conn.server_version}, {cpu} CPUs, client and server on"
        f" loopback; {args.batches} x {BATCH}-event batches,"
        f" {args.singles} single-event requests; per-batch medians"
    )
    print()
    header = (
        f"{'workers':>7} | {'HTTP ev/s':>10} | {'floor ev/s':>10} | {'ratio':>5} |"
        f" {'ms/batch':>8} | {'floor ms':>8} | {'single p50':>10} |"
        f" {'p99':>7} | {'floor p50':>10} | reconnects"
    )
    print(header)
    print("-" * len(header))
    for workers in (int(w) for w in args.workers.split(",")):
        floor_times, http_times, latencies, floor_singles, reconnects = measure(
            args, workers, key, fixtures, conn
        )
        # Medians: robust to the odd pause of a shared machine.
        http_batch = statistics.median(http_times)
        floor_batch = statistics.median(floor_times)
        print(
            f"{workers:>7} | {BATCH / http_batch:>10,.0f} |"
            f" {BATCH / floor_batch:>10,.0f} | {floor_batch / http_batch:>5.2f} |"
            f" {1000 * http_batch:>8.1f} | {1000 * floor_batch:>8.1f} |"
            f" {1000 * statistics.median(latencies):>7.2f} ms |"
            f" {1000 * percentile(latencies, 0.99):>4.2f} ms |"
            f" {1000 * statistics.median(floor_singles):>7.2f} ms | {reconnects}"
        )


if __name__ == "__main__":
    main()
