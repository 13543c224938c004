#!/usr/bin/env bash
# One command from a checkout to a running Fusion Billing hub with demo data:
#
#   scripts/demo.sh
#
# - Odoo 19 comes from $ODOO_PYTHON (default /opt/odoo19/venv/bin/python, the
#   README's install location); its own addons are found next to the odoo package.
# - PostgreSQL: connects the way psql does (local socket, current user, PG*
#   variables honoured). When no server answers, it starts a private one under
#   .demo/ in this checkout, with the machine's initdb and pg_ctl.
# - Creates the database $DEMO_DB (default fusion_billing_demo) with the addon and
#   its demo data (when it is already there, updates the addon in it); mints an API
#   key of the demo service (NexaCloud); serves Odoo on 127.0.0.1 ($DEMO_PORT,
#   default a free port).
# - Prints the login, the key and curl commands that work against the demo data.
# Ctrl-C stops Odoo and the private PostgreSQL if it started one; the database
# stays (run it again to reuse it; drop it with: dropdb fusion_billing_demo).
set -euo pipefail

ADDON_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ADDON_DIR/.demo"
ODOO_PYTHON=${ODOO_PYTHON:-/opt/odoo19/venv/bin/python}
DEMO_DB=${DEMO_DB:-fusion_billing_demo}
mkdir -p "$STATE"

say() { printf '%s\n' "$*" >&2; }
die() { say "demo.sh: $*"; exit 1; }

odoo_root=$("$ODOO_PYTHON" -c '
import os, odoo.release as r
assert r.major_version == "19.0", r.major_version
print(os.path.dirname(os.path.abspath(r.__file__)))' 2>/dev/null) ||
    die "no Odoo 19 at ODOO_PYTHON=$ODOO_PYTHON (install it as README.md says, or set ODOO_PYTHON)."
# Odoo finds a module by its directory name: expose this checkout as fusion_billing.
mkdir -p "$STATE/addons"
ln -sfn "$ADDON_DIR" "$STATE/addons/fusion_billing"
addons_path="$STATE/addons"
# A source checkout keeps the standard addons beside the odoo package; packaged
# installs keep them inside it, where Odoo looks anyway.
[ -d "$(dirname "$odoo_root")/addons" ] && addons_path+=",$(dirname "$odoo_root")/addons"
addons_path+="${ODOO_ADDONS_PATH:+,$ODOO_ADDONS_PATH}"

pg_error() {
    "$ODOO_PYTHON" -c '
import psycopg2
try:
    psycopg2.connect(dbname="postgres", connect_timeout=5).close()
except psycopg2.Error as error:
    print(str(error).strip())'
}

pg_bindir() {
    local dir
    dir=$(pg_config --bindir 2>/dev/null) && [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    # Debian and Ubuntu keep the server programs out of PATH: take the newest.
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    done
    dir=$(command -v initdb) && dirname "$dir"
}

started_pg=""
pgdata="$STATE/pgdata"
as_pg_owner() {
    # PostgreSQL refuses to run as root: run it as the postgres account instead.
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root needs a postgres account to run PostgreSQL."
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_private_postgres() {
    local bindir socket
    bindir=$(pg_bindir) || die "no PostgreSQL server programs found (initdb): install PostgreSQL 13+."
    socket="$STATE/run"
    mkdir -p "$socket"
    [ "$(id -u)" = 0 ] && chown postgres "$STATE" "$socket"
    if [ ! -f "$pgdata/PG_VERSION" ]; then
        say "Creating a private PostgreSQL cluster in $pgdata ($bindir)"
        as_pg_owner "$bindir/initdb" -D "$pgdata" -U "$(id -un)" -A trust -E UTF8 \
            --locale=C >"$STATE/initdb.log" 2>&1 || die "initdb failed, see $STATE/initdb.log"
    fi
    as_pg_owner "$bindir/pg_ctl" -D "$pgdata" -l "$STATE/postgresql.log" -w \
        -o "-c listen_addresses='' -c unix_socket_directories='$socket' -p 5432" start \
        >/dev/null || die "PostgreSQL did not start, see $STATE/postgresql.log"
    started_pg="$bindir/pg_ctl"
    PGUSER=$(id -un)
    export PGHOST="$socket" PGPORT=5432 PGUSER
    unset PGPASSWORD PGDATABASE
}

odoo_pid=""
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$odoo_pid" ] && kill -0 "$odoo_pid" 2>/dev/null; then
        say "Stopping Odoo"
        kill "$odoo_pid" 2>/dev/null || true
        wait "$odoo_pid" 2>/dev/null || true
    fi
    if [ -n "$started_pg" ]; then
        say "Stopping the private PostgreSQL"
        as_pg_owner "$started_pg" -D "$pgdata" -m fast stop >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

error=$(pg_error)
if [ -n "$error" ]; then
    say "PostgreSQL does not answer with the default connection: $error"
    start_private_postgres
    error=$(pg_error)
    [ -z "$error" ] || die "the private PostgreSQL does not answer: $error"
fi

odoo() {
    local command=()
    [ "$1" = shell ] && { command=(shell); shift; }
    "$ODOO_PYTHON" -m odoo "${command[@]}" --addons-path "$addons_path" -d "$DEMO_DB" "$@"
}

installed=$("$ODOO_PYTHON" - "$DEMO_DB" <<'EOF'
import sys
import psycopg2
try:
    with psycopg2.connect(dbname=sys.argv[1], connect_timeout=5) as cnx, cnx.cursor() as cr:
        cr.execute("SELECT to_regclass('ir_module_module') IS NOT NULL")
        if not cr.fetchone()[0]:
            print("foreign")
        else:
            cr.execute("""SELECT (SELECT state FROM ir_module_module
                                   WHERE name = 'fusion_billing'),
                                 EXISTS (SELECT 1 FROM ir_model_data
                                          WHERE module = 'fusion_billing'
                                            AND name = 'demo_service_nexacloud')""")
            state, demo = cr.fetchone()
            print("yes" if state == "installed" and demo else "foreign")
except psycopg2.OperationalError:
    print("no")
EOF
)
case "$installed" in
yes)
    say "Reusing database $DEMO_DB: updating fusion_billing to this checkout (log: $STATE/install.log)"
    odoo -u fusion_billing --stop-after-init --no-http --log-level warn \
        >"$STATE/install.log" 2>&1 || die "the update failed, see $STATE/install.log"
    ;;
no)
    say "Creating database $DEMO_DB with fusion_billing and demo data (a few minutes; log: $STATE/install.log)"
    odoo -i fusion_billing --with-demo --stop-after-init --no-http --log-level warn \
        >"$STATE/install.log" 2>&1 || die "the install failed, see $STATE/install.log"
    ;;
*) die "database $DEMO_DB exists without fusion_billing's demo data: set DEMO_DB to another name." ;;
esac

