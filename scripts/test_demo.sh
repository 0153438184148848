#!/usr/bin/env bash
# The Quick start, as a test: `scripts/demo.sh up` in a container of its own (not the user's
# pydeploy-demo), on two free loopback ports, must end with /health/ answered through nginx (demo.sh
# fails otherwise); then the WebSocket echo it advertises must answer through nginx; then
# `scripts/demo.sh down`. scripts/test.sh runs it beside the Molecule scenarios, so it installs the
# collection into a directory of its own (the scenarios read theirs while it runs).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"
# shellcheck disable=SC1091
source "$PYDEPLOY_VENV/bin/activate"
read -r http_port https_port < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
export PYDEPLOY_DEMO_NAME=${PYDEPLOY_INSTANCE_PREFIX:-pydeploy}-demo-test
export PYDEPLOY_DEMO_HTTP_PORT=$http_port PYDEPLOY_DEMO_HTTPS_PORT=$https_port
export PYDEPLOY_COLLECTIONS_PATH=$PYDEPLOY_ROOT/.cache/demo-test-collections
trap 'scripts/demo.sh down >/dev/null 2>&1 || true' EXIT
start=$SECONDS
scripts/demo.sh up
up=$((SECONDS - start))
say "the WebSocket echo the demo advertises, through nginx"
probe=$(python3 tests/tools/wsclient.py probe --url "wss://127.0.0.1:$https_port/ws/echo/" --insecure --json \
  --message hi-from-the-test --timeout 60) || die "the WebSocket probe failed: $probe"
echo "$probe"
python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(not (r["status"] == 101 and "hi-from-the-test" in json.dumps(r["echo"])))' \
  "$probe" || die "no echo through wss://127.0.0.1:$https_port/ws/echo/"
say "http:// redirects to https://"
location=$(curl -sS -o /dev/null -w '%{redirect_url}' --resolve "localhost:$http_port:127.0.0.1" "http://localhost:$http_port/")
[ "$location" = "https://localhost:$https_port/" ] || die "http://localhost:$http_port/ redirected to '$location'"
echo "demo up in ${up}s (venv, image and package caches present)"
