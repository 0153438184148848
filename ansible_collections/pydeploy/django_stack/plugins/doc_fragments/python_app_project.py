# Copyright: pydeploy maintainers
# Apache License 2.0 (see galaxy.yml)
"""Options shared by the modules that inspect a Django project's source (python_app_source, python_app_inspect)."""
from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    # How python_app finds a project's layout and reconciles the app server's packages with it.
    DOCUMENTATION = r"""
options:
  requirements_file:
    description: The requirements file (relative), empty to find it, C(none) for no file.
    type: str
    default: ""
  django_root:
    description: Directory of C(manage.py) (relative), empty to find it.
    type: str
    default: ""
  settings_module:
    description: The project's settings module, empty to find it.
    type: str
    default: ""
  django:
    description: The source is a Django project.
    type: bool
    default: true
  server_packages:
    description: The app server's requirement strings.
    type: list
    elements: str
    default: []
"""
