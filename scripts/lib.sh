# Shared shell helpers of the harness (sourced, not run).
# shellcheck shell=bash
PYDEPLOY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PYDEPLOY_ROOT
export PYDEPLOY_CACHE_DIR=${PYDEPLOY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pydeploy}
export PYDEPLOY_VENV=${PYDEPLOY_VENV:-$PYDEPLOY_ROOT/.venv}
# The collection as users get it: built into a tarball and installed here by prepare.sh.
export PYDEPLOY_COLLECTIONS_PATH=${PYDEPLOY_COLLECTIONS_PATH:-$PYDEPLOY_ROOT/.cache/collections}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

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
