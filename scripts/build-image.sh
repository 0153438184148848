#!/usr/bin/env bash
# Ensure a Debian test image with systemd as PID 1 exists locally.
#
#   scripts/build-image.sh <release> [image]
#
# release: 12 | 13 (bookworm | trixie). image defaults to
# ${PYDEPLOY_IMAGE_PREFIX:-pydeploy/debian-systemd}:<release>.
#
# Order of preference, so that a user with registry access is not slowed down:
#   1. the image is already present locally, of this script's version -> nothing to do
#   2. `docker pull` of the image succeeds      -> use it
#   3. build it from Debian's packages: debootstrap + docker import, cached as the image
#
# Environment:
#   PYDEPLOY_DEBIAN_MIRROR   mirror for debootstrap (default http://deb.debian.org/debian)
#   PYDEPLOY_TRUST_HOST_CA   1 = add the host's extra CA certificates (those in the host's
#                            system bundle that Debian's bundle lacks) to the image's trust
#                            store. Off by default: the roles have their own variables for
#                            extra CAs, and the test scenarios use those.
#   PYDEPLOY_NO_PULL         1 = never try `docker pull`
set -euo pipefail

release=${1:?usage: build-image.sh <12|13> [image]}
prefix=${PYDEPLOY_IMAGE_PREFIX:-pydeploy/debian-systemd}
image=${2:-${prefix}:${release}}
mirror=${PYDEPLOY_DEBIAN_MIRROR:-http://deb.debian.org/debian}

case "$release" in
  12) suite=bookworm ;;
  13) suite=trixie ;;
  *) echo "build-image: unsupported Debian release '$release' (12 or 13)" >&2; exit 2 ;;
esac

log() { printf '[build-image] %s\n' "$*" >&2; }

# What the image holds for the harness; raised when that changes, so that an image built by an
# older version of this script is rebuilt instead of failing the scenarios.
# 2: openssh-server, for Molecule's connection (scripts/docker-ssh-proxy).
version=2
image_version() {
  docker image inspect -f '{{ index .Config.Labels "io.pydeploy.image-version" }}' "$image" 2>/dev/null || true
}

if docker image inspect "$image" >/dev/null 2>&1; then
  have=$(image_version)
  if [ "$have" = "$version" ]; then
    log "$image present locally"
    exit 0
  fi
  log "$image present locally but of version '${have:-1}', not $version: making it again"
fi
if [ "${PYDEPLOY_NO_PULL:-0}" != 1 ] && timeout 60 docker pull -q "$image" >/dev/null 2>&1 \
  && [ "$(image_version)" = "$version" ]; then
  log "$image pulled"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap"
  # The other release's build may be installing it at the same moment: wait for dpkg's lock.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 debootstrap >/dev/null
fi

work=$(mktemp -d /var/tmp/pydeploy-rootfs.XXXXXX)
trap 'rm -rf --one-file-system "$work"' EXIT
root=$work/rootfs
start=$SECONDS
log "debootstrap $suite from $mirror (about a minute)"
# python3/python3-apt: Ansible's modules; sudo: become_user; systemd-sysv: /sbin/init;
# openssh-server: the harness's SSH connection, started per connection over `docker exec`
# (scripts/docker-ssh-proxy), never listening on a port.
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,ca-certificates,iproute2,procps,curl,gnupg,openssh-server \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

# Units that have nothing to do in a container and only delay or fail the boot; and sshd's, whose
# daemon would listen on port 22 of every test host (the harness starts sshd in inetd mode instead).
for unit in getty@tty1.service console-getty.service systemd-udevd.service \
            systemd-udev-trigger.service systemd-modules-load.service \
            sys-kernel-config.mount sys-kernel-debug.mount sys-fs-fuse-connections.mount \
            systemd-remount-fs.service systemd-firstboot.service ssh.service ssh.socket; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
: >"$root/etc/machine-id"
printf 'deb %s %s main\ndeb %s %s-updates main\ndeb http://deb.debian.org/debian-security %s-security main\n' \
  "$mirror" "$suite" "$mirror" "$suite" "$suite" >"$root/etc/apt/sources.list"
rm -f "$root"/etc/apt/sources.list.d/*.sources
# Keep downloaded packages so that a host cache mounted on /var/cache/apt/archives fills up.
printf 'Binary::apt::APT::Keep-Downloaded-Packages "true";\n' >"$root/etc/apt/apt.conf.d/10keep-debs"

if [ "${PYDEPLOY_TRUST_HOST_CA:-0}" = 1 ]; then
  log "adding the host's extra CA certificates to the image"
  python3 - "$root" <<'PY'
import pathlib, re, sys
root = pathlib.Path(sys.argv[1])
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
host = pem.findall(pathlib.Path("/etc/ssl/certs/ca-certificates.crt").read_text())
known = set(pem.findall((root / "etc/ssl/certs/ca-certificates.crt").read_text()))
dest = root / "usr/local/share/ca-certificates"
for i, cert in enumerate(c for c in host if c not in known):
    (dest / f"pydeploy-host-{i}.crt").write_text(cert + "\n")
PY
  chroot "$root" update-ca-certificates >/dev/null
fi

rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
# No package lists in the image: make them look stale so that the first apt run updates.
touch -d @0 "$root/var/lib/apt/lists"
log "importing as $image"
tar -C "$root" -c . | docker import \
  --change 'ENV container=docker' \
  --change "LABEL io.pydeploy.image-version=$version" \
  --change 'CMD ["/lib/systemd/systemd"]' \
  - "$image" >/dev/null
log "$image built in $((SECONDS - start)) s"
