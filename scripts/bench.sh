#!/usr/bin/env bash
# Benchmark of the whole stack (issue 7), not part of the test suite:
#   scripts/bench.sh [--keep] [--duration SECONDS] [--deadline SECONDS]
# Brings up ONE systemd container (pydeploy-bench), converges nginx + python_app + Gunicorn on it
# with the collection's own playbooks, once per variant of the demo app (the roles' defaults,
# gthread, worker recycling on, Uvicorn workers), with a second app next to it set up as the
# popular guide says (measured in turns with the defaults), and measures each with wrk
# -t2 -c50 against 127.0.0.1 inside the container (tests/tools/bench_stack.py): nginx's ceiling,
# static files, the Django view direct and through nginx+TLS, and p99 and failed requests during
# a reload, a restart, a release deploy and worker recycling. Prints one table (also saved under
# .cache/bench/) and removes the container unless --keep.
# Environment: PYDEPLOY_DEBIAN (12 or 13, default 12); PYDEPLOY_COLLECTIONS_PATH as for the tests.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"

name=pydeploy-bench
release=${PYDEPLOY_DEBIAN:-12}
state=$PYDEPLOY_ROOT/.cache/bench
tool=/usr/local/lib/pydeploy-bench/bench_stack.py
keep=false
duration=6
deadline_s=2700

while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=true ;;
    --duration) duration=${2:?}; shift ;;
    --deadline) deadline_s=${2:?}; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see $0 --help)" ;;
  esac
  shift
done

deadline=$((SECONDS + deadline_s))
step_no=0
left() { echo $((deadline - SECONDS)); }
step() {
  step_no=$((step_no + 1))
  [ "$(left)" -gt 0 ] || die "deadline of $deadline_s s reached before: $*"
  say "step $step_no ($((SECONDS / 60))m$((SECONDS % 60))s, $(left) s left): $*"
}
# Every long command runs under the remaining time of the whole run.
bounded() {
  local t
  t=$(left)
  [ "$t" -gt 0 ] || die "deadline of $deadline_s s reached before: $*"
  timeout --foreground --kill-after=10 "$t" "$@"
}
in_box() { docker exec "$name" "$@"; }
measure() { bounded docker exec "$name" python3 "$tool" --duration "$duration" "$@"; }

report() {  # the table of everything measured so far, printed and kept under .cache/bench-reports/
  local stamp
  stamp=$(date -u +%Y-%m-%dT%H%MZ)
  {
    echo "Benchmark $stamp, $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average" \
         "at the end: $(cut -d' ' -f1-3 /proc/loadavg); Debian $release container; total $((SECONDS / 60)) min."
    echo
    timeout 60 docker exec "$name" python3 "$tool" report
  } | tee "$state/report.md"
  mkdir -p "$PYDEPLOY_ROOT/.cache/bench-reports"
  cp "$state/report.md" "$PYDEPLOY_ROOT/.cache/bench-reports/$stamp.md"
  reported=true
}

reported=false
tool_installed=false
cleanup() {
  local rc=$?
  if [ -n "${deploy_pid:-}" ]; then kill "$deploy_pid" 2>/dev/null || true; fi
  # Stopped early (deadline, a failed step): still show what was measured.
  if ! $reported && $tool_installed; then say "report of what was measured before the stop"; report || true; fi
  if $keep; then
    echo "kept: docker exec -it $name bash   (remove: docker rm -f $name)" >&2
  else
    docker rm -f "$name" >/dev/null 2>&1 || true
  fi
  exit $rc
}
trap cleanup EXIT

step "preparing the machine (Docker engine, tooling venv, collection, Debian $release image)"
PYDEPLOY_DEBIAN_RELEASES=$release scripts/prepare.sh
# shellcheck disable=SC1091
source "$PYDEPLOY_VENV/bin/activate"
export ANSIBLE_COLLECTIONS_PATH=$PYDEPLOY_COLLECTIONS_PATH ANSIBLE_NOCOLOR=1
demo=$PYDEPLOY_COLLECTIONS_PATH/ansible_collections/pydeploy/django_stack/roles/python_app/files/demo_project

step "starting the systemd container $name (no published ports: all load stays inside it)"
docker rm -f "$name" >/dev/null 2>&1 || true
run_systemd_container "$name" "$release"

