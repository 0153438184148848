#!/usr/bin/env bash
# The collection as installed from its tarball (scripts/prepare.sh built and installed it):
# it is found by name, its roles' docs render, its playbooks parse, and nothing that should
# stay out of the tarball is in it. The Molecule scenarios then run the FQCN roles from it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export ANSIBLE_COLLECTIONS_PATH=$PYDEPLOY_COLLECTIONS_PATH
installed=$PYDEPLOY_COLLECTIONS_PATH/ansible_collections/pydeploy/django_stack
ansible-galaxy collection list pydeploy.django_stack -p "$PYDEPLOY_COLLECTIONS_PATH" | grep -q 'pydeploy.django_stack'
[ ! -L "$installed" ] || die "$installed is a link, not an installed copy"
tarball=$(ls "$PYDEPLOY_COLLECTIONS_PATH"-build/pydeploy-django_stack-*.tar.gz)
if tar -tzf "$tarball" | grep -E '(^|/)(\.venv|\.cache|\.git|molecule|__pycache__)(/|$)'; then
  die "the tarball holds files build_ignore should keep out"
fi
for role in "$installed"/roles/*/; do
  role=$(basename "$role")
  ansible-doc -t role "pydeploy.django_stack.$role" >/dev/null || die "ansible-doc failed for $role"
  echo "role pydeploy.django_stack.$role: documented"
done
cd "$(mktemp -d)"
for pb in "$installed"/playbooks/*.yml; do
  [ -e "$pb" ] || continue
  name=$(basename "$pb" .yml)
  ansible-playbook --syntax-check -i localhost, "pydeploy.django_stack.$name" >/dev/null
  echo "playbook pydeploy.django_stack.$name: parses"
done
