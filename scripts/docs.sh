#!/usr/bin/env bash
# The collection's documentation, as Ansible's docsite tooling sees it:
#   1. antsibull-docs lint-collection-docs --plugin-docs: every role's argument spec and every
#      plugin's DOCUMENTATION parse and render (types of defaults, markup, references to this
#      collection and to ansible.builtin);
#   2. a static site built from the collection in this checkout (argument specs of every role entry
#      point, plugin docs, changelog) into .cache/docs/build/html (open index.html).
#   scripts/docs.sh            lint, then build
#   scripts/docs.sh --lint     lint only
# Runs offline: the site links to docs.ansible.com by URL, but Sphinx's intersphinx inventories
# (which resolve references into other collections' docs) cannot be fetched here, so those
# references, and only those, are not checked by the build (the lint above checks them).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PYDEPLOY_ROOT"
# shellcheck disable=SC1091
[ -n "${VIRTUAL_ENV:-}" ] || source "$PYDEPLOY_VENV/bin/activate"
command -v antsibull-docs >/dev/null || die "antsibull-docs not found: run scripts/prepare.sh (it installs requirements-dev.txt)"

# ansible-doc (called by antsibull-docs) finds pydeploy.django_stack in this checkout, and the
# collections it depends on in the ansible package.
export ANSIBLE_COLLECTIONS_PATH=$PYDEPLOY_ROOT

start=$SECONDS
say "antsibull-docs lint-collection-docs --plugin-docs"
antsibull-docs lint-collection-docs --plugin-docs "$PYDEPLOY_COLLECTION_SRC"
echo "docs lint: clean ($((SECONDS - start)) s)"
[ "${1:-}" != "--lint" ] || exit 0

start=$SECONDS
dest=$PYDEPLOY_ROOT/.cache/docs
say "docs site into $dest/build/html"
rm -rf "$dest" && mkdir -p "$dest"
antsibull-docs sphinx-init --use-current --squash-hierarchy \
  --project "pydeploy.django_stack" --copyright "pydeploy maintainers" \
  --title "pydeploy.django_stack" --html-short-title "pydeploy.django_stack" \
  --dest-dir "$dest" pydeploy.django_stack >/dev/null
cat >>"$dest/conf.py" <<'EOF'

# scripts/docs.sh: offline build. No intersphinx inventory can be fetched here, so references
# into docs.ansible.com stay unresolved and are not warnings: other collections' plugins
# (ansible_collections.<other>.*) and the docsite's own pages (labels without a dot, such as
# ansible_configuration_settings, action_plugins, common_return_values). References into this
# collection's pages still are, and fail the build (-W).
intersphinx_mapping = {}
nitpick_ignore_regex = [
    ("ref", r"ansible_collections\.(?!pydeploy\.django_stack\.).*"),
    ("ref", r"[a-z_]+"),
]
EOF
mkdir -p "$dest/rst" && chmod og-w "$dest/rst"  # antsibull-docs wants it writable by itself only
antsibull-docs --config-file "$dest/antsibull-docs.cfg" collection --cleanup everything --fail-on-error \
  --use-current --squash-hierarchy --dest-dir "$dest/rst" pydeploy.django_stack
sphinx-build -M html "$dest/rst" "$dest/build" -c "$dest" -W --keep-going -q
echo "docs site: $dest/build/html/index.html ($((SECONDS - start)) s)"
