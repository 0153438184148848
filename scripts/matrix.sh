#!/usr/bin/env bash
# The controller-side checks on the oldest and the newest ansible-core that meta/runtime.yml
# claims (requires_ansible), each in a throwaway venv under .cache/matrix with only the
# collections galaxy.yml depends on (in its site-packages), at the versions an `ansible` package
# release bundles:
#   oldest: ansible-core 2.16 + the collections of ansible 10.1.0 (= the floors in galaxy.yml)
#   newest: ansible-core 2.19 + the collections of ansible 12.3.0 (= requirements.txt)
# Per leg: every playbook parses (--syntax-check: also resolves every module, action and role
# name, so a collection missing from galaxy.yml's dependencies fails here); the collection's
# validate playbook (every role's argument spec and checks, the stack contract's exports wired
# into the inputs) passes for every host of inventories/prod and inventories/single with both app
# servers, run on the controller (connection local, check mode: it reaches no host), and refuses a
# wrong type naming the variable; the controller-side tests (tests/controller) and the
# collection's unit tests (tests/unit) pass.
#   scripts/matrix.sh                 both legs
#   scripts/matrix.sh 2.16.19         one leg, by ansible-core version
# PYDEPLOY_MATRIX overrides the legs: "CORE:ANSIBLE_PACKAGE ..." (default below).
# PYDEPLOY_MATRIX_CONTROLLER_K: run only the controller tests this -k expression selects (the unit
# tests always run whole).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"

LEGS=${PYDEPLOY_MATRIX:-"2.16.19:10.1.0 2.19.14:12.3.0"}
PYTEST_REQ=$(grep -E '^pytest==' requirements-dev.txt)
MATRIX_DIR=$PYDEPLOY_ROOT/.cache/matrix
PYTHON=${PYDEPLOY_MATRIX_PYTHON:-python3}
mkdir -p "$MATRIX_DIR/wheels"

