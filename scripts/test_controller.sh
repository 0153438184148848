#!/usr/bin/env bash
# Tests that need no container, in seconds to minutes: the plugins' unit tests, then the
# controller suite (tests/controller: the collection's playbooks against generated single-box and
# three-tier inventories with ansible_connection=local, stopped right after the validation play).
#   scripts/test_controller.sh                  both
#   scripts/test_controller.sh -k nginx         pytest arguments go to the controller suite
# PYDEPLOY_CONTROLLER_JOBS sets how many playbook runs go at once (default: twice the CPUs);
# PYDEPLOY_CONTROLLER_BATCH how many bad-input cases of one playbook and layout share one run
# (default 8; 1 runs each alone; tests/controller/harness.py run_batch).
# Prints the wall and CPU time of each part (CPU: user + system of every process it started, the
# figure to compare on a machine that others load). scripts/test.sh runs it before the Molecule scenarios.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$PYDEPLOY_VENV/bin/python" ]; then
  # shellcheck disable=SC1091
  source "$PYDEPLOY_VENV/bin/activate"
fi
# The suite resolves the collection from this checkout, never from an installed copy.
unset ANSIBLE_COLLECTIONS_PATH
compile_plugins "$PYDEPLOY_ROOT"

rc=0
cpu0=0 cpu1=0 cpu2=0
cpu_seconds cpu0
start=$SECONDS
say "unit tests (ansible_collections/pydeploy/django_stack/tests/unit)"
python3 -m pytest -q -p no:cacheprovider ansible_collections/pydeploy/django_stack/tests/unit -o addopts="" || rc=1
unit=$((SECONDS - start))
cpu_seconds cpu1

start=$SECONDS
say "controller tests (tests/controller)"
python3 -m pytest -q -p no:cacheprovider tests/controller -o addopts="" -rfEx "$@" || rc=1
controller=$((SECONDS - start))
cpu_seconds cpu2

printf '\n%-22s %5ss wall %6ss CPU\n%-22s %5ss wall %6ss CPU\n' "unit tests" "$unit" $((cpu1 - cpu0)) \
  "controller tests" "$controller" $((cpu2 - cpu1))
exit $rc
