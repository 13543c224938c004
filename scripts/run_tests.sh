#!/usr/bin/env bash
# Runs both test tiers of fusion_billing.
#
#   Tier 1 (any machine): the pure-Python engine and the static checks, with pytest.
#   Tier 2 (Odoo 19 + PostgreSQL): installs the addon with its tests enabled in a fresh
#   database without demo data, upgrades it, then does the same in a fresh database
#   with demo data (--with-demo), where it also serves Odoo and runs the contract test
#   (Schemathesis against GET /usage/openapi.json with a demo key).
#
# Odoo is looked for in $ODOO_PYTHON, else at the default location of README.md's
# install section (/opt/odoo19/venv/bin/python). Without Odoo the last lines say that
# the Odoo tier did not run; when Odoo is there (or ODOO_PYTHON is set) and the tier
# cannot run, the script fails.
#
# PostgreSQL: libpq's defaults, as psql (local socket, current user); PGHOST, PGPORT,
# PGUSER, PGPASSWORD are honoured. Other settings: ODOO_ADDONS_PATH (extra addons
# directories), ODOO_TEST_TAGS (default /fusion_billing), ODOO_HTTP_PORT (default: a
# free port). Arguments are passed to pytest.
set -uo pipefail

ADDON_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEFAULT_ODOO_PYTHON=/opt/odoo19/venv/bin/python
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    [ -x "$ADDON_DIR/.venv/bin/python" ] && PYTHON="$ADDON_DIR/.venv/bin/python"
fi

echo "=== Tier 1: engine and static checks (pytest)"
(cd "$ADDON_DIR" && "$PYTHON" -m pytest "$@")
tier1=$?
if [ "$tier1" -ne 0 ]; then
    echo "Tier 1 failed (pytest exit code $tier1)."
    exit "$tier1"
fi

echo
echo "=== Tier 2: Odoo tests"
if [ -n "${ODOO_PYTHON:-}" ]; then
    odoo_required="ODOO_PYTHON is set"
elif [ -x "$DEFAULT_ODOO_PYTHON" ]; then
    ODOO_PYTHON=$DEFAULT_ODOO_PYTHON
    odoo_required="Odoo is installed at the default location"
else
    echo "!!! Tier 1 passed, but the Odoo tier did NOT run: no Odoo 19 found."
    echo "!!! Set ODOO_PYTHON to the python of an Odoo 19 install, or install Odoo at"
    echo "!!! $DEFAULT_ODOO_PYTHON (README.md, 'Running the tests')."
    exit 0
fi
cannot_run() {
    echo "Odoo tier FAILED to run ($odoo_required): $1"
    exit 1
}
odoo_version=$("$ODOO_PYTHON" -c 'import odoo.release as r; print(r.major_version)' 2>&1) ||
    cannot_run "$ODOO_PYTHON cannot import Odoo: $odoo_version"
[ "$odoo_version" = "19.0" ] || cannot_run "$ODOO_PYTHON imports Odoo $odoo_version, not 19.0."
pg_error=$("$ODOO_PYTHON" - 2>&1 <<'EOF'
import psycopg2
psycopg2.connect(dbname="postgres", connect_timeout=5).close()
EOF
) || cannot_run "PostgreSQL refused the connection (libpq defaults and PG* variables):
$pg_error"
chrome=$(command -v chromium || command -v chromium-browser || command -v google-chrome) ||
    cannot_run "no Chromium for the browser tests (Debian: apt-get install chromium)."
"$ODOO_PYTHON" -c 'import websocket, trustme, standardwebhooks' 2>/dev/null ||
    cannot_run "test packages missing in Odoo's python: $ODOO_PYTHON -m pip install -r requirements-odoo-test.txt"
echo "Odoo 19 ($ODOO_PYTHON), PostgreSQL answers, browser: $chrome"

