"""Settings module of a release deployed by pydeploy.django_stack (DJANGO_SETTINGS_MODULE).

Imports the project's own settings module (``base_settings`` of the role's configuration,
e.g. ``mysite.settings`` or ``config.settings.production``) and overrides the deployment values
with the role's: see ``pydeploy_django.contract.overrides``. Nothing in the project changes.
"""
import importlib

from pydeploy_django import contract

_CONFIG = contract.load_config()
_PROJECT = contract.uppercase(vars(importlib.import_module(_CONFIG["base_settings"])))

globals().update(_PROJECT)
globals().update(contract.overrides(_CONFIG, _PROJECT))