say "Minting an API key of the demo service"
key=$(odoo shell --no-http --log-level warn 2>"$STATE/shell.log" <<'EOF' | sed -n 's/^FUSION_BILLING_KEY=//p'
service = env.ref("fusion_billing.demo_service_nexacloud")
print("FUSION_BILLING_KEY=" + service.generate_api_key("scripts/demo.sh"))
env.cr.commit()
EOF
) || true
[[ "$key" =~ ^[0-9a-f]{20,}$ ]] || die "could not mint an API key, see $STATE/shell.log"

port=${DEMO_PORT:-$("$ODOO_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
url="http://127.0.0.1:$port"
say "Starting Odoo on $url (log: $STATE/odoo.log)"
"$ODOO_PYTHON" -m odoo --addons-path "$addons_path" -d "$DEMO_DB" \
    --http-interface 127.0.0.1 --http-port "$port" --logfile "$STATE/odoo.log" &
odoo_pid=$!
for _ in $(seq 120); do
    kill -0 "$odoo_pid" 2>/dev/null || die "Odoo stopped, see $STATE/odoo.log"
    "$ODOO_PYTHON" -c "import urllib.request as u; u.urlopen('$url/web/login', timeout=2)" \
        2>/dev/null && break
    sleep 1
done

now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
run=$(date -u +%Y%m%d%H%M%S)
cat <<EOF

Fusion Billing is running at $url
  Log in as admin / admin (database $DEMO_DB), then open Usage Billing.
  API key of the demo service NexaCloud (shown once, kept only as a hash):
    $key

Try the API now (the demo subscription sub_azure_pro of customer cus_azure):

export ODOO=$url KEY=$key

curl -sS "\$ODOO/usage" -H "Authorization: Bearer \$KEY" \\
  -H "Content-Type: application/json" \\
  -d '{"idempotency_key": "demo-$run-1", "subscription": "sub_azure_pro",
       "customer": "cus_azure", "metric": "api_calls", "quantity": 250,
       "timestamp": "$now"}'

curl -sS "\$ODOO/usage" -H "Authorization: Bearer \$KEY" \\
  -H "Content-Type: application/json" \\
  -d '{"events": [
    {"idempotency_key": "demo-$run-2", "subscription": "sub_azure_pro", "customer": "cus_azure",
     "metric": "storage_gb", "quantity": 512, "timestamp": "$now"},
    {"idempotency_key": "demo-$run-3", "subscription": "sub_azure_pro", "customer": "cus_azure",
     "metric": "active_users", "timestamp": "$now", "properties": {"user_id": "u-3"}}]}'

curl -sS "\$ODOO/usage/openapi.json"

The usage shows in Usage Billing > Usage; the hourly rating job (Settings >
Technical > Scheduled Actions > "Fusion Billing: rate usage into draft
invoices" > Run Manually) puts it on the subscription's draft invoice.
Ctrl-C stops Odoo${started_pg:+ and the private PostgreSQL}.
EOF
wait "$odoo_pid"
