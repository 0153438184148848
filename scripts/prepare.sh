#!/usr/bin/env bash
# Prepare this machine for the demo and the tests; safe to run again (it skips what is done).
#   - a Docker engine that answers (Debian's docker.io installed and dockerd started if none)
#   - .venv with the development and test tooling pinned in requirements-dev.txt (which includes
#     requirements.txt, what running the playbooks needs)
#   - the collection built and installed into .cache/collections (as a user would install it)
#   - the Debian test images (built from Debian's packages when they cannot be pulled)
#   - package caches shared by every test container
# Environment: PYDEPLOY_DEBIAN_RELEASES (default "12"), and see scripts/build-image.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"

ensure_docker() {
  if docker info >/dev/null 2>&1; then return; fi
  if ! command -v dockerd >/dev/null 2>&1; then
    say "installing Debian's docker.io (no Docker engine answers)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io >/dev/null
  fi
  if docker info >/dev/null 2>&1; then return; fi
  say "starting dockerd"
  if [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; then
    systemctl start docker
  else
    mkdir -p /var/log
    nohup dockerd >/var/log/pydeploy-dockerd.log 2>&1 &
  fi
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && return; sleep 1; done
  die "dockerd did not answer within 60 s (see /var/log/pydeploy-dockerd.log)"
}

ensure_venv() {
  local stamp="$PYDEPLOY_VENV/.requirements.sha256" want
  want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
  if [ -x "$PYDEPLOY_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return; fi
  say "creating $PYDEPLOY_VENV from requirements-dev.txt"
  python3 -m venv "$PYDEPLOY_VENV"
  "$PYDEPLOY_VENV/bin/pip" install -q --disable-pip-version-check -r requirements-dev.txt 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
  echo "$want" >"$stamp"
}

install_collection() {
  say "building and installing the collection into $PYDEPLOY_COLLECTIONS_PATH"
  local build="$PYDEPLOY_COLLECTIONS_PATH-build"
  rm -rf "$build" && mkdir -p "$build" "$PYDEPLOY_COLLECTIONS_PATH"
  "$PYDEPLOY_VENV/bin/ansible-galaxy" collection build --force --output-path "$build" "$PYDEPLOY_COLLECTION_SRC" >/dev/null
  "$PYDEPLOY_VENV/bin/ansible-galaxy" collection install --force --no-deps \
    -p "$PYDEPLOY_COLLECTIONS_PATH" "$build"/pydeploy-django_stack-*.tar.gz >/dev/null
}

ensure_images() {
  local release
  for release in ${PYDEPLOY_DEBIAN_RELEASES:-12}; do
    "$PYDEPLOY_ROOT/scripts/build-image.sh" "$release"
    mkdir -p "$PYDEPLOY_CACHE_DIR/apt-$release/partial"
  done
  mkdir -p "$PYDEPLOY_CACHE_DIR/pip"
}

ensure_docker
ensure_venv
install_collection
ensure_images
