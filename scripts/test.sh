#!/usr/bin/env bash
# The test suite, as README.md gives it and .ci/run calls it:
#   scripts/test.sh                 lint, collection checks, every Molecule scenario (+ the Debian 13 matrix)
#   scripts/test.sh gunicorn ...    only these scenarios (on Debian 12), after lint
# Exits non-zero on any failure, and when a scenario ran no test at all.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"

# Scenarios also run on Debian 13 (trixie) in the full run.
DEB13_SCENARIOS=${PYDEPLOY_DEB13_SCENARIOS:-gunicorn}
if [ $# -gt 0 ]; then
  runs=(); for s in "$@"; do runs+=("$s:12"); done
  releases=12
else
  # The longest scenario (the four-container stack) starts first, so the others fill the second slot.
  runs=(stack:12)
  for f in molecule/*/molecule.yml; do
    s=${f#molecule/}; s=${s%/molecule.yml}
    [ "$s" = stack ] || runs+=("$s:12")
  done
  for s in $DEB13_SCENARIOS; do runs+=("$s:13"); done
  releases="12 13"
fi

PYDEPLOY_DEBIAN_RELEASES=$releases scripts/prepare.sh || die "prepare failed"
# shellcheck disable=SC1091
source "$PYDEPLOY_VENV/bin/activate"
PYDEPLOY_EXTRA_CA_PEM_B64=$(host_extra_ca_b64)
export PYDEPLOY_EXTRA_CA_PEM_B64 ANSIBLE_COLLECTIONS_PATH=$PYDEPLOY_COLLECTIONS_PATH
results=$PYDEPLOY_ROOT/.cache/results
rm -rf "$results" && mkdir -p "$results"

failures=0
summary=()
step() {  # step NAME COMMAND...: run, time and record one step
  local name=$1 start=$SECONDS rc; shift
  say "$name"
  "$@"; rc=$?
  summary+=("$(printf '%-28s %-6s %5ss' "$name" "$([ $rc -eq 0 ] && echo ok || echo FAIL)" $((SECONDS - start)))")
  [ $rc -eq 0 ] || failures=$((failures + 1))
  return $rc
}

step "yamllint" yamllint -s .
step "ansible-lint (production)" ansible-lint --offline -q
step "argument_specs = defaults" python3 scripts/check_specs.py
step "role README tables" python3 scripts/gen_role_docs.py --check
step "collection (installed tarball)" scripts/check_collection.sh
step "unit + controller tests" scripts/test_controller.sh

# Scenarios run PYDEPLOY_JOBS at a time (default 2): most of their time is spent waiting on
# containers, package installs and load runs, not on the controller's CPU. Each writes its own
# log under .cache/results; a failed one's tail is printed.
run_scenario() {  # run_scenario SCENARIO RELEASE: one Molecule scenario, its log, its status file
  local scenario=$1 release=$2 tag="$1-deb$2" start=$SECONDS rc
  export PYDEPLOY_DEBIAN=$release PYDEPLOY_IMAGE=${PYDEPLOY_IMAGE_PREFIX:-pydeploy/debian-systemd}:$release
  export PYDEPLOY_JUNIT_FILE=$results/$tag.xml NO_COLOR=1 ANSIBLE_NOCOLOR=1
  molecule test -s "$scenario" >"$results/$tag.log" 2>&1; rc=$?
  # Molecule passes silently when it finds no test file: a scenario must run tests.
  if [ $rc -eq 0 ] && ! python3 scripts/junit_count.py --require-tests "$PYDEPLOY_JUNIT_FILE" >/dev/null; then
    echo "error: scenario $tag ran no test" >>"$results/$tag.log"; rc=1
  fi
  echo "$rc $((SECONDS - start))" >"$results/$tag.status"
  rm -f "$results/$scenario.running"
}

jobs_max=${PYDEPLOY_JOBS:-2}
for run in "${runs[@]}"; do
  scenario=${run%:*}; release=${run#*:}
  # Never two runs of one scenario at once (they would share Molecule's state directory).
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ] || [ -e "$results/$scenario.running" ]; do
    wait -n || true
  done
  touch "$results/$scenario.running"
  say "molecule $scenario (deb$release): started"
  run_scenario "$scenario" "$release" &
done
wait
for run in "${runs[@]}"; do
  scenario=${run%:*}; release=${run#*:}; tag="$scenario-deb$release"
  read -r rc secs <"$results/$tag.status" 2>/dev/null || { rc=1; secs=0; }
  counts=$(python3 scripts/junit_count.py "$results/$tag.xml" 2>/dev/null || true)
  grep -E "^(=+ .*(passed|failed|error).* =+|(systemd-analyze security exposure|[a-z ]+ under load):)" "$results/$tag.log" || true
  summary+=("$(printf '%-28s %-6s %5ss  %s' "molecule $tag" "$([ "$rc" -eq 0 ] && echo ok || echo FAIL)" "$secs" "$counts")")
  if [ "$rc" -ne 0 ]; then
    failures=$((failures + 1))
    echo "---- $tag failed: errors in $results/$tag.log ----"
    grep -E -B3 -A25 "fatal: |FAILED! |ERROR!|^E  |^FAILED |ran no test" "$results/$tag.log" | head -n 150
    echo "---- last lines ----"
    tail -n 30 "$results/$tag.log"
  fi
done

printf '\n%-28s %-6s %6s\n' step result time
printf '%s\n' "${summary[@]}"
python3 scripts/junit_count.py "$results"/*.xml 2>/dev/null || echo "0 passed, 0 failed"
[ "$failures" -eq 0 ]
