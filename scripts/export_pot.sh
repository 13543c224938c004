#!/usr/bin/env bash
# Writes the translation template of fusion_billing, exported by Odoo's own exporter
# from DATABASE (where the addon is installed), to OUTPUT (default
# i18n/fusion_billing.pot). run_tests.sh checks that the committed file is current.
#
#   scripts/export_pot.sh DATABASE ADDONS_PATH [OUTPUT]
set -euo pipefail
ADDON_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
odoo_python=${ODOO_PYTHON:-/opt/odoo19/venv/bin/python}
database=$1 addons_path=$2 output=${3:-$ADDON_DIR/i18n/fusion_billing.pot}
config=$(mktemp) clean=$(mktemp -d)
trap 'rm -rf "$config" "$clean"' EXIT
# Odoo's exporter reads every Python file under the addons directories: show it the
# addon without what lives beside it in a checkout (.venv, .git, mutants/).
mkdir "$clean/fusion_billing"
for entry in "$ADDON_DIR"/*; do
    [ "$(basename "$entry")" = mutants ] || ln -s "$entry" "$clean/fusion_billing/"
done
# It also reads every addons directory: leave out the ones holding the checkout.
others=$(echo "$addons_path" | tr ',' '\n' | while read -r dir; do
    [ -e "$dir/fusion_billing" ] || printf ',%s' "$dir"
done)
printf '[options]\naddons_path = %s%s\n' "$clean" "$others" >"$config"
mkdir -p "$(dirname "$output")"
"$odoo_python" -m odoo i18n export -c "$config" -d "$database" -o "$output" fusion_billing