rm -rf "$state" && mkdir -p "$state"
ca=$(host_extra_ca_b64)
# One box in the app and web groups. SQLite, not PostgreSQL: the measured view (/sync/) reads no
# database, and the deploy's health check is satisfied by SQLite; a db tier would only add
# install time and a process competing for the two CPUs.
cat >"$state/inventory.yml" <<YAML
all:
  children:
    app:
      hosts:
        $name:
          ansible_connection: community.docker.docker
    web:
      hosts:
        $name:
  vars:
    # Equal worker count for every variant: 5 (2 x 2 CPUs + 1, the gunicorn role's default here).
    gunicorn_workers: 5
    uvicorn_worker_workers: 5
    # Gunicorn direct: wrk cannot use a unix socket, so the app listens on loopback TCP as well.
    gunicorn_bind_tcp: ["127.0.0.1:8000"]
    python_app_allowed_hosts: [localhost, 127.0.0.1]
    # Two sites: the demo app as each variant sets it up, and the guide's settings next to it
    # (no keepalive to its Gunicorn). The role's default rate limit (10 r/s per client address)
    # would answer the load with 429, so the benchmark turns it off on both.
    nginx_sites:
      - name: demo
        server_names: [localhost, 127.0.0.1]
        rate_limit: {}
      - name: guide
        server_names: [guide.bench]
        rate_limit: {}
        upstream_socket: /run/gunicorn/guide.sock
        upstream_keepalive: 0
    # Docker here cannot give the service its own user namespace.
    gunicorn_private_users: false
    # Behind a TLS-re-signing proxy: trust its CA (empty when the host has none).
    __bench_ca: "$ca"
    python_app_ca_certificates: "{{ [__bench_ca | b64decode] if __bench_ca | length > 0 else [] }}"
    python_app_pip_cert: "{{ '/etc/ssl/certs/ca-certificates.crt' if __bench_ca | length > 0 else '' }}"
YAML

# The popular guide's settings, as a second app ("guide", TCP 127.0.0.1:8001, site guide.bench)
# that stays up next to the demo: recycling at 1000 (+100) without preload, Gunicorn's access log
# on stdout (journald), stock Gunicorn's reload (old workers retired at once), and (in nginx_sites
# above) no keepalive from nginx to the app. Measured in turns with the demo's defaults.
cat >"$state/guide.yml" <<'YAML'
python_app_name: guide
python_app_allowed_hosts: [guide.bench, localhost, 127.0.0.1]
gunicorn_bind_tcp: ["127.0.0.1:8001"]
gunicorn_max_requests: 1000
gunicorn_max_requests_jitter: 100
gunicorn_access_log: true
gunicorn_reload_wait_ready: false
YAML
# Variants of the demo app: its play's variables, converged with the roles before measuring.
cat >"$state/defaults.yml" <<'YAML'
bench_variant: defaults
YAML
cat >"$state/gthread.yml" <<'YAML'
bench_variant: gthread
gunicorn_worker_class: gthread
gunicorn_threads: 4
YAML
cat >"$state/recycle.yml" <<'YAML'
bench_variant: recycle
gunicorn_max_requests: 1000
gunicorn_max_requests_jitter: 100
YAML
cat >"$state/preload-recycle.yml" <<'YAML'
bench_variant: preload-recycle
gunicorn_preload_app: true
gunicorn_max_requests: 1000
gunicorn_max_requests_jitter: 100
YAML
# uvicorn_worker_forwarded_allow_ips is given explicitly: with gunicorn_bind_tcp set, its default
# and gunicorn_forwarded_allow_ips refer to each other (a template loop) in this working tree.
cat >"$state/uvicorn.yml" <<'YAML'
bench_variant: uvicorn
pydeploy_app_server: uvicorn_worker
uvicorn_worker_forwarded_allow_ips: [127.0.0.1, "::1"]
YAML
cat >"$state/uvicorn-recycle.yml" <<'YAML'
bench_variant: uvicorn-recycle
pydeploy_app_server: uvicorn_worker
uvicorn_worker_forwarded_allow_ips: [127.0.0.1, "::1"]
uvicorn_worker_max_requests: 1000
uvicorn_worker_max_requests_jitter: 100
YAML