# Odoo finds a module by its directory name: expose this checkout as fusion_billing.
work=$(mktemp -d)
ln -s "$ADDON_DIR" "$work/fusion_billing"
addons_path="$work${ODOO_ADDONS_PATH:+,$ODOO_ADDONS_PATH}"
free_port() {
    "$ODOO_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
db="fusion_billing_test_$$"
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    for name in "$db" "${db}_demo"; do
        "$ODOO_PYTHON" -m odoo db drop "$name" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# A port chosen afresh for each run: another program may take a port in the minutes
# between two runs.
odoo() {
    "$ODOO_PYTHON" -m odoo --addons-path "$addons_path" --http-interface 127.0.0.1 \
        --http-port "${ODOO_HTTP_PORT:-$(free_port)}" --log-level info "$@"
}

# Odoo log lines at ERROR or CRITICAL level, demo data that failed to load, and
# skipped tests: here every test must run, but those that need the demo data in the
# database without it.
problems() {
    grep -E "^[0-9-]+ [0-9:,]+ [0-9]+ (ERROR|CRITICAL) |demo data failed to install|^[0-9-]+ [0-9:,]+ [0-9]+ INFO [^ ]+ [^ ]+: skipped " "$1" |
        grep -vE "skipped .*(no demo data|needs? the demo data)"
}

failures=0
# install_and_test NAME DB [extra odoo options]: installs with tests, then upgrades.
install_and_test() {
    local name=$1 database=$2 log="$work/odoo-$1.log" started status result
    shift 2
    started=$(date +%s)
    echo "--- $name: installing fusion_billing with its tests in $database"
    odoo -d "$database" -i fusion_billing --test-enable --stop-after-init \
        --test-tags "${ODOO_TEST_TAGS:-/fusion_billing}" "$@" 2>&1 | tee "$log" |
        grep -E "(ERROR|CRITICAL|FAIL|odoo.tests.result|tests.stats|skipped)"
    status=${PIPESTATUS[0]}
    result=$(grep -Eo "[0-9]+ failed, [0-9]+ error\(s\) of [0-9]+ tests" "$log" | tail -n 1)
    echo "$name: $(( $(date +%s) - started )) s, exit code $status, ${result:-no test result line}"
    if [ "$status" -ne 0 ] || [ -z "$result" ] || problems "$log" >/dev/null ||
        [ "$(echo "$result" | awk '{print $1 + $3}')" -ne 0 ]; then
        problems "$log"
        tail -n 25 "$log"
        echo "$name FAILED"
        failures=$((failures + 1))
        return 1
    fi
    echo "--- $name: upgrading the module (-u fusion_billing)"
    if ! odoo -d "$database" -u fusion_billing --stop-after-init \
        >"$work/odoo-$name-upgrade.log" 2>&1 || problems "$work/odoo-$name-upgrade.log"; then
        tail -n 25 "$work/odoo-$name-upgrade.log"
        echo "$name upgrade FAILED"
        failures=$((failures + 1))
        return 1
    fi
}

if install_and_test "without-demo" "$db"; then
    echo "--- i18n/fusion_billing.pot is what Odoo's exporter gives"
    ODOO_PYTHON="$ODOO_PYTHON" "$ADDON_DIR/scripts/export_pot.sh" "$db" "$addons_path" \
        "$work/fusion_billing.pot" >/dev/null 2>&1
    if ! diff -I '^"PO.*-Date: ' "$ADDON_DIR/i18n/fusion_billing.pot" "$work/fusion_billing.pot" \
        >"$work/pot.diff" 2>&1; then
        head -n 20 "$work/pot.diff"
        echo "i18n/fusion_billing.pot is stale: regenerate it with scripts/export_pot.sh"
        failures=$((failures + 1))
    fi
fi
if install_and_test "with-demo" "${db}_demo" --with-demo; then
    echo "--- contract test: Schemathesis against the demo database"
    ODOO_PYTHON="$ODOO_PYTHON" PYTHON="$PYTHON" "$ADDON_DIR/scripts/contract_test.sh" \
        "${db}_demo" "$addons_path" "$(free_port)" ||
        { echo "contract test FAILED"; failures=$((failures + 1)); }
fi

if [ "$failures" -ne 0 ]; then
    echo "Odoo tier FAILED ($failures part(s); Odoo's logs are printed above)"
    exit 1
fi
echo "Odoo tier passed: without demo data, with demo data, upgrades and contract test."
