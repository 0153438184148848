#!/usr/bin/env bash
# What one remote command costs in CPU over the two ways the harness can reach a test container:
# `docker exec` (the docker connection: one per Ansible task, one per testinfra command) and SSH
# multiplexed over one ControlPersist connection (what .config/molecule/config.yml uses, through
# scripts/docker-ssh-proxy). Reports; asserts nothing.
#   scripts/bench_connection.sh [COMMANDS] [DEBIAN]      (default 40 commands, Debian 12)
# Starts a throwaway container from the test image, runs COMMANDS times `true` each way and prints
# the CPU ticks (1/100 s) of every process involved: the client (the docker CLI or ssh), dockerd,
# containerd, the container's shim with the runc processes it reaped, and sshd in the container.
# dockerd and containerd serve every container of the machine: run it on an idle machine.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"
count=${1:-40} release=${2:-12}
name=${PYDEPLOY_INSTANCE_PREFIX:-pydeploy}-bench-connection
key=$PYDEPLOY_CACHE_DIR/ssh
[ -s "$key/id_ed25519" ] || die "no harness key in $key: run scripts/prepare.sh first"
docker image inspect "${PYDEPLOY_IMAGE_PREFIX:-pydeploy/debian-systemd}:$release" >/dev/null 2>&1 \
  || die "no Debian $release test image: run scripts/prepare.sh first"

docker rm -f "$name" >/dev/null 2>&1 || true
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
run_systemd_container "$name" "$release" -v "$key/authorized_keys:/root/.ssh/authorized_keys:ro"

ticks() {  # ticks PID...: user + system CPU of the processes and their reaped children
  local pid sum=0
  for pid in "$@"; do
    [ -n "$pid" ] && sum=$((sum + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$sum"
}
self_ticks() { awk '{ print $16 + $17 }' "/proc/$$/stat"; }  # the CPU of this shell's reaped children
container_pid=$(docker inspect -f '{{ .State.Pid }}' "$name")
shim=$(ps -o ppid= -p "$container_pid" | tr -d ' ')
dockerd=$(pgrep -xo dockerd) containerd=$(pgrep -xo containerd)
ssh_opts=(-o ControlMaster=auto -o ControlPersist=60s -o "ControlPath=$key/cp-bench-%C"
  -o "ProxyCommand=$PYDEPLOY_ROOT/scripts/docker-ssh-proxy %h" -o IdentitiesOnly=yes
  -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i "$key/id_ed25519" -l root)

measure() {  # measure LABEL COMMAND...: COMMAND run $count times; prints the ticks per process
  local label=$1 i c0 c1 d0 d1 k0 k1 s0 s1 x0 x1 m0 m1 m sshd master; shift
  # sshd's session processes (Debian 12: "sshd: root@notty"; 13: "sshd-session: root [priv]" and
  # its "root@notty" child); the commands are their children.
  mapfile -t sshd < <(docker top "$name" -o pid,args | awk '/sshd(-session)?: root/ { print $1 }')
  master=$(pgrep -f "cp-bench-.*\[mux\]" | head -n 1 || true)
  c0=$(self_ticks); d0=$(ticks "$dockerd"); k0=$(ticks "$containerd"); s0=$(ticks "$shim")
  x0=$(ticks "${sshd[@]}"); m0=$(ticks "$master")
  for ((i = 0; i < count; i++)); do "$@" >/dev/null; done
  c1=$(self_ticks); d1=$(ticks "$dockerd"); k1=$(ticks "$containerd"); s1=$(ticks "$shim")
  x1=$(ticks "${sshd[@]}"); m1=$(ticks "$master")
  m=$(( (c1 - c0) + (m1 - m0) + (d1 - d0) + (k1 - k0) + (s1 - s0) + (x1 - x0) ))
  printf '| %s | %d | %d | %d | %d | %d | %d | %d | %.1f |\n' "$label" "$count" $((c1 - c0 + m1 - m0)) \
    $((d1 - d0)) $((k1 - k0)) $((s1 - s0)) $((x1 - x0)) "$m" "$(echo "$m * 10 / $count" | bc -l)"
}

ssh "${ssh_opts[@]}" "$name" true  # the master: one `docker exec` for the whole run
echo "| way | commands | client ticks | dockerd | containerd | shim + runc | sshd | total ticks | ms CPU per command |"
echo "|---|---|---|---|---|---|---|---|---|"
measure "docker exec" docker exec "$name" true
measure "SSH over one ControlPersist connection" ssh "${ssh_opts[@]}" "$name" true
ssh "${ssh_opts[@]}" -O exit "$name" 2>/dev/null || true
