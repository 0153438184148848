#!/usr/bin/env bash
# The main job: bring the whole stack up locally with the collection's own site.yml, in the
# single-box layout (one systemd container in the db, app and web groups: PostgreSQL, the demo
# Django app under Gunicorn with Uvicorn workers, nginx with TLS in front), wait until /health/
# answers through nginx and say what to try.
#   scripts/demo.sh up      prepare the machine if needed, create the container, run site.yml, wait
#   scripts/demo.sh down    remove the container and the demo's local state
# The three-tier layout (web, app1, app2, db) is the Molecule scenario `stack`
# (scripts/test.sh stack); the same site.yml converges both.
# Environment: PYDEPLOY_DEMO_HTTP_PORT (8080) and PYDEPLOY_DEMO_HTTPS_PORT (8443), published on
#              127.0.0.1 only; PYDEPLOY_DEBIAN (12 or 13, default 12); PYDEPLOY_DEMO_NAME, the
#              container's name (pydeploy-demo; another name keeps its state in .cache/demo-NAME,
#              so that a second demo, e.g. the test suite's, leaves yours alone).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"

name=${PYDEPLOY_DEMO_NAME:-pydeploy-demo}
http_port=${PYDEPLOY_DEMO_HTTP_PORT:-8080}
https_port=${PYDEPLOY_DEMO_HTTPS_PORT:-8443}
release=${PYDEPLOY_DEBIAN:-12}
state=$PYDEPLOY_ROOT/.cache/demo${PYDEPLOY_DEMO_NAME:+-$PYDEPLOY_DEMO_NAME}

down() {
  say "removing the demo container"
  docker rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$state"
  echo "demo removed"
}

up() {
  say "step 1/4: preparing the machine (Docker engine, tooling venv, collection, Debian $release image)"
  # What running the playbooks needs (requirements.txt), not the test tooling: a fresh machine
  # is up sooner.
  PYDEPLOY_DEBIAN_RELEASES=$release PYDEPLOY_PREPARE_FOR=run scripts/prepare.sh
  # shellcheck disable=SC1091
  source "$PYDEPLOY_VENV/bin/activate"
  export ANSIBLE_COLLECTIONS_PATH=$PYDEPLOY_COLLECTIONS_PATH

  say "step 2/4: starting the systemd container $name (nginx on 127.0.0.1:$http_port and :$https_port)"
  if ! docker inspect "$name" >/dev/null 2>&1; then
    run_systemd_container "$name" "$release" -p "127.0.0.1:$http_port:$http_port" -p "127.0.0.1:$https_port:$https_port"
  fi

  # The demo's database password: made once, kept out of git and readable by root only.
  mkdir -p "$state"
  chmod 0700 "$state"
  [ -s "$state/db-password" ] || (umask 077; openssl rand -hex 24 >"$state/db-password")
  local ca
  ca=$(host_extra_ca_b64)
  cat >"$state/inventory.yml" <<YAML
# Written by scripts/demo.sh: the single-box layout of inventories/single, in a local container.
all:
  children:
    db:
      hosts:
        $name:
    app:
      hosts:
        $name:
    web:
      hosts:
        $name:
  vars:
    ansible_connection: community.docker.docker
    # ASGI workers, so that /ws/echo/ works next to the plain views.
    pydeploy_app_server: uvicorn_worker
    uvicorn_worker_workers: 2
    # The bundled demo project (README "Deploy your own project" for yours).
    python_app_source_type: demo
    python_app_allowed_hosts: [localhost, 127.0.0.1]
    python_app_csrf_trusted_origins: ["https://localhost:$https_port", "https://127.0.0.1:$https_port"]
    # The demo's own health view answers with the database's state.
    python_app_health: {path: /health/, status: 200, body: '"db": "ok"', host: localhost}
    python_app_database:
      engine: postgresql
      name: demo
      user: demo
      host: /var/run/postgresql
    # Written once: the playbooks hand the role, database and password to PostgreSQL, and nginx
    # gets its site (server names, socket, static and media) from the app.
    python_app_database_password: "{{ lookup('ansible.builtin.file', '$state/db-password') }}"
    # nginx listens on the published ports themselves, so its redirects name the right port.
    nginx_http_port: $http_port
    nginx_https_port: $https_port
    # Docker here cannot give the service its own user namespace.
    uvicorn_worker_private_users: false
    # Behind a TLS-re-signing proxy: trust its CA (empty when the host has none).
    __demo_ca: "$ca"
    python_app_ca_certificates: "{{ [__demo_ca | b64decode] if __demo_ca | length > 0 else [] }}"
    python_app_pip_cert: "{{ '/etc/ssl/certs/ca-certificates.crt' if __demo_ca | length > 0 else '' }}"
YAML

  say "step 3/4: ansible-playbook pydeploy.django_stack.site (PostgreSQL, app, static, nginx)"
  ansible-playbook -i "$state/inventory.yml" pydeploy.django_stack.site

  # By name, not by address: nginx's catch-all server refuses a TLS handshake that names no site
  # (a client connecting to an IP address sends no server name).
  say "step 4/4: waiting for /health/ through nginx (https://localhost:$https_port/health/)"
  for _ in $(seq 60); do
    if curl -fsSk --resolve "localhost:$https_port:127.0.0.1" "https://localhost:$https_port/health/" \
      >"$state/health.json" 2>/dev/null; then
      echo
      echo "The stack is up: $(cat "$state/health.json")"
      echo "  page:       https://localhost:$https_port/   (self-signed certificate: curl -k, or accept it once)"
      echo "  static:     the page's stylesheet, served by nginx from /srv/demo/shared/static"
      echo "  health:     https://localhost:$https_port/health/   (JSON: database, release, host)"
      echo "  views:      https://localhost:$https_port/sync/   https://localhost:$https_port/async/"
      echo "  websocket:  python3 tests/tools/wsclient.py probe --url wss://127.0.0.1:$https_port/ws/echo/ --insecure --json --message hi"
      echo "  http:       http://localhost:$http_port/ redirects to https"
      echo "  inside:     docker exec -it $name bash   (systemctl status nginx gunicorn-demo postgresql)"
      echo "  remove:     scripts/demo.sh down"
      return 0
    fi
    sleep 1
  done
  die "/health/ did not answer through nginx within 60 s"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
