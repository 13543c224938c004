#!/usr/bin/env python3
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Latency of ``GET /usage/summary`` beside a one-event ``POST /usage``.

Prints figures; asserts nothing. Same database, fixtures and server as
``bench_usage.py`` (service "bench", 20 subscriptions; run from this folder):

    /opt/odoo19/venv/bin/python bench/bench_summary.py -d fb_bench \\
        --addons-path /path/to/addons-containing-fusion_billing

It stores --events events in the open period of the subscriptions (SQL, as the
API stores them), starts ``python -m odoo`` on a free loopback port with
--workers (default 0), then over one client sends --calls summary requests
(cycling over the subscriptions) and as many one-event usage posts, and
reports p50 and p99 of each. The events are deleted afterwards.
"""

import argparse
import http.client
import json
import os
import statistics
import tempfile
import time
import uuid

# Python puts the script's own folder first on the path.
from bench_usage import (
    Client,
    connect,
    default_odoo_command,
    delete_events,
    floor_rows,
    insert_floor,
    make_events,
    percentile,
    setup_fixtures,
    start_server,
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("--addons-path", required=True)
    parser.add_argument("--db-filter")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--odoo", default=default_odoo_command())
    return parser.parse_args()


def get_summary(conn, headers, reference):
    conn.request("GET", f"/usage/summary?subscription={reference}", headers=headers)
    response = conn.getresponse()
    payload = response.read()
    if response.status != 200:
        raise SystemExit(f"HTTP {response.status}: {payload[:300]!r}")
    return json.loads(payload)


def main():
    args = parse_args()
    key, fixtures = setup_fixtures(args)
    db = connect(args)
    delete_events(db, fixtures)
    run = uuid.uuid4().hex[:8]
    events = make_events(args.events, fixtures, f"sum-{run}")
    for start in range(0, len(events), 1000):
        insert_floor(db, json.dumps(floor_rows(events[start : start + 1000], fixtures)))
    singles = [json.dumps(event) for event in make_events(args.calls, fixtures, run)]
    references = [ref for ref, __, __ in fixtures["subscriptions"]]
    with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as log:
        log_path = log.name
    process, port = start_server(args, args.workers, log_path)
    try:
        headers = {"Authorization": f"Bearer {key}"}
        client = Client(port, key)
        # Warm-up: key verification, registry, caches (not measured).
        get_summary(http.client.HTTPConnection("127.0.0.1", port), headers, "sub_00")
        client.post(json.dumps(make_events(1, fixtures, f"warm-{run}")[0]))
        summary_times, usage_times = [], []
        for number, body in enumerate(singles):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            start = time.perf_counter()
            get_summary(conn, headers, references[number % len(references)])
            summary_times.append(time.perf_counter() - start)
            conn.close()
            start = time.perf_counter()
            client.post(body)
            usage_times.append(time.perf_counter() - start)
    finally:
        process.terminate()
        process.wait(30)
        delete_events(db, fixtures)
    print(
        f"PostgreSQL {db.server_version}, {os.cpu_count()} CPUs, loopback,"
        f" {args.workers} workers; {args.events} events over"
        f" {len(references)} subscriptions; {args.calls} calls each"
    )
    for label, times in (
        ("GET /usage/summary", summary_times),
        ("POST /usage (1 event)", usage_times),
    ):
        print(
            f"{label:<22} p50 {1000 * statistics.median(times):6.2f} ms"
            f"   p99 {1000 * percentile(times, 0.99):6.2f} ms"
        )


if __name__ == "__main__":
    main()
