#!/usr/bin/env bash
# ansible-test sanity on the collection, as Galaxy's importer and Automation Hub certification run
# it, with no ignore file:
#   scripts/sanity.sh                   every sanity test
#   scripts/sanity.sh --test pylint     ansible-test sanity options pass through
# Offline-capable: ansible-test installs each test's exact tool versions (pylint, pycodestyle,
# yamllint, voluptuous, ...) into its own virtual environments under ~/.ansible/test/venv, from
# the package index (reachable), after bootstrapping pip with a get-pip.py script it downloads from
# a host that is not reachable here. ansible-test reads that script from
# ~/.ansible/test/cache/get_pip_<version>.py when the file exists (its own error message says so),
# so this script puts scripts/get_pip_offline.py there: the same job (pip into the empty venv,
# then the pinned pip), done with ensurepip and the package index. `--venv` and `--docker` are not
# used: the first needs the same bootstrap for ansible-test itself, the second pulls images.
# `--local` runs ansible-test with this venv's Python; the tests still use their own venvs.
# The first run creates those venvs (about 4 min); later runs reuse them. Results go to the
# collection's tests/output/ (git-ignored, left out of the tarball).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# shellcheck disable=SC1091
[ -n "${VIRTUAL_ENV:-}" ] || source "$PYDEPLOY_VENV/bin/activate"

# The shellcheck test needs Debian's shellcheck (ansible-test skips that test silently without it).
if ! command -v shellcheck >/dev/null; then
  say "installing Debian's shellcheck"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq shellcheck >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; }
fi

python=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pip_version=$(python3 - "$python" <<'PY'
import sys
from ansible_test._internal.python_requirements import get_venv_packages
class Python:  # the only attribute get_venv_packages reads
    version = sys.argv[1]
print(get_venv_packages(Python())["pip"])
PY
)
cache=$HOME/.ansible/test/cache
bootstrap=$cache/get_pip_${pip_version//./_}.py
mkdir -p "$cache"
if ! cmp -s "$PYDEPLOY_ROOT/scripts/get_pip_offline.py" "$bootstrap"; then
  cp "$PYDEPLOY_ROOT/scripts/get_pip_offline.py" "$bootstrap"
fi

cd "$PYDEPLOY_COLLECTION_SRC"
start=$SECONDS
rc=0
ansible-test sanity --local --python "$python" --color no "$@" 2>&1 \
  | { grep -vE "^WARNING: Location 'file://.*' is ignored" || true; } || rc=$?
echo "ansible-test sanity: $([ "$rc" -eq 0 ] && echo passed || echo FAILED) ($((SECONDS - start)) s)"
exit "$rc"
