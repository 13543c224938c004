#!/usr/bin/env bash
# Contract test: serves DATABASE (fusion_billing installed with demo data), mints an
# API key of the demo service and runs Schemathesis, a client nobody here wrote,
# against the published OpenAPI document with all its checks. Accepted exceptions are
# in schemathesis.toml. Any 5xx or schema violation fails.
#
#   scripts/contract_test.sh DATABASE ADDONS_PATH PORT
# Environment: ODOO_PYTHON (Odoo 19's python), PYTHON (with schemathesis installed).
set -euo pipefail
ADDON_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
database=$1 addons_path=$2 port=$3

key=$("$ODOO_PYTHON" -m odoo shell -d "$database" --addons-path "$addons_path" \
    --no-http --log-level warn 2>/dev/null <<'EOF' | sed -n 's/^CONTRACT_KEY=//p'
service = env.ref("fusion_billing.demo_service_nexacloud")
print("CONTRACT_KEY=" + service.generate_api_key("contract test"))
env.cr.commit()
EOF
)
[ -n "$key" ] || { echo "could not mint an API key of the demo service"; exit 1; }

log=$(mktemp)
"$ODOO_PYTHON" -m odoo -d "$database" --addons-path "$addons_path" \
    --http-interface 127.0.0.1 --http-port "$port" --log-level warn >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$log"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 60); do
    curl -fsS -o /dev/null "$base/usage/openapi.json" 2>/dev/null && break
    sleep 1
done
curl -fsS -o /dev/null "$base/usage/openapi.json" ||
    { echo "Odoo did not serve $base/usage/openapi.json"; cat "$log"; exit 1; }

cd "$ADDON_DIR"
status=0
"$(dirname "$PYTHON")/schemathesis" --config-file schemathesis.toml run \
    "$base/usage/openapi.json" --url "$base" -H "Authorization: Bearer $key" || status=$?
if grep -E " (ERROR|CRITICAL) " "$log"; then
    echo "Odoo logged errors during the contract test"
    exit 1
fi
exit "$status"
