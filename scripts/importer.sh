#!/usr/bin/env bash
# galaxy-importer, the code Galaxy and Automation Hub run on an uploaded collection, on the tarball
# built from this checkout, once with Galaxy's settings and once with Hub's:
#   Galaxy: ansible-doc on every plugin and role, ansible-lint, a changelog, metadata schema;
#   Hub:    the same plus required tags, flake8 on the Python, and a version of at least 1.0.0.
# Hub also runs ansible-test sanity in a container image it pulls; that part is scripts/sanity.sh
# here (the importer's runner is off).
#   scripts/importer.sh                      the version in galaxy.yml
#   scripts/importer.sh --as-version 1.0.0   a copy with that version: what a release tag would import
# Exits non-zero when either import fails or reports an error; prints every warning.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"
# shellcheck disable=SC1091
[ -n "${VIRTUAL_ENV:-}" ] || source "$PYDEPLOY_VENV/bin/activate"
python -c 'import galaxy_importer' 2>/dev/null || die "galaxy-importer not found: run scripts/prepare.sh (requirements-dev.txt)"

version=
if [ "${1:-}" = "--as-version" ]; then version=${2:?--as-version needs a version}; fi

work=$PYDEPLOY_ROOT/.cache/importer
rm -rf "$work" && mkdir -p "$work/src" "$work/dist"
src=$work/src/ansible_collections/pydeploy/django_stack
mkdir -p "$src"
# The files git knows (what a clone has), not local leftovers such as tests/output.
git ls-files -z --cached --others --exclude-standard -- "$PYDEPLOY_COLLECTION_SRC" \
  | (cd "$PYDEPLOY_COLLECTION_SRC" && sed -z "s|^ansible_collections/pydeploy/django_stack/||" | xargs -0 cp --parents -t "$src")
if [ -n "$version" ]; then
  sed -i "s/^version: .*/version: $version/" "$src/galaxy.yml"
fi
ansible-galaxy collection build --output-path "$work/dist" "$src" >/dev/null
tarball=$(ls "$work"/dist/pydeploy-django_stack-*.tar.gz)
say "galaxy-importer on $(basename "$tarball")"

failures=0
for profile in galaxy hub; do
  cfg=$work/$profile.cfg
  {
    echo "[galaxy-importer]"
    echo "log_level_main = INFO"
    echo "run_ansible_doc = True"
    echo "run_ansible_lint = True"
    echo "offline_ansible_lint = True"
    echo "check_changelog = True"
    echo "run_ansible_test = False"
    echo "tmp_root_dir = $work"
    if [ "$profile" = hub ]; then
      echo "check_required_tags = True"
      echo "require_v1_or_greater = True"
      echo "run_flake8 = True"
    fi
  } >"$cfg"
  log=$work/$profile.log
  rc=0
  GALAXY_IMPORTER_CONFIG=$cfg python -m galaxy_importer.main --print-result "$tarball" >"$log" 2>&1 || rc=$?
  errors=$(grep -cE "^(ERROR|CRITICAL)|Traceback|ImporterError|Invalid collection metadata" "$log" || true)
  warnings=$(grep -E "^WARNING" "$log" || true)
  [ -z "$warnings" ] || printf '%s\n' "$warnings"
  if [ "$rc" -ne 0 ] || [ "$errors" -ne 0 ]; then
    grep -E -A3 "^(ERROR|CRITICAL)|Traceback|ImporterError|Invalid collection metadata" "$log" | head -40
    echo "galaxy-importer ($profile settings): FAILED (exit $rc, $errors errors; log: $log)"
    failures=$((failures + 1))
  else
    echo "galaxy-importer ($profile settings): imported, $(grep -c "^WARNING" "$log" || true) warnings"
  fi
done
[ "$failures" -eq 0 ]
