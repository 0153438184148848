# Shared shell helpers of the harness (sourced, not run).
# shellcheck shell=bash
PYDEPLOY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYDEPLOY_ROOT
# The collection's source, inside the checkout (ansible.cfg resolves pydeploy.django_stack from here).
export PYDEPLOY_COLLECTION_SRC=$PYDEPLOY_ROOT/ansible_collections/pydeploy/django_stack
export PYDEPLOY_CACHE_DIR=${PYDEPLOY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pydeploy}
export PYDEPLOY_VENV=${PYDEPLOY_VENV:-$PYDEPLOY_ROOT/.venv}
# The collection as users get it: built into a tarball and installed here by prepare.sh.
export PYDEPLOY_COLLECTIONS_PATH=${PYDEPLOY_COLLECTIONS_PATH:-$PYDEPLOY_ROOT/.cache/collections}

# compile_plugins ROOT...: byte-compile the collection's plugins under each collections root (a
# directory holding ansible_collections/). Ansible loads a plugin in every worker process it forks,
# one per task and host; without a .pyc (PYTHONDONTWRITEBYTECODE, or a read-only install) each
# worker compiles the plugin sources again, which was a tenth of a controller test's CPU time.
compile_plugins() {
  local root
  for root in "$@"; do
    "${PYDEPLOY_VENV}/bin/python3" -m compileall -q -j 0 "$root/ansible_collections/pydeploy/django_stack/plugins" \
      >/dev/null || die "byte-compiling the plugins under $root failed"
  done
}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# cpu_seconds VAR: set VAR to the CPU seconds (user + system) of the processes this shell has
# waited for so far. `times` runs in this shell: a command substitution's subshell would count none.
cpu_seconds() {
  local file
  file=$(mktemp)
  times >"$file"
  printf -v "$1" '%s' "$(awk 'NR == 2 { split($1, u, "m"); split($2, s, "m"); printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$file")"
  rm -f "$file"
}

# The host's trusted CA certificates that Debian's stock bundle does not have (a re-signing
# proxy's CA, a corporate CA), base64-encoded PEM; empty when there are none.
host_extra_ca_b64() {
  python3 - <<'PY'
import base64, glob, pathlib, re
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
bundle = pathlib.Path("/etc/ssl/certs/ca-certificates.crt")
if not bundle.exists():
    raise SystemExit(0)
stock = set()
for f in glob.glob("/usr/share/ca-certificates/mozilla/*.crt"):
    stock.update(pem.findall(pathlib.Path(f).read_text()))
extra = [c for c in pem.findall(bundle.read_text()) if c not in stock]
if extra and stock:
    print(base64.b64encode(("\n".join(extra) + "\n").encode()).decode())
PY
}

# Start a systemd container the way the test scenarios run theirs (.config/molecule/config.yml
# gives Molecule the same options): SYS_ADMIN, SYS_NICE (systemd and nginx then raise the serving
# processes' priority, as on a host), seccomp and apparmor unconfined, the host's cgroup
# tree, tmpfs on /run, /run/lock and /tmp, never --privileged; the shared apt and pip caches. The
# harness's SSH key (authorized_keys) is the scenarios' own: pass its mount where it is wanted.
#   run_systemd_container NAME RELEASE [docker run arguments, e.g. -p 127.0.0.1:8080:8080]
# Returns once systemd inside runs (or reports itself degraded).
run_systemd_container() {
  local name=$1 release=$2
  shift 2
  docker run -d --name "$name" --hostname "$name" \
    --cap-add SYS_ADMIN --cap-add SYS_NICE --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
    -v "$PYDEPLOY_CACHE_DIR/apt-$release:/var/cache/apt/archives:rw" \
    -v "$PYDEPLOY_CACHE_DIR/pip:/root/.cache/pip:rw" \
    "$@" "${PYDEPLOY_IMAGE_PREFIX:-pydeploy/debian-systemd}:$release" >/dev/null
  local _
  for _ in $(seq 60); do  # systemd's bus appears a moment after the container starts
    case $(docker exec "$name" systemctl is-system-running --wait 2>/dev/null) in running | degraded) return 0 ;; esac
    sleep 1
  done
  die "systemd in $name did not come up within 60 s"
}
