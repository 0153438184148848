#!/usr/bin/env bash
# The main job: deploy the demo Django app with the collection's own roles into a local
# systemd container, wait until it is healthy, and say how to reach it.
#   scripts/demo.sh up      prepare the machine if needed, create the container, deploy, wait
#   scripts/demo.sh down    remove the container
# Environment: PYDEPLOY_DEMO_PORT (default 8000, published on 127.0.0.1 only),
#              PYDEPLOY_DEBIAN (12 or 13, default 12).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"

name=pydeploy-demo
port=${PYDEPLOY_DEMO_PORT:-8000}
release=${PYDEPLOY_DEBIAN:-12}
image=${PYDEPLOY_IMAGE_PREFIX:-pydeploy/debian-systemd}:$release
state=$PYDEPLOY_ROOT/.cache/demo

down() {
  say "removing the demo container"
  docker rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$state"
  echo "demo removed"
}

up() {
  say "step 1/4: preparing the machine (Docker engine, tooling venv, collection, Debian $release image)"
  PYDEPLOY_DEBIAN_RELEASES=$release scripts/prepare.sh
  # shellcheck disable=SC1091
  source "$PYDEPLOY_VENV/bin/activate"
  export ANSIBLE_COLLECTIONS_PATH=$PYDEPLOY_COLLECTIONS_PATH

  say "step 2/4: starting the systemd container $name (port $port on 127.0.0.1)"
  if ! docker inspect "$name" >/dev/null 2>&1; then
    docker run -d --name "$name" --hostname "$name" \
      --cap-add SYS_ADMIN --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
      --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
      --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
      -v "$PYDEPLOY_CACHE_DIR/apt-$release:/var/cache/apt/archives:rw" \
      -v "$PYDEPLOY_CACHE_DIR/pip:/root/.cache/pip:rw" \
      -p "127.0.0.1:$port:8000" "$image" >/dev/null
  fi
  docker exec "$name" systemctl is-system-running --wait >/dev/null || true

  mkdir -p "$state"
  local ca
  ca=$(host_extra_ca_b64)
  cat >"$state/inventory.yml" <<YAML
all:
  children:
    app:
      hosts:
        $name:
          ansible_connection: community.docker.docker
  vars:
    # Reach Gunicorn from the host through the published port (nginx takes this job in the full stack).
    gunicorn_bind_tcp: ["0.0.0.0:8000"]
    gunicorn_forwarded_allow_ips: ["127.0.0.1"]
    python_app_allowed_hosts: [localhost, 127.0.0.1]
    # Docker here cannot give the service its own user namespace.
    gunicorn_private_users: false
    # Behind a TLS-re-signing proxy: trust its CA (empty when the host has none).
    __demo_ca: "$ca"
    python_app_ca_certificates: "{{ [__demo_ca | b64decode] if __demo_ca | length > 0 else [] }}"
    python_app_pip_cert: "{{ '/etc/ssl/certs/ca-certificates.crt' if __demo_ca | length > 0 else '' }}"
YAML

  say "step 3/4: deploying with ansible-playbook pydeploy.django_stack.app"
  ansible-playbook -i "$state/inventory.yml" pydeploy.django_stack.app

  say "step 4/4: waiting for /health/"
  for _ in $(seq 60); do
    if curl -fsS "http://127.0.0.1:$port/health/" >"$state/health.json" 2>/dev/null; then
      echo
      echo "The demo is up: $(cat "$state/health.json")"
      echo "  page:    http://127.0.0.1:$port/"
      echo "  health:  http://127.0.0.1:$port/health/"
      echo "  views:   http://127.0.0.1:$port/sync/  http://127.0.0.1:$port/async/"
      echo "  inside:  docker exec -it $name bash   (systemctl status gunicorn-demo)"
      echo "  remove:  scripts/demo.sh down"
      return 0
    fi
    sleep 1
  done
  die "/health/ did not answer within 60 s"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
