#!/usr/bin/env bash
# Mutation testing of one engine module against the engine tests (core/tests):
#
#   scripts/mutation.sh MODULE        e.g. scripts/mutation.sh signing
#
# A developer command, not part of CI (a module takes from under a minute to several
# minutes). It needs mutmut, which the tier-1 requirements leave out on purpose:
#   .venv/bin/pip install -r requirements-mutation.txt
# Configuration: [tool.mutmut] in pyproject.toml. mutmut works in ./mutants (ignored by
# git) and keeps its results there, so a second run only retests what changed.
# Prints every surviving mutant (see one with `mutmut show NAME`) and the score:
# killed (a test failed, or the mutant hung and timed out) over all mutants checked.
set -euo pipefail

ADDON_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
module=${1:-}
if [ -z "$module" ] || [ ! -f "$ADDON_DIR/core/$module.py" ]; then
    echo "usage: scripts/mutation.sh MODULE (one of: $(cd "$ADDON_DIR/core" && ls ./*.py |
        sed 's|^\./||; s|\.py$||' | grep -v '^__init__$' | tr '\n' ' '))" >&2
    exit 2
fi
if [ -z "${MUTMUT:-}" ]; then
    MUTMUT=mutmut
    [ -x "$ADDON_DIR/.venv/bin/mutmut" ] && MUTMUT="$ADDON_DIR/.venv/bin/mutmut"
fi
cd "$ADDON_DIR"
mkdir -p mutants
log="mutants/run-$module.log"
echo "Running mutmut on core/$module.py (log: $log)"
"$MUTMUT" run "core.$module.*" >"$log" 2>&1 || {
    tail -n 30 "$log"
    exit 1
}
"$MUTMUT" results --all true | awk -v prefix="core.$module." -v module="$module" '
    index($1, prefix) == 1 {
        status = $2
        total++
        if (status == "killed" || status == "timeout") {
            killed++
        } else {
            sub(/:$/, "", $1)
            print "  " status ": " $1
        }
    }
    END {
        if (!total) { print "no mutants found"; exit 1 }
        printf "core/%s.py: %d of %d mutants killed, score %.1f%%\n", \
            module, killed, total, 100 * killed / total
    }'
