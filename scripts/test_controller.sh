#!/usr/bin/env bash
# Tests that need no container, in seconds to minutes: the plugins' unit tests, then the
# controller suite (tests/controller: the collection's playbooks against generated single-box and
# three-tier inventories with ansible_connection=local, stopped right after the validation play).
#   scripts/test_controller.sh                  both
#   scripts/test_controller.sh -k nginx         pytest arguments go to the controller suite
# PYDEPLOY_CONTROLLER_JOBS sets how many playbook runs go at once (default: twice the CPUs).
# Prints the time of each part. scripts/test.sh runs it before the Molecule scenarios.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$PYDEPLOY_VENV/bin/python" ]; then
  # shellcheck disable=SC1091
  source "$PYDEPLOY_VENV/bin/activate"
fi
# The suite resolves the collection from this checkout, never from an installed copy.
unset ANSIBLE_COLLECTIONS_PATH

rc=0
start=$SECONDS
say "unit tests (ansible_collections/pydeploy/django_stack/tests/unit)"
python3 -m pytest -q -p no:cacheprovider ansible_collections/pydeploy/django_stack/tests/unit -o addopts="" || rc=1
unit=$((SECONDS - start))

start=$SECONDS
say "controller tests (tests/controller)"
python3 -m pytest -q -p no:cacheprovider tests/controller -o addopts="" -rfEx "$@" || rc=1
controller=$((SECONDS - start))

printf '\n%-22s %5ss\n%-22s %5ss\n' "unit tests" "$unit" "controller tests" "$controller"
exit $rc
