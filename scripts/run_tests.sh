#!/usr/bin/env bash
# Runs both test tiers of fusion_billing.
#
#   Tier 1 (any machine): the pure-Python engine and the static checks, with pytest.
#   Tier 2 (Odoo 19 + PostgreSQL): installs the addon in a fresh database with its
#   tests enabled, upgrades it, and installs it once more with demo data. It runs when
#   Odoo 19 is importable by $ODOO_PYTHON (default: python3) and PostgreSQL answers;
#   otherwise the output says that it was skipped and why.
#
# Environment: ODOO_PYTHON, ODOO_ADDONS_PATH (extra addons directories),
# PGHOST / PGPORT / PGUSER / PGPASSWORD (default 127.0.0.1 / 5432 / odoo / odoo),
# ODOO_TEST_TAGS (default /fusion_billing), ODOO_HTTP_PORT (default: a free port).
# Arguments are passed to pytest.
set -uo pipefail

ADDON_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    [ -x "$ADDON_DIR/.venv/bin/python" ] && PYTHON="$ADDON_DIR/.venv/bin/python"
fi
ODOO_PYTHON=${ODOO_PYTHON:-$PYTHON}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432}
export PGUSER=${PGUSER:-odoo} PGPASSWORD=${PGPASSWORD:-odoo}

echo "=== Tier 1: engine and static checks (pytest)"
(cd "$ADDON_DIR" && "$PYTHON" -m pytest "$@")
tier1=$?
if [ "$tier1" -ne 0 ]; then
    echo "Tier 1 failed (pytest exit code $tier1)."
    exit "$tier1"
fi

echo
echo "=== Tier 2: Odoo tests"
skip() {
    echo "SKIPPED Odoo tier: $1"
    echo "(Tier 1 passed. To run tier 2, see README.md, 'Running the tests'.)"
    exit 0
}
odoo_version=$("$ODOO_PYTHON" -c 'import odoo.release as r; print(r.major_version)' 2>/dev/null) ||
    skip "Odoo is not importable with $ODOO_PYTHON (set ODOO_PYTHON to the python of an Odoo 19 install)."
[ "$odoo_version" = "19.0" ] || skip "$ODOO_PYTHON imports Odoo $odoo_version, not 19.0."
"$ODOO_PYTHON" - <<'EOF' 2>/dev/null || skip "PostgreSQL does not answer at $PGUSER@$PGHOST:$PGPORT."
import psycopg2
psycopg2.connect(dbname="postgres", connect_timeout=5).close()
EOF

# Odoo finds a module by its directory name: expose this checkout as fusion_billing.
work=$(mktemp -d)
ln -s "$ADDON_DIR" "$work/fusion_billing"
addons_path="$work${ODOO_ADDONS_PATH:+,$ODOO_ADDONS_PATH}"
port=${ODOO_HTTP_PORT:-$("$ODOO_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
db="fusion_billing_test_$$"
cleanup() {
    for name in "$db" "${db}_demo"; do
        "$ODOO_PYTHON" -m odoo db --db_host "$PGHOST" --db_port "$PGPORT" --db_user "$PGUSER" \
            --db_password "$PGPASSWORD" drop "$name" >/dev/null 2>&1 ||
            dropdb --if-exists "$name" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

odoo() {
    "$ODOO_PYTHON" -m odoo --db_host "$PGHOST" --db_port "$PGPORT" --db_user "$PGUSER" \
        --db_password "$PGPASSWORD" --addons-path "$addons_path" \
        --http-interface 127.0.0.1 --http-port "$port" --stop-after-init \
        --log-level info "$@"
}

# Odoo log lines at ERROR or CRITICAL level, and demo data that failed to load.
problems() {
    grep -E "^[0-9-]+ [0-9:,]+ [0-9]+ (ERROR|CRITICAL) |demo data failed to install" "$1"
}

log="$work/odoo-test.log"
started=$(date +%s)
echo "Installing fusion_billing in a fresh database $db with its tests (log: Odoo's output below)"
odoo -d "$db" -i fusion_billing --test-enable --test-tags "${ODOO_TEST_TAGS:-/fusion_billing}" \
    2>&1 | tee "$log" | grep -E "(ERROR|CRITICAL|FAIL|odoo.tests.result|tests.stats|Ran [0-9]+ test)" 
status=${PIPESTATUS[0]}
echo "Install and tests: $(( $(date +%s) - started )) s, exit code $status"

upgrade_status=0
if [ "$status" -eq 0 ]; then
    echo "Upgrading the module (-u fusion_billing)"
    odoo -d "$db" -u fusion_billing >"$work/odoo-upgrade.log" 2>&1 || upgrade_status=$?
    problems "$work/odoo-upgrade.log" && upgrade_status=1
    echo "Upgrade: exit code $upgrade_status"
    echo "Installing with demo data (--with-demo) in ${db}_demo"
    odoo -d "${db}_demo" -i fusion_billing --with-demo >"$work/odoo-demo.log" 2>&1 || upgrade_status=$?
    problems "$work/odoo-demo.log" && upgrade_status=1
    echo "Demo install: exit code $upgrade_status"
fi

result=$(grep -Eo "[0-9]+ failed, [0-9]+ error\(s\) of [0-9]+ tests" "$log" | tail -n 1)
if [ -z "$result" ]; then
    echo "Odoo tier FAILED: no test result line (the module may have failed to install)."
    exit 1
fi
failed=$(echo "$result" | awk '{print $1}')
errors=$(echo "$result" | awk '{print $3}')
total=$(echo "$result" | awk '{print $6}')
echo "Odoo tier: $(( total - failed - errors )) passed, $(( failed + errors )) failed"
if [ "$status" -ne 0 ] || [ "$upgrade_status" -ne 0 ] || [ "$(( failed + errors ))" -ne 0 ] ||
    problems "$log" >/dev/null; then
    echo "Odoo tier FAILED"
    exit 1
fi