# The collections this one depends on, by name, from galaxy.yml.
DEPENDENCIES=$("$PYDEPLOY_VENV/bin/python" -c '
import sys, yaml
print(" ".join(yaml.safe_load(open(sys.argv[1])).get("dependencies") or {}))
' "$PYDEPLOY_COLLECTION_SRC/galaxy.yml")

leg_venv() {  # leg_venv CORE: a venv with that ansible-core and pytest (made once, reused)
  local core=$1 venv=$MATRIX_DIR/core-$1 want
  want="ansible-core==$core $PYTEST_REQ"
  if [ -x "$venv/bin/ansible-playbook" ] && [ "$(cat "$venv/.requirements" 2>/dev/null)" = "$want" ]; then return; fi
  say "matrix: venv with ansible-core $core"
  rm -rf "$venv" && "$PYTHON" -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install -q --disable-pip-version-check $want 2>&1 | { grep -v "^WARNING: Location" || true; }
  echo "$want" >"$venv/.requirements"
}

leg_collections() {  # leg_collections CORE ANSIBLE: the dependencies as that ansible package bundles them,
  # in the leg venv's site-packages, where the ansible package puts them for its users
  local core=$1 ansible=$2 venv=$MATRIX_DIR/core-$1 wheel want site names
  want="ansible $ansible: $DEPENDENCIES"
  if [ "$(cat "$venv/.collections" 2>/dev/null)" = "$want" ]; then return; fi
  say "matrix: $DEPENDENCIES from the ansible $ansible package"
  "$PYDEPLOY_VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$MATRIX_DIR/wheels" "ansible==$ansible" 2>&1 | { grep -v "^WARNING: Location" || true; }
  wheel=$MATRIX_DIR/wheels/ansible-$ansible-py3-none-any.whl
  [ -f "$wheel" ] || die "pip did not leave $wheel"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  rm -rf "$site/ansible_collections"
  read -r -a names <<<"$DEPENDENCIES"
  "$venv/bin/python" - "$wheel" "$site" "${names[@]}" <<'PY'
import json, sys, zipfile
wheel, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as zf:
    members = zf.namelist()
    for name in names:
        prefix = "ansible_collections/%s/" % name.replace(".", "/")
        chosen = [m for m in members if m.startswith(prefix)]
        if not chosen:
            sys.exit("%s is not in %s" % (name, wheel))
        zf.extractall(dest, chosen)
        info = json.loads(zf.read(prefix + "MANIFEST.json"))["collection_info"]
        print("  %s %s" % (name, info["version"]))
PY
  echo "$want" >"$venv/.collections"
}

run_leg() {  # run_leg CORE ANSIBLE
  local core=$1 ansible=$2 venv=$MATRIX_DIR/core-$1 start=$SECONDS
  leg_venv "$core"
  leg_collections "$core" "$ansible"
  say "matrix: ansible-core $core with the collections of ansible $ansible"
  (
    export PATH=$venv/bin:$PATH VIRTUAL_ENV=$venv
    # Only this checkout's collection and, in the venv, the dependencies: nothing from ~/.ansible.
    export ANSIBLE_COLLECTIONS_PATH=$PYDEPLOY_ROOT
    compile_plugins "$PYDEPLOY_ROOT"
    export ANSIBLE_NOCOLOR=1 ANSIBLE_DEPRECATION_WARNINGS=false
    got=$(ansible-playbook --version)
    case $got in *"core $core]"*) ;; *) die "expected ansible-core $core, got: ${got%%$'\n'*}" ;; esac

    # The checks of a leg run side by side (each is a separate ansible-playbook process, mostly
    # waiting on Python start-up and fact gathering); each writes its own log.
    logs=$MATRIX_DIR/logs-$core
    rm -rf "$logs" && mkdir -p "$logs"
    playbooks=()
    for pb in "$PYDEPLOY_COLLECTION_SRC"/playbooks/*.yml; do playbooks+=("pydeploy.django_stack.$(basename "$pb" .yml)"); done
    # The validate playbook as it runs before every play of the collection, but on the controller
    # for every inventory host (no host is reached; check mode; the leg's own Python).
    validate=(--check -e ansible_connection=local -e ansible_become=false
      -e "ansible_python_interpreter=$venv/bin/python" -e @inventories/prod/group_vars/all/vault.yml.example)
    pids=()
    for inv in prod single; do
      ansible-playbook --syntax-check -i "inventories/$inv" site.yml "${playbooks[@]}" >"$logs/syntax-$inv.log" 2>&1 &
      pids+=("$!:syntax-$inv")
      for server in gunicorn uvicorn_worker; do
        ansible-playbook -i "inventories/$inv" "${validate[@]}" -e "pydeploy_app_server=$server" \
          pydeploy.django_stack.validate >"$logs/validate-$inv-$server.log" 2>&1 &
        pids+=("$!:validate-$inv-$server")
      done
    done
    # The same check must refuse a wrong type, naming the variable (or the runs above prove nothing).
    ansible-playbook -i inventories/single "${validate[@]}" -e nginx_worker_connections=many \
      pydeploy.django_stack.validate >"$logs/refuse.log" 2>&1 &
    refuse_pid=$!
    failed=0
    for entry in "${pids[@]}"; do
      if ! wait "${entry%%:*}"; then
        echo "---- ${entry#*:} failed ($logs/${entry#*:}.log) ----"
        tail -n 25 "$logs/${entry#*:}.log"
        failed=1
      fi
    done
    if wait "$refuse_pid"; then
      echo "validate: nginx_worker_connections=many was accepted"; failed=1
    elif ! grep -q "nginx_worker_connections" "$logs/refuse.log"; then
      tail -n 25 "$logs/refuse.log"; echo "validate: the error does not name nginx_worker_connections"; failed=1
    fi
    if [ "$failed" -eq 0 ]; then
      echo "syntax: site.yml and ${#playbooks[@]} collection playbooks parse with inventories prod and single"
      echo "validate: pydeploy.django_stack.validate passes for inventories prod and single (gunicorn, uvicorn_worker); nginx_worker_connections=many refused"
    fi

    tests=()
    [ ! -d tests/controller ] || tests+=(tests/controller)
    [ ! -d "$PYDEPLOY_COLLECTION_SRC/tests/unit" ] || tests+=("$PYDEPLOY_COLLECTION_SRC/tests/unit")
    if [ -n "${PYDEPLOY_MATRIX_CONTROLLER_K:-}" ]; then
      # The unit tests, and the controller tests selected by this -k expression (scripts/test.sh
      # runs the whole controller suite on the newest ansible-core already).
      python -m pytest -q "$PYDEPLOY_COLLECTION_SRC/tests/unit" || failed=1
      python -m pytest -q tests/controller -k "$PYDEPLOY_MATRIX_CONTROLLER_K" || failed=1
    elif [ ${#tests[@]} -gt 0 ]; then
      python -m pytest -q "${tests[@]}" || failed=1
    else
      echo "pytest: no tests/controller or tests/unit yet"
    fi
    [ "$failed" -eq 0 ]
  ) && rc=0 || rc=$?
  results+=("$(printf 'ansible-core %-8s + ansible %-7s %-6s %4ss' "$core" "$ansible" "$([ "$rc" -eq 0 ] && echo ok || echo FAIL)" $((SECONDS - start)))")
  return "$rc"
}

only=${1:-}
results=()
failures=0
for leg in $LEGS; do
  core=${leg%%:*} ansible=${leg#*:}
  [ -z "$only" ] || [ "$only" = "$core" ] || continue
  run_leg "$core" "$ansible" || failures=$((failures + 1))
done
[ ${#results[@]} -gt 0 ] || die "no matrix leg matches '$only' (legs: $LEGS)"
printf '%s\n' "${results[@]}"
[ "$failures" -eq 0 ]