# The release deployed under load: the demo with another VERSION.
cp -r "$demo" "$state/release-2"
find "$state/release-2" -name __pycache__ -prune -exec rm -rf {} +
echo "2.0.0-bench" >"$state/release-2/VERSION"
demo_source=

converge() {  # converge VARIANT [all]: the demo app with the variant's variables; with "all" also
  # the guide app and nginx (the first time only: later variants change nothing of theirs).
  local play=$state/converge-$1.yml log=$state/converge-$1.log
  {
    echo "---"
    echo "- name: The demo app, variant $1"
    echo "  ansible.builtin.import_playbook: pydeploy.django_stack.app"
    echo "  vars:"
    sed 's/^/    /' "$state/$1.yml"
    if [ -n "$demo_source" ]; then echo "    python_app_source_path: $demo_source"; fi
    if [ "${2:-}" = all ]; then
      echo "- name: The guide's settings, a second app next to it"
      echo "  ansible.builtin.import_playbook: pydeploy.django_stack.app"
      echo "  vars:"
      sed 's/^/    /' "$state/guide.yml"
      echo "- name: nginx in front of both"
      echo "  ansible.builtin.import_playbook: pydeploy.django_stack.web"
    fi
  } >"$play"
  if ! bounded ansible-playbook -i "$state/inventory.yml" "$play" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "converge of variant $1 failed (log: $log)"
  fi
  grep -E "^$name +: ok=" "$log" | tail -n 1 >&2 || true
}

step "converging the stack with the roles' defaults (first run installs nginx, Python, the release)"
converge defaults all

step "installing wrk (Debian's package) and the measuring tool in the container"
bounded docker exec "$name" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null \
  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }'
in_box mkdir -p "$(dirname "$tool")"
docker cp tests/tools/bench_stack.py "$name:$tool" >/dev/null
tool_installed=true
measure reset
measure setup

step "defaults and guide in turns: ceiling, static over HTTP and HTTPS, the view direct and through nginx+TLS"
measure rows defaults:ceiling defaults:static-http defaults:static-https
measure rows defaults:direct defaults:tls guide:direct guide:tls

step "defaults and guide: steady load, then systemctl reload, and (defaults) systemctl restart under load"
measure op defaults steady
measure op defaults reload
measure op defaults restart
measure op guide steady
measure op guide reload

step "defaults: a release deploy (pydeploy.django_stack.deploy, new VERSION) under load"
in_box rm -f /run/pydeploy-bench/deploy.done
measure op defaults deploy --max-seconds "$(( $(left) < 900 ? $(left) : 900 ))" &
deploy_pid=$!
for _ in $(seq 60); do in_box test -e /run/pydeploy-bench/load.started && break; sleep 1; done
deploy_rc=0
bounded ansible-playbook -i "$state/inventory.yml" -e "python_app_source_path=$state/release-2" \
  pydeploy.django_stack.deploy >"$state/deploy.log" 2>&1 || deploy_rc=$?
in_box touch /run/pydeploy-bench/deploy.done
wait "$deploy_pid"
deploy_pid=
if [ "$deploy_rc" -ne 0 ]; then tail -n 40 "$state/deploy.log" >&2; die "the deploy failed (log: $state/deploy.log)"; fi
demo_source=$state/release-2

step "gthread (4 threads per worker): converge, then the view direct and through nginx+TLS"
converge gthread
measure rows gthread:direct gthread:tls

step "recycling on (max_requests 1000 + jitter 100, sync): converge, then load while workers recycle"
converge recycle
measure op recycle steady
measure op recycle recycle

step "recycling with preload_app (Django imported once, in the master): load while workers recycle, restart"
converge preload-recycle
measure op preload-recycle steady
measure op preload-recycle recycle
measure op preload-recycle restart

step "Uvicorn workers (uvicorn_worker role, gunicorn mode): converge, the view direct and through nginx+TLS, reload"
converge uvicorn
measure rows uvicorn:direct uvicorn:tls
measure op uvicorn steady
measure op uvicorn reload

step "Uvicorn workers with recycling on (max_requests 1000 + jitter 100): load while workers recycle"
converge uvicorn-recycle
measure op uvicorn-recycle recycle

step "report"
report
