"""Screenshots of the back office at 1440x900, to look at before a change lands.

Usage (Odoo running with the addon and its demo data, Chromium installed):

    python scripts/screenshots.py http://127.0.0.1:8069 DBNAME OUTDIR \
        [--login admin --password admin] [PATH ...]

Each PATH (default: the pages of the README's check list) is opened logged in,
given a few seconds to render, and saved as OUTDIR/NN-name.png.
"""

import argparse
import base64
import json
import subprocess
import tempfile
import time
from pathlib import Path

import requests
import websocket

PAGES = (
    "/odoo/action-fusion_billing.fusion_billing_overview_action",
    "/odoo/action-fusion_billing.fusion_billing_subscription_action",
    "/odoo/action-fusion_billing.fusion_billing_plan_action",
    "/odoo/action-fusion_billing.fusion_billing_invoice_action",
    "/odoo/action-fusion_billing.fusion_billing_webhook_event_action",
    "/odoo/action-fusion_billing.fusion_billing_reconciliation_action",
    "/odoo/action-fusion_billing.fusion_billing_reconciliation_summary_action",
)
DEBUG_PORT = 9333


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("db")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("paths", nargs="*", default=PAGES)
    parser.add_argument("--login", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--wait", type=float, default=6)
    args = parser.parse_intermixed_args()
    session = requests.Session()
    session.post(
        f"{args.url}/web/session/authenticate",
        json={
            "jsonrpc": "2.0",
            "params": {"db": args.db, "login": args.login, "password": args.password},
        },
        timeout=30,
    ).raise_for_status()
    args.outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        chrome = subprocess.Popen(
            [
                "chromium",
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                f"--remote-debugging-port={DEBUG_PORT}",
                "--remote-allow-origins=*",
                "--window-size=1440,900",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            shoot(args, session.cookies["session_id"])
        finally:
            chrome.terminate()
            chrome.wait(timeout=30)


def shoot(args, session_id):
    for _attempt in range(100):
        try:
            targets = requests.get(
                f"http://127.0.0.1:{DEBUG_PORT}/json", timeout=5
            ).json()
            break
        except requests.ConnectionError:
            time.sleep(0.2)
    page = next(target for target in targets if target["type"] == "page")
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
    counter = iter(range(1, 1_000_000))

    def call(method, **params):
        message_id = next(counter)
        ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(ws.recv())
            if message.get("id") == message_id:
                return message.get("result")

    call(
        "Emulation.setDeviceMetricsOverride",
        width=1440,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    call("Network.enable")
    call("Network.setCookie", name="session_id", value=session_id, url=args.url)
    for index, path in enumerate(args.paths):
        call("Page.navigate", url=args.url + path)
        time.sleep(args.wait)
        shot = call("Page.captureScreenshot", format="png")
        name = path.rstrip("/").rsplit("/", 1)[-1].replace("action-fusion_billing.", "")
        target = args.outdir / f"{index:02d}-{name}.png"
        target.write_bytes(base64.b64decode(shot["data"]))
        print(target)


if __name__ == "__main__":
    main()
