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
  runs=()
  for f in molecule/*/molecule.yml; do s=${f#molecule/}; runs+=("${s%/molecule.yml}:12"); done
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

for run in "${runs[@]}"; do
  scenario=${run%:*}; release=${run#*:}
  export PYDEPLOY_DEBIAN=$release PYDEPLOY_IMAGE=${PYDEPLOY_IMAGE_PREFIX:-pydeploy/debian-systemd}:$release
  export PYDEPLOY_JUNIT_FILE=$results/$scenario-deb$release.xml
  step "molecule $scenario (deb$release)" molecule test -s "$scenario"
  # Molecule passes silently when it finds no test file: a scenario must run tests.
  if ! python3 scripts/junit_count.py --require-tests "$PYDEPLOY_JUNIT_FILE" >/dev/null; then
    echo "error: scenario $scenario (deb$release) ran no test" >&2
    failures=$((failures + 1))
  fi
done

printf '\n%-28s %-6s %6s\n' step result time
printf '%s\n' "${summary[@]}"
python3 scripts/junit_count.py "$results"/*.xml 2>/dev/null || echo "0 passed, 0 failed"
[ "$failures" -eq 0 ]
