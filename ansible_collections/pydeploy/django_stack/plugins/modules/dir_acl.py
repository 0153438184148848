#!/usr/bin/python
# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""POSIX ACL entries on a set of directories, in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
module: dir_acl
author: pydeploy maintainers (@pydeploy)
version_added: 0.1.0
short_description: Ensure POSIX ACL entries (access and default) on several directories in one round trip
description:
  - For every directory of O(paths) that exists, reads its ACL with C(getfacl) and adds the entries of O(entries)
    that are missing or differ, with one C(setfacl -m) per directory. Directories that do not exist are skipped
    (reported in RV(skipped)), so a web host without the app's directories has nothing to do.
  - Entries are C(setfacl) entries - C([default:]user|group:name:perms) or C([default:]other::perms) - where C(X)
    in the permissions means C(x) (the paths are directories).
  - Only adds or corrects the given entries; other entries are left alone. Needs C(getfacl)/C(setfacl) (Debian's acl).
options:
  paths:
    description: Directories.
    type: list
    elements: path
    required: true
  entries:
    description: ACL entries to ensure on each directory.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: nginx reads the static and media directories, and what is created in them later
  pydeploy.django_stack.dir_acl:
    paths: [/srv/demo/shared/static, /srv/demo/shared/media]
    entries: ["user:www-data:rX", "default:user:www-data:rX", "default:other::---"]
"""

RETURN = r"""
changed_paths:
  description: Directories whose ACL was changed.
  returned: always
  type: list
skipped:
  description: Paths that are not existing directories.
  returned: always
  type: list
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule

ENTRY_RE = re.compile(r"\A(default:)?(user|group|other|mask):([^:]*):([rwxX-]{1,3})\Z")


def normalize(entry):
    """`default:user:www-data:rX` -> ('default:user:www-data', 'r-x') for a directory."""
    match = ENTRY_RE.match(entry)
    if not match:
        raise ValueError(f"not an ACL entry: {entry!r}")
    default, kind, name, perms = match.groups()
    bits = "".join(c if c in perms or (c == "x" and "X" in perms) else "-" for c in "rwx")
    return f"{default or ''}{kind}:{name}", bits


def parse_getfacl(text):
    """getfacl output -> {'[default:]kind:name': 'rwx'} (effective-rights comments dropped)."""
    acl = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(":")
        if parts[0] == "default" and len(parts) == 4:
            acl[":".join(parts[:3])] = parts[3]
        elif len(parts) == 3:
            acl[":".join(parts[:2])] = parts[2]
    return acl


def missing(acl, wanted):
    return [f"{key}:{bits}" for key, bits in wanted if acl.get(key) != bits]


def main():
    module = AnsibleModule(
        argument_spec=dict(paths=dict(type="list", elements="path", required=True),
                           entries=dict(type="list", elements="str", required=True)),
        supports_check_mode=True,
    )
    try:
        wanted = [normalize(e) for e in module.params["entries"]]
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    getfacl = module.get_bin_path("getfacl", required=True)
    setfacl = module.get_bin_path("setfacl", required=True)
    changed_paths, skipped = [], []
    for path in module.params["paths"]:
        if not os.path.isdir(path):
            skipped.append(path)
            continue
        rc, out, err = module.run_command([getfacl, "--absolute-names", "--omit-header", path])
        if rc != 0:
            module.fail_json(msg=f"getfacl {path}: {err.strip()}")
        todo = missing(parse_getfacl(out), wanted)
        if not todo:
            continue
        changed_paths.append(path)
        if not module.check_mode:
            rc, out, err = module.run_command([setfacl, "-m", ",".join(todo), path])
            if rc != 0:
                module.fail_json(msg=f"setfacl {path}: {err.strip()}")
    module.exit_json(changed=bool(changed_paths), changed_paths=changed_paths, skipped=skipped)


if __name__ == "__main__":
    main()
