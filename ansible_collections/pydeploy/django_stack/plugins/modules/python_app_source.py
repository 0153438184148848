#!/usr/bin/python
# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
# Documentation of the action plugin pydeploy.django_stack.python_app_source, which runs entirely on the controller
# (plugins/action/python_app_source.py); there is no module code to send to a host.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: python_app_source
short_description: A Django project's source on the controller - files, release id, layout, requirements (controller only)
author: pydeploy maintainers (@pydeploy)
version_added: 0.2.0
description:
  - Lists the files of a release from a directory on the controller, leaving out version control metadata, byte code,
    what the tree's C(.gitignore) files (and C(.git/info/exclude)) ignore, and O(exclude).
  - Computes the release id from the content (paths, executable bits, bytes) and O(salt).
  - Finds where C(manage.py) lives, the settings module to start from (a C(production)/C(prod) sibling of a
    development module that C(manage.py) names), the WSGI/ASGI entry points, the requirements file (or
    C(pyproject.toml) dependencies) and the Python version the project declares.
  - Resolves the app server's packages against the project's own pins - a pin at least O(min_versions) is kept, an
    older pin or an excluding range fails, naming the variable to change.
  - With O(pack), writes the release tarball (owner root, modes 0644/0755, O(extra_dir) added under O(extra_prefix)).
  - Fails with a message naming the role variable to set when something cannot be found.
extends_documentation_fragment:
  - pydeploy.django_stack.python_app_project
options:
  path:
    description: The project's directory on the controller; empty returns the layout from the overrides only.
    type: str
    default: ""
  exclude:
    description: More patterns left out, in .gitignore syntax.
    type: list
    elements: str
    default: []
  gitignore:
    description: Apply the tree's .gitignore files.
    type: bool
    default: true
  extra_dir:
    description: A directory of the role added to the release (and to its id).
    type: str
    default: ""
  extra_prefix:
    description: Where O(extra_dir) goes in the release.
    type: str
    default: ""
  salt:
    description: More input of the release id (packages, interpreter, installer).
    type: str
    default: ""
  min_versions:
    description: Lowest version of each server package (distribution name to version).
    type: dict
    default: {}
  pack:
    description: Path of the tarball to write on the controller; empty writes none.
    type: str
    default: ""
  warn:
    description: Warnings to show (empty strings are skipped).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    description: Reads the source; the tarball is not written in check mode.
  diff_mode:
    support: none
    description: Changes nothing on any host.
"""

EXAMPLES = r"""
- name: Inspect and pack a project
  pydeploy.django_stack.python_app_source:
    path: ~/src/shop
    server_packages: [gunicorn==27.0.1]
    min_versions: {gunicorn: "23.0"}
    pack: /tmp/shop.tar.gz
  delegate_to: localhost
  register: shop_source
"""

RETURN = r"""
release_id:
  description: The first 12 characters of RV(digest).
  type: str
  returned: always
digest:
  description: sha256 over the release's files and the salt.
  type: str
  returned: always
files:
  description: Number of files in the release.
  type: int
  returned: always
layout:
  description: C(django_root), C(settings_module), C(project), C(wsgi_module), C(asgi_module), C(declared).
  type: dict
  returned: always
requirements:
  description: C(file), C(kind) (requirements, pyproject, none), C(hashes), C(requirements) (name to specifier), C(digest).
  type: dict
  returned: always
python:
  description: C(spec) and C(source) of the Python version the project declares.
  type: dict
  returned: always
server_packages:
  description: The server packages installed besides the project's requirements.
  type: list
  elements: str
  returned: always
notes:
  description: Which of the project's own pins replaced a server package.
  type: list
  elements: str
  returned: always
"""
