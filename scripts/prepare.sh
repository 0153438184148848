#!/usr/bin/env bash
# Prepare this machine for the demo and the tests; safe to run again (it skips what is done).
#   - a Docker engine that answers (Debian's docker.io installed and dockerd started if none)
#   - .venv with the development and test tooling pinned in requirements-dev.txt (which includes
#     requirements.txt, what running the playbooks needs); PYDEPLOY_PREPARE_FOR=run: that only
#   - the collection built and installed into .cache/collections (as a user would install it)
#   - the Debian test images (built from Debian's packages when they cannot be pulled), made
#     while the venv installs
#   - package caches shared by every test container, and the harness's SSH key (.cache/pydeploy/ssh)
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

# PYDEPLOY_PREPARE_FOR=run (scripts/demo.sh) installs requirements.txt only, what running the
# playbooks needs; the default, dev, adds the test and lint tooling of requirements-dev.txt (a venv
# made for run is completed in place the first time the tests need it).
ensure_venv() {
  local stamp="$PYDEPLOY_VENV/.requirements.sha256" want_dev have file=requirements-dev.txt want
  want_dev=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
  want=$want_dev
  if [ "${PYDEPLOY_PREPARE_FOR:-dev}" = run ]; then
    file=requirements.txt want=run-$(sha256sum <requirements.txt | cut -d' ' -f1)
  fi
  have=$(cat "$stamp" 2>/dev/null || true)
  # A venv with the dev tooling serves a run too.
  if [ -x "$PYDEPLOY_VENV/bin/python" ] && { [ "$have" = "$want" ] || [ "$have" = "$want_dev" ]; }; then return; fi
  say "installing $file into $PYDEPLOY_VENV"
  [ -x "$PYDEPLOY_VENV/bin/python" ] || python3 -m venv "$PYDEPLOY_VENV"
  "$PYDEPLOY_VENV/bin/pip" install -q --disable-pip-version-check -r "$file" 2>&1 \
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
  compile_plugins "$PYDEPLOY_COLLECTIONS_PATH"
}

ensure_images() {  # every release's image at once: a build waits on the mirror most of the time
  local release rc=0 pids=() logs=() i
  for release in ${PYDEPLOY_DEBIAN_RELEASES:-12}; do
    mkdir -p "$PYDEPLOY_CACHE_DIR/apt-$release/partial"
    logs+=("$(mktemp)")
    "$PYDEPLOY_ROOT/scripts/build-image.sh" "$release" >"${logs[-1]}" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || rc=1
    cat "${logs[$i]}" && rm -f "${logs[$i]}"
  done
  mkdir -p "$PYDEPLOY_CACHE_DIR/pip"
  return $rc
}

# The key of Molecule's SSH connection to the test containers (scripts/docker-ssh-proxy): made
# once per machine, mounted read-only as root's authorized_keys in every container. A test key of
# containers that listen on no port; it never leaves this machine's cache.
ensure_ssh_key() {
  local dir=$PYDEPLOY_CACHE_DIR/ssh
  if ! command -v ssh >/dev/null 2>&1 || ! command -v ssh-keygen >/dev/null 2>&1; then
    say "installing Debian's openssh-client (the harness connects to its containers over SSH)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 openssh-client >/dev/null
  fi
  [ -s "$dir/id_ed25519" ] && [ -s "$dir/authorized_keys" ] && return
  mkdir -p "$dir" && chmod 0700 "$dir"
  rm -f "$dir/id_ed25519" "$dir/id_ed25519.pub"
  ssh-keygen -q -t ed25519 -N '' -C pydeploy-test-harness -f "$dir/id_ed25519"
  install -m 0600 "$dir/id_ed25519.pub" "$dir/authorized_keys"
}

# The venv install, the Docker engine's install (when there is none) and the image builds
# (debootstrap, when an image is missing) wait on the network most of the time: they run side by
# side. The images need the engine; the venv needs neither.
venv_log=$(mktemp)
ensure_venv >"$venv_log" 2>&1 &
venv_pid=$!
ensure_docker
images_log=$(mktemp)
ensure_images >"$images_log" 2>&1 &
images_pid=$!
venv_rc=0
wait "$venv_pid" || venv_rc=$?
cat "$venv_log"
rm -f "$venv_log"
[ "$venv_rc" = 0 ] || die "the venv could not be made (output above)"
install_collection
images_rc=0
wait "$images_pid" || images_rc=$?
cat "$images_log" >&2
rm -f "$images_log"
[ "$images_rc" = 0 ] || die "the Debian test image could not be made (output above)"
# The demo (PYDEPLOY_PREPARE_FOR=run) connects with Docker's exec, as its users do: no key.
[ "${PYDEPLOY_PREPARE_FOR:-dev}" = run ] || ensure_ssh_key
