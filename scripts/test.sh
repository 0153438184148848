#!/usr/bin/env bash
# The test suite, as README.md gives it and .ci/run calls it:
#   scripts/test.sh                      every check below and every Molecule scenario
#   scripts/test.sh single stack:13      the checks, then only these scenarios (NAME or NAME:DEBIAN)
#   scripts/test.sh --static             the checks that need no container, nothing else
# The controller-side checks (lint, specs, sanity, the ansible-core matrix, the unit and controller
# tests) run while the scenarios run: the scenarios mostly wait on containers, packages and load
# runs. Prints each step's time; exits non-zero on any failure, and when a scenario ran no test.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"

# Each scenario once, on the Debian release it covers; the longest first, so that the shorter ones
# fill the other slot. Every scenario under molecule/ must be listed here (checked below).
DEFAULT_SCENARIOS="single:13 stack:12 uvicorn_worker:13 projects:12"
static=1 scenarios=1
case "${1:-}" in
  --static) scenarios=0; shift ;;
esac
if [ $# -gt 0 ]; then
  requested=("$@")
else
  read -r -a requested <<<"${PYDEPLOY_SCENARIOS:-$DEFAULT_SCENARIOS}"
fi
runs=() releases=""
if [ "$scenarios" -eq 1 ]; then
  for r in "${requested[@]}"; do
    s=${r%%:*}; rel=12; [ "$r" = "$s" ] || rel=${r#*:}
    [ -f "molecule/$s/molecule.yml" ] || die "no Molecule scenario '$s' (molecule/$s/molecule.yml)"
    case $rel in 12 | 13) ;; *) die "scenario $r: Debian release must be 12 or 13" ;; esac
    runs+=("$s:$rel")
    case " $releases " in *" $rel "*) ;; *) releases="$releases $rel" ;; esac
  done
  if [ $# -eq 0 ]; then
    for f in molecule/*/molecule.yml; do
      s=${f#molecule/}; s=${s%/molecule.yml}
      case " ${requested[*]} " in *" $s:"* | *" $s "*) ;; *) die "scenario $s is in no run of scripts/test.sh (DEFAULT_SCENARIOS)" ;; esac
    done
  fi
fi

PYDEPLOY_DEBIAN_RELEASES=${releases:-12} scripts/prepare.sh || die "prepare failed"
# shellcheck disable=SC1091
source "$PYDEPLOY_VENV/bin/activate"
PYDEPLOY_EXTRA_CA_PEM_B64=$(host_extra_ca_b64)
export PYDEPLOY_EXTRA_CA_PEM_B64 ANSIBLE_COLLECTIONS_PATH=$PYDEPLOY_COLLECTIONS_PATH
results=$PYDEPLOY_ROOT/.cache/results
rm -rf "$results" && mkdir -p "$results"
suite_start=$SECONDS
machine_busy() {  # machine_busy VAR: CPU seconds this machine's CPUs have been busy since boot
  printf -v "$1" '%s' "$(awk '/^cpu / { print int(($2 + $3 + $4 + $7 + $8 + $9) / 100) }' /proc/stat)"
}
suite_busy0=0 suite_busy1=0
machine_busy suite_busy0

# ---- Molecule scenarios, PYDEPLOY_JOBS at a time (default 3), in the background ------------------
# Three, not two: the CPUs stay busy to the end instead of one scenario running alone at the end
# (1791 s against 1888 s for the same commit, README "Tests").
run_scenario() {  # run_scenario SCENARIO RELEASE: one Molecule scenario, its log, its status file
  local scenario=$1 release=$2 tag="$1-deb$2" start=$SECONDS rc cpu0 cpu1
  cpu_seconds cpu0
  export PYDEPLOY_DEBIAN=$release PYDEPLOY_IMAGE=${PYDEPLOY_IMAGE_PREFIX:-pydeploy/debian-systemd}:$release
  export PYDEPLOY_JUNIT_FILE=$results/$tag.xml NO_COLOR=1 ANSIBLE_NOCOLOR=1
  molecule test -s "$scenario" >"$results/$tag.log" 2>&1; rc=$?
  # Molecule passes silently when it finds no test file: a scenario must run tests.
  if [ $rc -eq 0 ] && ! python3 scripts/junit_count.py --require-tests "$PYDEPLOY_JUNIT_FILE" >/dev/null; then
    echo "error: scenario $tag ran no test" >>"$results/$tag.log"; rc=1
  fi
  cpu_seconds cpu1
  echo "$rc $((SECONDS - start)) $((cpu1 - cpu0))" >"$results/$tag.status"
  rm -f "$results/$scenario.running"
  say "molecule $tag: $([ "$rc" -eq 0 ] && echo ok || echo FAILED) after $((SECONDS - start))s"
}
scenario_pool() {
  local jobs_max=${PYDEPLOY_JOBS:-3} run scenario release
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
}
pool_pid=
if [ ${#runs[@]} -gt 0 ]; then
  scenario_pool &
  pool_pid=$!
fi

# ---- checks that need no container, meanwhile --------------------------------------------------
failures=0
summary=()
failed_tags=()
step() {  # step NAME COMMAND...: run, time and record one step
  local name=$1 start=$SECONDS rc cpu0 cpu1; shift
  say "$name"
  cpu_seconds cpu0
  "$@" >"$results/step-${name%% *}.log" 2>&1; rc=$?
  cpu_seconds cpu1
  if [ $rc -ne 0 ]; then
    echo "---- $name failed ----"
    tail -n 60 "$results/step-${name%% *}.log"
  fi
  summary+=("$(printf '%-32s %-6s %5ss %6ss' "$name" "$([ $rc -eq 0 ] && echo ok || echo FAIL)" $((SECONDS - start)) $((cpu1 - cpu0)))")
  [ $rc -eq 0 ] || failures=$((failures + 1))
  return 0
}
if [ "$static" -eq 1 ]; then
  step "yamllint" yamllint -s .
  step "ansible-lint (production)" ansible-lint --offline -q
  step "argument_specs=defaults" python3 scripts/check_specs.py
  step "role-README tables" python3 scripts/gen_role_docs.py --check
  step "collection (installed tarball)" scripts/check_collection.sh
  step "unit+controller tests" scripts/test_controller.sh
  step "sanity (ansible-test)" scripts/sanity.sh
  step "docs (lint + site build)" scripts/docs.sh
  # The oldest ansible-core claimed (meta/runtime.yml); the newest is the venv every step above uses.
  # There: syntax of every playbook, the validate playbook on both inventories with both app
  # servers, a refusal, the unit tests, and the controller tests of every scenario's variables,
  # --tags and the plugin (the whole controller suite runs above). The controller tests of the repo
  # inventories are left to the leg's own validate runs of the same inventories.
  step "matrix (ansible-core 2.16)" env PYDEPLOY_MATRIX_CONTROLLER_K="test_molecule_scenario_variables or test_tags or validate_vars_plugin" \
    scripts/matrix.sh 2.16.19
fi
# The Quick start as a user runs it (a container of its own, beside the scenarios): on a full run only.
if [ "$scenarios" -eq 1 ] && [ $# -eq 0 ]; then
  step "demo (up, WebSocket, down)" scripts/test_demo.sh
fi

# ---- results -----------------------------------------------------------------------------------
[ -z "$pool_pid" ] || wait "$pool_pid"
for run in "${runs[@]}"; do
  scenario=${run%:*}; release=${run#*:}; tag="$scenario-deb$release"
  read -r rc secs cpu <"$results/$tag.status" 2>/dev/null || { rc=1; secs=0; cpu=0; }
  counts=$(python3 scripts/junit_count.py "$results/$tag.xml" 2>/dev/null || true)
  grep -E "^(=+ .*(passed|failed|error).* =+|(systemd-analyze security exposure|[a-z ]+ under load):)" "$results/$tag.log" || true
  summary+=("$(printf '%-32s %-6s %5ss %6ss  %s' "molecule $tag" "$([ "$rc" -eq 0 ] && echo ok || echo FAIL)" "$secs" "$cpu" "$counts")")
  [ "$rc" -eq 0 ] || { failures=$((failures + 1)); failed_tags+=("$tag"); }
done

machine_busy suite_busy1
printf '\n%-32s %-6s %6s %7s\n' step result time CPU
printf '%s\n' "${summary[@]}"
printf '%-32s %-6s %5ss %6ss\n' "whole suite (wall)" "$([ "$failures" -eq 0 ] && echo ok || echo FAIL)" $((SECONDS - suite_start)) \
  $((suite_busy1 - suite_busy0))
echo "CPU: a step's own processes on this machine (a scenario's: Molecule, Ansible and the tests, not its containers);"
echo "the whole suite's: every CPU of the machine busy, of $(( (SECONDS - suite_start) * $(nproc) )) CPU-s available"
[ ${#runs[@]} -eq 0 ] || python3 scripts/junit_count.py "$results"/*.xml 2>/dev/null || echo "0 passed, 0 failed"
# Why a scenario failed comes last, where a truncated CI log still shows it: the failing task or
# test lines (not Ansible's "FAILED - RETRYING" notices), then the log's last lines.
for tag in "${failed_tags[@]}"; do
  echo "---- $tag failed: errors in $results/$tag.log ----"
  grep -E -B2 -A12 "fatal: |FAILED! |ERROR!|^E  |^FAILED [^-]|ran no test" "$results/$tag.log" | head -n 80
  echo "---- $tag: last lines ----"
  tail -n 20 "$results/$tag.log"
done
[ "$failures" -eq 0 ]
