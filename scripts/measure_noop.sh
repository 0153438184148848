#!/usr/bin/env bash
# Round trips and wall time of a no-op converge of a Molecule scenario (issue 13):
#   scripts/measure_noop.sh SCENARIO [ROLE...]     e.g. scripts/measure_noop.sh gunicorn gunicorn python_app
# Converges the scenario (creating its instances when needed), converges again (timed: the no-op
# wall time), and a third time with -vvv to count the remote round trips per host and role
# (scripts/roundtrips.py). Leaves the instances up (molecule destroy -s SCENARIO when done). Run it
# through /work/bin/slot on a shared machine. Uses the collection installed by scripts/prepare.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"
scenario=${1:?usage: $0 SCENARIO [ROLE...]}; shift
# shellcheck disable=SC1091
source "$PYDEPLOY_VENV/bin/activate"
PYDEPLOY_EXTRA_CA_PEM_B64=$(host_extra_ca_b64)
export PYDEPLOY_EXTRA_CA_PEM_B64 ANSIBLE_COLLECTIONS_PATH=$PYDEPLOY_COLLECTIONS_PATH NO_COLOR=1 ANSIBLE_NOCOLOR=1
out=$PYDEPLOY_ROOT/.cache/measure && mkdir -p "$out"
molecule create -s "$scenario" >"$out/$scenario-create.log" 2>&1
molecule prepare -s "$scenario" >"$out/$scenario-prepare.log" 2>&1 || true  # already prepared: molecule skips
molecule converge -s "$scenario" >"$out/$scenario-converge.log" 2>&1 || { tail -50 "$out/$scenario-converge.log"; exit 1; }
start=$(date +%s.%N)
molecule converge -s "$scenario" >"$out/$scenario-noop-timed.log" 2>&1 || { tail -50 "$out/$scenario-noop-timed.log"; exit 1; }
end=$(date +%s.%N)
molecule converge -s "$scenario" -- -vvv >"$out/$scenario-noop.log" 2>&1 || { tail -50 "$out/$scenario-noop.log"; exit 1; }
roles=(); for r in "$@"; do roles+=(--role "$r"); done
python3 scripts/roundtrips.py "$out/$scenario-noop.log" "${roles[@]}"
grep -E "^[^ ]+ +: ok=" "$out/$scenario-noop-timed.log" | sed 's/^/recap: /'
printf 'no-op converge of %s: %.1f s wall time (molecule converge, the second run)\n' "$scenario" "$(echo "$end - $start" | bc)"
