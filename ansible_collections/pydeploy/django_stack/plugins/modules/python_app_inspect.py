#!/usr/bin/python
# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Module python_app_inspect: what python_app derives from a source tree on the host (git sources)."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: python_app_inspect
short_description: Find a project's layout, requirements and Python version in a tree on the host
description:
  - The same inspection the action C(python_app_source) does on the controller for a path source, for a
    tree exported on the host (git source). Fails with a message naming the variable to set.
version_added: 0.2.0
extends_documentation_fragment:
  - pydeploy.django_stack.python_app_project
options:
  path:
    description: The exported source tree.
    type: path
    required: true
  min_versions:
    description: Lowest version of each server package.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: Reads files only.
  diff_mode:
    support: none
    description: Changes nothing.
author: pydeploy maintainers (@pydeploy)
"""

EXAMPLES = r"""
- name: Inspect a git release on the host
  pydeploy.django_stack.python_app_inspect:
    path: /srv/shop/releases/3f2a9c1b7d10/src
    server_packages: [gunicorn==27.0.1]
  register: inspection
"""

RETURN = r"""
---
layout:
  description: Where the project lives and what it runs.
  returned: success
  type: dict
  contains:
    django_root: {description: Directory of manage.py (relative)., type: str}
    settings_module: {description: The settings module to start from., type: str}
    project: {description: Package of wsgi.py and asgi.py., type: str}
    wsgi_module: {description: WSGI callable., type: str}
    asgi_module: {description: ASGI callable (empty without asgi.py)., type: str}
requirements:
  description: The requirements the release installs.
  returned: success
  type: dict
  contains:
    file: {description: The file (relative)., type: str}
    kind: {description: "requirements, pyproject or none.", type: str}
    hashes: {description: The file pins with hashes., type: bool}
    digest: {description: sha256 of the requirement files' text., type: str}
server_packages:
  description: The server packages pip installs besides the project's.
  returned: success
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pydeploy.django_stack.plugins.module_utils.python_app_project import (
    ProjectError, inspect_tree, resolve_server_packages)


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "requirements_file": {"type": "str", "default": ""},
            "django_root": {"type": "str", "default": ""},
            "settings_module": {"type": "str", "default": ""},
            "django": {"type": "bool", "default": True},
            "server_packages": {"type": "list", "elements": "str", "default": []},
            "min_versions": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    p = module.params
    root = p["path"]
    paths = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in (".git", "__pycache__")]
        rel = os.path.relpath(directory, root)
        for name in files:
            paths.append(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))

    def read(path):
        try:
            with open(os.path.join(root, path), encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return None

    try:
        inspection = inspect_tree(paths, read, p["requirements_file"], p["django_root"], p["settings_module"],
                                  p["django"])
        packages, notes = resolve_server_packages(p["server_packages"], p["min_versions"], inspection["requirements"])
    except ProjectError as exc:
        module.fail_json(msg=str(exc))
    requirements = dict(inspection["requirements"])
    requirements["requirements"] = {name: found[0] for name, found in requirements["requirements"].items()}
    module.exit_json(changed=False, layout=inspection["layout"], requirements=requirements,
                     python=inspection["python"], server_packages=packages, notes=notes)


if __name__ == "__main__":
    main()
