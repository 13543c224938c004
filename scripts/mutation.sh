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
# mutmut runs each mutant in a process forked after the modules were imported, so
# a mutant in code that runs at import time (the published schemas) is never
# exercised there. Every survivor is therefore checked again: applied to a copy of
# the engine, with the tests of the module and of the modules importing it run
# afresh. Only mutants that survive this too count as survivors.
PYTHON=${PYTHON:-$(dirname "$MUTMUT")/python}
[ -x "$PYTHON" ] || PYTHON=python3
importers=$( (grep -lE "^from \. import (.*[ ,])?$module(,|$)|^from \.$module import" \
    core/*.py || true) | sed 's|^core/||; s|\.py$||' | tr '\n' '|')
names="$module${importers:+|${importers%|}}"
mapfile -t tests < <(grep -lE "^from core(\.($names) import| import (.*[ ,])?($names)(,| |$))" \
    core/tests/test_*.py)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r core pyproject.toml mutants "$work"
statuses="$work/statuses"
"$MUTMUT" results --all true | awk -v prefix="core.$module." \
    'index($1, prefix) == 1 { sub(/:$/, "", $1); print $1, $2 }' >"$statuses"
echo "Checking $(grep -cv ' killed$\| timeout$' "$statuses") survivors again against" \
    "${tests[*]}"
# One process for all the checks: each run starts from freshly imported modules.
cd "$work"
"$PYTHON" - "$module" "$statuses" "${tests[@]}" <<'EOF'
import contextlib
import io
import signal
import sys
from pathlib import Path

import pytest
from mutmut.mutation.diff_apply import apply_mutant

module, statuses, *tests = sys.argv[1:]
source = Path("core", f"{module}.py")
original = source.read_text()


def hung(signum, frame):
    raise TimeoutError("the mutant hung")


signal.signal(signal.SIGALRM, hung)
killed = total = 0
for line in Path(statuses).read_text().splitlines():
    name, status = line.split()
    total += 1
    if status in ("killed", "timeout"):
        killed += 1
        continue
    source.write_text(original)
    try:
        apply_mutant(name)
    except FileNotFoundError:  # mutmut's files changed under a concurrent run
        print(f"  not found: {name}", flush=True)
        continue
    for loaded in [loaded for loaded in sys.modules if loaded.split(".")[0] == "core"]:
        del sys.modules[loaded]
    signal.alarm(300)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exit_code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", *tests])
    except TimeoutError:
        exit_code = 1
    finally:
        signal.alarm(0)
    if exit_code == 0:
        print(f"  {status}: {name}", flush=True)
    else:
        killed += 1
if not total:
    sys.exit("no mutants found")
print(
    f"core/{module}.py: {killed} of {total} mutants killed,"
    f" score {100 * killed / total:.1f}%"
)
EOF
